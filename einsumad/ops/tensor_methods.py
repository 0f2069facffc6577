"""Operators and methods of :class:`~einsumad.Tensor`, each a call to an op.

Installed by the op library on the core's Tensor, so the core needs no op. The
methods mirror NumPy's ndarray methods (``x.sum(axis)``, ``x.astype(dtype)``,
``x.reshape(...)``, ``x.dot(y)``, ...), so code written for NumPy arrays keeps
working on traced values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.structural import astype_p
from ..core.tape import Tensor, unbox
from . import arith as m
from . import compare as c
from . import einsum as e
from . import reduce as r
from .products import prod
from .scan import cumsum
from .select import clip
from .shape import getitem, reshape
from .statistics import std, var


def _reflected(fun: Any) -> Any:
    return lambda self, other: fun(other, self)


def _compare(op: Any) -> Any:
    def compare(self: Tensor, other: Any) -> np.ndarray:
        return op(self, other)

    return compare


Tensor.__add__ = lambda self, other: m.add(self, other)  # type: ignore[method-assign]
Tensor.__radd__ = _reflected(m.add)  # type: ignore[attr-defined]
Tensor.__sub__ = lambda self, other: m.subtract(self, other)  # type: ignore[attr-defined]
Tensor.__rsub__ = _reflected(m.subtract)  # type: ignore[attr-defined]
Tensor.__mul__ = lambda self, other: e.multiply(self, other)  # type: ignore[attr-defined]
Tensor.__rmul__ = _reflected(e.multiply)  # type: ignore[attr-defined]
Tensor.__truediv__ = lambda self, other: m.divide(self, other)  # type: ignore[attr-defined]
Tensor.__rtruediv__ = _reflected(m.divide)  # type: ignore[attr-defined]
Tensor.__pow__ = lambda self, other: m.power(self, other)  # type: ignore[attr-defined]
Tensor.__rpow__ = _reflected(m.power)  # type: ignore[attr-defined]
Tensor.__matmul__ = lambda self, other: e.matmul(self, other)  # type: ignore[attr-defined]
Tensor.__rmatmul__ = _reflected(e.matmul)  # type: ignore[attr-defined]
Tensor.__neg__ = lambda self: m.negative(self)  # type: ignore[attr-defined]
Tensor.__pos__ = lambda self: self  # type: ignore[attr-defined]
Tensor.__getitem__ = lambda self, index: getitem(self, index)  # type: ignore[attr-defined]
Tensor.__lt__ = _compare(c.less)  # type: ignore[method-assign]
Tensor.__le__ = _compare(c.less_equal)  # type: ignore[method-assign]
Tensor.__gt__ = _compare(c.greater)  # type: ignore[method-assign]
Tensor.__ge__ = _compare(c.greater_equal)  # type: ignore[method-assign]
Tensor.__eq__ = _compare(c.equal)  # type: ignore[method-assign]
Tensor.__ne__ = _compare(c.not_equal)  # type: ignore[method-assign]
Tensor.__hash__ = object.__hash__  # type: ignore[method-assign]
Tensor.T = property(lambda self: e.transpose(self))  # type: ignore[attr-defined]
Tensor.sum = lambda self, axis=None, keepdims=False: e.sum(self, axis, keepdims)  # type: ignore[attr-defined]
Tensor.mean = lambda self, axis=None, keepdims=False: e.mean(self, axis, keepdims)  # type: ignore[attr-defined]
Tensor.max = lambda self, axis=None, keepdims=False: r.max(self, axis, keepdims)  # type: ignore[attr-defined]
Tensor.min = lambda self, axis=None, keepdims=False: r.min(self, axis, keepdims)  # type: ignore[attr-defined]
Tensor.reshape = lambda self, *shape: reshape(self, shape[0] if len(shape) == 1 else shape)  # type: ignore[attr-defined]
Tensor.transpose = lambda self, *axes: e.transpose(self, (axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes) or None)  # type: ignore[attr-defined]


# ================================================================= NumPy's ndarray methods


def _astype(self: Tensor, dtype: Any, copy: bool = True) -> Any:
    """``x.astype(dtype)``: a conversion whose transpose converts the cotangent back."""
    dtype = np.dtype(dtype)
    return self if dtype == self.dtype else astype_p(self, dtype=dtype)


def _squeeze(self: Tensor, axis: Any = None) -> Any:
    """``x.squeeze(axis)``: drop size-1 axes (all of them by default), as NumPy."""
    shape = self.shape
    if axis is None:
        axes = tuple(a for a, n in enumerate(shape) if n == 1)
    else:
        axes = e.normalize_axes(axis, len(shape))
        if any(shape[a] != 1 for a in axes):
            raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
    return reshape(self, tuple(n for a, n in enumerate(shape) if a not in axes))


_LETTERS = "abcdefghijklmnopqrstuvwxy"


def dot(a: Any, b: Any) -> Any:
    """``a.dot(b)`` with NumPy's rules, as an einsum: the last axis of ``a`` with the
    second-to-last of ``b`` (the only axis of a vector); a 0-d operand scales."""
    ndim_a, ndim_b = np.ndim(unbox(a)), np.ndim(unbox(b))
    if ndim_a == 0 or ndim_b == 0:
        return e.multiply(a, b)
    left = _LETTERS[: ndim_a - 1]
    right = _LETTERS[ndim_a - 1 : ndim_a - 1 + ndim_b - 1]
    term_b = right + "z" if ndim_b == 1 else right[:-1] + "z" + right[-1]
    return e.einsum(f"{left}z,{term_b}->{left}{right}", a, b)


Tensor.astype = _astype  # type: ignore[attr-defined]
Tensor.var = lambda self, axis=None, *, ddof=0, keepdims=False: var(self, axis, keepdims, ddof)  # type: ignore[attr-defined]
Tensor.std = lambda self, axis=None, *, ddof=0, keepdims=False: std(self, axis, keepdims, ddof)  # type: ignore[attr-defined]
Tensor.prod = lambda self, axis=None, keepdims=False: prod(self, axis, keepdims)  # type: ignore[attr-defined]
Tensor.cumsum = lambda self, axis=None: cumsum(self, axis)  # type: ignore[attr-defined]
Tensor.clip = lambda self, min=None, max=None: clip(self, min, max)  # type: ignore[attr-defined]
Tensor.flatten = lambda self: reshape(self, (-1,))  # type: ignore[attr-defined]
Tensor.ravel = lambda self: reshape(self, (-1,))  # type: ignore[attr-defined]
Tensor.squeeze = _squeeze  # type: ignore[attr-defined]
Tensor.dot = lambda self, other: dot(self, other)  # type: ignore[attr-defined]
