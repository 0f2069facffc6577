"""Elementary functions beyond exp and log, each ``f`` declared beside its ``f'``.

::

    y = f(x)    Jacobian diag(f'(x))    VJP: ḡ ⊙ f'(x)   (the diagonal einsum I,I->I)

==================== ==================================================== =========================
op                   y = f(x)                                             f'(x)
==================== ==================================================== =========================
log1p                log(1 + x)                                           1/(1 + x)
expm1                exp(x) - 1                                           exp(x) = y + 1
logaddexp            log(e^x1 + e^x2) = max + log1p(exp(-|x1 - x2|))      σ(x1 - x2), σ(x2 - x1)
tan                  tan(x)                                               1 + y²
arctan               arctan(x)                                            1/(1 + x²)
arcsin, arccos       arcsin(x), arccos(x)                                 ±1/√(1 - x²)
sinh, cosh           sinh(x), cosh(x)                                     cosh(x), sinh(x)
arctanh              arctanh(x)                                           1/(1 - x²)
sign, floor, round   piecewise constant                                   0
==================== ==================================================== =========================

``f'`` is written with einsumad ops, so derivatives of derivatives come out of
the same rule. Implementations are written against the operands' array
namespace (:func:`~einsumad.core.backend.array_namespace`) with functions of the
Python array API standard only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.arrays import device, dispatch
from ..core.backend import array_namespace
from ..core.primitive import nondifferentiable
from ..core.tape import register_numpy_equivalent
from .arith import add, negative, reciprocal, sqrt, square, subtract
from .declare import binary, real_only, unary
from .functions import sigmoid
from .select import where

__all__ = [
    "log1p", "expm1", "logaddexp",
    "tan", "arctan", "arcsin", "arccos", "sinh", "cosh", "arctanh",
    "sign", "floor", "round",
]


def _call(name: str) -> Any:
    """The array-API function ``name`` of the operand's namespace, as an implementation."""
    return lambda x: getattr(array_namespace(x), name)(x)


# ================================================================= log1p, expm1
#   log1p:  y = log(1 + x)     ∂y/∂x = 1/(1 + x)         (accurate for tiny x)
#   expm1:  y = exp(x) - 1     ∂y/∂x = exp(x) = y + 1

log1p_p = unary(
    "log1p", _call("log1p"), lambda y, x: reciprocal(add(x, 1.0)),
    source="{xp}.log1p({0})", numpy=np.log1p, derivative_notation="1/(1 + {0})",
    forward_notation="log(1 + {0})",
)
expm1_p = unary(
    "expm1", _call("expm1"), lambda y, x: add(y, 1.0),
    source="{xp}.expm1({0})", numpy=np.expm1, derivative_notation="exp({0})",
    forward_notation="exp({0}) - 1",
)


def log1p(x: Any) -> Any:
    """Elementwise ``log(1 + x)``, accurate for tiny ``x``.

    Index form: ``y[i] = log(1 + x[i])``, ``∂y[i]/∂x[i] = 1/(1 + x[i])``.

    >>> import numpy as np, einsumad as ea
    >>> float(ea.log1p(np.array(1e-20)))
    1e-20
    >>> ea.grad(lambda x: ea.sum(ea.log1p(x)))(np.array([0.0, 1.0]))
    array([1. , 0.5])
    """
    return log1p_p(x)


def expm1(x: Any) -> Any:
    """Elementwise ``exp(x) - 1``, accurate for tiny ``x``.

    Index form: ``y[i] = exp(x[i]) - 1``, ``∂y[i]/∂x[i] = exp(x[i]) = y[i] + 1``.

    >>> import numpy as np, einsumad as ea
    >>> float(ea.expm1(np.array(1e-20)))
    1e-20
    """
    return expm1_p(x)


# ================================================================= logaddexp
#   y = log(e^x1 + e^x2) = max(x1, x2) + log1p(exp(-|x1 - x2|))   (exp of a non-positive number only)
#   ∂y/∂x1 = e^x1 / (e^x1 + e^x2) = σ(x1 - x2)        ∂y/∂x2 = σ(x2 - x1)


def _logaddexp_impl(x: Any, y: Any) -> Any:
    """max(x, y) + log1p(exp(-|x - y|)); equal arguments (infinities too) give x + log 2."""
    xp = array_namespace(x, y)
    dtype = xp.result_type(x, y)   # a Python number takes the array's dtype
    where = device(x) if device(x) is not None else device(y)  # a number joins the array's device
    x, y = xp.asarray(x, dtype=dtype, device=where), xp.asarray(y, dtype=dtype, device=where)
    same = x == y
    gap = xp.where(same, xp.zeros_like(x), x) - xp.where(same, xp.zeros_like(y), y)
    return xp.maximum(x, y) + xp.log1p(xp.exp(-xp.abs(gap)))


def _equal_infinities_api(xp: Any, x: Any, y: Any) -> Any:
    return (x == y) & xp.isinf(y if isinstance(x, (int, float)) else x)


#   the mask [x = y = ±inf], a constant to every trace
equal_infinities = nondifferentiable(
    dispatch(lambda x, y: np.logical_and(np.equal(x, y), np.isinf(x)), _equal_infinities_api),
    "equal_infinities",
    source="(({0}) == ({1})) & {xp}.isinf({0})",
)


def _gap(x: Any, y: Any) -> Any:
    """x - y, and 0 where x = y = ±inf: equal infinities share the weight (σ(0) = 1/2
    each, as JAX) instead of σ(inf - inf) = nan; both sides masked, so no nan reaches
    higher orders either. Finite arguments keep x - y and all its derivatives."""
    same = equal_infinities(x, y)
    return subtract(where(same, 0.0, x), where(same, 0.0, y))


logaddexp_p = binary(
    "logaddexp",
    _logaddexp_impl,
    (lambda ans, x, y: sigmoid(_gap(x, y)), lambda ans, x, y: sigmoid(_gap(y, x))),
    derivative_notation=("σ({0} - {1})", "σ({1} - {0})"),
    numpy=np.logaddexp,
)


def logaddexp(x: Any, y: Any) -> Any:
    """``log(exp(x) + exp(y))`` elementwise with broadcasting, without overflow.

    Evaluated as ``max(x, y) + log1p(exp(-|x - y|))``. Index form (letters of a
    broadcast argument are summed out of its VJP by the swap):
    ``z = logaddexp(x, y)``, ``∂z/∂x = σ(x - y)``, ``∂z/∂y = σ(y - x)``.

    >>> import numpy as np, einsumad as ea
    >>> float(ea.logaddexp(np.array(1e4), np.array(1e4)))   # 1e4 + log 2
    10000.69314718056
    >>> ea.grad(lambda x: ea.sum(ea.logaddexp(x, 0.0)))(np.array([0.0, 1e3, -1e3]))
    array([0.5, 1. , 0. ])
    """
    real_only("logaddexp", x, y)
    return logaddexp_p(x, y)


# ================================================================= trigonometric and hyperbolic
#   tan:     y = tan(x)       f' = 1 + y²             arctan:  f' = 1/(1 + x²)
#   arcsin:  f' = 1/√(1 - x²)                         arccos:  f' = -1/√(1 - x²)
#   sinh:    f' = cosh(x)     cosh: f' = sinh(x)      arctanh: f' = 1/(1 - x²)


def _one_minus_square(x: Any) -> Any:
    return subtract(1.0, square(x))


tan_p = unary("tan", _call("tan"), lambda y, x: add(square(y), 1.0), latex="\\tan", source="{xp}.tan({0})",
              numpy=np.tan, derivative_notation="1 + tan({0})^2")
arctan_p = unary("arctan", _call("atan"), lambda y, x: reciprocal(add(square(x), 1.0)), latex="\\arctan",
                 source="{xp}.atan({0})", numpy=np.arctan, derivative_notation="1/(1 + {0}^2)")
arcsin_p = unary("arcsin", _call("asin"), lambda y, x: reciprocal(sqrt(_one_minus_square(x))), latex="\\arcsin",
                 source="{xp}.asin({0})", numpy=np.arcsin, derivative_notation="1/√(1 - {0}^2)")
arccos_p = unary("arccos", _call("acos"), lambda y, x: negative(reciprocal(sqrt(_one_minus_square(x)))),
                 latex="\\arccos", source="{xp}.acos({0})", numpy=np.arccos, derivative_notation="-1/√(1 - {0}^2)")
sinh_p = unary("sinh", _call("sinh"), lambda y, x: cosh(x), latex="\\sinh", source="{xp}.sinh({0})",
               numpy=np.sinh, derivative_notation="cosh({0})")
cosh_p = unary("cosh", _call("cosh"), lambda y, x: sinh(x), latex="\\cosh", source="{xp}.cosh({0})",
               numpy=np.cosh, derivative_notation="sinh({0})")
arctanh_p = unary("arctanh", _call("atanh"), lambda y, x: reciprocal(_one_minus_square(x)),
                  latex="\\operatorname{artanh}", source="{xp}.atanh({0})", numpy=np.arctanh,
                  derivative_notation="1/(1 - {0}^2)")


def tan(x: Any) -> Any:
    """Elementwise tangent: ``y[i] = tan(x[i])``, ``∂y[i]/∂x[i] = 1 + y[i]²``."""
    return tan_p(x)


def arctan(x: Any) -> Any:
    """Elementwise inverse tangent: ``y[i] = arctan(x[i])``, ``∂y[i]/∂x[i] = 1/(1 + x[i]²)``.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(ea.arctan(x)))(np.array([0.0, 1.0]))
    array([1. , 0.5])
    """
    return arctan_p(x)


def arcsin(x: Any) -> Any:
    """Elementwise inverse sine on ``[-1, 1]``: ``∂y[i]/∂x[i] = 1/√(1 - x[i]²)`` (infinite at ±1)."""
    return arcsin_p(x)


def arccos(x: Any) -> Any:
    """Elementwise inverse cosine on ``[-1, 1]``: ``∂y[i]/∂x[i] = -1/√(1 - x[i]²)`` (infinite at ±1)."""
    return arccos_p(x)


def sinh(x: Any) -> Any:
    """Elementwise hyperbolic sine: ``∂y[i]/∂x[i] = cosh(x[i])``."""
    return sinh_p(x)


def cosh(x: Any) -> Any:
    """Elementwise hyperbolic cosine: ``∂y[i]/∂x[i] = sinh(x[i])``."""
    return cosh_p(x)


def arctanh(x: Any) -> Any:
    """Elementwise inverse hyperbolic tangent on ``(-1, 1)``: ``∂y[i]/∂x[i] = 1/(1 - x[i]²)``."""
    return arctanh_p(x)


# ================================================================= sign, floor, round: zero derivative
#   Piecewise constant: f' = 0 wherever f is differentiable. At a jump the
#   derivative does not exist; einsumad uses 0 there too (the derivative of the
#   pieces), as PyTorch and JAX do, so sign, floor and round pass no gradient.


def _round_impl(x: Any, decimals: int = 0) -> Any:
    xp = array_namespace(x)
    if decimals > 0:
        scale = 10.0 ** decimals
        return xp.round(x * scale) / scale
    if decimals < 0:
        scale = 10.0 ** -decimals
        return xp.round(x / scale) * scale
    return xp.round(x)


sign_p = unary("sign", _call("sign"), lambda y, x: 0, source="{xp}.sign({0})", numpy=np.sign,
               derivative_notation="0")
floor_p = unary("floor", _call("floor"), lambda y, x: 0, latex="\\operatorname{floor}", source="{xp}.floor({0})",
                numpy=np.floor, derivative_notation="0")
round_p = unary("round", _round_impl, lambda y, x, decimals: 0, derivative_notation="0",
                source=lambda a, p: f"np.round({a[0]}, {p['decimals']})")
register_numpy_equivalent(np.round, "ea.round")
register_numpy_equivalent(np.around, "ea.round")


def sign(x: Any) -> Any:
    """Elementwise sign (-1, 0 or 1), with derivative 0 everywhere (also at 0).

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(ea.sign(x) * x))(np.array([-2.0, 3.0]))   # d(|x|)/dx
    array([-1.,  1.])

    Real numbers only: NumPy's sign of a complex ``z`` is ``z / |z|``, which is not
    piecewise constant (its derivative is not 0).
    """
    real_only("sign", x)
    return sign_p(x)


def floor(x: Any) -> Any:
    """Elementwise floor, with derivative 0 everywhere (also at the integers, where it jumps)."""
    return floor_p(x)


def round(x: Any, decimals: int = 0) -> Any:  # noqa: A001
    """Round to ``decimals`` places, halves to even as :func:`numpy.round`; derivative 0 everywhere.

    >>> import numpy as np, einsumad as ea
    >>> ea.round(np.array([0.5, 1.5, 2.25]), decimals=1)
    array([0.5, 1.5, 2.2])
    """
    return round_p(x, decimals=int(decimals))
