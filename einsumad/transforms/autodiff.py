"""Transformations: ``grad``, ``value_and_grad``, ``vjp``, ``jvp``, ``jacobian``, ``hessian``.

Reverse mode records a tape and runs :func:`~einsumad._tape.backward`; forward
mode carries tangents along with values. Jacobians use no Python loop over
output elements: the pass is seeded with a Kronecker delta ``δ[a, b]`` whose
first letters ride along every einsum of the pass as batch letters, so one
batched pass yields every row (reverse) or column (forward) at once.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from ..core.arrays import (
    array_namespace,
    asarray,
    dense,
    device,
    dtype_kind,
    is_numpy,
    ndim,
    ones,
    zeros,
)
from ..core.arrays import dtype as _dtype
from ..core.arrays import shape as _shape
from ..core.backward import backward
from ..core.delta import KroneckerDelta
from ..core.pytree import TreeDef, tree_flatten, tree_unflatten
from ..core.structural import astype_p, real_p
from ..core.tape import FORWARD, REVERSE, Node, Tensor, new_trace, unbox
from ..ops.einsum import transpose

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacobian", "jacfwd", "jacrev", "hessian"]


def _as_primal(x: Any, where: str) -> Any:
    """A differentiable input: a real or complex floating-point array of any array
    library (or a traced value of an outer level, or of ``ea.compile``'s staging,
    whose values must be floats just the same)."""
    array = x if isinstance(x, Tensor) else asarray(x)
    dtype = _dtype(array)
    if dtype_kind(dtype) not in "fc":
        raise TypeError(
            f"{where} needs floating-point inputs, got dtype {dtype}; "
            f"convert with np.asarray(x, dtype=float)"
        )
    return array


def _finish(g: Any, primal: Any) -> Any:
    """A gradient as the user expects it: shape, dtype and library of its primal, writable.

    A real primal's gradient is real (the imaginary part of a complex cotangent pairs
    with nothing real; the backward pass keeps real cotangents real already)."""
    dtype = _dtype(primal)
    g = dense(g)
    if isinstance(g, Tensor):
        if g.dtype == dtype and not _holds_a_scalar(g):
            return g
        if dtype_kind(g.dtype) == "c" and dtype_kind(dtype) != "c":
            g = real_p(g)
        return astype_p(g, dtype=dtype)
    if isinstance(g, np.ndarray) and g.dtype == dtype and g.flags.writeable and g.flags.owndata:
        return g
    if is_numpy(g):
        if np.iscomplexobj(g) and dtype_kind(dtype) != "c":
            g = np.real(g)
        return np.array(g, dtype=dtype, copy=True)
    if _dtype(g) == dtype:
        return g
    return astype_p.impl(real_p.impl(g) if dtype_kind(dtype) != "c" else g, dtype=dtype)


def _argnums_tuple(argnums: int | Sequence[int], nargs: int, name: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not isinstance(n, int) or not -nargs <= n < nargs:
            raise ValueError(
                f"{name}: argnums={argnums!r} but the function was called with {nargs} "
                "positional argument(s)"
            )
    return tuple(n % nargs for n in nums)


def _with_args(fun: Callable, args: tuple, argnums: tuple[int, ...], kwargs: dict) -> Callable:
    def partial(*diff_args: Any) -> Any:
        full = list(args)
        for n, a in zip(argnums, diff_args):
            full[n] = a
        return fun(*full, **kwargs)

    return partial


# ================================================================= reverse mode


class _Recording:
    """The result of running ``fun`` on boxed inputs in a reverse trace."""

    def __init__(self, fun: Callable, primals: Sequence[Any], where: str):
        self.in_leaves: list[Any] = []
        self.in_defs: list[TreeDef] = []
        self.leaf_nodes: list[list[Node]] = []
        boxed_primals = []
        with new_trace(REVERSE) as trace:
            for primal in primals:
                leaves, treedef = tree_flatten(primal)
                leaves = [_as_primal(x, where) for x in leaves]
                nodes = [Node.leaf(x) for x in leaves]
                self.in_leaves.append(leaves)
                self.in_defs.append(treedef)
                self.leaf_nodes.append(nodes)
                boxed_primals.append(
                    tree_unflatten(treedef, [Tensor(x, trace, n) for x, n in zip(leaves, nodes)])
                )
            out = fun(*boxed_primals)
        self.trace = trace
        self.out = out
        out_leaves, self.out_def = tree_flatten(out)
        self.out_leaves = out_leaves
        self.out_values = [
            o.value if isinstance(o, Tensor) and o.trace is trace else o for o in out_leaves
        ]

    def output(self) -> Any:
        return tree_unflatten(self.out_def, [_as_output(v) for v in self.out_values])

    def pullback(self, cot_leaves: Sequence[Any], nbatch: int = 0) -> list[list[Any]]:
        """Per primal, the list of leaf cotangents (batched when ``nbatch``).

        A cotangent of ``None`` means zero: that output seeds nothing.
        """
        seeds = [
            (o.node, g)
            for o, g in zip(self.out_leaves, cot_leaves)
            if g is not None and isinstance(o, Tensor) and o.trace is self.trace
        ]
        found = backward(seeds) if seeds else {}
        given = [g for g in cot_leaves if g is not None]
        batch = _shape(given[0])[:nbatch] if given else ()
        result = []
        for leaves, nodes in zip(self.in_leaves, self.leaf_nodes):
            grads = []
            for x, node in zip(leaves, nodes):
                g = found.get(node)
                if g is None:
                    g = zeros(batch + _shape(x), _dtype(x), like=unbox(x))
                grads.append(_finish(g, x))
            result.append(grads)
        return result


def vjp(fun: Callable, *primals: Any) -> tuple[Any, Callable[[Any], tuple]]:
    """Evaluate ``fun(*primals)`` and return it with its vector-Jacobian product.

    ``vjp_fn(cotangent)`` takes a cotangent shaped like the output (the same
    pytree) and returns a tuple with one gradient per primal.

    >>> import numpy as np, einsumad as ea
    >>> W = np.arange(6.0).reshape(2, 3)
    >>> out, vjp_fn = ea.vjp(lambda a: ea.einsum("ij,j->i", W, a), np.ones(3))
    >>> vjp_fn(np.array([1.0, 0.0]))   # W^T g
    (array([0., 1., 2.]),)
    """
    recording = _Recording(fun, primals, "vjp")

    def vjp_fn(cotangent: Any) -> tuple:
        cot_leaves, cot_def = tree_flatten(cotangent)
        if cot_def != recording.out_def:
            raise ValueError(
                f"vjp: the cotangent's structure {cot_def} differs from the output's "
                f"{recording.out_def}"
            )
        for i, (c, o) in enumerate(zip(cot_leaves, recording.out_values)):
            if _shape(c) != _shape(o):
                raise ValueError(
                    f"vjp: cotangent leaf {i} has shape {_shape(c)} but the output has "
                    f"shape {_shape(o)}"
                )
        cot_leaves = [
            c if isinstance(c, Tensor) else asarray(c, like=unbox(o)) for c, o in zip(cot_leaves, recording.out_values)
        ]
        grads = recording.pullback(cot_leaves)
        return tuple(tree_unflatten(d, g) for d, g in zip(recording.in_defs, grads))

    return recording.output(), vjp_fn


def value_and_grad(
    fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False, holomorphic: bool = False
) -> Callable[..., tuple[Any, Any]]:
    """Like :func:`grad`, but the function returns ``(value, gradient)``.

    >>> import numpy as np, einsumad as ea
    >>> ea.value_and_grad(lambda x: ea.sum(x ** 2))(np.array([1.0, 2.0]))
    (array(5.), array([2., 4.]))
    """
    return _value_and_grad(fun, argnums, has_aux, "grad", holomorphic)


def _value_and_grad(fun: Callable, argnums: Any, has_aux: bool, name: str, holomorphic: bool = False) -> Callable:
    @functools.wraps(fun)
    def value_and_grad_fun(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        nums = _argnums_tuple(argnums, len(args), name)
        if has_aux:
            aux_box: list[Any] = []

            def main(*a: Any) -> Any:
                result = fun(*a, **kwargs)
                if not (isinstance(result, (tuple, list)) and len(result) == 2):
                    raise TypeError(f"{name}(has_aux=True): fun must return (output, aux)")
                aux_box.append(result[1])
                return result[0]

            target = _with_args(main, args, nums, {})
        else:
            target = _with_args(fun, args, nums, kwargs)
        recording = _Recording(target, [args[n] for n in nums], name)
        _check_scalar_output(recording.out, name, holomorphic)
        if holomorphic:
            _check_complex_inputs(recording.in_leaves, name)
        out_value = recording.out_values[0]
        seed = ones((), _dtype(unbox(out_value)), like=unbox(out_value))
        grads = recording.pullback([seed])
        trees = [tree_unflatten(d, g) for d, g in zip(recording.in_defs, grads)]
        g = trees[0] if isinstance(argnums, int) else tuple(trees)
        out_value = _as_output(out_value)
        if has_aux:  # values of this trace out of their boxes (they would escape it), as arrays
            aux_leaves, aux_def = tree_flatten(aux_box[0])
            aux = tree_unflatten(aux_def, [
                _as_output(a.value) if isinstance(a, Tensor) and a.trace is recording.trace else a for a in aux_leaves
            ])
            return (out_value, aux), g
        return out_value, g

    value_and_grad_fun._einsumad_transform = name if name != "grad" else "value_and_grad"  # type: ignore[attr-defined]
    return value_and_grad_fun


def _is_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, int, float, complex)) or (
        hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, type)
    )


def _check_scalar_output(value: Any, name: str, holomorphic: bool = False) -> None:
    """The function returned a real scalar (an array or traced value), or a clear error."""
    if isinstance(value, (tuple, list, dict)):
        raise TypeError(
            f"{name} needs a function that returns a scalar, but it returned a pytree "
            f"(a {type(value).__name__}); use ea.vjp or ea.jacobian for several outputs"
        )
    inner = unbox(value)
    if not _is_array(inner) or isinstance(inner, bool):
        raise TypeError(
            f"{name} needs a function that returns a scalar array, but it returned "
            f"{type(value).__name__} {value!r:.60}"
        )
    if _shape(inner) != ():
        raise TypeError(
            f"{name} needs a function that returns a scalar, but it returned shape "
            f"{_shape(inner)}; use ea.vjp or ea.jacobian for non-scalar outputs"
        )
    dtype = _dtype(inner)
    kind = dtype_kind(dtype)
    if kind == "c" and not holomorphic:
        raise TypeError(
            f"{name} needs a real-valued function, but it returned a complex scalar ({dtype}): "
            "a gradient is defined for real losses. Differentiate its real part (ea.real) or "
            "its absolute value (ea.abs); for a holomorphic function pass holomorphic=True to "
            "get the complex derivative f'(z); or use ea.vjp/ea.jacobian"
        )
    if holomorphic and kind != "c":
        raise TypeError(
            f"{name}(holomorphic=True) needs a function with a complex output, but it returned "
            f"dtype {dtype}; drop holomorphic=True for a real-valued function"
        )
    if kind not in "fc":
        raise TypeError(
            f"{name} needs a function that returns a floating-point scalar, but it returned "
            f"dtype {dtype} (does the output depend on the inputs through floating-point ops?)"
        )


def _check_complex_inputs(in_leaves: list[list[Any]], name: str) -> None:
    for leaves in in_leaves:
        for x in leaves:
            if dtype_kind(_dtype(x)) != "c":
                raise TypeError(
                    f"{name}(holomorphic=True) needs complex inputs, but got dtype {_dtype(x)}; "
                    "convert with x.astype(complex)"
                )


def _holds_a_scalar(x: Tensor) -> bool:
    """A traced Python number or NumPy scalar (``ea.grad`` of a function of a float, traced):
    eagerly the result would be a 0-d array, so the traced one is converted into one too."""
    return isinstance(unbox(x), (int, float, complex, np.generic))


def grad(
    fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False, holomorphic: bool = False
) -> Callable[..., Any]:
    """The gradient of a scalar-valued ``fun`` with respect to ``argnums``.

    Gradients have the shape, dtype, pytree structure and array library of their
    arguments (a Dask array's gradient is a lazy Dask array, a CUDA tensor's a CUDA
    tensor). Called inside a function being differentiated, ``grad`` returns
    traced values, so derivatives nest: ``ea.grad(lambda x: ea.sum(ea.grad(f)(x) * v))``
    is a Hessian-vector product.

    Complex inputs: for a real-valued ``fun`` of complex ``z = x + iy`` the gradient
    is ``∂f/∂x - i ∂f/∂y`` (the transpose convention of JAX and HIPS autograd; its
    conjugate is the direction of steepest ascent, see the complex-numbers guide).
    A complex-valued ``fun`` is refused unless ``holomorphic=True``, which returns
    the complex derivative ``f'(z)``.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda W, a: ea.sum(ea.tanh(W @ a)), argnums=1)(np.eye(2), np.zeros(2))
    array([1., 1.])
    >>> ea.grad(lambda z: ea.sum(z * z), holomorphic=True)(np.array([1 + 2j]))   # 2 z
    array([2.+4.j])
    """
    value_and_grad_fun = _value_and_grad(fun, argnums, has_aux, "grad", holomorphic)

    @functools.wraps(fun)
    def grad_fun(*args: Any, **kwargs: Any) -> Any:
        value, g = value_and_grad_fun(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    grad_fun._einsumad_transform = "grad"  # type: ignore[attr-defined]
    return grad_fun


# ================================================================= forward mode


def jvp(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Evaluate ``fun(*primals)`` and its Jacobian applied to ``tangents``.

    Forward mode reuses the forward subscripts: the tangent of an einsum is
    the sum over operands of the einsum with that operand replaced by its
    tangent.

    >>> import numpy as np, einsumad as ea
    >>> W = np.arange(6.0).reshape(2, 3)
    >>> ea.jvp(lambda a: ea.einsum("ij,j->i", W, a), (np.ones(3),), (np.array([1.0, 0.0, 0.0]),))
    (array([ 3., 12.]), array([0., 3.]))
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (one entry per argument)")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    checked = []
    for i, (p, t) in enumerate(zip(primals, tangents)):
        p_leaves, p_def = tree_flatten(p)
        t_leaves, t_def = tree_flatten(t)
        if p_def != t_def:
            raise ValueError(f"jvp: tangent {i} has structure {t_def} but its primal has {p_def}")
        for x, dx in zip(p_leaves, t_leaves):
            x = _as_primal(x, "jvp")
            if not isinstance(dx, Tensor):
                dx = asarray(dx, like=unbox(x))
                if _dtype(dx) != _dtype(x) and ndim(dx) == 0 and isinstance(t, (int, float)) and is_numpy(dx):
                    dx = dx.astype(_dtype(x))
            if _shape(dx) != _shape(x):
                raise ValueError(
                    f"jvp: a tangent of argument {i} has shape {_shape(dx)} but its primal "
                    f"has shape {_shape(x)}"
                )
            if _dtype(dx) != _dtype(x):
                raise TypeError(
                    f"jvp: a tangent of argument {i} has dtype {_dtype(dx)} but its primal "
                    f"has dtype {_dtype(x)}; tangents must match their primals' dtype"
                )
        checked.append((p, t))
    out, tangent_out, _ = _push_forward(fun, primals, tangents)
    return out, tangent_out


def _push_forward(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any], nbatch: int = 0) -> tuple[Any, Any, TreeDef]:
    with new_trace(FORWARD) as trace:
        boxed = []
        batch: tuple[int, ...] = ()
        for p, t in zip(primals, tangents):
            p_leaves, p_def = tree_flatten(p)
            t_leaves, _ = tree_flatten(t)
            if t_leaves and nbatch:
                batch = _shape(t_leaves[0])[:nbatch]
            boxes = [
                Tensor(
                    _as_primal(x, "jvp"), trace,
                    tangent=dx if isinstance(dx, (Tensor, KroneckerDelta)) else asarray(dx, like=unbox(x)),
                )
                for x, dx in zip(p_leaves, t_leaves)
            ]
            boxed.append(tree_unflatten(p_def, boxes))
        out = fun(*boxed)
    out_leaves, out_def = tree_flatten(out)
    values, out_tangents = [], []
    for o in out_leaves:
        if isinstance(o, Tensor) and o.trace is trace:
            values.append(_as_output(o.value))
            tangent = o.tangent
            if tangent is None:
                tangent = zeros(batch + _shape(o.value), _dtype(o.value), like=unbox(o.value))
            out_tangents.append(_as_output(tangent))
        else:
            values.append(_as_output(o))
            out_tangents.append(zeros(batch + _shape(o), _dtype(unbox(o)), like=unbox(o)))
    return tree_unflatten(out_def, values), tree_unflatten(out_def, out_tangents), out_def


def _as_output(x: Any) -> Any:
    """Plain results as arrays of their library (NumPy's for numbers; 0-d included);
    deltas as they are, traced ones too unless they hold a number (under ``ea.compile``,
    say): those become the same 0-d array as eagerly."""
    if isinstance(x, Tensor):
        return astype_p(x, dtype=x.dtype) if _holds_a_scalar(x) else x
    if isinstance(x, KroneckerDelta):
        return x
    return asarray(x)


# ================================================================= Jacobians and Hessians


def _delta(shape: tuple[int, ...], dtype: Any, like: Any = None) -> KroneckerDelta:
    """The Kronecker delta δ[a, b] with a, b ranging over ``shape``: a stack of
    unit directions, one per element, carrying ``shape`` as batch axes. It stays
    symbolic, so the first einsum it meets relabels instead of multiplying; it
    materialises in the library and on the device of ``like``."""
    value = unbox(like)
    if value is None or is_numpy(value):
        return KroneckerDelta(shape, dtype)
    return KroneckerDelta(shape, dtype, array_namespace(value), device(value))


def _replace_leaf(tree: Any, position: int, leaf: Any) -> Any:
    leaves, treedef = tree_flatten(tree)
    leaves[position] = leaf
    return tree_unflatten(treedef, leaves)


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The Jacobian by forward mode: one pass per input leaf, seeded with a delta.

    Cheaper when the inputs are smaller than the output. Each block has shape
    ``out.shape + arg.shape``; pytrees of outputs and arguments nest as in JAX.
    """

    @functools.wraps(fun)
    def jacobian_fun(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums_tuple(argnums, len(args), "jacfwd")
        blocks: list[list[Any]] = []  # per argument: per output leaf, the list of input-leaf blocks
        out_def = None
        in_defs = []
        for n in nums:
            leaves, in_def = tree_flatten(args[n])
            in_defs.append(in_def)
            per_leaf = []
            for j, leaf in enumerate(leaves):
                x = _as_primal(leaf, "jacfwd")

                def of_leaf(value: Any, n: int = n, j: int = j) -> Any:
                    full = list(args)
                    full[n] = _replace_leaf(args[n], j, value)
                    return fun(*full, **kwargs)

                _, tangent_out, out_def = _push_forward(
                    of_leaf, (x,), (_delta(_shape(x), _dtype(x), x),), nbatch=ndim(x)
                )
                out_leaves, _ = tree_flatten(tangent_out)
                per_leaf.append([_move_batch_last(t, ndim(x)) for t in out_leaves])
            # transpose to per output leaf
            n_out = len(per_leaf[0]) if per_leaf else 0
            blocks.append([[per_leaf[j][i] for j in range(len(per_leaf))] for i in range(n_out)])
        return _assemble(blocks, in_defs, out_def, argnums)

    jacobian_fun._einsumad_transform = "jacfwd"  # type: ignore[attr-defined]
    return jacobian_fun


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The Jacobian by reverse mode: one backward pass per output leaf, seeded with a delta.

    Cheaper when the output is smaller than the inputs. Each block has shape
    ``out.shape + arg.shape``; pytrees of outputs and arguments nest as in JAX.
    """

    @functools.wraps(fun)
    def jacobian_fun(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums_tuple(argnums, len(args), "jacrev")
        recording = _Recording(_with_args(fun, args, nums, kwargs), [args[n] for n in nums], "jacrev")
        return _jacobian_from_recording(recording, argnums, "jacrev")

    jacobian_fun._einsumad_transform = "jacrev"  # type: ignore[attr-defined]
    return jacobian_fun


def _real_to_complex(recording: _Recording) -> bool:
    """A traced complex output of a real input: the Jacobian reverse mode cannot give."""
    complex_out = any(
        isinstance(o, Tensor) and o.trace is recording.trace and dtype_kind(_dtype(v)) == "c"
        for o, v in zip(recording.out_leaves, recording.out_values)
    )
    return complex_out and any(dtype_kind(_dtype(x)) != "c" for leaves in recording.in_leaves for x in leaves)


def _jacobian_from_recording(recording: _Recording, argnums: Any, name: str = "jacrev") -> Any:
    if _real_to_complex(recording):
        # A cotangent of a real input is real: Re(ḡ* ∂y/∂x) keeps only Re(∂y/∂x) of a complex
        # output, so the imaginary part of the Jacobian is lost. Forward mode keeps it.
        dtypes = sorted({str(_dtype(v)) for v in recording.out_values}) + sorted(
            {str(_dtype(x)) for leaves in recording.in_leaves for x in leaves}
        )
        raise TypeError(
            f"{name} of a function with real inputs and a complex output ({', '.join(dtypes)}) cannot "
            "be computed in reverse mode: a real input's cotangent drops the imaginary part of "
            "dy/dx. Use ea.jacfwd(fun) (or ea.jacobian, which chooses it), or pass complex inputs "
            "(x.astype(complex)) for the holomorphic Jacobian"
        )
    n_args = len(recording.in_leaves)
    blocks: list[list[Any]] = [[] for _ in range(n_args)]
    for i, value in enumerate(recording.out_values):
        seeds = [
            _delta(_shape(value), _dtype(unbox(value)), value) if j == i else None
            for j in range(len(recording.out_values))
        ]
        grads = recording.pullback(seeds, nbatch=ndim(value))
        for k in range(n_args):
            blocks[k].append(grads[k])
    return _assemble(blocks, recording.in_defs, recording.out_def, argnums)


def _move_batch_last(t: Any, nbatch: int) -> Any:
    """Axes ``batch + out`` to ``out + batch``."""
    t = dense(t)
    rank = ndim(t)
    order = tuple(range(nbatch, rank)) + tuple(range(nbatch))
    if order == tuple(range(rank)):
        return t
    if isinstance(t, Tensor):
        return transpose(t, order)
    if is_numpy(t):
        return np.ascontiguousarray(np.transpose(t, order))
    return array_namespace(t).permute_dims(t, order)


def _assemble(blocks: list[list[list[Any]]], in_defs: list[TreeDef], out_def: Any, argnums: Any) -> Any:
    """Jacobian blocks into nested pytrees: the output's structure, then (a tuple over
    argnums, when argnums is a tuple) each argument's structure."""
    n_out = len(blocks[0]) if blocks else 0
    per_out = []
    for i in range(n_out):
        trees = [tree_unflatten(in_defs[k], blocks[k][i]) for k in range(len(blocks))]
        per_out.append(trees[0] if isinstance(argnums, int) else tuple(trees))
    return tree_unflatten(out_def, per_out)


def jacobian(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The full Jacobian, of shape ``out.shape + arg.shape``, in one batched pass.

    Runs ``fun`` once on a tape; if the output has no more elements than the
    differentiated inputs it seeds the backward pass with a Kronecker delta
    (reverse mode, one pass for all rows); otherwise it pushes a delta of
    tangents forward (forward mode, one pass for all columns). No Python loop
    runs over output elements either way.

    >>> import numpy as np, einsumad as ea
    >>> ea.jacobian(lambda x: ea.tanh(x))(np.zeros(2))   # diag(tanh'(0))
    array([[1., 0.],
           [0., 1.]])
    """

    @functools.wraps(fun)
    def jacobian_fun(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums_tuple(argnums, len(args), "jacobian")
        recording = _Recording(_with_args(fun, args, nums, kwargs), [args[n] for n in nums], "jacobian")
        out_size = sum(int(np.prod(_shape(v), dtype=np.int64)) for v in recording.out_values)
        in_size = sum(int(np.prod(_shape(x), dtype=np.int64)) for leaves in recording.in_leaves for x in leaves)
        if out_size <= in_size and not _real_to_complex(recording):  # reverse mode drops Im dy/dx
            return _jacobian_from_recording(recording, argnums, "jacobian")
        return jacfwd(fun, argnums)(*args, **kwargs)

    jacobian_fun._einsumad_transform = "jacobian"  # type: ignore[attr-defined]
    return jacobian_fun


def hessian(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The Hessian of a scalar ``fun``: reverse mode over reverse mode.

    The gradient is recorded on a tape, and one backward pass through that
    tape, seeded with a Kronecker delta (one cotangent per gradient element),
    yields every row at once. Reverse-over-reverse visits only the operations
    the gradient depends on; forward-over-reverse would also push tangents
    through forward-pass values the gradient never reads (the loss itself),
    which eager evaluation cannot skip. The result has shape
    ``arg.shape + arg.shape`` (nested per pytree leaf and per argnum, as JAX).

    >>> import numpy as np, einsumad as ea
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> ea.hessian(lambda x: ea.einsum("i,ij,j->", x, A, x) / 2)(np.ones(2))
    array([[2., 1.],
           [1., 3.]])
    """
    gradient = _value_and_grad(fun, argnums, False, "hessian")

    def grad_only(*args: Any, **kwargs: Any) -> Any:
        return gradient(*args, **kwargs)[1]

    hessian_fun = functools.wraps(fun)(jacrev(grad_only, argnums))
    hessian_fun._einsumad_transform = "hessian"  # type: ignore[attr-defined]
    return hessian_fun
