"""The extension API: declare your own primitive by what it is.

A primitive is a function written with NumPy plus a declaration of its
mathematics, of one of four kinds (the same kinds the built-in ops use)::

    ea.primitive(f, einsum="ij,jk->ik")        # VJP = the swap, JVP = the same einsum
    ea.primitive(f, elementwise=fprime)        # VJP = JVP = Hadamard product with f'
    ea.primitive(f, linear=transpose)          # VJP = the transpose, JVP = f itself
    @ea.primitive  +  ea.defvjp / ea.defjvp    # general: hand-written rules

``ea.derive``, ``ea.codegen``, ``ea.compile`` and the Jacobian view explain a
declared primitive exactly like a built-in of its kind. The tape calls exactly
the rule that was declared, right or wrong; this is what lets
``ea.check_grads`` catch a wrong one.

Rules of the general kind, in the style of HIPS/autograd::

    @ea.primitive
    def cube(x):
        return x ** 3

    ea.defvjp(cube, lambda ans, x: lambda g: g * 3 * x ** 2)

A user's rules and linear maps see one direction at a time: when a Jacobian
pushes a stack of directions through them, they are applied slice by slice.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from ..algebra.subscripts import parse
from ..core.arrays import dense, zeros
from ..core.arrays import dtype as _dtype
from ..core.arrays import ndim as _ndim
from ..core.arrays import shape as _shape
from ..core.einsum import Einsum
from ..core.elementwise import Elementwise
from ..core.general import General, map_leading
from ..core.linear import Linear
from ..core.primitive import Notation, Primitive
from ..core.structural import getitem_p, reshape_p, stack_p
from ..core.tape import unbox

__all__ = ["primitive", "defvjp", "defvjp_all", "defjvp"]

Rule = Callable[..., Any]


class _OneDirectionLinear(Linear):
    """A user's linear map and transpose, applied to one direction at a time."""

    def vjp(self, prim: Primitive, k: int, g: Any, ans: Any, args: tuple, params: dict) -> Any:
        extra = _ndim(g) - _ndim(ans)
        if extra:
            return map_leading(lambda gi: self.vjp(prim, k, gi, ans, args, params), g, extra, _shape(args[k]))
        return super().vjp(prim, k, g, ans, args, params)

    def jvp(self, prim: Primitive, tangents: dict[int, Any], ans: Any, args: tuple, params: dict) -> Any:
        k0, t0 = next(iter(tangents.items()))
        extra = _ndim(t0) - _ndim(args[k0])
        if not extra:
            return super().jvp(prim, tangents, ans, args, params)
        batch = _shape(t0)[:extra]
        count = int(np.prod(batch, dtype=np.int64))
        if count == 0:
            return zeros(batch + _shape(ans), _dtype(ans), like=unbox(ans))
        flat = {k: reshape_p(dense(t), shape=(count,) + _shape(args[k]))
                for k, t in tangents.items()}
        results = [
            super(_OneDirectionLinear, self).jvp(
                prim, {k: getitem_p(f, index=(i,)) for k, f in flat.items()}, ans, args, params
            )
            for i in range(count)
        ]
        return reshape_p(stack_p(*results, axis=0), shape=batch + _shape(ans))


def _declare(
    fun: Callable[..., Any],
    einsum: str | None,
    elementwise: Any,
    linear: Any,
    linear_args: Sequence[int] | None,
) -> Primitive:
    chosen = [k for k, v in (("einsum", einsum), ("elementwise", elementwise), ("linear", linear)) if v is not None]
    if len(chosen) > 1:
        raise TypeError(f"ea.primitive: declare one kind, not {' and '.join(chosen)}")
    name = getattr(fun, "__name__", "primitive")
    if einsum is not None:
        parse(einsum)  # an EinsumError quoting the subscripts, at declaration time
        declaration: Any = Einsum(einsum)
    elif elementwise is not None:
        partials = elementwise if isinstance(elementwise, (tuple, list)) else (elementwise,)
        declaration = Elementwise(
            tuple(_partial_from_user(p) for p in partials), Notation(name)
        )
    elif linear is not None:
        declaration = _OneDirectionLinear(
            _transpose_from_user(linear, name), linear_args=linear_args, describe=f"{name}^T"
        )
    else:
        declaration = General(batched=False)
    prim = Primitive(fun, name=name, declaration=declaration)
    functools.update_wrapper(prim, fun, updated=())  # type: ignore[arg-type]
    return prim


def _partial_from_user(fprime: Any) -> Any:
    if fprime is None or not callable(fprime):
        return fprime  # None (no derivative) or a constant number
    return lambda ans, *args, **params: fprime(*args, **params)


def _transpose_from_user(transpose: Callable[..., Any], name: str) -> Callable[..., Any]:
    def rule(k: int, g: Any, ans: Any, *args: Any, **params: Any) -> Any:
        result = transpose(g, *args, **params)
        if isinstance(result, (tuple, list)):
            if len(result) != len(args):
                raise ValueError(
                    f"the transpose of primitive {name!r} returned {len(result)} cotangent(s), "
                    f"but the primitive was called with {len(args)} argument(s)"
                )
            return result[k]
        return result

    return rule


def primitive(
    fun: Callable[..., Any] | None = None,
    *,
    einsum: str | None = None,
    elementwise: Any = None,
    linear: Callable[..., Any] | None = None,
    linear_args: Sequence[int] | None = None,
) -> Any:
    """Declare ``fun`` (written with NumPy) a primitive of the tape.

    Its positional arguments may be traced; keyword arguments are parameters.
    Say what it is, and its derivatives follow:

    * ``einsum="ij,jk->ik"``: ``fun`` computes that einsum (by any method);
      VJP by the swap, JVP by the same subscripts.
    * ``elementwise=fprime``: ``fun`` is elementwise with derivative
      ``fprime(*args)`` (written with einsumad ops); a tuple gives one partial
      per argument (None for an argument with no derivative).
    * ``linear=transpose``: ``fun`` is linear in ``linear_args`` (default all);
      ``transpose(g, *args)`` returns the cotangent (a tuple, one per argument,
      for several).
    * nothing: give rules with :func:`defvjp` (and optionally :func:`defjvp`;
      without one, forward mode transposes the VJP).

    Works as ``@ea.primitive``, ``@ea.primitive(elementwise=...)`` or
    ``ea.primitive(f, einsum=...)``.

    >>> import numpy as np, einsumad as ea
    >>> cube = ea.primitive(lambda x: x ** 3, elementwise=lambda x: 3 * x ** 2)
    >>> float(ea.grad(lambda x: cube(x))(2.0))
    12.0
    >>> @ea.primitive
    ... def square(x):
    ...     return x * x
    >>> ea.defvjp(square, lambda ans, x: lambda g: 2 * x * g)
    >>> float(ea.grad(lambda x: square(x))(3.0))
    6.0
    """
    if fun is None:
        return lambda f: _declare(f, einsum, elementwise, linear, linear_args)
    return _declare(fun, einsum, elementwise, linear, linear_args)


def _general(prim: Any, verb: str) -> General:
    if not isinstance(prim, Primitive):
        raise TypeError(f"{verb} expects a function decorated with @ea.primitive, got {prim!r}")
    if not isinstance(prim.declaration, General):
        raise TypeError(
            f"{verb}: primitive {prim.name!r} is declared {prim.kind}, so its rules follow "
            "from that declaration; declare it with plain @ea.primitive to write rules by hand"
        )
    return prim.declaration


def defvjp(prim: Primitive, *makers: Callable[..., Callable[[Any], Any]] | None, argnums: Sequence[int] | None = None) -> None:
    """Declare the VJP of ``prim`` for each argument, in the style of autograd.

    ``makers[i](ans, *args, **params)`` returns a function ``g -> cotangent``
    for argument ``argnums[i]`` (default: 0, 1, ...). Pass ``None`` for an
    argument that has no derivative.
    """
    declaration = _general(prim, "defvjp")
    argnums = tuple(range(len(makers))) if argnums is None else tuple(argnums)
    for argnum, maker in zip(argnums, makers):
        if maker is not None:
            declaration.vjp_rules[argnum] = _from_maker(maker)


def defvjp_all(prim: Primitive, maker: Callable[..., Callable[[Any], tuple]]) -> None:
    """Declare one VJP for all arguments: ``maker(ans, *args)(g)`` returns a tuple
    with one cotangent per positional argument (any number of them)."""
    declaration = _general(prim, "defvjp_all")

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

    declaration.vjp_rules = rule_for


def defjvp(prim: Primitive, *rules: Rule | None, argnums: Sequence[int] | None = None) -> None:
    """Declare the JVP of ``prim``: ``rules[i](t, ans, *args, **params)`` returns
    the output tangent caused by argument ``argnums[i]``'s tangent ``t``."""
    declaration = _general(prim, "defjvp")
    argnums = tuple(range(len(rules))) if argnums is None else tuple(argnums)
    for argnum, rule in zip(argnums, rules):
        if rule is not None:
            declaration.jvp_rules[argnum] = rule


def _from_maker(maker: Callable[..., Callable[[Any], Any]]) -> Rule:
    def rule(g: Any, ans: Any, *args: Any, **params: Any) -> Any:
        return maker(ans, *args, **params)(g)

    return rule
