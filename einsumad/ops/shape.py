"""Shape ops: reshape, indexing and its transpose (scatter-add), stack, concatenate.

These move entries around without arithmetic, so each is linear and its VJP is
its transpose: reshape back, scatter-add what indexing gathered, slice what
stacking joined. Rules accept leading batch axes on (co)tangents.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Sequence

import numpy as np

from ..algebra.rearrange import plan
from ..core.arrays import ndim as _ndim
from ..core.arrays import shape as _shape
from ..core.structural import concatenate_p, getitem_p, reshape_p, scatter_add_p, stack_p
from ..core.tape import Tensor, register_numpy_equivalent, strip_differentiation
from .einsum import transpose

__all__ = ["reshape", "getitem", "scatter_add", "stack", "concatenate", "rearrange", "normalize_index"]


# The primitives and their transposes live in einsumad.core.structural; these are
# their front doors (argument checking with NumPy's own errors).
#
#   reshape     y = x viewed with a new shape      transpose: ḡ viewed with x's shape
#   x[idx]      y = x[idx]                         transpose: x̄ = 0; x̄[idx] += ḡ
#   stack       y = [x_0 | x_1 | ...]              transpose_k: the k-th block of ḡ


def _stand_in(shape: tuple[int, ...]) -> np.ndarray:
    """An int8 array of ``shape`` to ask NumPy what an index or reshape gives: a real one
    when small, else one element broadcast (no memory, for arrays larger than RAM)."""
    if math.prod(shape) <= 1 << 16:
        return np.empty(shape, dtype=np.int8)
    return np.broadcast_to(np.empty((), dtype=np.int8), shape)


def reshape(x: Any, shape: Any) -> Any:
    """Give ``x`` a new shape (one entry may be -1), as :func:`numpy.reshape`."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    try:
        target = _stand_in(_shape(x)).reshape(shape).shape
    except ValueError:
        raise ValueError(f"cannot reshape an array of shape {_shape(x)} into shape {shape}") from None
    return reshape_p(x, shape=target)


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
        if isinstance(item, Tensor):  # still traced: an argument of a compiled function
            if not item.shape:
                operator.index(item)  # says to declare it static
            raise TypeError(
                f"an index array of shape {item.shape} is an argument of a compiled function: "
                "ea.compile traces array arguments, so it cannot read their values. Take the "
                "index array from the enclosing scope (a constant of the program), or index "
                "outside the compiled function."
            )
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
    _stand_in(_shape(x))[index]  # raise NumPy's own IndexError early
    return getitem_p(x, index=index)


def scatter_add(g: Any, index: Any, shape: Sequence[int]) -> Any:
    """Zeros of ``shape`` with ``g`` added at ``index`` (the transpose of indexing)."""
    return scatter_add_p(g, index=normalize_index(index, tuple(shape)), shape=tuple(shape))


# ================================================================= stack and concatenate
#   forward: y = [x_0 | x_1 | ...] along axis    VJP_k: the k-th block of ḡ


def _axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"axis {axis} is out of range for an array of dimension {ndim}")
    return axis % ndim


def concatenate(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays along an existing axis, as :func:`numpy.concatenate`."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    return concatenate_p(*arrays, axis=_axis(axis, _ndim(arrays[0])))


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays along a new axis, as :func:`numpy.stack`."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    return stack_p(*arrays, axis=_axis(axis, _ndim(arrays[0]) + 1))


# ================================================================= rearrange
#   forward: ungroup (reshape) -> permute (transpose) -> group (reshape)
#   VJP:     the transposes of the three steps, in reverse order (the pattern read backwards)


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
    shape = _shape(x)
    sizes = {k: int(v) if isinstance(v, np.integer) else v for k, v in axis_sizes.items()}
    steps = plan(pattern, tuple(shape), tuple(sorted(sizes.items())))
    if steps.elementary_shape != shape:
        x = reshape_p(x, shape=steps.elementary_shape)
    if steps.permutation != tuple(range(len(steps.permutation))):
        x = transpose(x, steps.permutation)
    if steps.output_shape != _shape(x):
        x = reshape_p(x, shape=steps.output_shape)
    return x


register_numpy_equivalent(np.reshape, "ea.reshape (or .reshape)")
register_numpy_equivalent(np.stack, "ea.stack")
register_numpy_equivalent(np.concatenate, "ea.concatenate")
