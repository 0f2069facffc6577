"""Comparisons and masks: non-differentiable primitives returning plain arrays.

Comparisons of traced values give NumPy boolean arrays; no derivative flows
through them. They are primitives (not raw NumPy on unboxed values) so that a
recorded program replays them on new inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.arrays import dispatch
from ..core.primitive import nondifferentiable

__all__ = [
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal", "step", "sign",
    "share_max", "share_min", "share_greater", "stable_shift", "stop_gradient",
]

less = nondifferentiable(dispatch(np.less, lambda xp, x, y: x < y), "less", source="{0} < {1}")
less_equal = nondifferentiable(dispatch(np.less_equal, lambda xp, x, y: x <= y), "less_equal", source="{0} <= {1}")
greater = nondifferentiable(dispatch(np.greater, lambda xp, x, y: x > y), "greater", source="{0} > {1}")
greater_equal = nondifferentiable(dispatch(np.greater_equal, lambda xp, x, y: x >= y), "greater_equal",
                                  source="{0} >= {1}")
equal = nondifferentiable(dispatch(np.equal, lambda xp, x, y: x == y), "equal", source="{0} == {1}")
not_equal = nondifferentiable(dispatch(np.not_equal, lambda xp, x, y: x != y), "not_equal", source="{0} != {1}")
less.declaration.numexpr = "{0} < {1}"
less_equal.declaration.numexpr = "{0} <= {1}"
greater.declaration.numexpr = "{0} > {1}"
greater_equal.declaration.numexpr = "{0} >= {1}"
equal.declaration.numexpr = "{0} == {1}"
not_equal.declaration.numexpr = "{0} != {1}"


def _step_numpy(x: Any) -> np.ndarray:
    x = np.asarray(x)
    return (x > 0).astype(np.result_type(x, np.float16))


def _step_api(xp: Any, x: Any) -> Any:
    return xp.astype(x > 0, x.dtype)


step = nondifferentiable(dispatch(_step_numpy, _step_api), "step")
"""1 where x > 0, else 0, in x's float dtype: the derivative of relu."""

sign = nondifferentiable(dispatch(np.sign, "sign"), "sign", source="{xp}.sign({0})")
"""-1, 0 or 1: the derivative of abs (0 at the kink)."""


# ================================================================= masks for max/min and their kin
#   The derivative of a max is a one-hot choice of the winner; at ties it is
#   shared equally among the tied entries (the average of the one-sided choices).
#   These weights are constants to every trace, computed here so a recorded
#   program replays them.


def _float_dtype(*xs: Any) -> np.dtype:
    return np.result_type(*xs, np.float16)


def _share_extreme(x: Any, axis: tuple[int, ...], largest: bool) -> np.ndarray:
    x = np.asarray(x)
    dtype = _float_dtype(x)
    extreme = np.max(x, axis=axis, keepdims=True) if largest else np.min(x, axis=axis, keepdims=True)
    mask = (x == extreme).astype(dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return mask / np.sum(mask, axis=axis, keepdims=True, dtype=dtype)


def _share_extreme_api(xp: Any, x: Any, axis: tuple[int, ...], largest: bool) -> Any:
    extreme = xp.max(x, axis=axis, keepdims=True) if largest else xp.min(x, axis=axis, keepdims=True)
    mask = xp.astype(x == extreme, x.dtype)
    return mask / xp.sum(mask, axis=axis, keepdims=True)


def _share_max(x: Any, axis: tuple[int, ...]) -> np.ndarray:
    return _share_extreme(x, axis, True)


def _share_min(x: Any, axis: tuple[int, ...]) -> np.ndarray:
    return _share_extreme(x, axis, False)


share_max = nondifferentiable(
    dispatch(_share_max, lambda xp, x, axis: _share_extreme_api(xp, x, axis, True)), "share_max"
)
"""Weights w, shaped like x: 1/k at each of the k maxima along ``axis``, else 0.

The derivative of ``max(x, axis)``: ``∂max/∂x = w`` (ties share equally)."""

share_min = nondifferentiable(
    dispatch(_share_min, lambda xp, x, axis: _share_extreme_api(xp, x, axis, False)), "share_min"
)
"""Weights w, shaped like x: 1/k at each of the k minima along ``axis``, else 0."""


def _share_greater(x: Any, y: Any) -> np.ndarray:
    dtype = _float_dtype(x, y)
    above = np.greater(x, y).astype(dtype)
    tied = np.equal(x, y).astype(dtype)
    return above + tied * dtype.type(0.5)


def _share_greater_api(xp: Any, x: Any, y: Any) -> Any:
    like = x if not isinstance(x, (int, float)) else y
    above = xp.astype(x > y, like.dtype)
    tied = xp.astype(x == y, like.dtype)
    return above + tied * 0.5


share_greater = nondifferentiable(dispatch(_share_greater, _share_greater_api), "share_greater")
"""1 where x > y, 1/2 where x == y, 0 where x < y (broadcast shape, float dtype):
the partial of ``maximum(x, y)`` with respect to x; ties are shared equally."""


def _stable_shift(x: Any, axis: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x)
    shift = np.max(x, axis=axis, keepdims=True)
    return np.where(np.isfinite(shift), shift, np.zeros((), dtype=shift.dtype))


def _stable_shift_api(xp: Any, x: Any, axis: tuple[int, ...]) -> Any:
    shift = xp.max(x, axis=axis, keepdims=True)
    return xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))


stable_shift = nondifferentiable(dispatch(_stable_shift, _stable_shift_api), "stable_shift")
"""max(x, axis, keepdims=True), with non-finite maxima replaced by 0: the shift that
keeps ``exp(x - shift)`` from overflowing in logsumexp and softmax. Those are
invariant under any shift, so it carries no gradient."""


stop_gradient_p = nondifferentiable(lambda x: x, "stop_gradient", source="{0}")
stop_gradient_p.declaration.numexpr = "{0}"


def stop_gradient(x: Any) -> Any:
    """``x`` itself, as a constant to every differentiation trace (its derivative is 0).

    Use it to treat a traced value as data on purpose, e.g. before converting it
    to a Python number with ``float()``.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(x * ea.stop_gradient(x)))(np.array([1.0, 2.0]))
    array([1., 2.])
    """
    return stop_gradient_p(x)
