"""The one place that turns a resolved :class:`Spec` into NumPy calls.

``plan(spec, shapes)`` chooses, once per (spec, shapes), the cheapest faithful
NumPy route for a generalised einsum and writes it as **source code**:

* a permutation of one operand is a ``transpose`` view, a sum is ``.sum``;
* a product whose terms all survive into the output (Hadamard, outer and
  broadcast products) is ``*`` on aligned views;
* a pairwise contraction is ``@`` (on transposed views, as written by hand) or
  one batched ``numpy.matmul`` on reshaped operands; a batch of matrix-vector
  products and any diagonal (a letter repeated in a term) use ``numpy.einsum``;
* three or more operands are the pairwise steps of opt_einsum's optimised path.

The generalised output forms are applied after the contraction: a symbol absent
from every input is a broadcast, a repeated symbol writes onto a diagonal.

The same source is what eager evaluation runs (each plan is compiled from it
once) and what ``ea.codegen`` prints and ``ea.compile`` executes, so the three
can never disagree. Equations are written with the letters of
:func:`~einsumad.algebra.letters.readable_letters`.

Operands of another array library get a plan in one of two dialects, keyed by
the library (:func:`~einsumad.core.arrays.library_name`), so that the forward
pass, every cotangent and the result stay in that library and on its device:

* libraries opt_einsum dispatches to (Dask, CuPy, PyTorch, JAX): the
  contraction is ``contract("ij,jk->ik", a, b, backend="torch")``, opt_einsum's
  own path and the library's tensordot and einsum;
* any other array API library (``array_api_strict``, the reference): the same
  decomposition as NumPy's plans, in the standard's functions (``xp.permute_dims``,
  ``xp.reshape``, ``xp.matmul``, ``xp.sum``; a diagonal is a strided slice).

In both, sums, permutations and products that contract nothing are written with
the standard's functions and ``*``; a 0-d operand (a Python number) is a factor
multiplied in afterwards; and the generalised outputs are library-neutral: a
broadcast letter is ``xp.broadcast_to``, a diagonal embedding one strided write
into zeros (``z[..., ::n+1] = y``) where the library's arrays take assignment, a
product with ``xp.eye`` where they do not (Dask, JAX).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np
import opt_einsum

from ..algebra.letters import readable_letters
from ..algebra.subscripts import Spec
from ..algebra.swap import run_pairwise
from .arrays import array_namespace, dense, device, dtype, dtype_kind, library_name, namespace_named
from .arrays import shape as shape_of

__all__ = [
    "Plan", "plan", "evaluate", "contraction_path", "embed_diagonal", "HELPERS", "array_namespace",
    "contract", "OPT_EINSUM_BACKENDS",
]

Shapes = tuple[tuple[int, ...], ...]


def embed_diagonal(y: Any, unique: str, output: str, out_shape: tuple[int, ...]) -> np.ndarray:
    """``y`` (axes ``unique``) written onto the diagonal of zeros of ``out_shape``
    (axes ``output``, where a letter may repeat): the generalised output ``i->ii``.

    >>> embed_diagonal(np.array([1.0, 2.0]), "i", "ii", (2, 2))
    array([[1., 0.],
           [0., 2.]])
    """
    y = np.asarray(y)
    out = np.zeros(out_shape, dtype=y.dtype)
    strides = tuple(sum(out.strides[p] for p, t in enumerate(output) if t == s) for s in unique)
    # A writable view of the diagonal: the repeated letters share one stride sum.
    np.ndarray(y.shape, dtype=out.dtype, buffer=out, strides=strides)[...] = y
    return out


#: Libraries whose contractions go through opt_einsum's backend dispatch.
OPT_EINSUM_BACKENDS = frozenset({"torch", "dask", "cupy", "jax"})


@functools.lru_cache(maxsize=4096)
def _contract_expression(equation: str, shapes: Shapes) -> Any:
    return opt_einsum.contract_expression(equation, *shapes, optimize="auto")


def contract(equation: str, *operands: Any, backend: str) -> Any:
    """``opt_einsum.contract(equation, *operands, backend=backend)``, its path planned
    once per shapes: the contraction of a Dask, CuPy, PyTorch or JAX plan.

    >>> contract("ij,j->i", np.eye(2), np.ones(2), backend="numpy")
    array([1., 1.])
    """
    shapes = tuple(tuple(shape_of(o)) for o in operands)
    return _contract_expression(equation, shapes)(*operands, backend=backend)


#: Names the generated source may use besides ``np`` (and ``xp``, the operands'
#: namespace, in a plan of another library).
HELPERS: dict[str, Any] = {"np": np, "embed_diagonal": embed_diagonal, "contract": contract, "device": device}


class Plan:
    """How to evaluate one einsum on operands of fixed shapes, as NumPy source.

    ``lines(args, result, temporary)`` returns the statements that assign the
    result to the name ``result``, given the operands' source names; ``temporary()``
    hands out names for intermediate steps. Calling the plan runs the same source.
    """

    def __init__(self, spec: Spec, shapes: Shapes, write: Callable[[list[str], str, Callable[[], str]], list[str]], namespace: dict[str, Any]):
        self.spec = spec
        self.shapes = shapes
        self._write = write
        self.namespace = namespace
        args = [f"a{i}" for i in range(len(shapes))]
        counter = iter(range(1 << 30))
        body = write(args, "result", lambda: f"t{next(counter)}")
        source = f"def run({', '.join(args)}):\n" + "".join(f"    {line}\n" for line in body) + "    return result\n"
        scope = dict(HELPERS)
        scope.update(namespace)
        exec(source, scope)  # noqa: S102 (source written by this module from a Spec)
        self._run = scope["run"]
        self.source = source

    def lines(self, args: list[str], result: str, temporary: Callable[[], str]) -> list[str]:
        return self._write(args, result, temporary)

    @property
    def accepts_scalars(self) -> bool:
        """Whether the source works with Python numbers as operands (``a * 2``)."""
        return bool(getattr(self._write, "accepts_scalars", False))

    def __call__(self, *arrays: Any) -> Any:
        return self._run(*arrays)

    def __repr__(self) -> str:
        return f"<Plan {self.spec} on {self.shapes}>"


_PYTHON_SCALARS = (float, int, complex, bool)


def _operands(arrays: Sequence[Any]) -> list[Any]:
    """Arrays as ndarrays of one dtype, as ``numpy.einsum`` casts them: a Python scalar
    takes the operands' dtype (NumPy's weak scalars), and arrays of mixed dtypes are
    cast to the common one, so that sums of integers and booleans are taken in the
    result's dtype (a boolean operand summed alone would be a logical "or")."""
    common = None  # the one dtype of the arrays, when Python int and float scalars take it
    for a in arrays:
        if type(a) is np.ndarray:
            if common is None:
                common = a.dtype
            elif a.dtype != common:
                break
        elif type(a) is not float and type(a) is not int:
            break
    else:
        if common is not None and (common.kind in "fc" or all(type(a) is np.ndarray for a in arrays)):
            return [a if type(a) is np.ndarray else np.asarray(a, dtype=common) for a in arrays]
    dtype = np.result_type(*[a if isinstance(a, (int, float, complex, bool)) else np.asarray(a) for a in arrays])
    return [np.asarray(a, dtype=dtype) for a in arrays]


def evaluate(spec: Spec, *arrays: Any) -> Any:
    """Evaluate the generalised einsum ``spec`` on ``arrays`` (in their own library).

    >>> from einsumad.algebra.subscripts import parse, resolve
    >>> a = np.arange(6.0).reshape(2, 3)
    >>> evaluate(resolve(parse("ij->ji"), [(2, 3)]), a).shape
    (3, 2)
    >>> evaluate(resolve(parse("i->ii"), [(2,)]), np.array([1.0, 2.0]))
    array([[1., 0.],
           [0., 2.]])
    """
    for a in arrays:
        if type(a) is not np.ndarray and type(a) not in _PYTHON_SCALARS:
            xp = array_namespace(*arrays)
            if xp is not np:
                return _evaluate_in(xp, spec, arrays)
            break
    operands = _operands(arrays)
    shapes = tuple([a.shape for a in operands])
    integer = any(a.dtype.kind in "iub" for a in operands)
    return plan(spec, shapes, integer)(*operands)


def _evaluate_in(xp: Any, spec: Spec, arrays: Sequence[Any]) -> Any:
    """``evaluate`` for operands of another library: its own plan, its own calls."""
    operands = [dense(a) for a in arrays]
    shapes = tuple(shape_of(a) for a in operands)
    integer = any(
        dtype_kind(dtype(a)) in "iub" for a in operands if not isinstance(a, (int, float, complex, np.generic))
    )
    return plan(spec, shapes, integer, library_name(xp))(*operands)


def _sized(spec: Spec, shapes: Shapes) -> dict[str, int]:
    """Every symbol's size: from the operands where they have it, else from the spec."""
    sizes = dict(spec.sizes)
    for term, shape in zip(spec.inputs, shapes):
        for s, n in zip(term, shape):
            if n != 1 or sizes.get(s, -1) == -1:
                sizes[s] = n
    return sizes


@functools.lru_cache(maxsize=8192)
def plan(spec: Spec, shapes: Shapes, integer: bool = False, library: str = "numpy") -> Plan:
    """The plan for ``spec`` on operands of ``shapes`` (cached).

    ``integer`` asks for sums that keep an integer dtype (``numpy.sum`` would
    widen int32 to int64; ``numpy.einsum`` does not). ``library`` names the
    operands' array library (:func:`~einsumad.core.arrays.library_name`); every
    library but NumPy gets a plan of its own dialect (see the module docstring).
    """
    if library != "numpy":
        return _foreign_plan(spec, shapes, integer, library)
    sizes = _sized(spec, shapes)
    namespace: dict[str, Any] = {}
    if len(spec.inputs) >= 3:
        return Plan(spec, shapes, _write_path(spec, shapes, sizes, integer, namespace), namespace)
    present = set("".join(spec.inputs))
    core = "".join(s for s in dict.fromkeys(spec.output) if s in present)
    contract = _write_core(spec.inputs, core, shapes, integer, namespace)
    if core == spec.output:
        return Plan(spec, shapes, contract, namespace)
    expand = _write_expand(core, spec.output, sizes)

    def write(args: list[str], result: str, temporary: Callable[[], str]) -> list[str]:
        written = contract(args, "inner", temporary)
        if len(written) == 1 and written[0].startswith("inner = ") and written[0].count("=") == 1:
            inner = written[0][len("inner = "):]
            return [f"{result} = {expand(inner if inner.isidentifier() else f'({inner})')}"]  # one expression
        inner = temporary()
        return contract(args, inner, temporary) + [f"{result} = {expand(inner)}"]

    return Plan(spec, shapes, write, namespace)


def _write_path(
    spec: Spec, shapes: Shapes, sizes: dict[str, int], integer: bool, namespace: dict[str, Any], library: str = "numpy"
) -> Callable:
    """Three or more operands: the pairwise steps of opt_einsum's optimised path."""
    path = contraction_path(spec, shapes)

    def write(args: list[str], result: str, temporary: Callable[[], str]) -> list[str]:
        lines: list[str] = []
        shape_of = dict(zip(args, shapes))

        def step(step_spec: Spec, chosen: list[str]) -> str:
            step_plan = plan(step_spec, tuple(shape_of[c] for c in chosen), integer, library)
            namespace.update(step_plan.namespace)
            name = temporary()
            lines.extend(step_plan.lines(chosen, name, temporary))
            shape_of[name] = tuple(sizes[s] for s in step_spec.output)
            return name

        final = run_pairwise(spec, path, args, step)
        # The last step writes the result directly.
        return [line.replace(f"{final} = ", f"{result} = ", 1) if line.startswith(f"{final} = ") else line for line in lines]

    return write


def _expression(expr: Callable[[list[str]], str]) -> Callable:
    """A writer for a plan that is one expression of its operands."""
    return lambda args, result, temporary: [f"{result} = {expr(args)}"]


def _axes(axes: Sequence[int]) -> str:
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"


def _transposed(x: str, perm: tuple[int, ...]) -> str:
    if perm == tuple(range(len(perm))):
        return x
    if len(perm) == 2:
        return f"{x}.T"
    return f"{x}.transpose({', '.join(map(str, perm))})"


def _summed(x: str, axes: tuple[int, ...], integer: bool) -> str:
    dtype = f", dtype={x}.dtype" if integer else ""
    if not axes:
        return x
    return f"{x}.sum(axis={_axes(axes)}{dtype})"


def _write_core(inputs: tuple[str, ...], core: str, shapes: Shapes, integer: bool, namespace: dict[str, Any]) -> Callable:
    """Contract one or two ``inputs`` to ``core`` (unique symbols present in inputs).

    A letter written twice in one term (``ii``) is that operand's diagonal: a
    ``numpy.diagonal`` view, whose letter then appears once. Anything with more
    repeats goes to ``numpy.einsum``'s own loops.
    """
    views: list[Callable[[str], str]] = []
    terms: list[str] = []
    view_shapes: list[tuple[int, ...]] = []
    for term, shape in zip(inputs, shapes):
        repeated = [s for s in dict.fromkeys(term) if term.count(s) > 1]
        if not repeated:
            views.append(lambda x: x)
            terms.append(term)
            view_shapes.append(shape)
        elif len(repeated) == 1 and term.count(repeated[0]) == 2 and len(inputs) <= 2:
            letter = repeated[0]
            p = term.index(letter)
            q = term.index(letter, p + 1)
            views.append(functools.partial(_diagonal, p=p, q=q))
            terms.append("".join(t for i, t in enumerate(term) if i not in (p, q)) + letter)
            view_shapes.append(tuple(n for i, n in enumerate(shape) if i not in (p, q)) + (shape[p],))
        else:
            return _write_einsum(inputs, core, shapes, namespace)
    if len(inputs) == 1 and terms[0] == core and views[0]("a") != "a":
        return _expression(lambda a: f"{views[0](a[0])}.copy()")  # a diagonal, as a new array
    distinct = _write_distinct(tuple(terms), core, tuple(view_shapes), integer)

    def write(args: list[str], result: str, temporary: Callable[[], str]) -> list[str]:
        return distinct([view(a) for view, a in zip(views, args)], result, temporary)

    write.accepts_scalars = getattr(distinct, "accepts_scalars", False)  # type: ignore[attr-defined]
    return write


def _diagonal(x: str, p: int, q: int) -> str:
    """Source for the diagonal of ``x`` over axes p and q (a view; the axis goes last)."""
    return f"{x}.diagonal(0, {p}, {q})" if x.isidentifier() else f"np.diagonal({x}, 0, {p}, {q})"


def _write_distinct(inputs: tuple[str, ...], core: str, shapes: Shapes, integer: bool) -> Callable:
    """Contract one or two terms of distinct letters to ``core``."""
    if len(inputs) == 1:
        (term,) = inputs
        if term == core:
            return _expression(lambda a: a[0])
        summed = tuple(i for i, s in enumerate(term) if s not in core)
        kept = "".join(s for s in term if s in core)
        perm = tuple(kept.index(s) for s in core)
        if not core:
            return _expression(lambda a: f"{a[0]}.sum({'dtype=' + a[0] + '.dtype' if integer else ''})")
        return _expression(lambda a: _transposed(_summed(a[0], summed, integer), perm))
    if len(inputs) == 0:
        raise ValueError("an einsum needs at least one operand")
    if "" in inputs and len(inputs) == 2 and inputs[1 - inputs.index("")] != core:
        # A scalar times a reduction (or permutation) of the other operand.
        k = inputs.index("")
        rest = _write_distinct((inputs[1 - k],), core, (shapes[1 - k],), integer)

        def scaled(a: list[str], result: str, temporary: Callable[[], str], k: int = k) -> list[str]:
            (line,) = rest([a[1 - k]], "inner", temporary)
            return [f"{result} = {a[k]} * {line[len('inner = '):]}"]

        scaled.accepts_scalars = True  # type: ignore[attr-defined]
        return scaled
    if _is_broadcast_product(inputs, core, shapes):
        product = _expression(lambda a: f"{a[0]} * {a[1]}")
        product.accepts_scalars = True  # type: ignore[attr-defined]
        return product
    if _is_product(inputs, core):
        return _write_product(inputs, core)
    return _write_matmul(inputs[0], inputs[1], core, shapes[0], shapes[1], integer)


def _write_einsum(inputs: Sequence[str], output: str, shapes: Shapes, namespace: dict[str, Any]) -> Callable:
    letters = readable_letters([*inputs, output])
    equation = ",".join("".join(letters[s] for s in t) for t in inputs) + "->" + "".join(letters[s] for s in output)
    if all(c.isascii() and c.isalpha() for c in letters.values()):
        return _expression(lambda a: f'np.einsum("{equation}", {", ".join(a)})')
    # Beyond 52 symbols NumPy has no letters left: opt_einsum takes any symbol.
    name = f"contract_{abs(hash((equation, shapes))):x}"
    namespace[name] = opt_einsum.contract_expression(equation, *shapes)
    return _expression(lambda a: f"{name}({', '.join(a)})")


def _write_matrix_product(a_term: str, b_term: str, core: str) -> Callable | None:
    """Matrix and vector products (at most one letter per role), or stacks of matrix
    products over leading batch letters, as ``a @ b`` on transposed views, exactly
    as written by hand; None otherwise."""
    nb = 0
    while nb < min(len(a_term), len(b_term), len(core)) and a_term[nb] == b_term[nb] == core[nb]:
        nb += 1
    a_rest, b_rest, rest = a_term[nb:], b_term[nb:], core[nb:]
    if set(core[:nb]) & set(a_rest + b_rest + rest):
        return None
    if nb and (len(a_rest) != 2 or len(b_rest) != 2):
        return None  # NumPy stacks matrices, not vectors
    shared = [s for s in a_rest if s in b_rest]
    if len(a_rest) > 2 or len(b_rest) > 2 or len(shared) != 1 or shared[0] in core:
        return None
    (k,) = shared
    left = [s for s in a_rest if s != k]
    right = [s for s in b_rest if s != k]
    if sorted(left + right) != sorted(rest):
        return None
    transpose_a = len(a_rest) == 2 and a_rest[0] == k
    transpose_b = len(b_rest) == 2 and b_rest[1] == k
    transpose_out = len(rest) == 2 and rest[0] != (left + right)[0]
    t = ".swapaxes(-1, -2)" if nb else ".T"

    def expr(a: list[str]) -> str:
        if transpose_out:  # (A B)^T = B^T A^T: write the product the other way round
            return f"{a[1]}{'' if transpose_b else t} @ {a[0]}{'' if transpose_a else t}"
        return f"{a[0]}{t if transpose_a else ''} @ {a[1]}{t if transpose_b else ''}"

    return _expression(expr)


def _write_matmul(
    a_term: str, b_term: str, core: str, shape_a: tuple[int, ...], shape_b: tuple[int, ...], integer: bool
) -> Callable:
    """A pairwise contraction as one (batched) ``numpy.matmul``, as a person writes it.

    Symbols sort into batch (both operands and output), left (first operand and
    output), right (second and output) and contracted (both, not output); symbols
    in one operand only and not in the output are summed first. Each operand is
    permuted and reshaped to ``(batch, left, contracted)`` / ``(batch, contracted,
    right)``, multiplied by BLAS, and the result permuted to the output order.
    """
    simple = _write_matrix_product(a_term, b_term, core)
    if simple is not None:
        return simple
    if not core and len(a_term) > 1 and sorted(a_term) == sorted(b_term):
        # A full contraction of two tensors of the same letters: one dot product.
        perm = tuple(b_term.index(s) for s in a_term)
        return _expression(lambda a: f"np.dot({a[0]}.ravel(), {_transposed(a[1], perm)}.ravel())")
    size = dict(zip(a_term, shape_a)) | dict(zip(b_term, shape_b))
    in_a, in_b = set(a_term), set(b_term)
    batch = [s for s in core if s in in_a and s in in_b]
    left = [s for s in core if s in in_a and s not in in_b]
    right = [s for s in core if s in in_b and s not in in_a]
    contracted = [s for s in a_term if s in in_b and s not in core]
    sum_a = tuple(i for i, s in enumerate(a_term) if s not in in_b and s not in core)
    sum_b = tuple(i for i, s in enumerate(b_term) if s not in in_a and s not in core)
    kept_a = [s for s in a_term if s in in_b or s in core]
    kept_b = [s for s in b_term if s in in_a or s in core]
    perm_a = tuple(kept_a.index(s) for s in batch + left + contracted)
    perm_b = tuple(kept_b.index(s) for s in batch + contracted + right)

    def n(letters: list[str]) -> int:
        return int(np.prod([size[s] for s in letters], dtype=np.int64))

    nb, nl, nc, nr = n(batch), n(left), n(contracted), n(right)
    if batch and (nl == 1 or nr == 1):
        # A batch of matrix-vector products: numpy.einsum's single strided loop beats
        # a batched matmul, which would first copy each operand into batch-major order.
        return _write_einsum((a_term, b_term), core, (shape_a, shape_b), {})
    shape_a3 = (nb, nl, nc) if batch else (nl, nc)
    shape_b3 = (nb, nc, nr) if batch else (nc, nr)
    middle = batch + left + right
    middle_shape = tuple(size[s] for s in middle)
    perm_out = tuple(middle.index(s) for s in core)

    def shaped(
        x: str, summed: tuple[int, ...], perm: tuple[int, ...], letters: list[str], shape3: tuple[int, ...],
        kept: list[str], rows: list[str], columns: list[str],
    ) -> str:
        if not summed and rows and columns and kept == batch + columns + rows:
            # The two groups of letters in the other order: a transposed view of the
            # reshaped operand (BLAS reads it transposed), not a copy in the new order.
            swapped = (shape3[:-2] if batch else ()) + (shape3[-1], shape3[-2])
            if tuple(size[s] for s in kept) != swapped:
                x = f"{x}.reshape({swapped!r})"
            return f"{x}{'.swapaxes(-1, -2)' if batch else '.T'}"
        x = _transposed(_summed(x, summed, integer), perm)
        if tuple(size[s] for s in letters) == shape3:
            return x  # already (batch, rows, columns)
        return f"{x}.reshape({shape3!r})"

    def expr(a: list[str]) -> str:
        left_operand = shaped(a[0], sum_a, perm_a, batch + left + contracted, shape_a3, kept_a, left, contracted)
        right_operand = shaped(a[1], sum_b, perm_b, batch + contracted + right, shape_b3, kept_b, contracted, right)
        product = f"np.matmul({left_operand}, {right_operand})"
        if middle_shape != (shape_a3[:-1] + shape_b3[-1:]):
            product = f"{product}.reshape({middle_shape!r})"
        return _transposed(product, perm_out)

    return _expression(expr)


def _is_broadcast_product(inputs: tuple[str, ...], core: str, shapes: Shapes) -> bool:
    """Exactly NumPy's broadcasting product: each term lines up with the end of the
    output, symbol for symbol, except size-1 axes that broadcasting stretches."""
    if len(inputs) != 2:
        return False
    for term, shape in zip(inputs, shapes):
        if len(term) > len(core):
            return False
        tail = core[len(core) - len(term) :]
        for s, t, n in zip(term, tail, shape):
            if s != t and not (n == 1 and s not in core):
                return False
    return True


def _is_product(inputs: tuple[str, ...], core: str) -> bool:
    """Every operand's symbols are distinct and all survive into the output."""
    return len(inputs) == 2 and all(len(set(t)) == len(t) and set(t) <= set(core) for t in inputs)


def _aligned(x: str, term: str, core: str) -> str:
    """``x`` (axes ``term``) permuted to ``core``'s order with new axes where it lacks one."""
    order = sorted(term, key=core.index)
    x = _transposed(x, tuple(term.index(s) for s in order))
    if len(term) == len(core) or not term:
        return x
    return f"{x}[{', '.join(':' if s in term else 'None' for s in core)}]"


def _write_product(inputs: tuple[str, ...], core: str) -> Callable:
    """Hadamard / outer / broadcast products as ``*`` on aligned views."""
    return _expression(lambda a: f"{_aligned(a[0], inputs[0], core)} * {_aligned(a[1], inputs[1], core)}")


def _write_expand(core: str, output: str, sizes: dict[str, int]) -> Callable[[str], str]:
    """Broadcast symbols absent from ``core``; write repeated symbols on a diagonal."""
    unique = "".join(dict.fromkeys(output))
    unique_shape = tuple(sizes[s] for s in unique)
    out_shape = tuple(sizes[s] for s in output)

    def expand(y: str) -> str:
        if core and len(core) != len(unique):
            y = f"{y}[{', '.join(':' if s in core else 'None' for s in unique)}]"
        if core and any(s not in core for s in unique) or not core:
            y = f"np.broadcast_to({y}, {unique_shape})"
        if len(unique) == 1 and output == unique * 2 and core == unique:
            return f"np.diag({y})"  # a vector on the diagonal of a matrix
        if len(unique) != len(output):
            y = f"embed_diagonal({y}, {unique!r}, {output!r}, {out_shape})"
        return y

    return expand


# ================================================================= plans for other array libraries
#   The same steps as NumPy's plans, each written so that it runs in the operands'
#   library: opt_einsum's dispatch for the libraries it knows, the array API
#   standard's functions for any other. Writers of a step take the operands'
#   source names, may add statements to ``lines``, and return an expression.

Writer = Callable[[list[str], list[str], Callable[[], str]], str]


def _foreign_plan(spec: Spec, shapes: Shapes, integer: bool, library: str) -> Plan:
    namespace: dict[str, Any] = {"xp": namespace_named(library)}
    sizes = _sized(spec, shapes)
    if library not in OPT_EINSUM_BACKENDS and len(spec.inputs) >= 3:
        path_write = _write_path(spec, shapes, sizes, integer, namespace, library)
        path_write.accepts_scalars = True  # type: ignore[attr-defined]
        return Plan(spec, shapes, path_write, namespace)
    factors = [k for k, n in enumerate(shapes) if n == ()]  # 0-d operands: multiplied in afterwards
    arrays = [k for k, n in enumerate(shapes) if n != ()]
    terms = tuple(spec.inputs[k] for k in arrays)
    present = set("".join(terms))
    core = "".join(s for s in dict.fromkeys(spec.output) if s in present)
    if not arrays:
        contracted: Writer | None = None
    elif library in OPT_EINSUM_BACKENDS and _contracts(terms, core) and not (library == "dask" and _repeats(terms)):
        contracted = _write_dispatch(terms, core, library)
    else:  # sums, permutations and products: the standard's functions and ``*``, as a person writes them
        contracted = _write_array_api(terms, core, tuple(shapes[k] for k in arrays), integer)
    expand = _write_neutral_expand(core, spec.output, sizes, library)

    def write(args: list[str], result: str, temporary: Callable[[], str]) -> list[str]:
        lines: list[str] = []
        value = contracted([args[k] for k in arrays], lines, temporary) if contracted is not None else None
        for k in factors:
            value = args[k] if value is None else f"{_wrapped(value)} * {args[k]}"
        assert value is not None
        if expand is not None:
            value = expand(value, lines, temporary)
        return [*lines, f"{result} = {value}"]

    write.accepts_scalars = True  # type: ignore[attr-defined]
    return Plan(spec, shapes, write, namespace)


def _repeats(terms: tuple[str, ...]) -> bool:
    """Whether a term repeats a letter (Dask's einsum needs equal chunks along both axes
    of a diagonal; the standard's strided slice does not)."""
    return any(len(set(t)) != len(t) for t in terms)


def _contracts(terms: tuple[str, ...], core: str) -> bool:
    """Whether the step takes a diagonal or contracts a letter shared by two operands."""
    if _repeats(terms):
        return True
    return len(terms) > 2 or (len(terms) == 2 and any(s in terms[1] and s not in core for s in terms[0]))


def _wrapped(expression: str) -> str:
    return expression if expression.isidentifier() or " " not in expression else f"({expression})"


def _write_dispatch(terms: tuple[str, ...], core: str, library: str) -> Writer:
    """The contraction by opt_einsum's dispatch to the library (its einsum and tensordot)."""
    if len(terms) == 1 and terms[0] == core:
        return lambda args, lines, temporary: args[0]
    letters = readable_letters([*terms, core])
    if not all(c.isascii() and c.isalpha() for c in letters.values()):
        letters = {s: opt_einsum.get_symbol(i) for i, s in enumerate(dict.fromkeys("".join(terms) + core))}
    equation = ",".join("".join(letters[s] for s in t) for t in terms) + "->" + "".join(letters[s] for s in core)
    return lambda args, lines, temporary: f'contract("{equation}", {", ".join(args)}, backend="{library}")'


def _api_permuted(x: str, perm: Sequence[int]) -> str:
    perm = tuple(perm)
    return x if perm == tuple(range(len(perm))) else f"xp.permute_dims({x}, {perm!r})"


def _api_reshaped(x: str, old: tuple[int, ...], new: tuple[int, ...]) -> str:
    return x if tuple(old) == tuple(new) else f"xp.reshape({x}, {tuple(new)!r})"


def _api_diagonals(x: str, term: str, shape_: tuple[int, ...]) -> tuple[str, str, tuple[int, ...]]:
    """The diagonal of every letter repeated in ``term``: the two axes moved last, merged,
    and every (n+1)-th entry taken (a strided slice, in every array API library)."""
    while len(set(term)) != len(term):
        letter = next(s for s in term if term.count(s) > 1)
        p = term.index(letter)
        q = term.index(letter, p + 1)
        rest = [i for i in range(len(term)) if i not in (p, q)]
        n = shape_[p]
        merged = tuple(shape_[i] for i in rest) + (n * n,)
        x = f"xp.reshape({_api_permuted(x, rest + [p, q])}, {merged!r})[..., ::{n + 1}]"
        term = "".join(term[i] for i in rest) + letter
        shape_ = tuple(shape_[i] for i in rest) + (n,)
    return x, term, shape_


def _api_reduced(x: str, term: str, shape_: tuple[int, ...], keep: str, integer: bool) -> tuple[str, str, tuple[int, ...]]:
    """Sum the letters of ``term`` absent from ``keep``; the rest stay in ``term``'s order."""
    summed = tuple(i for i, s in enumerate(term) if s not in keep)
    if not summed:
        return x, term, shape_
    dtype_ = f", dtype={x}.dtype" if integer and x.isidentifier() else ""
    x = f"xp.sum({x}, axis={_axes(summed)}{dtype_})"
    kept = [i for i in range(len(term)) if i not in summed]
    return x, "".join(term[i] for i in kept), tuple(shape_[i] for i in kept)


def _write_array_api(terms: tuple[str, ...], core: str, shapes: Shapes, integer: bool) -> Writer:
    """One or two operands contracted in the array API standard's functions: diagonals,
    sums, a permutation, and a product (``*`` when no letter is contracted, else
    ``xp.matmul`` on operands permuted and reshaped to (batch, rows, columns))."""

    def write(args: list[str], lines: list[str], temporary: Callable[[], str]) -> str:
        views = [_api_diagonals(x, t, n) for x, t, n in zip(args, terms, shapes)]
        if len(views) == 1:
            x, term, shape_ = _api_reduced(*views[0], keep=core, integer=integer)
            return _api_permuted(x, [term.index(s) for s in core])
        (a, ta, sa), (b, tb, sb) = views
        a, ta, sa = _api_reduced(a, ta, sa, keep=tb + core, integer=integer)
        b, tb, sb = _api_reduced(b, tb, sb, keep=ta + core, integer=integer)
        size = dict(zip(ta, sa)) | dict(zip(tb, sb))
        first_a = [s for s in core if s in ta and s not in tb]
        first_b = [s for s in core if s in tb and s not in ta]
        if first_a and first_b and core.index(first_b[0]) < core.index(first_a[0]):
            (a, ta, sa), (b, tb, sb) = (b, tb, sb), (a, ta, sa)  # (A B)^T = B^T A^T: no final permutation
        batch = [s for s in core if s in ta and s in tb]
        contracted = [s for s in ta if s in tb and s not in core]
        if not contracted:  # Hadamard, outer and broadcast products: aligned views times each other
            def aligned(x: str, term: str, shape_: tuple[int, ...]) -> str:
                order = sorted(term, key=core.index)
                x = _api_permuted(x, [term.index(s) for s in order])
                own = dict(zip(term, shape_))
                return _api_reshaped(x, tuple(own[s] for s in order), tuple(own.get(s, 1) for s in core))

            return f"{aligned(a, ta, sa)} * {aligned(b, tb, sb)}"
        left = [s for s in core if s in ta and s not in tb]
        right = [s for s in core if s in tb and s not in ta]

        def n(letters: list[str]) -> int:
            return int(np.prod([size[s] for s in letters], dtype=np.int64))

        def operand(x: str, term: str, order: list[str], matrix: tuple[int, ...]) -> str:
            x = _api_permuted(x, [term.index(s) for s in order])
            return _api_reshaped(x, tuple(size[s] for s in order), matrix)

        lead = (n(batch),) if batch else ()
        product = (
            f"xp.matmul({operand(a, ta, batch + left + contracted, lead + (n(left), n(contracted)))}, "
            f"{operand(b, tb, batch + contracted + right, lead + (n(contracted), n(right)))})"
        )
        middle = batch + left + right
        product = _api_reshaped(product, lead + (n(left), n(right)), tuple(size[s] for s in middle))
        return _api_permuted(product, [middle.index(s) for s in core])

    return write


#: Libraries whose arrays take assignment to a strided slice (Dask's and JAX's do not).
_WRITABLE = frozenset({"torch", "cupy", "array_api_strict"})


def _write_neutral_expand(
    core: str, output: str, sizes: dict[str, int], library: str = ""
) -> Callable[[str, list[str], Callable[[], str]], str] | None:
    """The generalised output forms in any library: ``y`` (axes ``core``) reshaped onto the
    output's axes, times ``xp.eye`` for each repeated letter (a diagonal embedding),
    broadcast along letters absent from the inputs. A library whose arrays take slice
    assignment writes one diagonal into zeros instead (``z[..., ::n+1] = y``)."""
    if core == output:
        return None
    repeated = [s for s in dict.fromkeys(output) if output.count(s) > 1]
    if (
        library in _WRITABLE and len(repeated) == 1 and output.count(repeated[0]) == 2
        and set(output) - set(core) <= set(repeated)
    ):
        return _write_diagonal_assignment(core, output, sizes, repeated[0])
    first: dict[str, int] = {}
    for p, s in enumerate(output):
        first.setdefault(s, p)
    placed = tuple(sizes[s] if first[s] == p and s in core else 1 for p, s in enumerate(output))
    repeats = [(first[s], p, sizes[s]) for p, s in enumerate(output) if first[s] != p]
    out_shape = tuple(sizes[s] for s in output)
    broadcast = any(s not in core for s in output)

    def expand(y: str, lines: list[str], temporary: Callable[[], str]) -> str:
        t = temporary()
        lines.append(f"{t} = xp.reshape({y}, {placed!r})")
        for p, q, n in repeats:
            mask = tuple(n if i in (p, q) else 1 for i in range(len(output)))
            lines.append(f"{t} = {t} * xp.reshape(xp.eye({n}, dtype={t}.dtype, device=device({t})), {mask!r})")
        return f"xp.broadcast_to({t}, {out_shape!r})" if broadcast else t

    return expand


def _write_diagonal_assignment(
    core: str, output: str, sizes: dict[str, int], letter: str
) -> Callable[[str, list[str], Callable[[], str]], str]:
    """``i->ii`` and its kin by assignment: the letter's axis last, written with stride
    n+1 into flat zeros, reshaped to (n, n) and permuted into the output's order."""
    rest = [s for s in core if s != letter]
    n = sizes[letter]
    rest_shape = tuple(sizes[s] for s in rest)
    axes = {s: i for i, s in enumerate(rest)}
    seen = 0
    perm = []
    for s in output:
        if s == letter:
            perm.append(len(rest) + seen)
            seen += 1
        else:
            perm.append(axes[s])

    def expand(y: str, lines: list[str], temporary: Callable[[], str]) -> str:
        if not y.isidentifier():
            named = temporary()
            lines.append(f"{named} = {y}")
            y = named
        t = temporary()
        if letter in core:
            moved = _api_permuted(y, [core.index(s) for s in rest] + [core.index(letter)])
        else:  # a broadcast diagonal (the VJP of a trace): the same value all along it
            moved = _api_reshaped(_api_permuted(y, [core.index(s) for s in rest]), (), rest_shape + (1,))
        lines.append(f"{t} = xp.zeros({rest_shape + (n * n,)!r}, dtype={y}.dtype, device=device({y}))")
        lines.append(f"{t}[..., ::{n + 1}] = {moved}")
        return _api_permuted(f"xp.reshape({t}, {rest_shape + (n, n)!r})", perm)

    return expand


def _core_equation(spec: Spec) -> str:
    """The equation of ``spec`` with its output reduced to unique symbols present in inputs."""
    present = set("".join(spec.inputs))
    output = "".join(s for s in dict.fromkeys(spec.output) if s in present)
    letters = readable_letters([*spec.inputs, output])
    return ",".join("".join(letters[s] for s in t) for t in spec.inputs) + "->" + "".join(letters[s] for s in output)


#: ``optimize=True`` means NumPy's choice.
_TRUE_STRATEGY = "greedy"
#: Up to this many operands the dynamic-programming search is always affordable.
_DP_ALWAYS = 10
#: Up to this many, it is used when at most one index joins three or more operands,
#: and that one at most ``_DP_HYPEREDGE`` of them (each subset of those is a
#: connected sub-network the search visits).
_DP_SPARSE = 20
_DP_HYPEREDGE = 10


def contraction_path(spec: Spec, shapes: Shapes, optimize: Any = None) -> tuple[tuple[int, ...], ...]:
    """The pairwise path for ``spec`` on these shapes (cached), opt_einsum's convention:
    each step names positions in the current operand list, and its result is appended.

    ``optimize`` None is einsumad's choice: opt_einsum's dynamic-programming search
    (exact for the flop count on networks without outer products) up to 10
    operands, and up to 20 when at most one index is shared by three or more
    operands, and by at most 10 (a batch index): it finds the sweep of a tensor
    train that greedy search misses, in tens of milliseconds paid once per shape
    signature. Beyond, and on networks where indices join many operands (there
    the search visits every connected subset: a minute for 18 small operands),
    opt_einsum's "auto" choice.
    True is NumPy's ``'greedy'``; False contracts from left to right without a
    search; a string is an opt_einsum strategy (``'optimal'``, ``'dp'``,
    ``'auto'``, ...); a tuple of steps is used as given. A zero-size axis costs
    nothing: the search sees it as size 1 (opt_einsum finds no path with a size
    of zero).

    >>> from einsumad.algebra.subscripts import parse, resolve
    >>> spec = resolve(parse("ab,bc,cd->ad"), [(0, 2), (2, 3), (3, 4)])
    >>> contraction_path(spec, ((0, 2), (2, 3), (3, 4)))
    ((0, 1), (0, 1))
    >>> contraction_path(spec, ((0, 2), (2, 3), (3, 4)), False)  # left to right
    ((0, 1), (0, 1))
    """
    return _contraction_path(spec, tuple(tuple(s) for s in shapes), optimize)


@functools.lru_cache(maxsize=4096)
def _contraction_path(spec: Spec, shapes: Shapes, optimize: Any) -> tuple[tuple[int, ...], ...]:
    n = len(spec.inputs)
    if isinstance(optimize, tuple):
        return optimize
    if optimize is False:  # left to right: each result joins the end, the next operand is first
        if n < 2:
            return ((0,),) if n else ()
        return ((0, 1),) + tuple((0, n - k - 1) for k in range(1, n - 1))
    if optimize is None:
        strategy: Any = "dp" if _dp_affordable(spec) else "auto"
    elif optimize is True:
        strategy = _TRUE_STRATEGY
    elif isinstance(optimize, str):
        try:
            opt_einsum.paths.get_path_fn(optimize)
        except KeyError:
            raise ValueError(
                f"optimize={optimize!r} is not a path strategy; use True, False, None, an explicit "
                f"path, or one of {', '.join(sorted(opt_einsum.paths._PATH_OPTIONS))}"
            ) from None
        strategy = optimize
    elif isinstance(optimize, opt_einsum.paths.PathOptimizer):
        strategy = optimize
    else:
        raise TypeError(
            f"optimize must be None, True, False, a strategy name or a path, got {optimize!r}"
        )
    searched = tuple(tuple(max(size, 1) for size in shape) for shape in shapes)
    path, _ = opt_einsum.contract_path(_core_equation(spec), *searched, shapes=True, optimize=strategy)
    return tuple(tuple(step) for step in path)


def _dp_affordable(spec: Spec) -> bool:
    """Whether the dynamic-programming search is affordable on ``spec``'s network.

    >>> _dp_affordable(Spec(tuple("ab" for _ in range(12)), "", (("a", 2), ("b", 2))))
    False
    >>> _dp_affordable(Spec(tuple("a" for _ in range(12)), "", (("a", 2),)))
    False
    >>> _dp_affordable(Spec(tuple(chr(97 + k) + chr(98 + k) for k in range(15)), "",
    ...                     tuple((chr(97 + k), 2) for k in range(16))))
    True
    """
    n = len(spec.inputs)
    if n <= _DP_ALWAYS:
        return True
    if n > _DP_SPARSE:
        return False
    joins: dict[str, int] = {}
    for term in spec.inputs:
        for s in set(term):
            joins[s] = joins.get(s, 0) + 1
    shared = [count for count in joins.values() if count >= 3]
    return len(shared) <= 1 and all(count <= _DP_HYPEREDGE for count in shared)
