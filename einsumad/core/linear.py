"""The linear kind: an op declared by its transpose, as JAX's ``deflinear``.

An op ``y = L(x_1, ..., x_n)`` that is jointly linear in its differentiable
arguments needs one rule, its transpose: the VJP of argument k is
``(L^T ḡ)_k``. The JVP needs none: by linearity it is the op itself applied to
the tangents (zeros in place of arguments that carry none)::

    VJP_k:  x̄_k = (L^T ḡ)_k          declared: reshape back, scatter-add, slice, ...
    JVP:    ẏ   = L(ẋ_1, ..., ẋ_n)   derived

Tangents may carry leading batch axes (the columns of a Jacobian). The op is
then applied with ``batch_params(params, batch_shape)``, its parameters for
operands with those extra leading axes (an axis shifted, a shape extended). An
op that broadcasts its linear arguments against each other (``where``) declares
``broadcasts=True``: each tangent is first broadcast to the output's shape, so
that the batch axes line up.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .arrays import dense, ndim, zeros
from .arrays import dtype as _dtype
from .arrays import shape as _shape
from .einsum import broadcast_batched
from .primitive import Declaration, Notation, Primitive
from .tape import unbox

__all__ = ["Linear"]

#: ``transpose(k, g, ans, *args, **params)`` returns the cotangent of argument k.
Transpose = Callable[..., Any]


def _unchanged(params: dict, batch: tuple[int, ...]) -> dict:
    return params


class Linear(Declaration):
    """``y = L(x_1, ..., x_n)``, jointly linear in the arguments ``linear_args``.

    Args:
        transpose: ``transpose(k, g, ans, *args, **params)``, the cotangent of
            argument k (``g`` may carry leading batch axes).
        linear_args: the positions of the linear arguments (default: all).
            Other arguments are parameters that carry no derivative.
        batch_params: ``(params, batch_shape) -> params`` for operands with extra
            leading batch axes (default: the same params).
        broadcasts: the op broadcasts its linear arguments (NumPy rules).
        describe: a short phrase for ``derive`` naming the transpose
            (``"scatter-add"``, ``"reshape back"``).
        notation: how ``derive`` writes the op (see :class:`~.primitive.Notation`).
    """

    kind = "linear"

    def __init__(
        self,
        transpose: Transpose,
        linear_args: Sequence[int] | None = None,
        batch_params: Callable[[dict, tuple[int, ...]], dict] = _unchanged,
        broadcasts: bool = False,
        describe: str = "its transpose",
        notation: Notation | None = None,
    ):
        self.transpose = transpose
        self.linear_args = None if linear_args is None else frozenset(linear_args)
        self.batch_params = batch_params
        self.broadcasts = broadcasts
        self.describe = describe
        self.notation = notation

    def is_linear_in(self, k: int) -> bool:
        return self.linear_args is None or k in self.linear_args

    def vjp(self, prim: Primitive, k: int, g: Any, ans: Any, args: tuple, params: dict) -> Any:
        if not self.is_linear_in(k):
            raise NotImplementedError(f"{prim.name} carries no derivative to argument {k}")
        return self.transpose(k, g, ans, *args, **params)

    def jvp(self, prim: Primitive, tangents: dict[int, Any], ans: Any, args: tuple, params: dict) -> Any:
        tangents = {k: t for k, t in tangents.items() if self.is_linear_in(k)}
        if not tangents:
            return None
        k0, t0 = next(iter(tangents.items()))
        nbatch = ndim(t0) - ndim(args[k0])
        batch = _shape(t0)[:nbatch]
        dtype = _dtype(t0)
        ans_shape = _shape(ans)
        operands: list[Any] = []
        for k, arg in enumerate(args):
            if k in tangents:
                t = dense(tangents[k])
                if self.broadcasts:
                    t = broadcast_batched(t, _shape(arg), ans_shape)
                operands.append(t)
            elif self.is_linear_in(k):
                zero_shape = () if self.broadcasts else batch + _shape(arg)
                operands.append(zeros(zero_shape, dtype, like=unbox(t0)))
            else:
                operands.append(arg)
        params = self.batch_params(params, batch) if nbatch else params
        return prim(*operands, **params)
