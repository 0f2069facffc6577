"""Complex numbers: the ops that are not holomorphic, each with its documented rule.

One convention for every rule (as JAX and HIPS autograd): a cotangent ``c`` pairs
with a tangent ``v`` by ``<c, v> = Re(sum c v)``, with no conjugation, so the VJP
of a holomorphic op is the plain transpose of its complex-linear derivative (the
swap of an einsum on complex operands is the swap, the partial of ``exp`` is
``exp``). For a real loss ``L`` of ``z = x + iy`` the gradient is then
``∂L/∂x - i ∂L/∂y``; its conjugate is the direction of steepest ascent
(docs/guide/complex.md). Ops that are only real-linear or not differentiable in
the complex sense state their rules here::

    real    y = Re z         linear   VJP  z̄ = ḡ                JVP  ẏ = Re ż
    imag    y = Im z         linear   VJP  z̄ = -i ḡ             JVP  ẏ = Im ż
    conj    y = z*           linear   VJP  z̄ = ḡ*               JVP  ẏ = ż*
    abs     y = |z|          general  VJP  z̄ = ḡ z*/|z|         JVP  ẏ = Re(z* ż)/|z|
    angle   y = arg z        general  VJP  z̄ = -i ḡ z*/|z|²     JVP  ẏ = Im(z* ż)/|z|²

(``abs`` and ``angle`` take 0 as their derivative at ``z = 0``, where they have
none.) On real arguments ``real`` and ``conj`` are the identity, ``imag`` and
``angle`` constants, and ``abs`` the real absolute value of :mod:`.select`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.arrays import dispatch, dtype_kind, is_complex
from ..core.general import General
from ..core.linear import Linear
from ..core.primitive import Notation, Primitive
from ..core.structural import real_p
from ..core.tape import register_numpy_equivalent
from .arith import divide, square
from .compare import greater
from .einsum import multiply
from .select import abs_p, where

__all__ = ["real", "imag", "conj", "angle", "abs"]


# ================================================================= real, imag, conj: real-linear
#   real:  Re(ḡ Re v) = Re(ḡ v) for a real ḡ                     VJP: ḡ (the core's real_p)
#   imag:  Re(ḡ Im v) = Re(-i ḡ v)                               VJP: -i ḡ
#   conj:  Re(ḡ v*)   = Re(ḡ* v)                                 VJP: ḡ*


def _imag_api(xp: Any, x: Any) -> Any:
    return xp.imag(x) if dtype_kind(x.dtype) == "c" else xp.zeros_like(x)


def _conj_api(xp: Any, x: Any) -> Any:
    return xp.conj(x) if dtype_kind(x.dtype) == "c" else x


imag_p: Primitive = Primitive(
    dispatch(np.imag, _imag_api),
    name="imag",
    declaration=Linear(lambda k, g, ans, x: multiply(g, -1j), describe="times -i",
                       notation=Notation("Im", latex="\\operatorname{Im}")),
    source="{xp}.imag({0})",
)
conj_p: Primitive = Primitive(
    dispatch(np.conj, _conj_api),
    name="conj",
    declaration=Linear(lambda k, g, ans, x: conj_p(g), describe="conjugate",
                       notation=Notation("conj", latex="\\overline")),
    source="{xp}.conj({0})",
)


def real(x: Any) -> Any:
    """The real part, elementwise: ``y[i] = Re x[i]``; the identity on real arrays.

    Real-linear: its VJP returns the (real) cotangent as a complex cotangent,
    ``x̄ = ḡ``; its JVP is ``Re ẋ``.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda z: ea.sum(ea.real(z * z)))(np.array([1 + 2j]))   # Re z² = x² - y²: 2x + 2iy
    array([2.+4.j])
    """
    return real_p(x)


def imag(x: Any) -> Any:
    """The imaginary part, elementwise: ``y[i] = Im x[i]`` (zeros for real arrays).

    Real-linear: ``Re(ḡ Im v) = Re(-i ḡ v)``, so its VJP is ``x̄ = -i ḡ``.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda z: ea.sum(ea.imag(z)))(np.array([1 + 2j]))   # ∂/∂x - i ∂/∂y of y
    array([0.-1.j])
    """
    return imag_p(x)


def conj(x: Any) -> Any:
    """The complex conjugate, elementwise (the identity on real arrays).

    Real-linear and not holomorphic: its VJP is the conjugate cotangent ``x̄ = ḡ*``.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda z: ea.sum(ea.real(z * ea.conj(z))))(np.array([3 + 4j]))  # |z|²: 2 z*
    array([6.-8.j])
    """
    return conj_p(x)


register_numpy_equivalent(np.real, "ea.real")
register_numpy_equivalent(np.imag, "ea.imag")
register_numpy_equivalent(np.conj, "ea.conj")
register_numpy_equivalent(np.conjugate, "ea.conj")


# ================================================================= abs and angle of complex numbers
#   |z|:    d|z| = Re(z* dz)/|z|      so  z̄ = ḡ z*/|z|
#   arg z:  d arg z = Im(z* dz)/|z|²  so  z̄ = -i ḡ z*/|z|²   (Im(w) = Re(-i w))


def _safe_reciprocal(s: Any) -> Any:
    """1/s where s > 0, else 0: the derivative taken at the origin."""
    positive = greater(s, 0)
    return where(positive, divide(1.0, where(positive, s, 1.0)), 0.0)


def _abs_vjp(g: Any, ans: Any, z: Any) -> Any:
    return multiply(g, multiply(conj_p(z), _safe_reciprocal(ans)))


def _abs_jvp(t: Any, ans: Any, z: Any) -> Any:
    return multiply(real_p(multiply(conj_p(z), t)), _safe_reciprocal(ans))


complex_abs_p: Primitive = Primitive(
    dispatch(np.abs, "abs"),
    name="abs",
    declaration=General(
        {0: _abs_vjp}, {0: _abs_jvp},
        notation=Notation("abs", forward="|{0}|", vjp=("{g} conj({0})/|{0}|",)),
    ),
    source="{xp}.abs({0})",
)


def _angle_api(xp: Any, x: Any) -> Any:
    if dtype_kind(x.dtype) == "c":
        return xp.atan2(xp.imag(x), xp.real(x))
    return xp.atan2(xp.zeros_like(x), x)


def _angle_vjp(g: Any, ans: Any, z: Any) -> Any:
    return multiply(g, multiply(conj_p(z), multiply(_safe_reciprocal(abs_squared(z)), -1j)))


def _angle_jvp(t: Any, ans: Any, z: Any) -> Any:
    return multiply(imag_p(multiply(conj_p(z), t)), _safe_reciprocal(abs_squared(z)))


angle_p: Primitive = Primitive(
    dispatch(np.angle, _angle_api),
    name="angle",
    declaration=General(
        {0: _angle_vjp}, {0: _angle_jvp},
        notation=Notation("arg", latex="\\arg", vjp=("-i {g} conj({0})/|{0}|^2",)),
    ),
    source=lambda a, p: f"np.angle({a[0]})",
)


def abs(x: Any) -> Any:  # noqa: A001
    """Elementwise absolute value; the modulus ``|z|`` of a complex ``z``.

    Real ``x``: ``f'(x) = sign(x)`` (0 at 0), an elementwise op. Complex ``z``:
    not holomorphic; ``d|z| = Re(z* dz)/|z|``, so the VJP is ``z̄ = ḡ z*/|z|``
    (0 at ``z = 0``).

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(ea.abs(x)))(np.array([-2.0, 0.0, 3.0]))
    array([-1.,  0.,  1.])
    >>> ea.grad(lambda z: ea.sum(ea.abs(z)))(np.array([3 + 4j]))   # z*/|z|
    array([0.6-0.8j])
    """
    if is_complex(x):
        return complex_abs_p(x)
    return abs_p(x)


def angle(x: Any) -> Any:
    """The argument (phase) of complex numbers, elementwise, in ``(-π, π]`` (0 or π for reals).

    ``d arg z = Im(z* dz)/|z|²``, so the VJP is ``z̄ = -i ḡ z*/|z|²`` (0 at ``z = 0``).

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda z: ea.sum(ea.angle(z)))(np.array([1j])).real   # ∂θ/∂x - i ∂θ/∂y = -1
    array([-1.])
    """
    return angle_p(x)


register_numpy_equivalent(np.angle, "ea.angle")


def abs_squared(x: Any) -> Any:
    """``|x|²``: ``x²`` for real ``x``, ``Re(x conj(x))`` for complex ``x`` (the sums of
    squares of ``var``, ``std`` and ``norm``, as NumPy takes them).

    >>> import numpy as np, einsumad as ea
    >>> from einsumad.ops.complex import abs_squared
    >>> abs_squared(np.array([3 + 4j, 2.0]))
    array([25.,  4.])
    """
    if not is_complex(x):
        return square(x)
    return real(multiply(x, conj(x)))
