"""The einsum kind: an op declared by its subscripts, differentiated by the swap.

::

    forward:  y[out]   = sum  prod_k x_k[s_k]                 spec   s_1,...,s_n->out
    VJP_k:    x̄_k[s_k] = sum  ḡ[out] prod_{j!=k} x_j[s_j]     swap   out,...(without s_k)->s_k
    JVP_k:    ẏ[out]   = sum  ẋ_k[s_k] prod_{j!=k} x_j[s_j]   the same spec, tangent in slot k

``einsum_p`` is the core's generalised einsum; every derived rule of every kind
is built from it. A user op declared ``Einsum("ij,jk->ik")`` computes its value
with its own implementation and gets the same rules.

A Kronecker delta among the operands (the seed of a Jacobian or Hessian pass)
is contracted by relabelling (:func:`~einsumad.algebra.swap.contract_delta`),
never multiplied.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from ..algebra import swap as algebra
from ..algebra.subscripts import Spec, parse, resolve
from .accumulate import PerArgument
from .arrays import full_like_scalar, ndim
from .arrays import shape as _shape
from .backend import evaluate
from .delta import KroneckerDelta
from .primitive import Primitive
from .tape import Tensor, unbox

__all__ = [
    "Einsum", "einsum_p", "contract", "swapped", "tangent_spec",
    "broadcast_batched", "unbroadcast", "scale_and_unbroadcast", "scale_and_broadcast",
]


@functools.lru_cache(maxsize=8192)
def swapped(spec: Spec, k: int, nbatch: int) -> Spec:
    """The VJP spec of operand ``k``, with ``nbatch`` batch symbols on the cotangent."""
    return algebra.swap(spec, k, algebra.batch_symbols(spec, nbatch))


@functools.lru_cache(maxsize=8192)
def tangent_spec(spec: Spec, k: int, nbatch: int) -> Spec:
    """The JVP spec along operand ``k``, with ``nbatch`` batch symbols on the tangent."""
    return algebra.with_batch(spec, k, algebra.batch_symbols(spec, nbatch))


@functools.lru_cache(maxsize=4096)
def _delta_contracted(spec: Spec, k: int) -> Spec:
    return algebra.contract_delta(spec, k)


@functools.lru_cache(maxsize=4096)
def _constant_axes_dropped(spec: Spec, k: int, axes: tuple[int, ...]) -> tuple[Spec, int, Spec]:
    """Operand ``k`` constant along ``axes``: the spec with those axes dropped from its
    term, the factor of the letters then summed over a constant, and the spec without
    operand ``k`` at all (for a core of one)."""
    reduced, summed = algebra.drop_constant_axes(spec, k, axes)
    factor = 1
    for s in summed:
        factor *= spec.size(s)
    return reduced, factor, reduced.with_terms(reduced.inputs[:k] + reduced.inputs[k + 1 :], reduced.output)


def contract(spec: Spec, *operands: Any) -> Any:
    """``einsum_p(*operands, spec=spec)``, with symbolic operands contracted without arrays.

    A Kronecker delta is contracted by relabelling. A constant broadcast array (a
    NumPy view with stride 0 along some axes, such as the cotangent of a sum: a
    scalar broadcast to the summed shape) is contracted as its unbroadcast core
    (:func:`~einsumad.algebra.swap.drop_constant_axes`): its product with another
    operand is a scale, and a scale by one costs nothing, so no temporary of the
    broadcast shape is ever made.
    """
    for k, operand in enumerate(operands):
        if isinstance(operand, KroneckerDelta) and len(operands) > 1:
            rest = operands[:k] + operands[k + 1 :]
            if all(isinstance(r, (int, float, complex)) for r in rest):
                # Python numbers adopt the delta's dtype, as they would an array's (and its library).
                if operand.namespace is np:
                    dtype = np.result_type(operand.dtype, *rest)
                    rest = tuple(np.asarray(r, dtype=dtype) for r in rest)
                else:
                    like = operand.namespace.zeros((), dtype=operand.dtype, device=operand.device)
                    rest = tuple(full_like_scalar(r, like) for r in rest)
            return contract(_delta_contracted(spec, k), *rest)
    if len(operands) > 1:
        for k, operand in enumerate(operands):
            if type(operand) is np.ndarray and 0 in operand.strides:
                scaled = _without_broadcast(spec, k, operands)
                if scaled is not None:
                    return scaled
    return einsum_p(*operands, spec=spec)


def _without_broadcast(spec: Spec, k: int, operands: tuple) -> Any:
    """``contract`` with operand ``k`` (a constant broadcast array) replaced by its core;
    None when it is broadcast along no axis of length > 1."""
    x = operands[k]
    if x.size == 0:
        return None
    if not any(x.strides):  # a scalar broadcast (the cotangent of a sum): its core is one number
        axes: tuple[int, ...] = tuple(range(x.ndim))
    else:
        axes = tuple(a for a, (n, step) in enumerate(zip(x.shape, x.strides)) if step == 0 and n > 1)
        if not axes:
            return None
    spec = _batch_sizes_read(spec, operands)
    reduced, factor, without = _constant_axes_dropped(spec, k, axes)
    rest = operands[:k] + operands[k + 1 :]
    if len(axes) == x.ndim:
        value = x.item(0) * factor
        if value == 1 and _keeps_dtype(x.dtype, rest):  # a scale by one: drop the operand
            if len(rest) == 1 and without.inputs[0] == without.output:  # the other operand itself
                if type(rest[0]) is np.ndarray:  # read-only: a cotangent never owns a user's array
                    view = rest[0].view()
                    view.flags.writeable = False
                    return view
                if isinstance(rest[0], Tensor):
                    return rest[0]
            return contract(without, *rest)
        core = np.asarray(value, dtype=x.dtype)
    else:
        core = x[tuple(0 if a in axes else slice(None) for a in range(x.ndim))]
        if factor != 1:
            core = np.asarray(core * factor, dtype=x.dtype)
    return contract(reduced, *operands[:k], core, *operands[k + 1 :])


def _batch_sizes_read(spec: Spec, operands: tuple) -> Spec:
    """``spec`` with the sizes it leaves to evaluation time (-1, the batch letters of a
    stacked cotangent) read from the operands' shapes: dropping the operand that carries
    such a letter (all of its axes constant) must not lose the letter's size."""
    unknown = {s for s, n in spec.sizes if n == -1}
    if not unknown:
        return spec
    sizes = dict(spec.sizes)
    for term, operand in zip(spec.inputs, operands):
        if isinstance(operand, (int, float, complex)):
            continue
        for s, n in zip(term, _shape(operand)):
            if s in unknown and (sizes[s] == -1 or n != 1):
                sizes[s] = n
    return spec.with_terms(spec.inputs, spec.output, sizes.items())


def _keeps_dtype(dtype: np.dtype, rest: tuple) -> bool:
    """Dropping an operand of ``dtype`` leaves the einsum's result dtype unchanged."""
    values = [unbox(r) for r in rest]
    if all(type(v) is np.ndarray and v.dtype == dtype for v in values):
        return True  # the common case, without NumPy's promotion machinery
    return bool(np.result_type(*[_dtype(v) for v in values]) == np.result_type(dtype, *[_dtype(v) for v in values]))


def _dtype(x: Any) -> Any:
    value = unbox(x)
    if isinstance(value, (int, float, complex)):
        return value
    return np.result_type(value)


class Einsum(PerArgument):
    """An op that *is* an einsum.

    Args:
        subscripts: fixed subscripts (``"ij,jk->ik"``), resolved against the
            operands' shapes at each call; or None for the core ``einsum_p``,
            whose resolved spec is its ``spec`` parameter.
    """

    kind = "einsum"

    def __init__(self, subscripts: str | None = None):
        self.subscripts = subscripts

    def spec(self, args: tuple, params: dict) -> Spec:
        """The resolved spec of one call."""
        if self.subscripts is None:
            return params["spec"]
        return _resolved(self.subscripts, tuple(_shape(a) for a in args))

    def vjp(self, prim: Primitive, k: int, g: Any, ans: Any, args: tuple, params: dict) -> Any:
        spec = self.spec(args, params)
        others = args[:k] + args[k + 1 :]
        return contract(swapped(spec, k, ndim(g) - len(spec.output)), g, *others)

    def jvp_one(self, prim: Primitive, k: int, t: Any, ans: Any, args: tuple, params: dict) -> Any:
        spec = self.spec(args, params)
        nbatch = ndim(t) - len(spec.inputs[k])
        return contract(tangent_spec(spec, k, nbatch), *args[:k], t, *args[k + 1 :])


@functools.lru_cache(maxsize=4096)
def _resolved(subscripts: str, shapes: tuple) -> Spec:
    return resolve(parse(subscripts), shapes)


def _einsum_impl(*operands: Any, spec: Spec) -> Any:
    for k, operand in enumerate(operands):
        if isinstance(operand, KroneckerDelta) and len(operands) > 1:
            return _einsum_impl(*operands[:k], *operands[k + 1 :], spec=_delta_contracted(spec, k))
    result = evaluate(spec, *operands)
    if type(result) is np.ndarray and result.ndim == 0 and all(type(o) in (int, float, complex) for o in operands):
        return result[()]  # numbers in, a NumPy scalar out (as numpy.einsum): a bind makes it a weak number
    return result


einsum_p = Primitive(_einsum_impl, name="einsum", declaration=Einsum())


# ================================================================= broadcasting as einsums
#   broadcast:    y[out] = x[s]                 spec "s->out" (letters of out absent from s)
#   unbroadcast:  x̄[s]   = sum ḡ[out]           its swap "out->s": sums the broadcast letters
#   Hadamard VJP: x̄[s]   = sum ḡ[out] p[out']    one einsum: the product and the sum at once


@functools.lru_cache(maxsize=4096)
def _broadcast_term_spec(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Spec:
    """The unary einsum that broadcasts ``shape`` to ``out_shape`` (NumPy rules)."""
    both = algebra.broadcast_spec(shape, out_shape)
    if tuple(both.shape(both.output)) != tuple(out_shape):
        raise ValueError(f"cannot broadcast shape {shape} to {out_shape}")
    return both.with_terms((both.inputs[0],), both.output)


def broadcast_batched(t: Any, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Any:
    """Broadcast ``t`` (``shape`` plus leading batch axes) to ``out_shape``."""
    if tuple(shape) == tuple(out_shape):
        return t
    spec = _broadcast_term_spec(tuple(shape), tuple(out_shape))
    return contract(tangent_spec(spec, 0, ndim(t) - len(shape)), t)


def unbroadcast(g: Any, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Any:
    """Sum ``g`` (``out_shape`` plus leading batch axes) back down to ``shape``."""
    if tuple(shape) == tuple(out_shape):
        return g
    spec = _broadcast_term_spec(tuple(shape), tuple(out_shape))
    return contract(swapped(spec, 0, ndim(g) - len(out_shape)), g)


@functools.lru_cache(maxsize=4096)
def _scaled_spec(arg_shape: tuple[int, ...], factor_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Spec:
    """``x[s], p[s'] -> y[out]``: an argument broadcast to ``out_shape`` times a factor."""
    both = algebra.broadcast_spec(arg_shape, factor_shape, out_shape)
    if tuple(both.shape(both.output)) != tuple(out_shape):
        raise ValueError(f"cannot broadcast shapes {arg_shape} and {factor_shape} to {out_shape}")
    return both.with_terms(both.inputs[:2], both.output)


def _is_one(p: Any) -> bool:
    return isinstance(p, (int, float)) and not isinstance(p, bool) and p == 1


def scale_and_unbroadcast(g: Any, factor: Any, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Any:
    """``unbroadcast(g ⊙ factor)`` as one einsum: the VJP of an elementwise argument.

    ``g`` has ``out_shape`` plus leading batch axes; ``factor`` broadcasts to
    ``out_shape``; the result has ``shape`` plus the batch axes. A factor of the
    number 1 costs nothing (the cotangent passes through).
    """
    if _is_one(factor):
        return unbroadcast(g, shape, out_shape)
    spec = _scaled_spec(tuple(shape), _shape(factor), tuple(out_shape))
    # Swap the argument's term with the output's: the argument's letters come out.
    return contract(swapped(spec, 0, ndim(g) - len(out_shape)), g, factor)


def scale_and_broadcast(t: Any, factor: Any, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Any:
    """``broadcast(t) ⊙ factor`` as one einsum: the JVP of an elementwise argument."""
    if _is_one(factor):
        return broadcast_batched(t, shape, out_shape)
    spec = _scaled_spec(tuple(shape), _shape(factor), tuple(out_shape))
    return contract(tangent_spec(spec, 0, ndim(t) - len(shape)), t, factor)


def einsum_of(subscripts: str) -> Callable[..., Any]:
    """The core einsum on fixed subscripts (no pairwise recording): for rules."""

    def call(*operands: Any) -> Any:
        return contract(_resolved(subscripts, tuple(_shape(o) for o in operands)), *operands)

    return call
