"""Python literals for generated source: numbers, dtypes, tuples, slices.

Used by the ops' ``source`` declarations and by the code emitter. A value that
has no literal spelling (an array, a callable) gets ``None``, and the emitter
binds it to a name in the generated function's namespace instead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["literal"]


def _number(value: float | int | complex) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "np.nan" if math.isnan(value) else ("np.inf" if value > 0 else "(-np.inf)")
    text = repr(value)
    return f"({text})" if text.startswith("-") else text


def literal(value: Any) -> str | None:
    """Source that evaluates (with ``np`` in scope) to ``value``, or None.

    Negative numbers are parenthesised, so ``{0} ** {1}`` stays right.

    >>> literal(2), literal(-0.5), literal((2, None, slice(1, None)))
    ('2', '(-0.5)', '(2, None, slice(1, None, None))')
    >>> literal(np.float32(1.5)), literal(np.dtype("float32")), literal(np.ones(2)) is None
    ('np.float32(1.5)', 'np.float32', True)
    """
    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, (int, float, complex)) and not isinstance(value, np.generic):
        return _number(value)
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        # A NumPy scalar keeps its dtype in arithmetic (a Python number adapts), so it
        # is written as one: np.float64(0.5) * float32 array is float64, 0.5 * it is not.
        if value.dtype.kind == "b":
            return repr(bool(value))
        return f"np.{value.dtype.name}({value.item()!r})"
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biufc":
        return literal(value[()])
    if isinstance(value, np.dtype):
        return f"np.{value.name}"
    if isinstance(value, slice):
        parts = [literal(v) for v in (value.start, value.stop, value.step)]
        return None if None in parts else f"slice({', '.join(parts)})"  # type: ignore[arg-type]
    if isinstance(value, (tuple, list)):
        parts = [literal(v) for v in value]
        if any(p is None for p in parts):
            return None
        if isinstance(value, list):
            return "[" + ", ".join(parts) + "]"  # type: ignore[arg-type]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"  # type: ignore[arg-type]
    return None
