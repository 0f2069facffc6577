"""The library's exception types.

Every error about subscripts is an :class:`EinsumError`, a ``ValueError`` whose
message quotes the user's subscripts and points at the offending letter.
"""

from __future__ import annotations

__all__ = ["EinsumError", "GradientCheckError", "pointer"]


class EinsumError(ValueError):
    """Malformed subscripts, or subscripts that do not fit their operands."""


class GradientCheckError(AssertionError):
    """An analytic derivative disagrees with its numerical estimate."""


def pointer(subscripts: str, position: int | None) -> str:
    """Two lines: the subscripts, and a caret under ``position``.

    >>> print(pointer("ij,jk->ik", 3))
        ij,jk->ik
           ^
    """
    if position is None or position < 0:
        return ""
    return f"    {subscripts}\n    {' ' * position}^"
