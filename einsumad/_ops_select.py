"""Selection ops: ``where`` (more in the op library).

``where(c, x, y)`` is linear in ``x`` and ``y``: its Jacobian is the diagonal
0/1 mask, so its VJP routes the cotangent through the same mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._ops_math import broadcast_batched, unbroadcast
from ._primitive import Primitive
from ._tape import Tensor, unbox

__all__ = ["where"]


def _shape(x: Any) -> tuple[int, ...]:
    return np.shape(unbox(x))


# ================================================================= where
#   forward: y = c ? x : z        VJP_x: unbroadcast(c ? ḡ : 0)    VJP_z: unbroadcast(c ? 0 : ḡ)
#   The condition is an argument without a derivative rule: it carries no gradient.

where_p = Primitive(np.where, name="where", batched=True)
where_p.def_vjp(1, lambda g, ans, c, x, y: unbroadcast(where_p(c, g, 0), _shape(x), _shape(ans)))
where_p.def_vjp(2, lambda g, ans, c, x, y: unbroadcast(where_p(c, 0, g), _shape(y), _shape(ans)))
where_p.def_jvp(1, lambda t, ans, c, x, y: where_p(c, broadcast_batched(t, _shape(x), _shape(ans)), 0))
where_p.def_jvp(2, lambda t, ans, c, x, y: where_p(c, 0, broadcast_batched(t, _shape(y), _shape(ans))))


def where(condition: Any, x: Any, y: Any) -> Any:
    """Elementwise ``x`` where ``condition`` holds, else ``y`` (NumPy broadcasting).

    The condition carries no gradient; comparisons on traced values give plain
    boolean arrays, so ``ea.where(x > 0, x, 0.0)`` works inside traced code.

    >>> import numpy as np, einsumad as ea
    >>> ea.grad(lambda x: ea.sum(ea.where(x > 0, x, 0.0)))(np.array([-1.0, 2.0]))
    array([0., 1.])
    """
    if isinstance(condition, Tensor):
        condition = unbox(condition)
    return where_p(condition, x, y)
