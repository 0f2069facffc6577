"""Primitives: an implementation plus a declaration of what the op *is*.

A :class:`Primitive` is what the tape records. Its mathematics is stated once,
as data, by a :class:`Declaration` of one of five kinds:

=============== ================================================ =================================
kind            what is declared                                 derivative rules
=============== ================================================ =================================
``einsum``      its resolved subscripts                          VJP: the swap; JVP: the same
                                                                 einsum with the tangent
``elementwise`` ``f`` and its partial derivatives ``∂f/∂x_k``    the Hadamard product with the
                                                                 partial (a diagonal einsum)
``linear``      its transpose                                    VJP: the transpose; JVP: the op
                                                                 itself applied to the tangents
``general``     hand-written VJP (and optionally JVP) rules      as written; JVP by transposing
                                                                 the VJP when none is given
``constant``    nothing: no derivative flows (comparisons, masks)
=============== ================================================ =================================

The kinds live in :mod:`.einsum`, :mod:`.elementwise`, :mod:`.linear` and
:mod:`.general`; every consumer (the tape, the transformations, ``derive``,
``codegen``, ``compile``, the Jacobian view) reads ``prim.declaration`` and
never the op's name. Rules are derived for any argument position, so no op has
an arity cap.

Rules see cotangents and tangents that may carry *leading batch axes* (the rows
of a Jacobian): ``nbatch = ndim(g) - ndim(ans)`` for a VJP, ``ndim(t) - ndim(x)``
for a JVP. Derived rules handle them by giving the einsums batch letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence, Union

from .tape import bind

__all__ = ["Primitive", "Declaration", "Notation", "Constant", "Source", "nondifferentiable"]

#: How ``ea.codegen`` spells a call: a format string over the argument sources
#: (``"{xp}.tanh({0})"``; ``{xp}`` is the array namespace) or a function
#: ``(argument_sources, params) -> str``. None: call the implementation by name.
Source = Union[str, Callable[[list[str], dict], "str | None"], None]  # noqa: UP007 (a runtime alias on 3.10)


@dataclass(frozen=True)
class Notation:
    """How a teacher writes the op and its derivative (read by ``ea.derive``).

    Formats use ``{0}``, ``{1}``, ... for the argument names, ``{ans}`` for the
    result's name, ``{g}`` for the cotangent's, and parameters by name; or they
    are functions ``(names, params) -> str`` with ``names`` the argument names.

    Attributes:
        symbol: the function's name in formulas (``"tanh"``, ``"σ"``); the
            derivative is written ``symbol'(x)`` unless ``derivative`` says otherwise.
        latex: the symbol in LaTeX (``"\\\\tanh"``, ``"\\\\sigma"``).
        forward: the forward formula, e.g. ``"{0}^{exponent}"``; default ``symbol({0})``.
        derivative: per argument, ``∂f/∂x_k`` of an elementwise op; default ``symbol'({0})``.
        operator: an infix operator (``"+"``, ``"/"``) for binary ops.
        vjp: per argument, the VJP in matrix notation, for ops whose rule is not
            an einsum or a Hadamard product: ``"-{ans}^T {g} {ans}^T"`` for ``inv``.
        vjp_latex: the same in LaTeX (default: derived from ``vjp``).
    """

    symbol: str
    latex: str | None = None
    forward: str | Callable[..., str] | None = None
    derivative: Sequence[str | Callable[..., str] | None] = ()
    operator: str | None = None
    vjp: Sequence[str | Callable[..., str] | None] = ()
    vjp_latex: Sequence[str | Callable[..., str] | None] = ()


class Declaration:
    """What a primitive is, mathematically; subclasses derive its rules.

    ``notation`` (optional) says how a teacher writes the op; ``ea.derive`` reads it.
    """

    kind: ClassVar[str] = "general"
    notation: Notation | None = None
    #: For an op that is the linear combination ``sum_k c_k x_k`` (NumPy
    #: broadcasting), its coefficients: ``add`` is (1, 1), ``negative`` (-1,).
    #: The code emitter folds such signs into subtractions and einsums.
    combination: tuple[float, ...] | None = None
    #: How the op is written in a fused elementwise expression (numexpr's syntax,
    #: which is NumPy's: operators, ``where``, ``tanh``, ...): a format over the
    #: operands (``"tanh({0})"``, parameters by name) or a function
    #: ``(operands, params) -> str | None``. ``ea.compile`` fuses chains of ops
    #: that have one; None: the op is never part of a fused expression.
    numexpr: str | Callable[[list[str], dict], str | None] | None = None

    def vjp(self, prim: Primitive, k: int, g: Any, ans: Any, args: tuple, params: dict) -> Any:
        """The cotangent of argument ``k`` given the output cotangent ``g``."""
        raise NotImplementedError

    def jvp(self, prim: Primitive, tangents: dict[int, Any], ans: Any, args: tuple, params: dict) -> Any:
        """The output tangent caused by the tangents of the arguments in ``tangents``."""
        raise NotImplementedError


class Constant(Declaration):
    """No derivative flows: the result is a constant to every differentiation trace."""

    kind = "constant"


class Primitive:
    """An operation known to the tape: an implementation and its declaration.

    Args:
        impl: computes the value from plain arrays (positional arguments may be
            traced; keyword arguments are static parameters).
        name: shown in messages and derivations.
        declaration: what the op is (see the module docstring).
        source: how ``ea.codegen`` spells a call (see :data:`Source`).
    """

    def __init__(
        self,
        impl: Callable[..., Any],
        name: str | None = None,
        declaration: Declaration | None = None,
        source: Source = None,
    ):
        self.impl = impl
        self.name = name or getattr(impl, "__name__", "primitive")
        self.declaration = declaration if declaration is not None else Constant()
        self.source = source
        self.__wrapped__ = impl
        self.__doc__ = getattr(impl, "__doc__", None)
        self.__name__ = self.name

    @property
    def kind(self) -> str:
        """``"einsum"``, ``"elementwise"``, ``"linear"``, ``"general"`` or ``"constant"``."""
        return self.declaration.kind

    @property
    def differentiable(self) -> bool:
        return self.declaration.kind != "constant"

    def __call__(self, *args: Any, **params: Any) -> Any:
        return bind(self, args, params)

    def __repr__(self) -> str:
        return f"<einsumad primitive {self.name} ({self.kind})>"

    # -- called by the tape ---------------------------------------------------------

    def vjp(self, k: int, g: Any, ans: Any, args: tuple, params: dict) -> Any:
        return self.declaration.vjp(self, k, g, ans, args, params)

    def jvp(self, tangents: dict[int, Any], ans: Any, args: tuple, params: dict) -> Any:
        return self.declaration.jvp(self, tangents, ans, args, params)


def nondifferentiable(fun: Callable[..., Any], name: str | None = None, source: Source = None) -> Primitive:
    """A primitive through which no derivative flows (comparisons, masks, argmax).

    Its result is a constant to every differentiation trace. Value-dependent
    constants inside rules (the 0/1 mask in relu's derivative, the tie mask of
    ``max``) are computed through such primitives rather than on raw values, so
    that a compiled program recomputes them on new inputs.
    """
    return Primitive(fun, name=name or getattr(fun, "__name__", None), declaration=Constant(), source=source)
