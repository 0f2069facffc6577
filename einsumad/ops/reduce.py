"""Reductions beyond the sum: max, min, logsumexp, softmax, log_softmax.

* ``max`` and ``min`` are primitives. Their derivative picks the winner: with
  weights ``w`` shaped like ``x`` (``1/k`` at each of the ``k`` tied extremes of
  a slice, else 0), the forward tangent is the einsum ``ẏ[i] = sum_j w[ij] ẋ[ij]``
  and the VJP is its swap ``x̄[ij] = ḡ[i] w[ij]``. The weights come from a
  non-differentiable primitive, so max is piecewise linear to every order.
* ``logsumexp``, ``softmax`` and ``log_softmax`` are compositions of
  differentiable ops around a constant shift ``m = max(x)``: every one of them
  is invariant under the shift, so ``m`` needs no gradient, and ``exp(x - m)``
  never overflows. Their derivatives (softmax for logsumexp, the Jacobian
  ``diag(y) - y yᵀ`` for softmax) come out of the chain rule.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from ..core.arrays import dispatch, ndim
from ..core.arrays import shape as _shape
from ..core.general import General
from ..core.primitive import Primitive
from ..core.structural import reshape_p
from ..core.tape import register_numpy_equivalent
from .arith import add, divide, exp, log, subtract
from .compare import share_max, share_min, stable_shift
from .einsum import multiply, normalize_axes
from .einsum import sum as total

__all__ = ["max", "min", "logsumexp", "softmax", "log_softmax"]


@functools.lru_cache(maxsize=4096)
def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with each reduced axis kept with size 1."""
    return tuple(1 if a in axes else n for a, n in enumerate(shape))


def _squeeze(y: Any, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Any:
    """A keepdims result reshaped to the result NumPy gives for ``keepdims``."""
    if keepdims:
        return y
    return reshape_p(y, shape=tuple(n for a, n in enumerate(shape) if a not in axes))


# ================================================================= max and min
#   forward:  y[i] = max_j x[ij]                 weights w[ij] = [x[ij] == y[i]] / #ties
#   JVP:      ẏ[i] = sum_j w[ij] ẋ[ij]            einsum "ij,ij->i"
#   VJP:      x̄[ij] = ḡ[i] w[ij]                  its swap "i,ij->ij"


def _extreme_primitive(name: str, reduce: Callable[..., Any], share: Any) -> Primitive:
    def numpy_impl(x: Any, *, axis: tuple[int, ...], keepdims: bool) -> Any:
        return np.asarray(reduce(x, axis=axis, keepdims=keepdims))

    impl = dispatch(numpy_impl, name)

    def vjp(g: Any, ans: Any, x: Any, *, axis: tuple[int, ...], keepdims: bool) -> Any:
        nbatch = ndim(g) - ndim(ans)
        if not keepdims:  # give g its reduced axes back, with size 1
            g = reshape_p(g, shape=_shape(g)[:nbatch] + _kept_shape(_shape(x), axis))
        return multiply(g, share(x, axis=axis))

    def jvp(t: Any, ans: Any, x: Any, *, axis: tuple[int, ...], keepdims: bool) -> Any:
        nbatch = ndim(t) - ndim(x)
        weighted = multiply(t, share(x, axis=axis))
        return total(weighted, axis=tuple(nbatch + a for a in axis), keepdims=keepdims)

    return Primitive(
        impl,
        name=name,
        declaration=General({0: vjp}, {0: jvp}),
        source=lambda a, p: f"np.asarray(np.{name}({a[0]}, axis={p['axis']}{', keepdims=True' if p['keepdims'] else ''}))",
    )


max_p = _extreme_primitive("max", np.max, share_max)
min_p = _extreme_primitive("min", np.min, share_min)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """The largest entry along ``axis`` (all axes by default), as :func:`numpy.max`.

    The gradient is 1 at the maximum and 0 elsewhere; when several entries tie
    for the maximum they share it equally.

    Args:
        x: array or traced tensor.
        axis: an int, a tuple of ints, or None for all axes.
        keepdims: keep the reduced axes with size 1.

    >>> import numpy as np, einsumad as ea
    >>> ea.max(np.array([[1.0, 5.0], [7.0, 2.0]]), axis=1)
    array([5., 7.])
    >>> ea.grad(lambda x: ea.max(x))(np.array([1.0, 3.0, 3.0]))
    array([0. , 0.5, 0.5])
    """
    axes = normalize_axes(axis, ndim(x))
    return max_p(x, axis=axes, keepdims=bool(keepdims))


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """The smallest entry along ``axis`` (all axes by default), as :func:`numpy.min`.

    Tied minima share the gradient equally.

    Args:
        x: array or traced tensor.
        axis: an int, a tuple of ints, or None for all axes.
        keepdims: keep the reduced axes with size 1.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.min(x))(np.array([2.0, 1.0, 4.0]))
    array([0., 1., 0.])
    """
    axes = normalize_axes(axis, ndim(x))
    return min_p(x, axis=axes, keepdims=bool(keepdims))


# ================================================================= logsumexp and softmax
#   m = max_j x[ij]  (constant)     lse[i] = m[i] + log sum_j exp(x[ij] - m[i])
#   ∂lse[i]/∂x[ij] = softmax(x)[ij]                       (from the chain rule)
#   softmax[ij] = exp(x[ij] - m[i]) / sum_k exp(x[ik] - m[i])


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(x), axis))`` computed without overflow, as :func:`scipy.special.logsumexp`.

    Evaluated as ``m + log(sum(exp(x - m)))`` with ``m`` the maximum along
    ``axis``, a constant to differentiation (the result does not depend on it).
    Its gradient is ``softmax(x, axis)``.

    Args:
        x: array or traced tensor.
        axis: an int, a tuple of ints, or None for all axes.
        keepdims: keep the reduced axes with size 1.

    >>> import numpy as np, einsumad as ea
    >>> float(ea.logsumexp(np.array([1000.0, 1000.0])))   # 1000 + log 2
    1000.6931471805599
    >>> ea.grad(lambda x: ea.logsumexp(x))(np.array([0.0, np.log(3.0)]))
    array([0.25, 0.75])
    """
    shape = _shape(x)
    axes = normalize_axes(axis, len(shape))
    shift = stable_shift(x, axis=axes)
    summed = total(exp(subtract(x, shift)), axis=axes, keepdims=True)
    return _squeeze(add(log(summed), shift), shape, axes, bool(keepdims))


def softmax(x: Any, axis: Any = -1) -> Any:
    """``exp(x) / sum(exp(x), axis)``, computed without overflow.

    Args:
        x: array or traced tensor.
        axis: the axis (or tuple of axes, or None for all) that is normalised.

    >>> import numpy as np, einsumad as ea
    >>> ea.softmax(np.array([[0.0, np.log(3.0)], [1e3, 1e3]]))
    array([[0.25, 0.75],
           [0.5 , 0.5 ]])
    """
    axes = normalize_axes(axis, ndim(x))
    e = exp(subtract(x, stable_shift(x, axis=axes)))
    return divide(e, total(e, axis=axes, keepdims=True))


def log_softmax(x: Any, axis: Any = -1) -> Any:
    """``x - logsumexp(x, axis, keepdims=True)``, computed without overflow.

    Args:
        x: array or traced tensor.
        axis: the axis (or tuple of axes, or None for all) that is normalised.

    >>> import numpy as np, einsumad as ea
    >>> np.exp(ea.log_softmax(np.array([0.0, np.log(3.0)])))
    array([0.25, 0.75])
    """
    axes = normalize_axes(axis, ndim(x))
    shifted = subtract(x, stable_shift(x, axis=axes))
    return subtract(shifted, log(total(exp(shifted), axis=axes, keepdims=True)))


register_numpy_equivalent(np.max, "ea.max")
register_numpy_equivalent(np.amax, "ea.max")
register_numpy_equivalent(np.min, "ea.min")
register_numpy_equivalent(np.amin, "ea.min")
