"""Cotangent and tangent accumulation, owned by the core (HIPS autograd's ``vs_add``).

A value used twice receives two cotangents, and a primitive with two traced
arguments receives two tangent contributions; both are summed here, with a
primitive of the core's own, so the tape needs nothing from the op library and
higher derivatives see the sum as a recorded, differentiable step.

``add_any(a, b)`` adds two (co)tangents of one value: equal shapes, no
broadcasting. It is linear with the identity as its transpose in each argument.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .arrays import array_namespace, dense
from .primitive import Declaration, Primitive

__all__ = ["add_any", "accumulate", "PerArgument"]


def _add_any_impl(a: Any, b: Any) -> Any:
    a, b = dense(a), dense(b)
    if type(a) is np.ndarray and type(b) is np.ndarray:
        return np.add(a, b)
    if array_namespace(a, b) is np:
        return np.add(a, b)
    return a + b  # the array library's own addition


class _AddAny(Declaration):
    """``y = a + b`` of equal shapes: VJP ``ḡ`` to each argument; JVP ``ȧ + ḃ``."""

    kind = "linear"
    combination = (1.0, 1.0)

    def vjp(self, prim: Primitive, k: int, g: Any, ans: Any, args: tuple, params: dict) -> Any:
        return g

    def jvp(self, prim: Primitive, tangents: dict[int, Any], ans: Any, args: tuple, params: dict) -> Any:
        return accumulate(tangents.values())


add_any = Primitive(_add_any_impl, name="add_any", declaration=_AddAny(), source="{0} + {1}")


def accumulate(contributions: Iterable[Any]) -> Any:
    """The sum of the non-None contributions (None if there are none)."""
    total = None
    for c in contributions:
        if c is None:
            continue
        total = c if total is None else add_any(total, c)
    return total


class PerArgument(Declaration):
    """A declaration whose JVP is the sum of one contribution per traced argument."""

    def jvp_one(self, prim: Primitive, k: int, t: Any, ans: Any, args: tuple, params: dict) -> Any:
        raise NotImplementedError

    def jvp(self, prim: Primitive, tangents: dict[int, Any], ans: Any, args: tuple, params: dict) -> Any:
        return accumulate(self.jvp_one(prim, k, t, ans, args, params) for k, t in tangents.items())
