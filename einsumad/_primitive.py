"""Primitives: a NumPy implementation plus derivative rules, and the extension API.

A :class:`Primitive` is what the tape records. Its rules have the signatures

* ``vjp_rule(g, ans, *args, **params)``: the cotangent for one argument, given
  the output cotangent ``g``;
* ``jvp_rule(t, ans, *args, **params)``: the output tangent contributed by one
  argument's tangent ``t``.

Built-in rules accept cotangents and tangents that carry leading batch axes
(``batched=True``). A user's rules need not: the tape then applies them one
direction at a time.

Users declare their own primitives in the style of HIPS/autograd::

    @ea.primitive
    def cube(x):
        return x ** 3

    ea.defvjp(cube, lambda ans, x: lambda g: g * 3 * x ** 2)

The tape calls exactly the rule that was declared, right or wrong; this is what
lets ``ea.check_grads`` catch a wrong one.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from ._tape import bind, unbox

__all__ = ["Primitive", "primitive", "nondifferentiable", "defvjp", "defvjp_all", "defjvp"]

Rule = Callable[..., Any]


class Primitive:
    """A differentiable operation known to the tape."""


    def __init__(
        self,
        impl: Callable[..., Any],
        name: str | None = None,
        batched: bool = False,
        differentiable: bool = True,
    ):
        self.impl = impl
        self.differentiable = differentiable
        self.name = name or getattr(impl, "__name__", "primitive")
        self.vjp_rules: dict[int, Rule] = {}
        self.jvp_rules: dict[int, Rule] = {}
        self.batched = batched
        self.__wrapped__ = impl
        self.__doc__ = getattr(impl, "__doc__", None)
        self.__name__ = self.name

    def __call__(self, *args: Any, **params: Any) -> Any:
        return bind(self, args, params)

    def __repr__(self) -> str:
        return f"<einsumad primitive {self.name}>"

    def def_vjp(self, argnum: int, rule: Rule) -> None:
        self.vjp_rules[argnum] = rule

    def def_jvp(self, argnum: int, rule: Rule) -> None:
        self.jvp_rules[argnum] = rule

    # -- called by the tape ---------------------------------------------------------

    def vjp(self, argnum: int, g: Any, ans: Any, args: tuple, params: dict) -> Any:
        rule = self.vjp_rules.get(argnum)
        if rule is None:
            raise NotImplementedError(
                f"no VJP is defined for argument {argnum} of primitive {self.name!r}; "
                f"declare one with ea.defvjp({self.name}, ...)"
            )
        if self.batched:
            return rule(g, ans, *args, **params)
        extra = np.ndim(unbox(g)) - np.ndim(unbox(ans))
        if extra == 0:
            return self._checked(rule(g, ans, *args, **params), args[argnum], extra, "VJP")
        return _map_leading(lambda gi: self.vjp(argnum, gi, ans, args, params), g, extra)

    def jvp(self, argnum: int, t: Any, ans: Any, args: tuple, params: dict) -> Any:
        rule = self.jvp_rules.get(argnum)
        extra = np.ndim(unbox(t)) - np.ndim(unbox(args[argnum]))
        if not self.batched and extra:
            return _map_leading(lambda ti: self.jvp(argnum, ti, ans, args, params), t, extra)
        if rule is None:
            return self._jvp_by_transposing_vjp(argnum, t, ans, args, params)
        return self._checked(rule(t, ans, *args, **params), ans, extra, "JVP")

    def _checked(self, result: Any, like: Any, extra: int, kind: str) -> Any:
        if self.batched:
            return result
        expected = np.shape(unbox(like))
        got = np.shape(unbox(result))
        if got != expected:
            what = "argument" if kind == "VJP" else "output"
            raise ValueError(
                f"the {kind} of primitive {self.name!r} returned shape {got}, but its "
                f"{what} has shape {expected}"
            )
        return result

    def _jvp_by_transposing_vjp(self, argnum: int, t: Any, ans: Any, args: tuple, params: dict) -> Any:
        """J t from the VJP alone: the VJP is linear in g, so J t = grad_g <VJP(g), t>."""
        from ._ops_math import multiply
        from ._ops_math import sum as total
        from ._transforms import grad

        def pairing(g: Any) -> Any:
            return total(multiply(self.vjp(argnum, g, ans, args, params), t))

        g0 = np.zeros(np.shape(unbox(ans)), dtype=np.result_type(unbox(ans)))
        return grad(pairing)(g0)


def _map_leading(fn: Callable[[Any], Any], x: Any, extra: int) -> Any:
    """Apply ``fn`` to each slice along ``extra`` leading axes and stack the results."""
    from ._ops_shape import reshape, stack

    batch = np.shape(unbox(x))[:extra]
    flat = reshape(x, (-1,) + np.shape(unbox(x))[extra:])
    results = [fn(flat[i]) for i in range(int(np.prod(batch, dtype=np.int64)))]
    stacked = stack(results, axis=0)
    return reshape(stacked, batch + np.shape(unbox(stacked))[1:])


def nondifferentiable(fun: Callable[..., Any], name: str | None = None) -> Primitive:
    """A primitive through which no derivative flows (comparisons, masks, argmax).

    Its result is a constant to every differentiation trace. Value-dependent
    constants inside rules (the 0/1 mask in relu's derivative, the tie mask of
    ``max``) are computed through such primitives rather than on raw values, so
    that a traced program can replay them on new inputs.
    """
    return Primitive(fun, name=name or getattr(fun, "__name__", None), differentiable=False)


def primitive(fun: Callable[..., Any]) -> Primitive:
    """Declare ``fun`` (written with NumPy) a primitive of the tape.

    Its positional arguments may be traced; keyword arguments are parameters.
    Give it derivatives with :func:`defvjp` (and optionally :func:`defjvp`;
    without one, forward mode transposes the VJP).

    >>> import einsumad as ea
    >>> @ea.primitive
    ... def cube(x):
    ...     return x ** 3
    >>> ea.defvjp(cube, lambda ans, x: lambda g: g * 3 * x ** 2)
    >>> float(ea.grad(lambda x: cube(x))(2.0))
    12.0
    """
    prim = Primitive(fun)
    functools.update_wrapper(prim, fun, updated=())  # type: ignore[arg-type]
    return prim


def defvjp(prim: Primitive, *makers: Callable[..., Callable[[Any], Any]] | None, argnums: tuple[int, ...] | None = None) -> None:
    """Declare the VJP of ``prim`` for each argument, in the style of autograd.

    ``makers[i](ans, *args, **params)`` returns a function ``g -> cotangent``
    for argument ``argnums[i]`` (default: 0, 1, ...). Pass ``None`` for an
    argument that has no derivative.
    """
    _require_primitive(prim, "defvjp")
    argnums = tuple(range(len(makers))) if argnums is None else tuple(argnums)
    for argnum, maker in zip(argnums, makers):
        if maker is None:
            continue
        prim.def_vjp(argnum, _from_maker(maker))


def defvjp_all(prim: Primitive, maker: Callable[..., Callable[[Any], tuple]]) -> None:
    """Declare one VJP for all arguments: ``maker(ans, *args)(g)`` returns a tuple
    with one cotangent per positional argument."""
    _require_primitive(prim, "defvjp_all")

    def rule_for(argnum: int) -> Rule:
        def rule(g: Any, ans: Any, *args: Any, **params: Any) -> Any:
            grads = maker(ans, *args, **params)(g)
            if not isinstance(grads, (tuple, list)) or len(grads) != len(args):
                count = len(grads) if isinstance(grads, (tuple, list)) else 1
                raise ValueError(
                    f"the VJP of primitive {prim.name!r} returned {count} gradient(s), "
                    f"but the primitive was called with {len(args)} argument(s)"
                )
            return grads[argnum]

        return rule

    for argnum in range(_positional_count(prim)):
        prim.def_vjp(argnum, rule_for(argnum))


def defjvp(prim: Primitive, *rules: Rule | None, argnums: tuple[int, ...] | None = None) -> None:
    """Declare the JVP of ``prim``: ``rules[i](t, ans, *args, **params)`` returns
    the output tangent caused by argument ``argnums[i]``'s tangent ``t``."""
    _require_primitive(prim, "defjvp")
    argnums = tuple(range(len(rules))) if argnums is None else tuple(argnums)
    for argnum, rule in zip(argnums, rules):
        if rule is not None:
            prim.def_jvp(argnum, rule)


def _from_maker(maker: Callable[..., Callable[[Any], Any]]) -> Rule:
    def rule(g: Any, ans: Any, *args: Any, **params: Any) -> Any:
        return maker(ans, *args, **params)(g)

    return rule


def _require_primitive(prim: Any, verb: str) -> None:
    if not isinstance(prim, Primitive):
        raise TypeError(f"{verb} expects a function decorated with @ea.primitive, got {prim!r}")


def _positional_count(prim: Primitive) -> int:
    import inspect

    try:
        params = inspect.signature(prim.impl).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 16
    return sum(1 for p in params if p.kind in kinds)

