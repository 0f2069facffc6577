"""Operators and methods of :class:`~einsumad.Tensor`, each a call to an op.

Installed by the op library on the core's Tensor, so the core needs no op.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.tape import Tensor
from . import arith as m
from . import compare as c
from . import einsum as e
from . import reduce as r
from .shape import getitem, reshape


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
