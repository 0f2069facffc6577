"""Elementwise functions of one argument: each ``f`` declared beside its ``f'``.

::

    y = f(x)    Jacobian diag(f'(x))    VJP: ḡ ⊙ f'(x)   (the diagonal einsum I,I->I)
                                        JVP: ẋ ⊙ f'(x)

``f'`` is written with einsumad ops (often through the result ``y``: tanh' =
1 - y², σ' = y (1 - y)), so derivatives of derivatives come out of the same rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.arrays import dispatch
from .arith import multiply, negative, subtract
from .compare import step
from .declare import real_only, unary

__all__ = ["tanh", "sigmoid", "sin", "cos", "relu"]


def _sigmoid_numpy(x: Any) -> np.ndarray:
    """1 / (1 + exp(-x)), evaluated without overflow for large |x|."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.result_type(x, np.float16))


def _sigmoid_api(xp: Any, x: Any) -> Any:
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _relu_api(xp: Any, x: Any) -> Any:
    return xp.maximum(x, xp.zeros_like(x))


tanh_p = unary("tanh", dispatch(np.tanh, "tanh"), lambda y, x: subtract(1, multiply(y, y)), latex="\\tanh",
               numpy=np.tanh)
sigmoid_p = unary(
    "sigmoid", dispatch(_sigmoid_numpy, _sigmoid_api), lambda y, x: multiply(y, subtract(1, y)),
    symbol="σ", latex="\\sigma",
    numexpr="where({0} >= 0, 1 / (1 + exp(-abs({0}))), exp(-abs({0})) / (1 + exp(-abs({0}))))",
)
sin_p = unary("sin", dispatch(np.sin, "sin"), lambda y, x: cos(x), latex="\\sin", numpy=np.sin,
              derivative_notation="cos({0})")
cos_p = unary("cos", dispatch(np.cos, "cos"), lambda y, x: negative(sin(x)), latex="\\cos", numpy=np.cos,
              derivative_notation="-sin({0})")
relu_p = unary("relu", dispatch(lambda x: np.maximum(x, 0), _relu_api), lambda y, x: step(x),
               source="np.maximum({0}, 0)", derivative_notation="[{0} > 0]", numexpr="maximum({0}, 0)")


def tanh(x: Any) -> Any:
    """Elementwise ``tanh``; ``f'(x) = 1 - tanh(x)**2``."""
    return tanh_p(x)


def sigmoid(x: Any) -> Any:
    """Elementwise logistic ``1/(1+e**-x)``; ``f'(x) = s(x)(1 - s(x))``."""
    real_only("sigmoid", x)
    return sigmoid_p(x)


def sin(x: Any) -> Any:
    """Elementwise sine; ``f'(x) = cos(x)``."""
    return sin_p(x)


def cos(x: Any) -> Any:
    """Elementwise cosine; ``f'(x) = -sin(x)``."""
    return cos_p(x)


def relu(x: Any) -> Any:
    """Elementwise ``max(x, 0)``; ``f'(x) = 1 if x > 0 else 0``."""
    return relu_p(x)

