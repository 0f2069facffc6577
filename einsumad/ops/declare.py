"""Declaring elementwise ops: ``f`` next to ``f'``, in one line each.

:func:`unary` and :func:`binary` build a primitive of the elementwise kind
(:class:`~einsumad.core.elementwise.Elementwise`) with its notation for
``ea.derive`` and its spelling for ``ea.codegen``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.delta import KroneckerDelta
from ..core.elementwise import Elementwise
from ..core.primitive import Notation, Primitive
from ..core.tape import register_numpy_equivalent

__all__ = ["unary", "binary", "dense"]


def dense(x: Any) -> Any:
    """``x``, with the symbolic Kronecker delta that seeds a Jacobian pass materialised.

    Rules that hand a (co)tangent to something other than an einsum (a solve, a
    cumulative sum) call this first; einsums contract the delta by relabelling.
    """
    return x.materialize() if isinstance(x, KroneckerDelta) else x


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
) -> Primitive:
    """An elementwise primitive from ``f`` and ``f'``, with ``derivative(ans, x, **params)``.

    ``numpy`` is the NumPy function a user might reach for (``np.tanh``): calling
    it on a traced value raises an error that names this op instead.
    """
    notation = Notation(
        symbol or name,
        latex,
        forward=forward_notation,
        derivative=(derivative_notation,) if derivative_notation is not None else (),
    )
    prim = Primitive(
        impl,
        name=name,
        declaration=Elementwise((derivative,), notation),
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
    numpy: Any = None,
) -> Primitive:
    """An elementwise (broadcasting) binary primitive with ``partial_k(ans, x, y)``."""
    source = f"{{0}} {operator} {{1}}" if operator else f"{{xp}}.{name}({{0}}, {{1}})"
    notation = Notation(symbol or name, operator=operator, derivative=tuple(derivative_notation))
    prim = Primitive(impl, name=name, declaration=Elementwise(tuple(partials), notation), source=source)
    if numpy is not None:
        register_numpy_equivalent(numpy, f"ea.{name}")
    return prim
