"""Arithmetic: ``+ - / **``, negation, and the elementwise exp, log, sqrt, square, reciprocal.

Each op is declared by what it is, next to its derivative::

    add        y = x1 + x2    elementwise, ∂y/∂x1 = 1, ∂y/∂x2 = 1  (the cotangent passes,
                                                                   summed over broadcast axes)
    negative   y = -x         linear, its own transpose
    subtract   x1 - x2 = add(x1, negative(x2))
    divide     y = x1 / x2    elementwise, ∂y/∂x1 = 1/x2, ∂y/∂x2 = -y/x2
    power      y = x ** p     elementwise, ∂y/∂x = p x^(p-1)       (constant p)
               y = x1 ** x2   elementwise, ∂y/∂x1 = x2 x1^(x2-1), ∂y/∂x2 = log(x1) y
    exp, log, sqrt, square, reciprocal: elementwise, f' beside f

The VJP of an elementwise op is the Hadamard product ``ḡ ⊙ ∂y/∂x`` (the
diagonal einsum ``I,I->I``), derived from the declaration.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.arrays import dispatch, is_complex, ones
from ..core.elementwise import Elementwise
from ..core.linear import Linear
from ..core.primitive import Notation, Primitive
from ..core.source import literal
from ..core.tape import Tensor, register_numpy_equivalent, unbox
from .compare import greater
from .declare import binary, unary
from .einsum import multiply
from .select import where

__all__ = [
    "add", "subtract", "negative", "divide", "power",
    "exp", "log", "sqrt", "square", "reciprocal",
]


# ================================================================= add, negative, subtract
#   add:       y = x1 + x2      ∂y/∂x1 = 1, ∂y/∂x2 = 1: the cotangent passes through
#   negative:  y = -x           linear: its transpose is itself

add_p = binary("add", dispatch(np.add, lambda xp, x, y: x + y), (1, 1), operator="+")
add_p.declaration.combination = (1, 1)
def _negative_transpose(k: int, g: Any, ans: Any, x: Any) -> Any:
    return negative_p(g)


negative_p: Primitive = Primitive(
    dispatch(np.negative, lambda xp, x: -x),
    name="negative",
    declaration=Linear(_negative_transpose, describe="negate"),
    source="-{0}",
)
negative_p.declaration.combination = (-1,)
negative_p.declaration.numexpr = "-{0}"


def add(x: Any, y: Any) -> Any:
    """``x + y`` with NumPy broadcasting; the VJP sums broadcast axes out."""
    return add_p(x, y)


def negative(x: Any) -> Any:
    """``-x``."""
    return negative_p(x)


def subtract(x: Any, y: Any) -> Any:
    """``x - y`` with NumPy broadcasting: ``add(x, negative(y))``."""
    return add_p(x, negative_p(y))


# ================================================================= divide
#   y = x1 / x2     ∂y/∂x1 = 1/x2            ∂y/∂x2 = -y/x2

divide_p = binary(
    "divide",
    dispatch(np.divide, lambda xp, x, y: x / y),
    (lambda ans, x, y: divide(1, y), lambda ans, x, y: negative(divide(ans, y))),
    operator="/",
    derivative_notation=("1/{1}", "-{0}/{1}^2"),
)


def divide(x: Any, y: Any) -> Any:
    """Elementwise ``x / y`` with broadcasting."""
    return divide_p(x, y)


# ================================================================= power
#   y = x ** p (constant p)   ∂y/∂x = p x^(p-1)
#   y = x1 ** x2              ∂y/∂x1 = x2 x1^(x2-1)    ∂y/∂x2 = log(x1) y   (0 where x1 <= 0)


def _power_notation(names: Sequence[str], params: dict) -> str:
    """``2 x`` for the derivative of ``x^2``; ``p x^(p-1)`` otherwise."""
    p = params["exponent"]
    if p - 1 == 1:
        return f"{p:g} {names[0]}"
    return f"{p:g} {names[0]}^{p - 1:g}"


pow_const_p = Primitive(
    dispatch(lambda x, exponent: np.power(x, exponent), lambda xp, x, exponent: x ** exponent),
    name="power",
    declaration=Elementwise(
        (lambda ans, x, exponent: multiply(power(x, exponent - 1), exponent),),
        Notation("power", forward="{0}^{exponent}", derivative=(_power_notation,)),
        numexpr="{0} ** {exponent}",
    ),
    source=lambda a, p: f"{a[0]} ** {literal(p['exponent'])}",
)


def _safe_log(x: Any) -> Any:
    """log(x) where x > 0, else 0: the exponent's partial of x**y at x <= 0 (the
    principal logarithm for a complex x)."""
    if is_complex(x):
        return log(x)
    positive = greater(x, 0)
    return where(positive, log(where(positive, x, 1.0)), 0.0)


power_p = binary(
    "power",
    dispatch(np.power, lambda xp, x, y: x ** y),
    (
        lambda ans, x, y: multiply(y, power(x, add(y, -1))),
        lambda ans, x, y: multiply(_safe_log(x), ans),
    ),
    operator="**",
    derivative_notation=("{1} {0}^({1}-1)", "log({0}) {0}^{1}"),
)


def _constant_number(y: Any) -> bool:
    if isinstance(y, Tensor):
        return False
    if isinstance(y, (int, float, np.integer, np.floating)) and not isinstance(y, bool):
        return True
    return isinstance(y, np.ndarray) and y.ndim == 0 and y.dtype.kind in "if"


def power(x: Any, y: Any) -> Any:
    """Elementwise ``x ** y``; ``y`` may be a tensor (its partial is ``log(x) x**y``).

    A constant exponent ``p`` is a parameter: ``x ** 1`` is ``x`` and ``x ** 0`` a
    constant (so its gradient is 0, even at ``x = 0``).
    """
    if _constant_number(y):
        p = unbox(y).item() if isinstance(y, np.ndarray) else y
        if not isinstance(x, Tensor):
            return power_p(x, y)  # nothing traced: the implementation, numbers kept weak
        if p == 1:
            return x
        if p == 0:
            value = unbox(x)
            if isinstance(value, np.ndarray):
                return np.ones(x.shape, dtype=np.result_type(value, p))
            return ones(x.shape, x.dtype, like=value)
        return pow_const_p(x, exponent=p)
    return power_p(x, y)


register_numpy_equivalent(np.power, "ea.power (or **)")


# ================================================================= exp, log, sqrt, square, reciprocal
#   y = f(x)   Jacobian diag(f'(x))   VJP: ḡ ⊙ f'(x)  (the diagonal einsum I,I->I)

exp_p = unary("exp", dispatch(np.exp, "exp"), lambda y, x: y, numpy=np.exp)
log_p = unary("log", dispatch(np.log, "log"), lambda y, x: reciprocal(x), numpy=np.log, derivative_notation="1/{0}")
sqrt_p = unary("sqrt", dispatch(np.sqrt, "sqrt"), lambda y, x: divide(0.5, y), numpy=np.sqrt,
               derivative_notation="1/(2 sqrt({0}))")
square_p = unary("square", dispatch(np.square, "square"), lambda y, x: multiply(x, 2), numpy=np.square,
                 derivative_notation="2 {0}", forward_notation="{0}^2", numexpr="{0} * {0}")
reciprocal_p = unary(
    "reciprocal", dispatch(lambda x: np.divide(1, x), lambda xp, x: 1 / x), lambda y, x: negative(multiply(y, y)),
    source="1 / {0}", numpy=np.reciprocal, derivative_notation="-1/{0}^2", forward_notation="1/{0}",
    numexpr="1 / {0}",
)


def exp(x: Any) -> Any:
    """Elementwise ``e**x``; ``f'(x) = exp(x)``."""
    return exp_p(x)


def log(x: Any) -> Any:
    """Elementwise natural logarithm; ``f'(x) = 1/x``."""
    return log_p(x)


def sqrt(x: Any) -> Any:
    """Elementwise square root; ``f'(x) = 1/(2 sqrt(x))``."""
    return sqrt_p(x)


def square(x: Any) -> Any:
    """Elementwise ``x**2``; ``f'(x) = 2x``."""
    return square_p(x)


def reciprocal(x: Any) -> Any:
    """Elementwise ``1/x``; ``f'(x) = -1/x**2``."""
    return reciprocal_p(x)


register_numpy_equivalent(np.add, "ea.add (or +)")
register_numpy_equivalent(np.subtract, "ea.subtract (or -)")
register_numpy_equivalent(np.negative, "ea.negative (or unary -)")
register_numpy_equivalent(np.divide, "ea.divide (or /)")
register_numpy_equivalent(np.multiply, "ea.multiply (or *)")
