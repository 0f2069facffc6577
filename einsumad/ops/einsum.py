"""Ops that are einsums: the front door ``einsum``, and products, sums, transposes.

Every op here is the core's generalised einsum on some resolved subscripts, so
its VJP is the swap and its JVP the same subscripts with the tangent::

    multiply   y[ab] = x1[b] x2[ab]      (the index assignment of NumPy broadcasting)
               VJP_1: x̄1[b] = sum_a ḡ[ab] x2[ab]            "unbroadcasting", by the swap
    sum        y[i]  = sum_j x[ij]       VJP: x̄[ij] = ḡ[i]    a broadcast, by the swap
    transpose  y[ji] = x[ij]             VJP: x̄[ij] = ḡ[ji]
    matmul     y[ik] = sum_j a[ij] b[jk] VJP_0: ā[ij] = sum_k ḡ[ik] b[jk]   (ḡ bᵀ)
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Mapping, Sequence

import numpy as np

from ..algebra import swap as algebra
from ..algebra.errors import EinsumError
from ..algebra.subscripts import Spec, checked_sizes, fresh_symbols, from_sublists, parse, resolve
from ..core.arrays import array_namespace, asarray, is_numpy
from ..core.arrays import dtype as _array_dtype
from ..core.arrays import ndim as _ndim
from ..core.arrays import shape as _shape
from ..core.backend import contraction_path
from ..core.einsum import broadcast_batched, einsum_p
from ..core.structural import astype_p
from ..core.tape import MixedLibrariesError, Tensor, register_numpy_equivalent, unbox

__all__ = [
    "einsum", "multiply", "sum", "mean", "matmul", "transpose", "broadcast_to", "normalize_axes",
]


# ================================================================= the front door


@functools.lru_cache(maxsize=8192)
def _resolved(subscripts: str, shapes: tuple, sizes: tuple) -> Spec:
    return resolve(parse(subscripts), shapes, dict(sizes))


def _as_operands(operands: Sequence[Any]) -> list[Any]:
    """Operands of one dtype, the common one, as NumPy's einsum casts them before it
    contracts: lists and Python scalars become arrays of it, and an operand of another
    dtype is cast (so that a pairwise path sums integers and booleans in the result's
    dtype, and its values are NumPy's).

    Beside another library's arrays, numbers stay numbers (its plans multiply them
    in, with that library's own promotion) and lists become its arrays.
    """
    values = [unbox(o) for o in operands]  # traced or not: the common call, checked cheaply
    if all(type(v) is np.ndarray for v in values) and all(v.dtype == values[0].dtype for v in values):
        return list(operands)
    arrays = [unbox(o) for o in operands if not isinstance(o, (list, tuple))]
    xp = array_namespace(*arrays)
    if xp is not np:
        like = next(a for a in arrays if not is_numpy(a))
        return _promoted_foreign(xp, [
            asarray(o, like=like) if isinstance(o, (list, tuple))
            else o.item() if isinstance(o, np.generic) else o
            for o in operands
        ])
    if all(isinstance(o, (np.ndarray, Tensor)) for o in operands):
        dtypes = [np.result_type(unbox(o)) for o in operands]
        if all(d == dtypes[0] for d in dtypes):
            return list(operands)
    # Python numbers count as the arrays numpy.einsum makes of them (float64, int64):
    # ``einsum(",ij", 2.5, x32)`` is float64, as in NumPy (the arithmetic operators keep
    # NumPy's weak scalars instead: ``2.5 * x32`` is float32).
    values = [unbox(o) if isinstance(o, (np.ndarray, Tensor)) else np.asarray(o) for o in operands]
    dtype = np.result_type(*values)
    out: list[Any] = []
    for o in operands:
        if not isinstance(o, (np.ndarray, Tensor)):
            out.append(np.asarray(o, dtype=dtype))
        elif np.result_type(unbox(o)) != dtype:
            out.append(astype_p(o, dtype=dtype))
        else:
            out.append(o)
    return out


def _promoted_foreign(xp: Any, operands: list[Any]) -> list[Any]:
    """Another library's arrays of different dtypes cast to their common dtype, as NumPy
    casts its operands (PyTorch's einsum refuses float32 beside float64); numbers stay."""
    arrays = [o for o in operands if not isinstance(o, (int, float, complex))]
    dtypes = [_array_dtype(o) for o in arrays]
    if all(d == dtypes[0] for d in dtypes):
        return operands
    try:
        target = xp.result_type(*[unbox(o) for o in arrays])
    except Exception as error:  # a library without the standard's n-ary result_type, or no common dtype
        raise TypeError(
            f"einsum: operands of dtypes {', '.join(str(d) for d in dtypes)} have no common dtype "
            f"in {getattr(xp, '__name__', xp)} ({error}); cast them to one dtype first"
        ) from error
    return [o if isinstance(o, (int, float, complex)) or _array_dtype(o) == target else astype_p(o, dtype=target)
            for o in operands]


def parse_call(
    subscripts: Any, operands: Sequence[Any], sizes: Mapping[Any, int] | None
) -> tuple[str, list[Any], dict[str, int], str | None]:
    """The two calling forms of ``einsum`` as (subscripts, operands, sizes, note).

    The string form ``einsum("ij,jk->ik", x, y)``, or NumPy's sublist form
    ``einsum(x, [0, 1], y, [1, 2], [0, 2])``, converted to subscripts; ``note``
    then says how the sublists were read, for error messages.
    """
    if isinstance(subscripts, str):
        return subscripts, list(operands), checked_sizes(sizes), None
    args = (subscripts, *operands)
    if len(args) < 2:
        raise TypeError(
            f"einsum: the first argument is the subscripts string (e.g. 'ij,jk->ik'), or an "
            f"operand followed by its list of labels (the sublist form); got only {subscripts!r}"
        )
    arrays, sublists = list(args[0:-1:2]), list(args[1::2])
    output = args[-1] if len(args) % 2 else None
    text, letter = from_sublists(sublists, output)
    if sizes is not None and isinstance(sizes, Mapping):
        sizes = {letter.get(key, key): n for key, n in sizes.items()}
    note = f"(the sublists were read as {text!r}: " + ", ".join(f"{k!r} is {v}" for k, v in letter.items()) + ")"
    return text, arrays, checked_sizes(sizes), note


def _cast(operands: list[Any], dtype: Any, casting: str, subscripts: str) -> list[Any]:
    """Operands cast to ``dtype`` under NumPy's ``casting`` rule (``'safe'`` by default)."""
    if casting not in ("no", "equiv", "safe", "same_kind", "unsafe"):
        raise ValueError(
            f"einsum: casting must be 'no', 'equiv', 'safe', 'same_kind' or 'unsafe', got {casting!r}"
        )
    target = np.dtype(dtype)
    out = []
    for k, o in enumerate(operands):
        source = np.result_type(unbox(o))
        if not np.can_cast(source, target, casting):  # type: ignore[arg-type]
            raise TypeError(
                f"einsum {subscripts!r}: cannot cast operand {k} from {source} to {target} "
                f"under casting={casting!r}, as NumPy; pass casting='same_kind' or 'unsafe' "
                "to allow it"
            )
        out.append(o if source == target else astype_p(o, dtype=target))
    return out


def einsum(
    subscripts: Any,
    *operands: Any,
    sizes: Mapping[str, int] | None = None,
    optimize: Any = None,
    dtype: Any = None,
    casting: str = "safe",
    out: Any = None,
    order: str = "K",
) -> Any:
    """Generalised Einstein summation, differentiable in every operand.

    Accepts everything :func:`numpy.einsum` accepts (implicit output, ``...``,
    broadcasting of size-1 axes, repeated letters within an operand, the
    sublist form ``einsum(x, [0, 1], y, [1, 2], [0, 2])``), and two
    generalised output forms: a repeated output letter embeds a diagonal
    (``"i->ii"``), and an output letter absent from every operand broadcasts
    (``"i->ij"``, its size given in ``sizes``).

    Letters or names: the subscripts are named indices
    (``"batch in, in out -> batch out"``) when some term holds two or more
    space-separated names (``...`` is never a name) or a name with a digit or
    underscore, and single letters otherwise, as in NumPy (spaces are ignored:
    ``"... ji"`` is the letters ``j`` and ``i``).

    Three or more operands are contracted pairwise along opt_einsum's optimised
    path; when traced, each pairwise step is recorded, so the gradient costs a
    small multiple of the forward pass (see :func:`einsum_path`).

    Args:
        subscripts: the einsum subscripts (or, in the sublist form, the first operand).
        *operands: arrays or traced tensors, one per term.
        sizes: sizes of output indices that appear in no operand, e.g. ``{"j": 3}``.
        optimize: how the pairwise path of three or more operands is chosen:
            None (einsumad's choice: opt_einsum's ``'dp'`` search where it is
            affordable, ``'auto'`` elsewhere), True (``'greedy'``, as NumPy), False (no search:
            pairwise from left to right, in the order written), a strategy name
            of opt_einsum (``'greedy'``, ``'optimal'``, ``'dp'``, ``'auto'``, ...),
            or an explicit path (``[(1, 2), (0, 1)]``, also in NumPy's
            ``['einsum_path', (1, 2), (0, 1)]`` form).
        dtype: compute in this dtype, as NumPy: operands are cast to it under
            the ``casting`` rule.
        casting: NumPy's casting rule for ``dtype`` (default ``'safe'``).
        out: a NumPy array to write the result into, as NumPy (not while
            differentiating: a traced result has no array to write).
        order: the memory layout of a NumPy result (``'K'``, ``'C'``, ``'F'``, ``'A'``).

    >>> import numpy as np, einsumad as ea
    >>> W, a = np.arange(6.0).reshape(2, 3), np.ones(3)
    >>> ea.einsum("ij,j->i", W, a)
    array([ 3., 12.])
    >>> ea.einsum("i->ij", np.array([1.0, 2.0]), sizes={"j": 3})
    array([[1., 1., 1.],
           [2., 2., 2.]])
    >>> ea.einsum(W, [0, 1], a, [1], [0])          # the sublist form
    array([ 3., 12.])
    """
    if out is not None or order != "K":
        result = einsum(subscripts, *operands, sizes=sizes, optimize=optimize, dtype=dtype, casting=casting)
        return _placed(result, out, order)
    given: dict[str, int]
    note: str | None
    try:
        if type(subscripts) is str and sizes is None:  # the common call
            text, given, note = subscripts, {}, None
            operands_list = _as_operands(operands)
        else:
            text, listed, given, note = parse_call(subscripts, operands, sizes)
            operands_list = _as_operands(listed)
    except MixedLibrariesError as error:
        raise error.within(f"einsum({subscripts!r})") from None
    if dtype is not None:
        operands_list = _cast(operands_list, dtype, casting, text)
    shapes = tuple(o.shape if type(o) is np.ndarray else _shape(o) for o in operands_list)
    try:
        spec = _resolved(text, shapes, tuple(sorted(given.items())) if given else ())
    except EinsumError as error:
        if note is None:
            raise
        raise EinsumError(f"{error}\n{note}") from None
    steps = None if optimize is None else checked_path(optimize, len(operands_list), text)
    if len(operands_list) <= 2 or (optimize is None and not any(isinstance(o, Tensor) for o in operands_list)):
        return einsum_p(*operands_list, spec=spec)
    # Record the pairwise steps of the path: each is an einsum whose VJP is the
    # swap, so the gradient costs a small multiple of the forward pass.
    path = steps if steps is not None else contraction_path(spec, shapes, optimize)
    return algebra.run_pairwise(spec, path, operands_list, lambda step, chosen: einsum_p(*chosen, spec=step))


def _placed(result: Any, out: Any, order: str) -> Any:
    """NumPy's ``out=`` and ``order=`` applied to an einsum's result."""
    if order not in ("K", "C", "F", "A"):
        raise ValueError(f"order must be one of 'C', 'F', 'A' or 'K', got {order!r}")
    if isinstance(result, Tensor):
        if out is not None:
            raise TypeError(
                "einsum(..., out=...) cannot hold a traced result (it is being differentiated "
                "or compiled): drop out= and use the returned value"
            )
        return result  # a traced value has no memory layout to choose
    if out is None:
        return np.asarray(result, order=order)  # type: ignore[call-overload]
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.shape != np.shape(result):
        raise ValueError(f"out has shape {out.shape}, the result has shape {np.shape(result)}")
    np.copyto(out, result, casting="safe")
    return out


def checked_path(optimize: Any, n: int, subscripts: str) -> tuple[tuple[int, ...], ...] | None:
    """An explicit path in ``optimize`` as a tuple of steps, validated for ``n``
    operands; None when ``optimize`` names a strategy (validated by the backend).

    >>> checked_path([(1, 2), (0, 1)], 3, "ij,jk,kl")
    ((1, 2), (0, 1))
    >>> checked_path(["einsum_path", (0, 1)], 2, "ij,jk")
    ((0, 1),)
    """
    if optimize is None or isinstance(optimize, (bool, str)) or not isinstance(optimize, (list, tuple)):
        return None
    steps = list(optimize)
    if steps and steps[0] == "einsum_path":  # NumPy's form of a path
        steps = steps[1:]
    where = f"einsum {subscripts!r}: optimize={list(optimize)!r}"
    remaining = n
    out = []
    for number, step in enumerate(steps, 1):
        if not isinstance(step, (list, tuple)) or not step:
            raise ValueError(f"{where}: step {number} is {step!r}, not a tuple of operand positions")
        positions = []
        for p in step:
            if isinstance(p, bool) or not isinstance(p, (int, np.integer)):
                raise TypeError(f"{where}: step {number} holds {p!r}; positions are ints")
            if not 0 <= p < remaining:
                raise ValueError(
                    f"{where}: step {number} names operand {p}, but {remaining} operand(s) "
                    "remain at that step (each step appends its result at the end)"
                )
            positions.append(int(p))
        if len(set(positions)) != len(positions):
            raise ValueError(f"{where}: step {number} names an operand twice")
        remaining -= len(positions) - 1
        out.append(tuple(positions))
    if remaining != 1 and n > 0:
        raise ValueError(
            f"{where}: the path leaves {remaining} operands; it must contract all {n} into one"
        )
    return tuple(out)


register_numpy_equivalent(np.einsum, "ea.einsum")


# ================================================================= multiply: the product NumPy broadcasting assigns


@functools.lru_cache(maxsize=4096)
def _product_spec(shape_x: tuple[int, ...], shape_y: tuple[int, ...]) -> Spec:
    return algebra.broadcast_spec(shape_x, shape_y)


def multiply(x: Any, y: Any) -> Any:
    """Elementwise ``x * y``: the einsum that NumPy broadcasting assigns.

    >>> import einsumad as ea
    >>> str(ea.algebra.swap.broadcast_spec((3,), (2, 3)))
    'j,ij->ij'
    """
    return einsum_p(x, y, spec=_product_spec(_shape(x), _shape(y)))


# ================================================================= sums


def normalize_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, an int or a tuple) as sorted non-negative axes, NumPy's errors."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, Tensor):  # a traced number (a compiled function's argument): a clear error
        operator.index(axis)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if isinstance(a, Tensor):
            operator.index(a)
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(f"axis {a} is out of range for an array of dimension {ndim}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(out))


@functools.lru_cache(maxsize=4096)
def _sum_spec(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Spec:
    """``ab->a`` for a sum over axis 1; with keepdims, a size-1 letter in its place."""
    letters = fresh_symbols("", 2 * len(shape))
    term = letters[: len(shape)]
    sizes = {s: n for s, n in zip(term, shape)}
    out = []
    for axis, s in enumerate(term):
        if axis not in axes:
            out.append(s)
        elif keepdims:
            kept = letters[len(shape) + axis]
            sizes[kept] = 1
            out.append(kept)
    return Spec((term,), "".join(out), tuple(sorted(sizes.items())))


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum over ``axis`` (all axes by default), as the einsum ``ij->i``.

    >>> import numpy as np, einsumad as ea
    >>> ea.sum(np.ones((2, 3)), axis=1)
    array([3., 3.])
    """
    shape = _shape(x)
    x = accumulated(x)
    return einsum_p(x, spec=_sum_spec(shape, normalize_axes(axis, len(shape)), bool(keepdims)))


def accumulated(x: Any, floating: bool = False) -> Any:
    """``x`` in the dtype NumPy accumulates a reduction of it in: booleans and signed
    integers narrower than int64 as int64, unsigned ones as uint64 (``numpy.sum``,
    ``numpy.prod``: ``sum(int8([100, 100]))`` is 200, not -56), or float64 for any
    integer or boolean when ``floating`` (``numpy.mean``, ``numpy.linalg.norm``).

    >>> accumulated(np.int8([100, 100])).dtype, accumulated(np.uint8([1]), floating=True).dtype
    (dtype('int64'), dtype('float64'))
    """
    d = _array_dtype(x)
    if not isinstance(d, np.dtype) or d.kind not in "biu":
        return x
    target = np.dtype("float64" if floating else "uint64" if d.kind == "u" else "int64")
    if d == target:
        return x
    return astype_p(x if isinstance(x, Tensor) else np.asarray(x), dtype=target)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Mean over ``axis``: the sum times ``1/n`` (of an integer array in float64, as NumPy)."""
    x = accumulated(x, floating=True)
    shape = _shape(x)
    axes = normalize_axes(axis, len(shape))
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    return multiply(sum(x, axis=axes, keepdims=keepdims), 1.0 / count if count else np.nan)


register_numpy_equivalent(np.sum, "ea.sum")
register_numpy_equivalent(np.mean, "ea.mean")


# ================================================================= matmul, transpose, broadcast

_MATMUL_SUBSCRIPTS = {
    (True, True): "...ij,...jk->...ik",
    (False, True): "j,...jk->...k",
    (True, False): "...ij,j->...i",
    (False, False): "j,j->",
}


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` as an einsum: ``...ij,...jk->...ik`` (vectors drop their letter)."""
    ndim_a, ndim_b = _ndim(a), _ndim(b)
    if ndim_a == 0 or ndim_b == 0:
        raise ValueError("matmul: an operand is 0-dimensional; use * to scale")
    return einsum(_MATMUL_SUBSCRIPTS[ndim_a >= 2, ndim_b >= 2], a, b)


def transpose(x: Any, axes: Sequence[int] | None = None) -> Any:
    """Permute axes (reverse them by default): the einsum ``ij->ji``."""
    ndim = _ndim(x)
    if axes is None:
        order = tuple(reversed(range(ndim)))
    else:
        for a in axes:
            if not -ndim <= int(a) < ndim:
                raise np.exceptions.AxisError(f"axis {a} is out of range for an array of dimension {ndim}")
        order = tuple(int(a) % ndim for a in axes)
    if sorted(order) != list(range(ndim)):
        raise ValueError(f"axes {tuple(axes) if axes is not None else None} are not a permutation of {ndim} axes")
    letters = fresh_symbols("", ndim)
    subscripts = letters + "->" + "".join(letters[a] for a in order)
    return einsum_p(x, spec=_resolved(subscripts, (_shape(x),), ()))


def broadcast_to(x: Any, shape: Sequence[int]) -> Any:
    """Broadcast to ``shape``: the generalised einsum ``i->ij`` whose swap sums back."""
    target = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    np.broadcast_shapes(_shape(x), target)
    return broadcast_batched(x, _shape(x), target)


register_numpy_equivalent(np.matmul, "ea.matmul (or @)")
register_numpy_equivalent(np.dot, "ea.matmul (or ea.einsum)")
register_numpy_equivalent(np.transpose, "ea.transpose (or .T)")
register_numpy_equivalent(np.broadcast_to, "ea.broadcast_to")
