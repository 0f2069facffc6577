"""Comparisons and masks: non-differentiable primitives returning plain arrays.

Comparisons of traced values give NumPy boolean arrays; no derivative flows
through them. They are primitives (not raw NumPy on unboxed values) so that a
recorded program replays them on new inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._primitive import nondifferentiable

__all__ = ["less", "less_equal", "greater", "greater_equal", "equal", "not_equal", "step", "sign"]

less = nondifferentiable(np.less, "less")
less_equal = nondifferentiable(np.less_equal, "less_equal")
greater = nondifferentiable(np.greater, "greater")
greater_equal = nondifferentiable(np.greater_equal, "greater_equal")
equal = nondifferentiable(np.equal, "equal")
not_equal = nondifferentiable(np.not_equal, "not_equal")


def _step(x: Any) -> np.ndarray:
    x = np.asarray(x)
    return (x > 0).astype(np.result_type(x, np.float16))


step = nondifferentiable(_step, "step")
"""1 where x > 0, else 0, in x's float dtype: the derivative of relu."""

sign = nondifferentiable(np.sign, "sign")
"""-1, 0 or 1: the derivative of abs (0 at the kink)."""
