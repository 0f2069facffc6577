"""The error function, without SciPy.

::

    erf    y = 2/√π ∫_0^x exp(-t²) dt      ∂y/∂x = 2/√π exp(-x²)

``erf`` is evaluated as in fdlibm's ``s_erf.c`` (Sun Microsystems, 1993): one
rational approximation per range of ``|x|``, chosen elementwise with ``where``,
so it runs on any array library's namespace and reaches full double precision
(and full single precision in float32). NumPy has no ``erf``; SciPy is not needed.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.backend import array_namespace
from .arith import exp, negative, square
from .declare import real_only, unary
from .einsum import multiply

__all__ = ["erf"]


# ================================================================= erf, after fdlibm s_erf.c
#
# The coefficients below are those of fdlibm's s_erf.c:
#   Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
#   Developed at SunPro, a Sun Microsystems, Inc. business.
#   Permission to use, copy, modify, and distribute this software is freely
#   granted, provided that this notice is preserved.
#
#   |x| < 0.84375            erf(x) = x + x R(x²)                 R = P/Q
#   0.84375 <= |x| < 1.25    erf(x) = ±(c + P1(s)/Q1(s)),        s = |x| - 1
#   1.25 <= |x| < 1/0.35     erfc(x) = exp(-x² - 0.5625 + R1/S1(1/x²)) / |x|
#   1/0.35 <= |x| < 6        erfc(x) = exp(-x² - 0.5625 + R2/S2(1/x²)) / |x|
#   6 <= |x|                 erf(x) = ±1 (erfc < 2e-17)
#
# exp(-x²) is evaluated as exp(-z²) exp((z - x)(z + x)) with z the high half of
# x's significand (Veltkamp's split), so that z² is exact.

_ERX = 8.45062911510467529297e-01  # erf(1) rounded to single precision
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e01,
       -6.23753324503260060396e01, -1.62396669462573470355e02, -1.84605092906711035994e02,
       -8.12874355063065934246e01, -9.81432934416914548592e00)
_SA = (1.0, 1.96512716674392571292e01, 1.37657754143519042600e02, 4.34565877475229228821e02,
       6.45387271733267880336e02, 4.29008140027567833386e02, 1.08635005541779435134e02,
       6.57024977031928170135e00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e01,
       -1.60636384855821916062e02, -6.37566443368389627722e02, -1.02509513161107724954e03,
       -4.83519191608651397019e02)
_SB = (1.0, 3.03380607434824582924e01, 3.25792512996573918826e02, 1.53672958608443695994e03,
       3.19985821950859553908e03, 2.55305040643316442583e03, 4.74528541206955367215e02,
       -2.24409524465858183362e01)


def _poly(coefficients: tuple[float, ...], z: Any) -> Any:
    """``c0 + c1 z + c2 z² + ...`` by Horner's rule (Python floats keep z's dtype)."""
    result = z * coefficients[-1] + coefficients[-2]
    for c in reversed(coefficients[:-2]):
        result = result * z + c
    return result


def _high_half(x: Any, xp: Any) -> Any:
    """Veltkamp's split: ``x`` rounded to half of its significand's bits, so its square is exact."""
    bits = round(-math.log2(float(xp.finfo(x.dtype).eps))) + 1
    factor = 2.0 ** math.ceil(bits / 2) + 1.0
    scaled = x * factor
    return scaled - (scaled - x)


def as_float(x: Any, xp: Any) -> Any:
    x = xp.asarray(x)
    if not xp.isdtype(x.dtype, "real floating"):
        x = xp.astype(x, xp.float64)
    return x


def erf_impl(x: Any) -> Any:
    """erf(x) elementwise, to full precision in the dtype of ``x``; ``x`` an array of any namespace."""
    xp = array_namespace(x)
    x = as_float(x, xp)
    ax = xp.abs(x)
    negative_x = x < 0

    # |x| < 0.84375: erf(x) = x + x R(x²)
    zero = xp.zeros_like(x)
    small = xp.where(ax < 0.84375, x, zero)
    z = small * small
    y_small = small + small * (_poly(_PP, z) / _poly(_QQ, z))

    # 0.84375 <= |x| < 1.25: erf(x) = ±(c + P1(s)/Q1(s))
    s = xp.clip(ax, 0.84375, 1.25) - 1.0
    mid = _ERX + _poly(_PA, s) / _poly(_QA, s)
    y_mid = xp.where(negative_x, -mid, mid)

    # 1.25 <= |x| < 6: erf(x) = ±(1 - erfc(|x|)),  erfc(|x|) = exp(-x² - 0.5625 + R/S) / |x|
    a = xp.clip(ax, 1.25, 6.0)
    w = 1.0 / (a * a)
    near = a < 1.0 / 0.35
    ratio = xp.where(near, _poly(_RA, w) / _poly(_SA, w), _poly(_RB, w) / _poly(_SB, w))
    h = _high_half(a, xp)
    erfc = xp.exp(-h * h - 0.5625) * xp.exp((h - a) * (h + a) + ratio) / a
    tail = 1.0 - erfc
    y_tail = xp.where(negative_x, -tail, tail)

    one = xp.where(negative_x, zero - 1.0, zero + 1.0)
    y = xp.where(ax < 0.84375, y_small, xp.where(ax < 1.25, y_mid, xp.where(ax < 6.0, y_tail, one)))
    return xp.where(xp.isnan(x), x, y)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

erf_p = unary(
    "erf", erf_impl,
    lambda y, x: multiply(exp(negative(square(x))), _TWO_OVER_SQRT_PI),
    latex="\\operatorname{erf}",
    derivative_notation="2/√π exp(-{0}^2)",
)


def erf(x: Any) -> Any:
    """The error function ``erf(x) = 2/√π ∫_0^x exp(-t²) dt``, elementwise.

    Index form: ``y[i] = erf(x[i])``, ``∂y[i]/∂x[i] = 2/√π exp(-x[i]²)``. Evaluated
    to full double (or single) precision with fdlibm's rational approximations;
    no SciPy needed.

    >>> import math, numpy as np, einsumad as ea
    >>> bool(ea.erf(np.array(0.5)) == math.erf(0.5))
    True
    >>> ea.grad(lambda x: ea.sum(ea.erf(x)))(np.array([0.0]))   # 2/sqrt(pi)
    array([1.12837917])
    """
    real_only("erf", x)
    return erf_p(x)
