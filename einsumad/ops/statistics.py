"""Moments along axes: the variance and the standard deviation, as compositions.

::

    m[i] = mean_j x[ij]     v[i] = sum_j (x[ij] - m[i])² / (n - ddof)     s[i] = √v[i]

A mean (the einsum ``ij->i`` times ``1/n``), a centring, a square, a sum and a
square root: the derivatives come from the chain rule through those ops.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.arrays import shape as _shape
from ..core.tape import register_numpy_equivalent
from .arith import divide, sqrt, subtract
from .complex import abs_squared
from .einsum import mean, multiply, normalize_axes
from .einsum import sum as total

__all__ = ["var", "std"]


# ================================================================= var and std
#   m[i] = mean_j x[ij]     v[i] = sum_j (x[ij] - m[i])² / (n - ddof)     std = √v
#   ∂v[i]/∂x[ij] = 2 (x[ij] - m[i]) / (n - ddof)   (the centring's own derivative cancels:
#   sum_j (x[ij] - m[i]) = 0), from the chain rule through the composition.


def var(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Any:
    """The variance along ``axis``, as :func:`numpy.var`: ``sum((x - mean)²) / (n - ddof)``.

    A composition of differentiable ops, so every derivative follows from the
    chain rule: ``∂v[i]/∂x[ij] = 2 (x[ij] - m[i]) / (n - ddof)``.

    Args:
        x: array or traced tensor.
        axis: an int, a tuple of ints, or None for all axes.
        keepdims: keep the reduced axes with size 1.
        ddof: "delta degrees of freedom": the divisor is ``n - ddof``.

    >>> import numpy as np, einsumad as ea
    >>> ea.var(np.array([[1.0, 3.0], [2.0, 2.0]]), axis=1)
    array([1., 0.])
    >>> ea.grad(lambda x: ea.var(x, ddof=1))(np.array([1.0, 2.0, 6.0]))   # 2 (x - 3) / 2
    array([-2., -1.,  3.])
    """
    shape = _shape(x)
    axes = normalize_axes(axis, len(shape))
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    centred = subtract(x, mean(x, axis=axes, keepdims=True))
    squares = total(abs_squared(centred), axis=axes, keepdims=bool(keepdims))
    if count - ddof > 0:
        return multiply(squares, 1.0 / (count - ddof))
    return divide(squares, 0.0)  # as NumPy: inf or nan, with its warning


def std(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Any:
    """The standard deviation ``sqrt(var(x, axis, keepdims, ddof))``, as :func:`numpy.std`.

    ``∂s[i]/∂x[ij] = (x[ij] - m[i]) / ((n - ddof) s[i])``; where the variance is
    0 (a constant slice) the derivative is infinite and the gradient is nan, as
    in NumPy-based peers (JAX, PyTorch). Add a small constant under the square
    root (``ea.sqrt(ea.var(x) + eps)``) where that can happen.

    >>> import numpy as np, einsumad as ea
    >>> float(ea.std(np.array([1.0, 3.0])))
    1.0
    """
    return sqrt(var(x, axis=axis, keepdims=keepdims, ddof=ddof))


register_numpy_equivalent(np.var, "ea.var")
register_numpy_equivalent(np.std, "ea.std")
