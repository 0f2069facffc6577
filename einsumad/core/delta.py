"""The Kronecker delta that seeds Jacobian and Hessian passes, kept symbolic.

``KroneckerDelta(shape)`` stands for ``δ[a, b] = 1 if a == b else 0`` with ``a``
and ``b`` both ranging over ``shape``. Pushed through a pass as a stack of unit
(co)tangents, its first half of axes rides along as batch letters. When it meets
an einsum, contracting it is a *relabelling* (:func:`~einsumad._algebra.contract_delta`):
the batch letters are renamed to the letters they equal, and no identity matrix
is ever multiplied. Anything else that meets it sees the materialised array
(:meth:`KroneckerDelta.materialize`), made in the library and on the device of
the value it seeds: ``xp.eye`` reshaped, so a Dask or GPU pass stays where it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["KroneckerDelta"]


class KroneckerDelta:
    """δ over ``base_shape``: an array of shape ``base_shape + base_shape``.

    ``namespace`` and ``device`` say where it materialises (NumPy by default; the
    array library and device of the value whose Jacobian it seeds otherwise).

    >>> d = KroneckerDelta((2,), np.float64)
    >>> d.shape, d.materialize()
    ((2, 2), array([[1., 0.],
           [0., 1.]]))
    """

    __slots__ = ("base_shape", "shape", "ndim", "dtype", "namespace", "device")

    def __init__(self, base_shape: tuple[int, ...], dtype: Any, namespace: Any = np, device: Any = None) -> None:
        self.base_shape = tuple(base_shape)
        self.shape = self.base_shape + self.base_shape
        self.ndim = len(self.shape)
        self.namespace = namespace
        self.device = device
        self.dtype = np.dtype(dtype) if namespace is np else dtype

    def materialize(self) -> Any:
        """The delta as an array of its library: an identity matrix, reshaped."""
        n = int(np.prod(self.base_shape, dtype=np.int64))
        if self.namespace is np:
            return np.eye(n, dtype=self.dtype).reshape(self.shape)
        xp = self.namespace
        return xp.reshape(xp.eye(n, dtype=self.dtype, device=self.device), self.shape)

    def __array_namespace__(self, api_version: Any = None) -> Any:
        return self.namespace

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self.namespace is not np:
            raise TypeError(f"a Kronecker delta of {self.namespace.__name__} is no NumPy array; use .materialize()")
        n = int(np.prod(self.base_shape, dtype=np.int64))
        return np.eye(n, dtype=dtype or self.dtype).reshape(self.shape)

    def __repr__(self) -> str:
        return f"KroneckerDelta({self.base_shape}, {self.dtype})"
