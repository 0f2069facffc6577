"""The general kind: hand-written rules, for ops that are no einsum, no
elementwise function and not linear (``max``, sorting, a user's primitive that
declares only a VJP).

Rules have the signatures

* ``vjp_rule(g, ans, *args, **params)``: the cotangent of one argument;
* ``jvp_rule(t, ans, *args, **params)``: the output tangent caused by one
  argument's tangent.

Without a JVP rule, forward mode *transposes the VJP*: the VJP is linear in
``g``, so ``J t`` is the cotangent of ``g`` in ``<VJP(g), t>``, which one
backward pass through the recorded VJP yields.

Rules declared ``batched=False`` (a user's, by default) see one direction at a
time: a batched cotangent or tangent (a Jacobian's rows) is sliced along its
leading axes, the rule applied to each slice, and the results stacked.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .accumulate import PerArgument
from .arrays import dense, ndim, zeros
from .arrays import dtype as _dtype
from .arrays import shape as _shape
from .backward import backward
from .primitive import Notation, Primitive
from .structural import getitem_p, reshape_p, stack_p
from .tape import REVERSE, Node, Tensor, new_trace, unbox

__all__ = ["General", "map_leading", "RuleError"]

Rule = Callable[..., Any]


class RuleError(TypeError):
    """A declared rule could not be used as forward mode needs it."""


def map_leading(fn: Callable[[Any], Any], x: Any, extra: int, result_shape: tuple[int, ...]) -> Any:
    """Apply ``fn`` to each slice of ``x`` along ``extra`` leading axes and stack the results.

    ``result_shape`` is the shape of one result (used when there are no slices).
    """
    x = dense(x)
    batch = _shape(x)[:extra]
    count = int(np.prod(batch, dtype=np.int64))
    if count == 0:
        return zeros(batch + tuple(result_shape), _dtype(x), like=unbox(x))
    flat = reshape_p(x, shape=(count,) + _shape(x)[extra:])
    results = [fn(getitem_p(flat, index=(i,))) for i in range(count)]
    stacked = stack_p(*results, axis=0)
    return reshape_p(stacked, shape=batch + _shape(stacked)[1:])


class General(PerArgument):
    """Hand-written rules.

    Args:
        vjp_rules: per argument position, ``vjp_rule(g, ans, *args, **params)``;
            or a function from the position to its rule (None: no rule), for
            ops that take any number of arguments.
        jvp_rules: the same for JVP rules (optional).
        batched: the rules accept leading batch axes on ``g`` and ``t``.
        notation: how ``derive`` writes the op and its VJP (:class:`~.primitive.Notation`).
    """

    kind = "general"

    def __init__(
        self, vjp_rules: Any = None, jvp_rules: Any = None, batched: bool = True, notation: Notation | None = None
    ):
        self.vjp_rules: Any = dict(vjp_rules or {}) if not callable(vjp_rules) else vjp_rules
        self.jvp_rules: Any = dict(jvp_rules or {}) if not callable(jvp_rules) else jvp_rules
        self.batched = batched
        self.notation = notation

    @staticmethod
    def _lookup(rules: Any, k: int) -> Rule | None:
        return rules(k) if callable(rules) else rules.get(k)

    def vjp_rule(self, k: int) -> Rule | None:
        return self._lookup(self.vjp_rules, k)

    def jvp_rule(self, k: int) -> Rule | None:
        return self._lookup(self.jvp_rules, k)

    def vjp(self, prim: Primitive, k: int, g: Any, ans: Any, args: tuple, params: dict) -> Any:
        rule = self.vjp_rule(k)
        if rule is None:
            raise NotImplementedError(
                f"no VJP is defined for argument {k} of primitive {prim.name!r}; "
                f"declare one with ea.defvjp({prim.name}, ...)"
            )
        if self.batched:
            return rule(g, ans, *args, **params)
        extra = ndim(g) - ndim(ans)
        if extra:
            return map_leading(lambda gi: self.vjp(prim, k, gi, ans, args, params), g, extra, _shape(args[k]))
        return _checked(prim, rule(g, ans, *args, **params), args[k], "VJP")

    def jvp_one(self, prim: Primitive, k: int, t: Any, ans: Any, args: tuple, params: dict) -> Any:
        extra = ndim(t) - ndim(args[k])
        if extra and not self.batched:
            return map_leading(lambda ti: self.jvp_one(prim, k, ti, ans, args, params), t, extra, _shape(ans))
        rule = self.jvp_rule(k)
        if rule is None:
            if extra:
                return map_leading(lambda ti: self.jvp_one(prim, k, ti, ans, args, params), t, extra, _shape(ans))
            return _transposed_vjp(self, prim, k, t, ans, args, params)
        result = rule(t, ans, *args, **params)
        return result if self.batched else _checked(prim, result, ans, "JVP")


def _checked(prim: Primitive, result: Any, like: Any, kind: str) -> Any:
    expected = _shape(like)
    got = _shape(result)
    if got != expected:
        what = "argument" if kind == "VJP" else "output"
        raise ValueError(
            f"the {kind} of primitive {prim.name!r} returned shape {got}, but its "
            f"{what} has shape {expected}"
        )
    return result


def _transposed_vjp(decl: General, prim: Primitive, k: int, t: Any, ans: Any, args: tuple, params: dict) -> Any:
    """``J t`` from the VJP alone: one backward pass through the VJP, seeded with ``t``."""
    g0 = zeros(_shape(ans), _dtype(ans), like=unbox(ans))
    leaf = Node.leaf(g0)
    with new_trace(REVERSE) as trace:
        try:
            out = decl.vjp(prim, k, Tensor(g0, trace, leaf), ans, args, params)
        except TypeError as error:
            if "traced" not in str(error) and "cannot see a traced" not in str(error):
                raise
            raise RuleError(
                f"forward mode of primitive {prim.name!r} has no JVP rule, so it transposes "
                f"the VJP of argument {k}, which must then be written with einsumad ops "
                f"(the VJP applied a NumPy function to a traced cotangent: {error}). Declare "
                f"a JVP with ea.defjvp({prim.name}, ...), write the VJP with einsumad ops, "
                "or check reverse mode only (ea.check_grads(..., modes=('rev',)))."
            ) from None
    if not (isinstance(out, Tensor) and out.trace is trace):
        return zeros(_shape(ans), _dtype(ans), like=unbox(ans))
    found = backward([(out.node, t)])
    return found.get(leaf, zeros(_shape(ans), _dtype(ans), like=unbox(ans)))
