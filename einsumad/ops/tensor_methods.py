"""Operators and methods of :class:`~einsumad.Tensor`, each a call to an op.

Installed by the op library on the core's Tensor, so the core needs no op. The
methods mirror NumPy's ndarray methods (``x.sum(axis)``, ``x.astype(dtype)``,
``x.reshape(...)``, ``x.dot(y)``, ...), so code written for NumPy arrays keeps
working on traced values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.arrays import dtype_kind
from ..core.arrays import ndim as _ndim
from ..core.structural import astype_p, astype_step_p
from ..core.tape import Tensor
from . import arith as m
from . import compare as c
from . import complex as z
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


_OPERATORS: dict[str, Any] = {
    "__add__": lambda self, other: m.add(self, other),
    "__radd__": _reflected(m.add),
    "__sub__": lambda self, other: m.subtract(self, other),
    "__rsub__": _reflected(m.subtract),
    "__mul__": lambda self, other: e.multiply(self, other),
    "__rmul__": _reflected(e.multiply),
    "__truediv__": lambda self, other: m.divide(self, other),
    "__rtruediv__": _reflected(m.divide),
    "__pow__": lambda self, other: m.power(self, other),
    "__rpow__": _reflected(m.power),
    "__matmul__": lambda self, other: e.matmul(self, other),
    "__rmatmul__": _reflected(e.matmul),
    "__neg__": lambda self: m.negative(self),
    "__abs__": lambda self: z.abs(self),
    "__pos__": lambda self: self,
    "__getitem__": lambda self, index: getitem(self, index),
    "__lt__": _compare(c.less),
    "__le__": _compare(c.less_equal),
    "__gt__": _compare(c.greater),
    "__ge__": _compare(c.greater_equal),
    "__eq__": _compare(c.equal),
    "__ne__": _compare(c.not_equal),
    "__hash__": object.__hash__,
    "T": property(lambda self: e.transpose(self)),
    "sum": lambda self, axis=None, keepdims=False: e.sum(self, axis, keepdims),
    "mean": lambda self, axis=None, keepdims=False: e.mean(self, axis, keepdims),
    "max": lambda self, axis=None, keepdims=False: r.max(self, axis, keepdims),
    "min": lambda self, axis=None, keepdims=False: r.min(self, axis, keepdims),
    "reshape": lambda self, *shape: reshape(self, shape[0] if len(shape) == 1 else shape),
    "transpose": lambda self, *axes: e.transpose(
        self, (axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes) or None
    ),
}


# ================================================================= NumPy's ndarray methods


def _astype(self: Tensor, dtype: Any, copy: bool = True) -> Any:
    """``x.astype(dtype)``: a conversion whose transpose converts the cotangent back.
    A conversion to integers or booleans is a step function: no derivative flows
    through it (as through ``ea.floor``)."""
    if isinstance(dtype, (str, type, np.dtype)):
        dtype = np.dtype(dtype)
    current = self.dtype
    if isinstance(dtype, np.dtype) and not isinstance(current, np.dtype):  # another library's dtype: by name
        same = dtype.name == str(current).rsplit(".", 1)[-1]
    else:
        same = dtype == current
    if same:
        return self
    if dtype_kind(dtype) in "iub":
        return astype_step_p(self, dtype=dtype)
    return astype_p(self, dtype=dtype)


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
    ndim_a, ndim_b = _ndim(a), _ndim(b)
    if ndim_a == 0 or ndim_b == 0:
        return e.multiply(a, b)
    left = _LETTERS[: ndim_a - 1]
    right = _LETTERS[ndim_a - 1 : ndim_a - 1 + ndim_b - 1]
    term_b = right + "z" if ndim_b == 1 else right[:-1] + "z" + right[-1]
    return e.einsum(f"{left}z,{term_b}->{left}{right}", a, b)


_METHODS: dict[str, Any] = {
    "astype": _astype,
    "var": lambda self, axis=None, *, ddof=0, keepdims=False: var(self, axis, keepdims, ddof),
    "std": lambda self, axis=None, *, ddof=0, keepdims=False: std(self, axis, keepdims, ddof),
    "prod": lambda self, axis=None, keepdims=False: prod(self, axis, keepdims),
    "cumsum": lambda self, axis=None: cumsum(self, axis),
    "clip": lambda self, min=None, max=None: clip(self, min, max),
    "real": property(lambda self: z.real(self)),
    "imag": property(lambda self: z.imag(self)),
    "conj": lambda self: z.conj(self),
    "conjugate": lambda self: z.conj(self),
    "flatten": lambda self: reshape(self, (-1,)),
    "ravel": lambda self: reshape(self, (-1,)),
    "squeeze": _squeeze,
    "dot": lambda self, other: dot(self, other),
}

for _name, _method in {**_OPERATORS, **_METHODS}.items():
    setattr(Tensor, _name, _method)
