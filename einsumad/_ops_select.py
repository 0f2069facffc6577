"""Selection ops: ``where`` (more in the op library).

``where(c, x, y)`` is linear in ``x`` and ``y``: its Jacobian is the diagonal
0/1 mask, so its VJP routes the cotangent through the same mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._ops_math import broadcast_batched, unbroadcast
from ._primitive import Primitive
from ._tape import unbox

__all__ = ["where"]


def _shape(x: Any) -> tuple[int, ...]:
    return np.shape(unbox(x))


# ================================================================= where
#   forward: y = c ? x : z        VJP_x: unbroadcast(c ? ḡ : 0)    VJP_z: unbroadcast(c ? 0 : ḡ)

where_p = Primitive(lambda x, y, condition: np.where(condition, x, y), name="where", batched=True)
where_p.def_vjp(0, lambda g, ans, x, y, condition: unbroadcast(where_p(g, 0, condition=condition), _shape(x), _shape(ans)))
where_p.def_vjp(1, lambda g, ans, x, y, condition: unbroadcast(where_p(0, g, condition=condition), _shape(y), _shape(ans)))
where_p.def_jvp(0, lambda t, ans, x, y, condition: where_p(broadcast_batched(t, _shape(x), _shape(ans)), 0, condition=condition))
where_p.def_jvp(1, lambda t, ans, x, y, condition: where_p(0, broadcast_batched(t, _shape(y), _shape(ans)), condition=condition))


def where(condition: Any, x: Any, y: Any) -> Any:
    """Elementwise ``x`` where ``condition`` holds, else ``y`` (NumPy broadcasting).

    The condition carries no gradient; comparisons on traced values give plain
    boolean arrays, so ``ea.where(x > 0, x, 0.0)`` works inside traced code.
    """
    condition = np.asarray(unbox(condition), dtype=bool)
    return where_p(x, y, condition=condition)
