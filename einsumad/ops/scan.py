"""Cumulative sums: a linear op declared by its transpose, the reversed cumulative sum.

::

    forward:    y[.., i, ..] = sum_{j <= i} x[.., j, ..]      (a lower-triangular matrix L along axis)
    transpose:  x̄[.., j, ..] = sum_{i >= j} ḡ[.., i, ..]      (Lᵀ: the cumulative sum from the end)
    JVP:        ẏ = cumsum(ẋ)                                  (by linearity)

As an einsum, ``y[i] = sum_j L[i, j] x[j]`` with the triangular constant
``L[i, j] = [j <= i]``; its swap ``x̄[j] = sum_i ḡ[i] L[i, j]`` is the reversed
cumulative sum, which is computed as ``flip(cumsum(flip(ḡ)))`` in O(n) rather
than as an O(n²) contraction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.arrays import ndim as _ndim
from ..core.arrays import shape as _shape
from ..core.backend import array_namespace
from ..core.linear import Linear
from ..core.primitive import Notation, Primitive
from ..core.structural import reshape_p
from ..core.tape import register_numpy_equivalent
from .declare import dense
from .einsum import normalize_axes

__all__ = ["cumsum"]


def _cumulative_sum(xp: Any, x: Any, axis: int) -> Any:
    if hasattr(xp, "cumulative_sum"):
        return xp.cumulative_sum(x, axis=axis)
    return xp.cumsum(x, axis=axis)  # NumPy < 2.1


def _cumsum_impl(x: Any, *, axis: int, reverse: bool) -> Any:
    xp = array_namespace(x)
    x = xp.asarray(x)
    if not reverse:
        return _cumulative_sum(xp, x, axis)
    return xp.flip(_cumulative_sum(xp, xp.flip(x, axis=axis), axis), axis=axis)


def _cumsum_transpose(k: int, g: Any, ans: Any, x: Any, *, axis: int, reverse: bool) -> Any:
    nbatch = _ndim(g) - _ndim(ans)
    return cumsum_p(dense(g), axis=axis + nbatch, reverse=not reverse)


def _cumsum_source(a: list[str], p: dict) -> str:
    axis = p["axis"]
    if not p["reverse"]:
        return f"np.cumsum({a[0]}, axis={axis})"
    return f"np.flip(np.cumsum(np.flip({a[0]}, axis={axis}), axis={axis}), axis={axis})"


cumsum_p = Primitive(
    _cumsum_impl,
    name="cumsum",
    declaration=Linear(
        _cumsum_transpose,
        batch_params=lambda params, batch: {**params, "axis": params["axis"] + len(batch)},
        describe="reversed cumulative sum",
        notation=Notation("cumsum"),
    ),
    source=_cumsum_source,
)


def cumsum(x: Any, axis: int | None = None) -> Any:
    """The cumulative sum along ``axis``, as :func:`numpy.cumsum` (None: of the flattened array).

    Index form: ``y[i] = sum_j L[i, j] x[j]`` with ``L[i, j] = [j <= i]``. The op is
    linear; its VJP is the transpose ``Lᵀ``, the cumulative sum taken from the
    end: ``x̄[j] = sum_{i >= j} ḡ[i]``.

    >>> import numpy as np, einsumad as ea
    >>> ea.cumsum(np.array([1.0, 2.0, 3.0]))
    array([1., 3., 6.])
    >>> ea.grad(lambda x: ea.sum(ea.cumsum(x) * np.array([1.0, 10.0, 100.0])))(np.zeros(3))
    array([111., 110., 100.])
    """
    if axis is None:
        if _ndim(x) != 1:
            x = reshape_p(x, shape=(int(np.prod(_shape(x), dtype=np.int64)),))
        axis = 0
    (axis,) = normalize_axes(axis, _ndim(x))
    return cumsum_p(x, axis=axis, reverse=False)


register_numpy_equivalent(np.cumsum, "ea.cumsum")
