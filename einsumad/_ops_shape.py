"""Shape ops: reshape, indexing and its transpose (scatter-add), stack, concatenate.

These move entries around without arithmetic, so each is linear and its VJP is
its transpose: reshape back, scatter-add what indexing gathered, slice what
stacking joined. Rules accept leading batch axes on (co)tangents.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._primitive import Primitive
from ._tape import Tensor, strip_differentiation, unbox

__all__ = ["reshape", "getitem", "scatter_add", "stack", "concatenate", "broadcast_to", "rearrange"]


def _shape(x: Any) -> tuple[int, ...]:
    return np.shape(unbox(x))


def _batch(cotangent: Any, like_ndim: int) -> tuple[int, ...]:
    shape = _shape(cotangent)
    return shape[: len(shape) - like_ndim]


# ================================================================= reshape
#   forward: y = x viewed with a new shape      VJP: ḡ viewed with x's shape


reshape_p = Primitive(lambda x, shape: np.reshape(x, shape), name="reshape", batched=True)
reshape_p.def_vjp(0, lambda g, ans, x, shape: reshape_p(g, _batch(g, np.ndim(unbox(ans))) + _shape(x)))
reshape_p.def_jvp(0, lambda t, ans, x, shape: reshape_p(t, _batch(t, np.ndim(unbox(x))) + _shape(ans)))


def reshape(x: Any, shape: Any) -> Any:
    """Give ``x`` a new shape (one entry may be -1), as :func:`numpy.reshape`."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    try:
        target = np.empty(_shape(x), dtype=np.int8).reshape(shape).shape
    except ValueError:
        raise ValueError(f"cannot reshape an array of shape {_shape(x)} into shape {shape}") from None
    return reshape_p(x, target)


# ================================================================= indexing and scatter-add
#   forward: y = x[idx]                     VJP: x̄ = 0; x̄[idx] += ḡ  (repeats accumulate)
#   scatter_add is indexing's transpose     VJP: ḡ[idx]
#
#   Batch axes: ``nbatch`` leading axes of the operand are batch axes that the
#   index does not touch. They are moved to the end before indexing, because
#   NumPy puts the result axes of non-adjacent advanced indices (``x[i, :, j]``)
#   first, before every sliced axis; trailing axes always stay trailing.


def _to_back(a: np.ndarray, nbatch: int) -> np.ndarray:
    return np.moveaxis(a, tuple(range(nbatch)), tuple(range(a.ndim - nbatch, a.ndim)))


def _to_front(a: np.ndarray, nbatch: int) -> np.ndarray:
    return np.moveaxis(a, tuple(range(a.ndim - nbatch, a.ndim)), tuple(range(nbatch)))


def _gather(x: Any, index: tuple, nbatch: int = 0) -> np.ndarray:
    x = np.asarray(x)
    if not nbatch:
        return x[index]
    return _to_front(_to_back(x, nbatch)[index], nbatch)


def _scatter(g: Any, index: tuple, shape: tuple[int, ...], nbatch: int = 0) -> np.ndarray:
    g = np.asarray(g)
    shape = tuple(shape)
    out = np.zeros(shape[nbatch:] + shape[:nbatch], dtype=g.dtype)
    np.add.at(out, index, _to_back(g, nbatch) if nbatch else g)
    return _to_front(out, nbatch) if nbatch else out


getitem_p = Primitive(_gather, name="getitem", batched=True)
scatter_add_p = Primitive(_scatter, name="scatter_add", batched=True)


def _getitem_vjp(g: Any, ans: Any, x: Any, index: tuple, nbatch: int = 0) -> Any:
    extra = np.ndim(unbox(g)) - np.ndim(unbox(ans))
    shape = _shape(g)[:extra] + _shape(x)
    return scatter_add_p(g, index=index, shape=shape, nbatch=extra + nbatch)


def _getitem_jvp(t: Any, ans: Any, x: Any, index: tuple, nbatch: int = 0) -> Any:
    extra = np.ndim(unbox(t)) - np.ndim(unbox(x))
    return getitem_p(t, index=index, nbatch=extra + nbatch)


def _scatter_vjp(g: Any, ans: Any, x: Any, index: tuple, shape: tuple, nbatch: int = 0) -> Any:
    extra = np.ndim(unbox(g)) - len(shape)
    return getitem_p(g, index=index, nbatch=extra + nbatch)


def _scatter_jvp(t: Any, ans: Any, x: Any, index: tuple, shape: tuple, nbatch: int = 0) -> Any:
    extra = np.ndim(unbox(t)) - np.ndim(unbox(x))
    return scatter_add_p(t, index=index, shape=_shape(t)[:extra] + tuple(shape), nbatch=extra + nbatch)


getitem_p.def_vjp(0, _getitem_vjp)
getitem_p.def_jvp(0, _getitem_jvp)
scatter_add_p.def_vjp(0, _scatter_vjp)
scatter_add_p.def_jvp(0, _scatter_jvp)


def normalize_index(index: Any, shape: tuple[int, ...]) -> tuple:
    """A NumPy index as a tuple whose ``...`` is expanded and masks made integer.

    Expanding the ellipsis keeps the index valid when batch axes are prepended.
    """
    if not isinstance(index, tuple):
        index = (index,)
    out: list[Any] = []
    for item in index:
        if isinstance(item, Tensor):
            item = strip_differentiation(item)
        if isinstance(item, list):
            item = np.asarray(item)
        if isinstance(item, np.ndarray) and item.dtype == bool:
            out.extend(np.nonzero(item))
            continue
        if isinstance(item, np.ndarray) and not np.issubdtype(item.dtype, np.integer):
            raise IndexError(
                f"only integers, slices, None, ..., and integer or boolean arrays are valid "
                f"indices; got an array of dtype {item.dtype}"
            )
        out.append(item)
    if any(item is Ellipsis for item in out):
        i = next(j for j, item in enumerate(out) if item is Ellipsis)
        used = sum(1 for item in out if item is not None and item is not Ellipsis)
        out[i : i + 1] = [slice(None)] * (len(shape) - used)
    return tuple(out)


def getitem(x: Any, index: Any) -> Any:
    """``x[index]`` for basic slices, integers, ``None``, ``...`` and integer or
    boolean arrays; the VJP scatter-adds, so repeated indices accumulate.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(x[np.array([0, 0, 2])]))(np.zeros(3))
    array([2., 0., 1.])
    """
    index = normalize_index(index, _shape(x))
    np.empty(_shape(x), dtype=np.int8)[index]  # raise NumPy's own IndexError early
    return getitem_p(x, index=index)


def scatter_add(g: Any, index: Any, shape: Sequence[int]) -> Any:
    """Zeros of ``shape`` with ``g`` added at ``index`` (the transpose of indexing)."""
    return scatter_add_p(g, index=normalize_index(index, tuple(shape)), shape=tuple(shape))


# ================================================================= stack and concatenate
#   forward: y = [x_0 | x_1 | ...] along axis    VJP_k: the k-th block of ḡ


def _block_index(ndim_total: int, axis: int, start: int, stop: int | None) -> tuple:
    index: list[Any] = [slice(None)] * ndim_total
    index[axis] = slice(start, stop) if stop is not None else start
    return tuple(index)


concatenate_p = Primitive(lambda *xs, axis: np.concatenate(xs, axis=axis), name="concatenate", batched=True)
stack_p = Primitive(lambda *xs, axis: np.stack(xs, axis=axis), name="stack", batched=True)


def _concat_vjp(k: int) -> Any:
    def vjp(g: Any, ans: Any, *xs: Any, axis: int) -> Any:
        nbatch = np.ndim(unbox(g)) - np.ndim(unbox(ans))
        start = int(np.sum([_shape(x)[axis] for x in xs[:k]], dtype=np.int64))
        stop = start + _shape(xs[k])[axis]
        return getitem_p(g, index=_block_index(np.ndim(unbox(g)), nbatch + axis, start, stop))

    return vjp


def _concat_jvp(k: int) -> Any:
    def jvp(t: Any, ans: Any, *xs: Any, axis: int) -> Any:
        nbatch = np.ndim(unbox(t)) - np.ndim(unbox(xs[k]))
        batch = _shape(t)[:nbatch]
        start = int(np.sum([_shape(x)[axis] for x in xs[:k]], dtype=np.int64))
        stop = start + _shape(xs[k])[axis]
        index = _block_index(nbatch + np.ndim(unbox(ans)), nbatch + axis, start, stop)
        return scatter_add_p(t, index=index, shape=batch + _shape(ans))

    return jvp


def _stack_vjp(k: int) -> Any:
    def vjp(g: Any, ans: Any, *xs: Any, axis: int) -> Any:
        nbatch = np.ndim(unbox(g)) - np.ndim(unbox(ans))
        return getitem_p(g, index=_block_index(np.ndim(unbox(g)), nbatch + axis, k, None))

    return vjp


def _stack_jvp(k: int) -> Any:
    def jvp(t: Any, ans: Any, *xs: Any, axis: int) -> Any:
        nbatch = np.ndim(unbox(t)) - np.ndim(unbox(xs[k]))
        batch = _shape(t)[:nbatch]
        index = _block_index(nbatch + np.ndim(unbox(ans)), nbatch + axis, k, None)
        return scatter_add_p(t, index=index, shape=batch + _shape(ans))

    return jvp


for _k in range(256):
    concatenate_p.def_vjp(_k, _concat_vjp(_k))
    concatenate_p.def_jvp(_k, _concat_jvp(_k))
    stack_p.def_vjp(_k, _stack_vjp(_k))
    stack_p.def_jvp(_k, _stack_jvp(_k))


def _axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"axis {axis} is out of range for an array of dimension {ndim}")
    return axis % ndim


def concatenate(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays along an existing axis, as :func:`numpy.concatenate`."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    return concatenate_p(*arrays, axis=_axis(axis, np.ndim(unbox(arrays[0]))))


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays along a new axis, as :func:`numpy.stack`."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    return stack_p(*arrays, axis=_axis(axis, np.ndim(unbox(arrays[0])) + 1))


def broadcast_to(x: Any, shape: Sequence[int]) -> Any:
    """Broadcast to ``shape``: the generalised einsum ``i->ij`` whose swap sums back."""
    from ._ops_math import broadcast_batched

    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    np.broadcast_shapes(_shape(x), shape)
    return broadcast_batched(x, _shape(x), shape)


# ================================================================= rearrange
#   forward: ungroup (reshape) -> permute (transpose) -> group (reshape)
#   VJP:     the same three steps read backwards: rearrange(ḡ, reverse(pattern))


def rearrange(x: Any, pattern: str, **axis_sizes: int) -> Any:
    """Regroup and permute axes with an einops-style pattern.

    Each side names the elementary axes; parentheses group adjacent ones into a
    single axis, ``...`` stands for any other axes, ``()`` or ``1`` is a size-1
    axis. Give the sizes that cannot be inferred from ``x.shape`` as keywords.
    The op is a reshape, a transpose and a reshape, so its VJP is the
    rearrangement with the reversed pattern: for ``"b s (h d) -> b h s d"`` the
    cotangent goes through ``"b h s d -> b s (h d)"``.

    Args:
        x: array or traced tensor.
        pattern: ``"left -> right"``, e.g. ``"b s (h d) -> b h s d"``.
        **axis_sizes: sizes of elementary axes, e.g. ``h=4``.

    Raises:
        EinsumError: (a ``ValueError``) quoting the pattern and the shape when a
            group does not divide its axis, a name appears on one side only, a
            size is given for an axis not in the pattern, or the ranks differ.

    >>> import numpy as np, einsumad as ea
    >>> x = np.arange(12.0).reshape(1, 2, 6)
    >>> ea.rearrange(x, "b s (h d) -> b h s d", h=3).shape
    (1, 3, 2, 2)
    >>> ea.rearrange(x, "b s c -> b (s c)")
    array([[ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11.]])
    """
    from ._ops_math import transpose
    from ._rearrange import plan

    shape = _shape(x)
    sizes = {k: int(v) if isinstance(v, np.integer) else v for k, v in axis_sizes.items()}
    steps = plan(pattern, tuple(shape), tuple(sorted(sizes.items())))
    if steps.elementary_shape != shape:
        x = reshape_p(x, steps.elementary_shape)
    if steps.permutation != tuple(range(len(steps.permutation))):
        x = transpose(x, steps.permutation)
    if steps.output_shape != _shape(x):
        x = reshape_p(x, steps.output_shape)
    return x
