"""The elementwise kind: an op declared by ``f`` and its partial derivatives.

An elementwise ``y = f(x_1, ..., x_n)`` (NumPy broadcasting) has a diagonal
Jacobian in each argument. Its VJP is the Hadamard product of the cotangent
with the partial ``∂f/∂x_k`` (the diagonal einsum ``I,I->I``), summed over the
axes along which ``x_k`` was broadcast; its JVP is the tangent times the same
partial. Both are one einsum (:func:`~einsumad.core.einsum.scale_and_unbroadcast`)::

    VJP_k:  x̄_k[s_k] = sum  ḡ[out] ∂f/∂x_k[out]
    JVP_k:  ẏ[out]   = ẋ_k[s_k] ∂f/∂x_k[out]

The partials are written with einsumad ops (so the derivative can be
differentiated again) or are plain numbers: a partial of 1 (``add``) passes
the cotangent through at no cost.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .accumulate import PerArgument
from .arrays import shape as _shape
from .einsum import scale_and_broadcast, scale_and_unbroadcast
from .primitive import Notation, Primitive

__all__ = ["Elementwise", "Notation"]

#: ``partial(ans, *args, **params)`` returns ``∂f/∂x_k``, or a number.
Partial = Callable[..., Any]


class Elementwise(PerArgument):
    """``y = f(x_1, ..., x_n)`` elementwise, with partials ``∂f/∂x_k``.

    Args:
        partials: one per argument: ``partial(ans, *args, **params)`` written with
            einsumad ops, or a number (1 for ``add``); None for an argument with
            no derivative.
        notation: how ``derive`` writes the op (default: by the primitive's name).
        numexpr: how a fused elementwise expression writes the op, in numexpr's
            syntax (``"tanh({0})"``; see :attr:`Declaration.numexpr`); it must
            compute what the implementation computes, in the same order.
    """

    kind = "elementwise"

    def __init__(
        self,
        partials: Sequence[Partial | float | None],
        notation: Notation | None = None,
        numexpr: str | Callable[[list[str], dict], str | None] | None = None,
    ):
        self.partials = tuple(partials)
        self.notation = notation
        self.numexpr = numexpr

    def partial(self, k: int, ans: Any, args: tuple, params: dict) -> Any:
        """``∂f/∂x_k`` at this call (a value shaped to broadcast to ``ans``)."""
        partial = self.partials[k] if k < len(self.partials) else None
        if partial is None:
            raise NotImplementedError(f"argument {k} of this elementwise op has no derivative")
        if callable(partial):
            return partial(ans, *args, **params)
        return partial

    def vjp(self, prim: Primitive, k: int, g: Any, ans: Any, args: tuple, params: dict) -> Any:
        factor = self.partial(k, ans, args, params)
        return scale_and_unbroadcast(g, factor, _shape(args[k]), _shape(ans))

    def jvp_one(self, prim: Primitive, k: int, t: Any, ans: Any, args: tuple, params: dict) -> Any:
        factor = self.partial(k, ans, args, params)
        return scale_and_broadcast(t, factor, _shape(args[k]), _shape(ans))
