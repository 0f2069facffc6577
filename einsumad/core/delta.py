"""The Kronecker delta that seeds Jacobian and Hessian passes, kept symbolic.

``KroneckerDelta(shape)`` stands for ``δ[a, b] = 1 if a == b else 0`` with ``a``
and ``b`` both ranging over ``shape``. Pushed through a pass as a stack of unit
(co)tangents, its first half of axes rides along as batch letters. When it meets
an einsum, contracting it is a *relabelling* (:func:`~einsumad._algebra.contract_delta`):
the batch letters are renamed to the letters they equal, and no identity matrix
is ever multiplied. Anything else that meets it sees the materialised array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["KroneckerDelta"]


class KroneckerDelta:
    """δ over ``base_shape``: an array of shape ``base_shape + base_shape``.

    >>> d = KroneckerDelta((2,), np.float64)
    >>> d.shape, np.asarray(d)
    ((2, 2), array([[1., 0.],
           [0., 1.]]))
    """

    __slots__ = ("base_shape", "shape", "ndim", "dtype")

    def __init__(self, base_shape: tuple[int, ...], dtype: Any) -> None:
        self.base_shape = tuple(base_shape)
        self.shape = self.base_shape + self.base_shape
        self.ndim = len(self.shape)
        self.dtype = np.dtype(dtype)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        n = int(np.prod(self.base_shape, dtype=np.int64))
        return np.eye(n, dtype=dtype or self.dtype).reshape(self.shape)

    def __repr__(self) -> str:
        return f"KroneckerDelta({self.base_shape}, {self.dtype})"
