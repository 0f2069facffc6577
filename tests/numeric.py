"""Independent numerical truths for the tests: central finite differences in float64.

Nothing here uses einsumad's differentiation; these are the yardsticks.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def numerical_gradient(
    fun: Callable[..., float], args: Sequence[np.ndarray], argnum: int, eps: float = 1e-6
) -> np.ndarray:
    """d fun / d args[argnum] by central differences, element by element (float64)."""
    args = [np.array(a, dtype=np.float64) for a in args]
    x = args[argnum]
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + eps
        up = float(np.asarray(fun(*args)))
        x[index] = old - eps
        down = float(np.asarray(fun(*args)))
        x[index] = old
        grad[index] = (up - down) / (2 * eps)
    return grad


def numerical_jacobian(
    fun: Callable[..., np.ndarray], args: Sequence[np.ndarray], argnum: int, eps: float = 1e-6
) -> np.ndarray:
    """The Jacobian d fun / d args[argnum], shape out.shape + arg.shape (float64)."""
    args = [np.array(a, dtype=np.float64) for a in args]
    x = args[argnum]
    out_shape = np.shape(fun(*args))
    jac = np.zeros(out_shape + x.shape)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + eps
        up = np.array(fun(*args), dtype=np.float64)
        x[index] = old - eps
        down = np.array(fun(*args), dtype=np.float64)
        x[index] = old
        jac[(Ellipsis,) + index] = (up - down) / (2 * eps)
    return jac


def numerical_directional(
    fun: Callable[..., np.ndarray], args: Sequence[np.ndarray], tangents: Sequence[np.ndarray], eps: float = 1e-6
) -> np.ndarray:
    """(fun(x + eps t) - fun(x - eps t)) / (2 eps): the JVP by central differences."""
    up = fun(*[np.asarray(a, dtype=np.float64) + eps * np.asarray(t) for a, t in zip(args, tangents)])
    down = fun(*[np.asarray(a, dtype=np.float64) - eps * np.asarray(t) for a, t in zip(args, tangents)])
    return (np.asarray(up) - np.asarray(down)) / (2 * eps)
