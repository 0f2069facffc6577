"""Selection ops: ``where``, ``maximum``, ``minimum``, ``abs``, ``clip``, ``one_hot``.

``where(c, x, y)`` is linear in ``x`` and ``y``: its Jacobian is the diagonal
0/1 mask, so its VJP routes the cotangent through the same mask. The other
selections are elementwise with a 0/1 local derivative (``sign`` for abs);
where the choice is a tie (``x == y`` in ``maximum``, ``x`` on a bound of
``clip``) the derivative is shared equally: 1/2 to each side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.arrays import dispatch
from ..core.arrays import shape as _shape
from ..core.einsum import unbroadcast
from ..core.linear import Linear
from ..core.primitive import Primitive
from ..core.tape import Tensor, register_numpy_equivalent, strip_differentiation, unbox
from .compare import share_greater, sign
from .declare import binary, unary

__all__ = ["where", "maximum", "minimum", "abs", "clip", "one_hot"]


# ================================================================= where
#   forward: y = c ? x : z        linear in (x, z); transpose: x̄ = unbroadcast(c ? ḡ : 0),
#                                                              z̄ = unbroadcast(c ? 0 : ḡ)
#   The condition is a parameter of the linear map: it carries no gradient.

def _where_transpose(k: int, g: Any, ans: Any, c: Any, x: Any, y: Any) -> Any:
    routed = where_p(c, g, 0) if k == 1 else where_p(c, 0, g)
    return unbroadcast(routed, _shape((c, x, y)[k]), _shape(ans))


where_p = Primitive(
    dispatch(np.where, "where"),
    name="where",
    declaration=Linear(_where_transpose, linear_args=(1, 2), broadcasts=True, describe="route through the mask"),
    source="{xp}.where({0}, {1}, {2})",
)
where_p.declaration.numexpr = "where({0}, {1}, {2})"


def where(condition: Any, x: Any, y: Any) -> Any:
    """Elementwise ``x`` where ``condition`` holds, else ``y`` (NumPy broadcasting).

    The condition carries no gradient; comparisons on traced values give plain
    boolean arrays, so ``ea.where(x > 0, x, 0.0)`` works inside traced code.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(ea.where(x > 0, x, 0.0)))(np.array([-1.0, 2.0]))
    array([0., 1.])
    """
    if isinstance(condition, Tensor):
        condition = strip_differentiation(condition)
    return where_p(condition, x, y)


register_numpy_equivalent(np.where, "ea.where")
register_numpy_equivalent(np.clip, "ea.clip")


# ================================================================= maximum and minimum
#   forward: y = max(x1, x2)   (broadcast)     ∂y/∂x1 = [x1 > x2] + ½ [x1 == x2]
#   VJP_1: unbroadcast(ḡ ⊙ ∂y/∂x1)              JVP_1: broadcast(ẋ1) ⊙ ∂y/∂x1

maximum_p = binary(
    "maximum",
    dispatch(np.maximum, "maximum"),
    (lambda ans, x, y: share_greater(x, y), lambda ans, x, y: share_greater(y, x)),
    derivative_notation=("[{0} > {1}]", "[{1} > {0}]"),
    forward_notation="max({0}, {1})",
    numpy=np.maximum,
)
minimum_p = binary(
    "minimum",
    dispatch(np.minimum, "minimum"),
    (lambda ans, x, y: share_greater(y, x), lambda ans, x, y: share_greater(x, y)),
    derivative_notation=("[{0} < {1}]", "[{1} < {0}]"),
    forward_notation="min({0}, {1})",
    numpy=np.minimum,
)


def maximum(x: Any, y: Any) -> Any:
    """Elementwise maximum with NumPy broadcasting, as :func:`numpy.maximum`.

    The gradient goes to the larger argument; where ``x == y`` each gets half.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(ea.maximum(x, 1.0)))(np.array([0.0, 1.0, 2.0]))
    array([0. , 0.5, 1. ])
    """
    return maximum_p(x, y)


def minimum(x: Any, y: Any) -> Any:
    """Elementwise minimum with NumPy broadcasting, as :func:`numpy.minimum`.

    The gradient goes to the smaller argument; where ``x == y`` each gets half.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(ea.minimum(x, 1.0)))(np.array([0.0, 1.0, 2.0]))
    array([1. , 0.5, 0. ])
    """
    return minimum_p(x, y)


# ================================================================= abs
#   y = |x|     f'(x) = sign(x)   (0 at the kink: the average of -1 and 1)

abs_p = unary("abs", dispatch(np.abs, "abs"), lambda y, x: sign(x), numpy=np.abs, derivative_notation="sign({0})",
              forward_notation="|{0}|")


def abs(x: Any) -> Any:  # noqa: A001
    """Elementwise absolute value; ``f'(x) = sign(x)``, which is 0 at ``x = 0``.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(ea.abs(x)))(np.array([-2.0, 0.0, 3.0]))
    array([-1.,  0.,  1.])
    """
    return abs_p(x)


# ================================================================= clip
#   y = min(max(x, a_min), a_max): the composition of the two selections above,
#   so x gets ½ exactly on a bound and every bound that is a tensor gets its share.


def clip(x: Any, a_min: Any, a_max: Any) -> Any:
    """Limit ``x`` to ``[a_min, a_max]``, as :func:`numpy.clip` (either bound may be None).

    Differentiable in ``x`` and in the bounds: ``minimum(maximum(x, a_min), a_max)``.
    On a bound (``x == a_max``) the gradient is shared: 1/2 to ``x``, 1/2 to the bound.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(ea.clip(x, 0.0, 1.0)))(np.array([-1.0, 0.5, 1.0, 2.0]))
    array([0. , 1. , 0.5, 0. ])
    """
    if a_min is None and a_max is None:
        return x
    if a_min is not None:
        x = maximum(x, a_min)
    if a_max is not None:
        x = minimum(x, a_max)
    return x


# ================================================================= one_hot (a constant)


def one_hot(indices: Any, num_classes: int, dtype: Any = float) -> np.ndarray:
    """``out[..., c] = 1 if indices[...] == c else 0``: a constant, with no gradient.

    Args:
        indices: integer array (any shape) of class indices in ``[0, num_classes)``.
        num_classes: the size of the new last axis.
        dtype: the result's dtype.

    Raises:
        TypeError: if ``indices`` are not integers.
        ValueError: if an index lies outside ``[0, num_classes)``.

    >>> import numpy as np, einsumad as ea
    >>> ea.one_hot(np.array([2, 0]), 3)
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    indices = np.asarray(unbox(indices))
    if indices.dtype == bool or not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"one_hot needs integer indices, got dtype {indices.dtype}")
    num_classes = int(num_classes)
    if num_classes < 0:
        raise ValueError(f"one_hot: num_classes must be non-negative, got {num_classes}")
    if indices.size and (indices.min() < 0 or indices.max() >= num_classes):
        bad = indices[(indices < 0) | (indices >= num_classes)].flat[0]
        raise ValueError(
            f"one_hot: index {int(bad)} is out of range for num_classes={num_classes} "
            f"(valid indices are 0 to {num_classes - 1})"
        )
    return np.equal(indices[..., None], np.arange(num_classes)).astype(dtype)
