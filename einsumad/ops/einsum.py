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
from typing import Any, Mapping, Sequence

import numpy as np

from ..algebra import swap as algebra
from ..algebra.subscripts import Spec, fresh_symbols, parse, resolve
from ..core.arrays import array_namespace, asarray, is_numpy
from ..core.arrays import ndim as _ndim
from ..core.arrays import shape as _shape
from ..core.backend import contraction_path
from ..core.einsum import broadcast_batched, einsum_p
from ..core.tape import MixedLibrariesError, Tensor, register_numpy_equivalent, unbox

__all__ = [
    "einsum", "multiply", "sum", "mean", "matmul", "transpose", "broadcast_to", "normalize_axes",
]


# ================================================================= the front door


@functools.lru_cache(maxsize=8192)
def _resolved(subscripts: str, shapes: tuple, sizes: tuple) -> Spec:
    return resolve(parse(subscripts), shapes, dict(sizes))


def _as_operands(operands: Sequence[Any]) -> list[Any]:
    """Lists and Python scalars become arrays of the operands' common dtype.

    Beside another library's arrays, numbers stay numbers (its plans multiply them
    in, with that library's own promotion) and lists become its arrays.
    """
    if all(isinstance(o, (np.ndarray, Tensor)) for o in operands):
        return list(operands)
    arrays = [unbox(o) for o in operands if not isinstance(o, (list, tuple))]
    xp = array_namespace(*arrays)
    if xp is not np:
        like = next(a for a in arrays if not is_numpy(a))
        return [
            asarray(o, like=like) if isinstance(o, (list, tuple))
            else o.item() if isinstance(o, np.generic) else o
            for o in operands
        ]
    dtype = np.result_type(
        *[unbox(o) if isinstance(o, (np.ndarray, Tensor)) else np.asarray(o) if isinstance(o, (list, tuple)) else o for o in operands]
    )
    return [o if isinstance(o, (np.ndarray, Tensor)) else np.asarray(o, dtype=dtype) for o in operands]


def einsum(subscripts: str, *operands: Any, sizes: Mapping[str, int] | None = None) -> Any:
    """Generalised Einstein summation, differentiable in every operand.

    Accepts everything :func:`numpy.einsum` accepts (implicit output, ``...``,
    broadcasting of size-1 axes, repeated letters within an operand), and two
    generalised output forms: a repeated output letter embeds a diagonal
    (``"i->ii"``), and an output letter absent from every operand broadcasts
    (``"i->ij"``, its size given in ``sizes``). Named indices work too:
    ``"batch in, in out -> batch out"``.

    Three or more operands are contracted pairwise along opt_einsum's optimised
    path; when traced, each pairwise step is recorded, so the gradient costs a
    small multiple of the forward pass.

    Args:
        subscripts: the einsum subscripts.
        *operands: arrays or traced tensors, one per term.
        sizes: sizes of output indices that appear in no operand.

    >>> import numpy as np, einsumad as ea
    >>> W, a = np.arange(6.0).reshape(2, 3), np.ones(3)
    >>> ea.einsum("ij,j->i", W, a)
    array([ 3., 12.])
    >>> ea.einsum("i->ij", np.array([1.0, 2.0]), sizes={"j": 3})
    array([[1., 1., 1.],
           [2., 2., 2.]])
    """
    try:
        operands_list = _as_operands(operands)
    except MixedLibrariesError as error:
        raise error.within(f"einsum({subscripts!r})") from None
    shapes = tuple(_shape(o) for o in operands_list)
    spec = _resolved(subscripts, shapes, tuple(sorted(sizes.items())) if sizes else ())
    if len(operands_list) <= 2 or not any(isinstance(o, Tensor) for o in operands_list):
        return einsum_p(*operands_list, spec=spec)
    # Record the pairwise steps of the optimised path: each is an einsum whose
    # VJP is the swap, so the gradient costs a small multiple of the forward pass.
    path = contraction_path(spec, shapes)
    return algebra.run_pairwise(spec, path, operands_list, lambda step, chosen: einsum_p(*chosen, spec=step))


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
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
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
    return einsum_p(x, spec=_sum_spec(shape, normalize_axes(axis, len(shape)), bool(keepdims)))


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Mean over ``axis``: the sum times ``1/n``."""
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
