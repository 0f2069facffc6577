"""The functions of neural-network layers: activations and layer normalisation.

::

    softplus     y = log(1 + eˣ) = max(x, 0) + log1p(exp(-|x|))     ∂y/∂x = σ(x)
    log_sigmoid  y = log σ(x) = -softplus(-x)                        ∂y/∂x = σ(-x)
    silu         y = x σ(x)                                          ∂y/∂x = σ(x) + y (1 - σ(x))
    gelu         y = x Φ(x) = ½ x (1 + erf(x/√2))                    ∂y/∂x = Φ(x) + x φ(x)
    gelu (tanh)  y = ½ x (1 + tanh(√(2/π)(x + 0.044715 x³)))
    layer_norm   m = mean(x, axis)    v = mean((x - m)², axis)    y = (x - m) / √(v + eps)

The activations are elementwise ops declared by ``f`` and ``f'`` (one primitive
each, stable over the whole float range). ``layer_norm`` is a composition of
einsumad ops: its derivative comes from the chain rule through einsums and
elementwise ops, and ``ea.derive`` shows every step (the well-known
``ȳ ↦ (ȳ - mean(ȳ) - ŷ mean(ȳ ŷ)) / √(v + eps)`` is what those steps add up to).
"""

from __future__ import annotations

import math
from typing import Any

from ..core.arrays import ndim as _ndim
from ..core.backend import array_namespace
from .arith import add, exp, negative, reciprocal, sqrt, square, subtract
from .declare import real_only, unary
from .einsum import mean, multiply, normalize_axes
from .functions import sigmoid, tanh
from .select import clip
from .special import as_float, erf, erf_impl

__all__ = ["softplus", "log_sigmoid", "silu", "gelu", "layer_norm"]


# ================================================================= softplus, log-sigmoid, SiLU
#   softplus:    y = log(1 + eˣ) = max(x, 0) + log1p(exp(-|x|))       f' = σ(x)
#   log_sigmoid: y = log σ(x) = -softplus(-x)                          f' = σ(-x)
#   silu:        y = x σ(x)                                            f' = σ(x) + y (1 - σ(x))
#   Every form takes exp of a non-positive number only: nothing overflows.


def _softplus_impl(x: Any) -> Any:
    xp = array_namespace(x)
    x = xp.asarray(x)
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


def _log_sigmoid_impl(x: Any) -> Any:
    xp = array_namespace(x)
    x = xp.asarray(x)
    return xp.minimum(x, xp.zeros_like(x)) - xp.log1p(xp.exp(-xp.abs(x)))


def _silu_impl(x: Any) -> Any:
    xp = array_namespace(x)
    x = xp.asarray(x)
    e = xp.exp(-xp.abs(x))
    return x * xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


softplus_p = unary(
    "softplus", _softplus_impl, lambda y, x: sigmoid(x),
    source="{xp}.maximum({0}, 0) + {xp}.log1p({xp}.exp(-{xp}.abs({0})))",
    derivative_notation="σ({0})", forward_notation="log(1 + exp({0}))",
    numexpr="maximum({0}, 0) + log1p(exp(-abs({0})))",
)
log_sigmoid_p = unary(
    "log_sigmoid", _log_sigmoid_impl, lambda y, x: sigmoid(negative(x)),
    source="{xp}.minimum({0}, 0) - {xp}.log1p({xp}.exp(-{xp}.abs({0})))",
    derivative_notation="σ(-{0})", forward_notation="log σ({0})",
    numexpr="minimum({0}, 0) - log1p(exp(-abs({0})))",
)
silu_p = unary(
    "silu", _silu_impl,
    lambda y, x: (lambda s: add(s, multiply(y, subtract(1.0, s))))(sigmoid(x)),
    derivative_notation="σ({0}) (1 + {0} (1 - σ({0})))", forward_notation="{0} σ({0})",
    numexpr="{0} * where({0} >= 0, 1.0 / (1.0 + exp(-abs({0}))), exp(-abs({0})) / (1.0 + exp(-abs({0}))))",
)


def softplus(x: Any) -> Any:
    """``log(1 + exp(x))`` elementwise, without overflow: ``max(x, 0) + log1p(exp(-|x|))``.

    Index form: ``y[i] = log(1 + exp(x[i]))``, ``∂y[i]/∂x[i] = σ(x[i])``.

    >>> import numpy as np, einsumad as ea
    >>> ea.softplus(np.array([-1e4, 0.0, 1e4]))
    array([0.00000000e+00, 6.93147181e-01, 1.00000000e+04])
    >>> ea.grad(lambda z: ea.sum(ea.softplus(z)))(np.array([800.0, 0.0]))
    array([1. , 0.5])
    """
    real_only("softplus", x)
    return softplus_p(x)


def log_sigmoid(x: Any) -> Any:
    """``log σ(x) = -softplus(-x)`` elementwise, without overflow.

    Index form: ``y[i] = log σ(x[i])``, ``∂y[i]/∂x[i] = σ(-x[i]) = 1 - σ(x[i])``.

    >>> import numpy as np, einsumad as ea
    >>> ea.log_sigmoid(np.array([-1e4, 1e4]))
    array([-10000.,      0.])
    """
    real_only("log_sigmoid", x)
    return log_sigmoid_p(x)


def silu(x: Any) -> Any:
    """The sigmoid linear unit (swish) ``x σ(x)``, elementwise.

    Index form: ``y[i] = x[i] σ(x[i])``, ``∂y[i]/∂x[i] = σ(x[i]) + y[i] (1 - σ(x[i]))``.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(ea.silu(x)))(np.array([0.0, 1e4, -1e4]))
    array([0.5, 1. , 0. ])
    """
    real_only("silu", x)
    return silu_p(x)


# ================================================================= GELU, exact and tanh-approximated
#   exact:  y = ½ x (1 + erf(x/√2))             ∂y/∂x = ½ (1 + erf(x/√2)) + x exp(-x²/2)/√(2π)
#   tanh:   y = ½ x (1 + tanh(u)), u = k (x + a x³), k = √(2/π), a = 0.044715
#           ∂y/∂x = ½ (1 + t) + ½ k x (1 - t²)(1 + 3 a x²),  t = tanh(u)
#   For |x| >= 10, t = ±1 exactly (in float32 and float64), so x is clipped to
#   [-10, 10] inside u: x³ never overflows and the second term is exactly 0 there.

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_K = math.sqrt(2.0 / math.pi)
_A = 0.044715
_CLIP = 10.0


def _gelu_impl(x: Any) -> Any:
    xp = array_namespace(x)
    x = as_float(x, xp)
    return 0.5 * x * (1.0 + erf_impl(x * _SQRT_HALF))


def _gelu_derivative(y: Any, x: Any) -> Any:
    cdf = multiply(add(erf(multiply(x, _SQRT_HALF)), 1.0), 0.5)
    pdf = multiply(exp(multiply(square(x), -0.5)), _INV_SQRT_2PI)
    return add(cdf, multiply(x, pdf))


def _gelu_tanh_impl(x: Any) -> Any:
    xp = array_namespace(x)
    x = as_float(x, xp)
    c = xp.clip(x, -_CLIP, _CLIP)
    return 0.5 * x * (1.0 + xp.tanh(_K * (c + _A * c * c * c)))


def _gelu_tanh_derivative(y: Any, x: Any) -> Any:
    c = clip(x, -_CLIP, _CLIP)
    c2 = square(c)
    t = tanh(multiply(multiply(c, add(multiply(c2, _A), 1.0)), _K))
    first = multiply(add(t, 1.0), 0.5)
    second = multiply(multiply(c, add(1.0, negative(square(t)))), multiply(add(multiply(c2, 3 * _A), 1.0), 0.5 * _K))
    return add(first, second)


gelu_p = unary(
    "gelu", _gelu_impl, _gelu_derivative,
    derivative_notation="Φ({0}) + {0} φ({0})", forward_notation="{0} Φ({0})",
)
#: The clipped argument inside tanh, as numexpr writes ``xp.clip(x, -10, 10)``.
_CLIPPED = f"minimum(maximum({{0}}, {-_CLIP!r}), {_CLIP!r})"
gelu_tanh_p = unary(
    "gelu_tanh", _gelu_tanh_impl, _gelu_tanh_derivative,
    symbol="gelu_tanh",
    numexpr=f"0.5 * {{0}} * (1.0 + tanh({_K!r} * ({_CLIPPED} + {_A!r} * {_CLIPPED} * {_CLIPPED} * {_CLIPPED})))",
    derivative_notation="½(1 + t) + ½ {0} (1 - t^2) √(2/π)(1 + 0.134145 {0}^2), t = tanh(√(2/π)({0} + 0.044715 {0}^3))",
    forward_notation="½ {0} (1 + tanh(√(2/π)({0} + 0.044715 {0}^3)))",
)


def gelu(x: Any, approximate: str = "none") -> Any:
    """The Gaussian error linear unit ``x Φ(x)``, elementwise, as PyTorch and JAX define it.

    ``approximate="none"`` (the default, PyTorch's default) is exact:
    ``y[i] = ½ x[i] (1 + erf(x[i]/√2))``, ``∂y[i]/∂x[i] = Φ(x[i]) + x[i] φ(x[i])``.
    ``approximate="tanh"`` is the approximation of Hendrycks and Gimpel used by
    GPT-2 (``torch.nn.functional.gelu(x, approximate="tanh")``,
    ``jax.nn.gelu(x, approximate=True)``):
    ``y = ½ x (1 + tanh(√(2/π)(x + 0.044715 x³)))``.

    Both are stable over the whole float range (0 for large negative ``x``, ``x``
    for large positive ``x``, with derivatives 0 and 1).

    Args:
        x: array or traced tensor.
        approximate: ``"none"`` or ``"tanh"``.

    >>> import numpy as np, einsumad as ea
    >>> ea.gelu(np.array([-1e4, 0.0, 1.0, 1e4]))
    array([-0.00000000e+00,  0.00000000e+00,  8.41344746e-01,  1.00000000e+04])
    >>> ea.grad(lambda x: ea.sum(ea.gelu(x, approximate="tanh")))(np.array([0.0]))
    array([0.5])
    """
    real_only("gelu", x)
    if approximate == "none":
        return gelu_p(x)
    if approximate == "tanh":
        return gelu_tanh_p(x)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


# ================================================================= layer_norm
#   m[b] = 1/n sum_i x[b,i]    v[b] = 1/n sum_i (x[b,i] - m[b])²    y[b,i] = (x[b,i] - m[b]) (v[b] + eps)^(-1/2)


def layer_norm(x: Any, axis: Any = -1, eps: float = 1e-5) -> Any:
    """Normalise ``x`` to mean 0 and variance 1 along ``axis`` (without scale and shift).

    ``y = (x - m) / sqrt(v + eps)`` with ``m`` and ``v`` the mean and the (biased)
    variance along ``axis``, as ``torch.nn.functional.layer_norm`` without
    ``weight`` and ``bias`` (multiply and add those yourself: ``layer_norm(x) * g + b``).
    Index form, for ``axis=-1``::

        m[b] = 1/n sum_i x[b,i]      v[b] = 1/n sum_i (x[b,i] - m[b])²
        y[b,i] = (x[b,i] - m[b]) r[b],      r[b] = (v[b] + eps)^(-1/2)

    Args:
        x: array or traced tensor.
        axis: the axis (or tuple of axes) normalised over.
        eps: added to the variance for stability.

    >>> import numpy as np, einsumad as ea
    >>> y = ea.layer_norm(np.array([[1.0, 2.0, 3.0]]), eps=0.0)
    >>> np.round(y * np.sqrt(2 / 3), 12)
    array([[-1.,  0.,  1.]])
    """
    axes = normalize_axes(axis, _ndim(x))
    centred = subtract(x, mean(x, axis=axes, keepdims=True))
    variance = mean(square(centred), axis=axes, keepdims=True)
    return multiply(centred, reciprocal(sqrt(add(variance, eps))))
