"""The product along axes, as a tree of Hadamard products.

::

    y[i] = prod_j x[ij]        ∂y[i]/∂x[ij] = prod_{k != j} x[ik]

Evaluated as ``((x1 x2)(x3 x4))...``: each level multiplies the first half of
the remaining entries with the second half (the Hadamard einsum ``I,I->I``),
``log2 n`` levels in all. No division appears anywhere, so slices with one
zero, several zeros or none get the right derivative of every order, in both
modes: the VJP of the tree, produced by the swap at every level, is the
product of the *other* entries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.arrays import dtype as _dtype
from ..core.arrays import ndim as _ndim
from ..core.arrays import ones
from ..core.arrays import shape as _shape
from ..core.structural import getitem_p, reshape_p
from ..core.tape import register_numpy_equivalent, unbox
from .einsum import accumulated, multiply, normalize_axes, transpose
from .shape import concatenate

__all__ = ["prod"]


def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The product of the entries along ``axis``, as :func:`numpy.prod`.

    Evaluated as a tree of elementwise products (``log2 n`` levels), so no
    division is involved: with one zero in a slice, the gradient at the zero is
    the product of the other entries and 0 elsewhere; with several zeros it is
    0. Derivatives of every order, in both modes, follow from the products.

    Args:
        x: array or traced tensor.
        axis: an int, a tuple of ints, or None for all axes.
        keepdims: keep the reduced axes with size 1.

    >>> import numpy as np, einsumad as ea
    >>> ea.prod(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), axis=1)
    array([  6., 120.])
    >>> ea.grad(lambda x: ea.prod(x))(np.array([2.0, 0.0, 5.0]))
    array([ 0., 10.,  0.])
    """
    x = accumulated(x)  # int8 as int64, as NumPy: no silent overflow
    shape = _shape(x)
    axes = normalize_axes(axis, len(shape))
    kept = tuple(a for a in range(len(shape)) if a not in axes)
    kept_shape = tuple(shape[a] for a in kept)
    out_shape = tuple(1 if a in axes else n for a, n in enumerate(shape)) if keepdims else kept_shape
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    if count == 0:  # the empty product: a constant
        return ones(out_shape, _dtype(x), like=unbox(x))
    if kept + axes != tuple(range(len(shape))):
        x = transpose(x, kept + axes)
    x = reshape_p(x, shape=kept_shape + (count,))
    n = count
    while n > 1:
        half = n // 2
        pairs = multiply(_last(x, slice(0, half)), _last(x, slice(half, 2 * half)))
        x = pairs if n % 2 == 0 else concatenate([pairs, _last(x, slice(2 * half, n))], axis=-1)
        n = half + n % 2
    return reshape_p(x, shape=out_shape)


def _last(x: Any, part: slice) -> Any:
    """``x[..., part]``: a block of the last axis."""
    return getitem_p(x, index=(slice(None),) * (_ndim(x) - 1) + (part,))


register_numpy_equivalent(np.prod, "ea.prod")
