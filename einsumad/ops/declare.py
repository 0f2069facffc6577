"""Declaring elementwise ops: ``f`` next to ``f'``, in one line each.

:func:`unary` and :func:`binary` build a primitive of the elementwise kind
(:class:`~einsumad.core.elementwise.Elementwise`) with its notation for
``ea.derive`` and its spelling for ``ea.codegen``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.arrays import dense, is_complex  # noqa: F401 (dense: the ops' import point)
from ..core.elementwise import Elementwise
from ..core.primitive import Notation, Primitive
from ..core.tape import register_numpy_equivalent

__all__ = ["unary", "binary", "dense", "NUMEXPR_FUNCTIONS"]

#: The functions numexpr evaluates under NumPy's names (numexpr >= 2.10): an op of
#: one of these names is spelled ``name(...)`` in a fused expression by default.
NUMEXPR_FUNCTIONS = frozenset({
    "sqrt", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh",
    "arcsinh", "arccosh", "arctanh", "log", "log1p", "log10", "log2", "exp", "expm1", "abs",
    "floor", "ceil", "maximum", "minimum", "where", "sign",
})


def real_only(name: str, *args: Any, why: str = "its real formula would silently be wrong") -> None:
    """Refuse complex operands of an op defined (and stabilised) for real numbers only:
    its real formula would silently drop or mangle the imaginary part."""
    for x in args:
        if is_complex(x):
            raise TypeError(
                f"ea.{name} is defined here for real numbers only; it got a complex operand "
                f"({why}). Apply it to ea.real(z) or ea.imag(z) if that is what you mean."
            )


def unary(
    name: str,
    impl: Callable[..., Any],
    derivative: Callable[..., Any],
    *,
    symbol: str | None = None,
    latex: str | None = None,
    source: Any = None,
    numpy: Any = None,
    derivative_notation: str | Callable[..., str] | None = None,
    forward_notation: str | Callable[..., str] | None = None,
    numexpr: Any = None,
) -> Primitive:
    """An elementwise primitive from ``f`` and ``f'``, with ``derivative(ans, x, **params)``.

    ``numpy`` is the NumPy function a user might reach for (``np.tanh``): calling
    it on a traced value raises an error that names this op instead. ``numexpr``
    spells ``f`` in a fused expression (``"tanh({0})"``, the same operations in the
    same order as ``impl``); by default ``name({0})`` when numexpr has a function
    of that name, else the op is not fused.
    """
    notation = Notation(
        symbol or name,
        latex,
        forward=forward_notation,
        derivative=(derivative_notation,) if derivative_notation is not None else (),
    )
    if numexpr is None and name in NUMEXPR_FUNCTIONS:
        numexpr = f"{name}({{0}})"
    prim = Primitive(
        impl,
        name=name,
        declaration=Elementwise((derivative,), notation, numexpr=numexpr),
        source=source if source is not None else (f"{{xp}}.{name}({{0}})" if hasattr(np, name) else None),
    )
    if numpy is not None:
        register_numpy_equivalent(numpy, f"ea.{name}")
    return prim


def binary(
    name: str,
    impl: Callable[..., Any],
    partials: Sequence[Any],
    *,
    operator: str | None = None,
    symbol: str | None = None,
    derivative_notation: Sequence[str | Callable[..., str] | None] = (),
    forward_notation: str | Callable[..., str] | None = None,
    numpy: Any = None,
    numexpr: Any = None,
) -> Primitive:
    """An elementwise (broadcasting) binary primitive with ``partial_k(ans, x, y)``.

    ``numexpr`` spells it in a fused expression; by default ``{0} op {1}`` for an
    arithmetic ``operator``, or ``name({0}, {1})`` when numexpr has that function.
    """
    source = f"{{0}} {operator} {{1}}" if operator else f"{{xp}}.{name}({{0}}, {{1}})"
    if numexpr is None:
        if operator in ("+", "-", "*", "/", "**"):
            numexpr = f"{{0}} {operator} {{1}}"
        elif name in NUMEXPR_FUNCTIONS:
            numexpr = f"{name}({{0}}, {{1}})"
    notation = Notation(symbol or name, operator=operator, forward=forward_notation,
                        derivative=tuple(derivative_notation))
    prim = Primitive(
        impl, name=name, declaration=Elementwise(tuple(partials), notation, numexpr=numexpr), source=source
    )
    if numpy is not None:
        register_numpy_equivalent(numpy, f"ea.{name}")
    return prim
