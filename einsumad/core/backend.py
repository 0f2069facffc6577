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
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np
import opt_einsum

from ..algebra.letters import readable_letters
from ..algebra.subscripts import Spec
from ..algebra.swap import run_pairwise

__all__ = ["Plan", "plan", "evaluate", "contraction_path", "embed_diagonal", "HELPERS", "array_namespace"]

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


_PLAIN = (int, float, complex, bool, np.ndarray, np.generic)


def array_namespace(*arrays: Any) -> Any:
    """The array library the operands come from: ``numpy`` for NumPy arrays and
    Python numbers. Ops write their implementations against this namespace
    (``xp.tanh(x)``), using only functions of the Python array API standard.

    >>> array_namespace(np.ones(2), 2.0) is np
    True
    """
    for a in arrays:
        if not isinstance(a, _PLAIN):
            raise TypeError(
                f"einsumad works on NumPy arrays; got an operand of type {type(a).__module__}."
                f"{type(a).__qualname__}"
            )
    return np


#: Names the generated source may use besides ``np``.
HELPERS: dict[str, Any] = {"np": np, "embed_diagonal": embed_diagonal}


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


def _operands(arrays: Sequence[Any]) -> list[Any]:
    """Arrays as ndarrays; a Python scalar takes the operands' dtype (NumPy's weak scalars)."""
    if all(type(a) is np.ndarray for a in arrays):
        return list(arrays)
    dtype = np.result_type(*[a if isinstance(a, (int, float, complex, bool)) else np.asarray(a) for a in arrays])
    return [
        np.asarray(a, dtype=dtype) if isinstance(a, (int, float, complex, bool)) else np.asarray(a)
        for a in arrays
    ]


def evaluate(spec: Spec, *arrays: Any) -> np.ndarray:
    """Evaluate the generalised einsum ``spec`` on ``arrays``.

    >>> from einsumad.algebra.subscripts import parse, resolve
    >>> a = np.arange(6.0).reshape(2, 3)
    >>> evaluate(resolve(parse("ij->ji"), [(2, 3)]), a).shape
    (3, 2)
    >>> evaluate(resolve(parse("i->ii"), [(2,)]), np.array([1.0, 2.0]))
    array([[1., 0.],
           [0., 2.]])
    """
    operands = _operands(arrays)
    shapes = tuple([a.shape for a in operands])
    integer = any(a.dtype.kind in "iub" for a in operands)
    return plan(spec, shapes, integer)(*operands)


def _sized(spec: Spec, shapes: Shapes) -> dict[str, int]:
    """Every symbol's size: from the operands where they have it, else from the spec."""
    sizes = dict(spec.sizes)
    for term, shape in zip(spec.inputs, shapes):
        for s, n in zip(term, shape):
            if n != 1 or sizes.get(s, -1) == -1:
                sizes[s] = n
    return sizes


@functools.lru_cache(maxsize=8192)
def plan(spec: Spec, shapes: Shapes, integer: bool = False) -> Plan:
    """The plan for ``spec`` on operands of ``shapes`` (cached).

    ``integer`` asks for sums that keep an integer dtype (``numpy.sum`` would
    widen int32 to int64; ``numpy.einsum`` does not).
    """
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


def _write_path(spec: Spec, shapes: Shapes, sizes: dict[str, int], integer: bool, namespace: dict[str, Any]) -> Callable:
    """Three or more operands: the pairwise steps of opt_einsum's optimised path."""
    path = contraction_path(spec, shapes)

    def write(args: list[str], result: str, temporary: Callable[[], str]) -> list[str]:
        lines: list[str] = []
        shape_of = dict(zip(args, shapes))

        def step(step_spec: Spec, chosen: list[str]) -> str:
            step_plan = plan(step_spec, tuple(shape_of[c] for c in chosen), integer)
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
            views.append(lambda x, p=p, q=q: f"{x}.diagonal(0, {p}, {q})" if x.isidentifier() else f"np.diagonal({x}, 0, {p}, {q})")
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


def _core_equation(spec: Spec) -> str:
    """The equation of ``spec`` with its output reduced to unique symbols present in inputs."""
    present = set("".join(spec.inputs))
    output = "".join(s for s in dict.fromkeys(spec.output) if s in present)
    letters = readable_letters([*spec.inputs, output])
    return ",".join("".join(letters[s] for s in t) for t in spec.inputs) + "->" + "".join(letters[s] for s in output)


@functools.lru_cache(maxsize=4096)
def contraction_path(spec: Spec, shapes: Shapes) -> tuple[tuple[int, ...], ...]:
    """opt_einsum's optimised pairwise path for ``spec`` on these shapes (cached).

    Up to 20 operands the dynamic-programming search (exact for the flop count on
    networks without outer products; tens of milliseconds, paid once per shape
    signature) finds the sweep of a tensor train that greedy search misses; beyond
    that, opt_einsum's "auto" choice.
    """
    strategy = "dp" if len(spec.inputs) <= 20 else "auto"
    path, _ = opt_einsum.contract_path(_core_equation(spec), *shapes, shapes=True, optimize=strategy)
    return tuple(tuple(step) for step in path)
