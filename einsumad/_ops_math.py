"""Arithmetic ops: the einsum primitive, products, sums, elementwise functions.

Every op states its forward computation next to its derivative rules, so the
swap (for einsums) and the Hadamard product (for elementwise functions) are
visible where they are born:

* ``einsum``: forward ``s_1,...,s_n->out``; VJP w.r.t. operand k is the swapped
  einsum ``out, s_1..s_n without s_k -> s_k`` (:func:`~einsumad._algebra.swap`);
  JVP is the same einsum with operand k replaced by its tangent.
* ``multiply`` is the einsum that NumPy broadcasting assigns (``b,ab->ab``), so
  its VJP unbroadcasts by the swap (``ab,ab->b``) with no extra code.
* an elementwise ``y = f(x)`` has a diagonal Jacobian: its VJP is the diagonal
  einsum ``I,I->I`` of the cotangent with ``f'(x)``, i.e. ``g * f'(x)``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import _algebra
from ._backend import contraction_path, evaluate
from ._delta import KroneckerDelta
from ._ops_compare import greater, step
from ._primitive import Primitive
from ._subscripts import Spec, parse, resolve
from ._tape import Tensor, unbox

__all__ = [
    "einsum", "add", "subtract", "multiply", "divide", "negative", "power",
    "exp", "log", "tanh", "sigmoid", "sin", "cos", "sqrt", "relu", "reciprocal",
    "square", "sum", "mean", "matmul", "transpose",
]

MAX_OPERANDS = 64


def _ndim(x: Any) -> int:
    return np.ndim(unbox(x))


def _shape(x: Any) -> tuple[int, ...]:
    return np.shape(unbox(x))


# ================================================================= the einsum primitive
#   forward:  y[out]  = sum  prod_k x_k[s_k]                    spec   "s_1,...,s_n->out"
#   VJP_k:    x̄_k[s_k] = sum  ḡ[out] prod_{j!=k} x_j[s_j]         swap   "out,...->s_k"
#   JVP_k:    ẏ[out]  = sum  ẋ_k[s_k] prod_{j!=k} x_j[s_j]         same spec, tangent in slot k


def _einsum_impl(*operands: Any, spec: Spec) -> np.ndarray:
    return evaluate(spec, *operands)


einsum_p = Primitive(_einsum_impl, name="einsum", batched=True)


@functools.lru_cache(maxsize=8192)
def _swapped(spec: Spec, k: int, nbatch: int) -> Spec:
    return _algebra.swap(spec, k, _algebra.batch_symbols(spec, nbatch))


@functools.lru_cache(maxsize=8192)
def _tangent_spec(spec: Spec, k: int, nbatch: int) -> Spec:
    return _algebra.with_batch(spec, k, _algebra.batch_symbols(spec, nbatch))


def _einsum_vjp(k: int) -> Callable[..., Any]:
    def vjp(g: Any, ans: Any, *operands: Any, spec: Spec) -> Any:
        swapped = _swapped(spec, k, _ndim(g) - len(spec.output))
        others = operands[:k] + operands[k + 1 :]
        if isinstance(g, KroneckerDelta) and others:
            return einsum_p(*others, spec=_delta_contracted(swapped, 0))
        return einsum_p(g, *others, spec=swapped)

    return vjp


def _einsum_jvp(k: int) -> Callable[..., Any]:
    def jvp(t: Any, ans: Any, *operands: Any, spec: Spec) -> Any:
        tangent_spec = _tangent_spec(spec, k, _ndim(t) - len(spec.inputs[k]))
        if isinstance(t, KroneckerDelta) and len(operands) > 1:
            others = operands[:k] + operands[k + 1 :]
            return einsum_p(*others, spec=_delta_contracted(tangent_spec, k))
        return einsum_p(*operands[:k], t, *operands[k + 1 :], spec=tangent_spec)

    return jvp


@functools.lru_cache(maxsize=4096)
def _delta_contracted(spec: Spec, k: int) -> Spec:
    return _algebra.contract_delta(spec, k)


for _k in range(MAX_OPERANDS):
    einsum_p.def_vjp(_k, _einsum_vjp(_k))
    einsum_p.def_jvp(_k, _einsum_jvp(_k))


@functools.lru_cache(maxsize=8192)
def _resolved(subscripts: str, shapes: tuple, sizes: tuple) -> Spec:
    return resolve(parse(subscripts), shapes, dict(sizes))


def _as_operands(operands: Sequence[Any]) -> list[Any]:
    """Lists and Python scalars become arrays of the operands' common dtype."""
    if all(isinstance(o, (np.ndarray, Tensor)) for o in operands):
        return list(operands)
    dtype = np.result_type(*[unbox(o) if isinstance(o, (np.ndarray, Tensor)) else np.asarray(o) if isinstance(o, (list, tuple)) else o for o in operands])
    return [o if isinstance(o, (np.ndarray, Tensor)) else np.asarray(o, dtype=dtype) for o in operands]


def einsum(subscripts: str, *operands: Any, sizes: Mapping[str, int] | None = None) -> Any:
    """Generalised Einstein summation, differentiable in every operand.

    Accepts everything :func:`numpy.einsum` accepts (implicit output, ``...``,
    broadcasting of size-1 axes, repeated letters within an operand), and two
    generalised output forms: a repeated output letter embeds a diagonal
    (``"i->ii"``), and an output letter absent from every operand broadcasts
    (``"i->ij"``, its size given in ``sizes``). Named indices work too:
    ``"batch in, in out -> batch out"``.

    Three or more operands are contracted pairwise along opt_einsum's optimised
    path; when traced, each pairwise step is recorded, so the gradient costs a
    small multiple of the forward pass.

    Args:
        subscripts: the einsum subscripts.
        *operands: arrays or traced tensors, one per term.
        sizes: sizes of output indices that appear in no operand.

    >>> import numpy as np, einsumad as ea
    >>> W, a = np.arange(6.0).reshape(2, 3), np.ones(3)
    >>> ea.einsum("ij,j->i", W, a)
    array([ 3., 12.])
    >>> ea.einsum("i->ij", np.array([1.0, 2.0]), sizes={"j": 3})
    array([[1., 1., 1.],
           [2., 2., 2.]])
    """
    operands_list = _as_operands(operands)
    shapes = tuple(_shape(o) for o in operands_list)
    spec = _resolved(subscripts, shapes, tuple(sorted(sizes.items())) if sizes else ())
    if len(operands_list) <= 2 or not any(isinstance(o, Tensor) for o in operands_list):
        return einsum_p(*operands_list, spec=spec)
    return _contract_pairwise(spec, operands_list, shapes)


def _contract_pairwise(spec: Spec, operands: list[Any], shapes: tuple) -> Any:
    """Record an n-ary einsum as the pairwise einsums of its optimised path."""
    path = contraction_path(spec, shapes)
    for positions, step_spec in _steps(spec, path):
        chosen = [operands[p] for p in positions]
        operands = [o for i, o in enumerate(operands) if i not in positions]
        operands.append(einsum_p(*chosen, spec=step_spec))
    (result,) = operands
    return result


@functools.lru_cache(maxsize=4096)
def _steps(spec: Spec, path: tuple) -> tuple:
    return tuple(_algebra.pairwise_steps(spec, path))


def _einsum_spec(subscripts: str, *shapes: tuple[int, ...]) -> Spec:
    return _resolved(subscripts, tuple(shapes), ())


# ================================================================= broadcasting helpers
#   broadcast_to:  y[out] = x[s]          spec "s->out" (letters of out absent from s broadcast)
#   unbroadcast:   x̄[s]   = sum ḡ[out]    its swap "out->s": sums the broadcast letters out


@functools.lru_cache(maxsize=4096)
def _broadcast_term_spec(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Spec:
    """The unary einsum that broadcasts ``shape`` to ``out_shape`` (NumPy rules)."""
    both = _algebra.broadcast_spec(shape, out_shape)
    if tuple(both.shape(both.output)) != tuple(out_shape):
        raise ValueError(f"cannot broadcast shape {shape} to {out_shape}")
    return Spec((both.inputs[0],), both.output, both.sizes)


def broadcast_batched(t: Any, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Any:
    """Broadcast ``t`` (``shape`` plus leading batch axes) to ``out_shape``."""
    if tuple(shape) == tuple(out_shape):
        return t
    spec = _broadcast_term_spec(tuple(shape), tuple(out_shape))
    return einsum_p(t, spec=_tangent_spec(spec, 0, _ndim(t) - len(shape)))


def unbroadcast(g: Any, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Any:
    """Sum ``g`` (``out_shape`` plus leading batch axes) back down to ``shape``."""
    if tuple(shape) == tuple(out_shape):
        return g
    spec = _broadcast_term_spec(tuple(shape), tuple(out_shape))
    return einsum_p(g, spec=_swapped(spec, 0, _ndim(g) - len(out_shape)))


# ================================================================= add, subtract, negate
#   add:       y = x1 + x2  (broadcast)   VJP_k: unbroadcast(ḡ)   JVP_k: broadcast(ẋ_k)


add_p = Primitive(np.add, name="add", batched=True)
subtract_p = Primitive(np.subtract, name="subtract", batched=True)
negative_p = Primitive(np.negative, name="negative", batched=True)

for _k, _sign in ((0, 1), (1, 1)):
    add_p.def_vjp(_k, lambda g, ans, *xs, _k=_k: unbroadcast(g, _shape(xs[_k]), _shape(ans)))
    add_p.def_jvp(_k, lambda t, ans, *xs, _k=_k: broadcast_batched(t, _shape(xs[_k]), _shape(ans)))
subtract_p.def_vjp(0, lambda g, ans, x, y: unbroadcast(g, _shape(x), _shape(ans)))
subtract_p.def_vjp(1, lambda g, ans, x, y: negative(unbroadcast(g, _shape(y), _shape(ans))))
subtract_p.def_jvp(0, lambda t, ans, x, y: broadcast_batched(t, _shape(x), _shape(ans)))
subtract_p.def_jvp(1, lambda t, ans, x, y: negative(broadcast_batched(t, _shape(y), _shape(ans))))
negative_p.def_vjp(0, lambda g, ans, x: negative(g))
negative_p.def_jvp(0, lambda t, ans, x: negative(t))


def add(x: Any, y: Any) -> Any:
    """``x + y`` with NumPy broadcasting; the VJP sums broadcast axes out."""
    return add_p(x, y)


def subtract(x: Any, y: Any) -> Any:
    """``x - y`` with NumPy broadcasting."""
    return subtract_p(x, y)


def negative(x: Any) -> Any:
    """``-x``."""
    return negative_p(x)


# ================================================================= multiply: an einsum
#   y[ab] = x1[b] x2[ab]   (broadcast_spec)    VJP_1: x̄1[b] = sum_a ḡ[ab] x2[ab]


def multiply(x: Any, y: Any) -> Any:
    """Elementwise ``x * y``: the einsum that NumPy broadcasting assigns.

    >>> import einsumad as ea
    >>> str(ea._algebra.broadcast_spec((3,), (2, 3)))
    'b,ab->ab'
    """
    spec = _product_spec(_shape(x), _shape(y))
    return einsum_p(x, y, spec=spec)


@functools.lru_cache(maxsize=4096)
def _product_spec(shape_x: tuple[int, ...], shape_y: tuple[int, ...]) -> Spec:
    return _algebra.broadcast_spec(shape_x, shape_y)


# ================================================================= divide and power
#   y = x1 / x2     ∂y/∂x1 = 1/x2            ∂y/∂x2 = -y/x2
#   y = x1 ** x2    ∂y/∂x1 = x2 x1^(x2-1)    ∂y/∂x2 = log(x1) y


def _binary_elementwise(
    name: str, fun: Callable[[Any, Any], Any], partials: Sequence[Callable[..., Any]]
) -> Primitive:
    """A broadcasting binary op whose VJP is ``unbroadcast(g * ∂f/∂x_k)``."""
    prim = Primitive(fun, name=name, batched=True)
    for k, partial in enumerate(partials):
        def vjp(g: Any, ans: Any, x: Any, y: Any, partial=partial, k=k) -> Any:
            return unbroadcast(multiply(g, partial(ans, x, y)), _shape((x, y)[k]), _shape(ans))

        def jvp(t: Any, ans: Any, x: Any, y: Any, partial=partial, k=k) -> Any:
            return multiply(broadcast_batched(t, _shape((x, y)[k]), _shape(ans)), partial(ans, x, y))

        prim.def_vjp(k, vjp)
        prim.def_jvp(k, jvp)
    return prim


divide_p = _binary_elementwise(
    "divide",
    np.divide,
    (lambda ans, x, y: divide(1, y), lambda ans, x, y: negative(divide(ans, y))),
)


def _power_base_partial(x: Any, y: Any) -> Any:
    """y x^(y-1); for a constant exponent, written as a person would (2x for x**2)."""
    if isinstance(y, (int, float)) and not isinstance(y, bool):
        return multiply(x, 2) if y == 2 else multiply(power(x, y - 1), y)
    return multiply(y, power(x, subtract(y, 1)))


def _safe_log(x: Any) -> Any:
    """log(x) where x > 0, else 0: the exponent's partial of x**y at x <= 0."""
    positive = greater(x, 0)
    return where(positive, log(where(positive, x, 1.0)), 0.0)


power_p = _binary_elementwise(
    "power",
    np.power,
    (
        lambda ans, x, y: _power_base_partial(x, y),
        lambda ans, x, y: multiply(_safe_log(x), ans),
    ),
)


def divide(x: Any, y: Any) -> Any:
    """Elementwise ``x / y`` with broadcasting."""
    return divide_p(x, y)


def power(x: Any, y: Any) -> Any:
    """Elementwise ``x ** y``; ``y`` may be a tensor (its partial is ``log(x) x**y``)."""
    if isinstance(y, (int, float)) and not isinstance(y, bool) and not isinstance(x, Tensor):
        return np.power(x, y)
    return power_p(x, y)


# ================================================================= elementwise functions
#   y = f(x)   Jacobian diag(f'(x))   VJP: ḡ ⊙ f'(x)  (the diagonal einsum I,I->I)
#                                     JVP: ẋ ⊙ f'(x)


def _elementwise(name: str, fun: Callable[[Any], Any], derivative: Callable[[Any, Any], Any]) -> Primitive:
    """A unary elementwise primitive from ``f`` and ``f'`` written as ``(x, y) -> f'(x)``."""
    prim = Primitive(fun, name=name, batched=True)
    prim.def_vjp(0, lambda g, ans, x: multiply(g, derivative(x, ans)))
    prim.def_jvp(0, lambda t, ans, x: multiply(t, derivative(x, ans)))
    return prim


exp_p = _elementwise("exp", np.exp, lambda x, y: y)
log_p = _elementwise("log", np.log, lambda x, y: reciprocal(x))
tanh_p = _elementwise("tanh", np.tanh, lambda x, y: subtract(1, multiply(y, y)))
sigmoid_p = _elementwise(
    "sigmoid", lambda x: _sigmoid_impl(x), lambda x, y: multiply(y, subtract(1, y))
)
sin_p = _elementwise("sin", np.sin, lambda x, y: cos(x))
cos_p = _elementwise("cos", np.cos, lambda x, y: negative(sin(x)))
sqrt_p = _elementwise("sqrt", np.sqrt, lambda x, y: divide(0.5, y))
relu_p = _elementwise("relu", lambda x: np.maximum(x, 0), lambda x, y: step(x))
reciprocal_p = _elementwise("reciprocal", lambda x: np.divide(1, x), lambda x, y: negative(multiply(y, y)))
square_p = _elementwise("square", np.square, lambda x, y: multiply(x, 2))


def _sigmoid_impl(x: Any) -> np.ndarray:
    """1 / (1 + exp(-x)), evaluated without overflow for large |x|."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.result_type(x, np.float16))


def exp(x: Any) -> Any:
    """Elementwise ``e**x``; ``f'(x) = exp(x)``."""
    return exp_p(x)


def log(x: Any) -> Any:
    """Elementwise natural logarithm; ``f'(x) = 1/x``."""
    return log_p(x)


def tanh(x: Any) -> Any:
    """Elementwise ``tanh``; ``f'(x) = 1 - tanh(x)**2``."""
    return tanh_p(x)


def sigmoid(x: Any) -> Any:
    """Elementwise logistic ``1/(1+e**-x)``; ``f'(x) = s(x)(1 - s(x))``."""
    return sigmoid_p(x)


def sin(x: Any) -> Any:
    """Elementwise sine; ``f'(x) = cos(x)``."""
    return sin_p(x)


def cos(x: Any) -> Any:
    """Elementwise cosine; ``f'(x) = -sin(x)``."""
    return cos_p(x)


def sqrt(x: Any) -> Any:
    """Elementwise square root; ``f'(x) = 1/(2 sqrt(x))``."""
    return sqrt_p(x)


def relu(x: Any) -> Any:
    """Elementwise ``max(x, 0)``; ``f'(x) = 1 if x > 0 else 0``."""
    return relu_p(x)


def reciprocal(x: Any) -> Any:
    """Elementwise ``1/x``; ``f'(x) = -1/x**2``."""
    return reciprocal_p(x)


def square(x: Any) -> Any:
    """Elementwise ``x**2``; ``f'(x) = 2x``."""
    return square_p(x)


def where(condition: Any, x: Any, y: Any) -> Any:
    """Elementwise choice; defined in the op library, imported lazily here."""
    from ._ops_select import where as _where

    return _where(condition, x, y)


# ================================================================= reductions as einsums
#   sum over axis 1:  y[i] = sum_j x[ij]   spec "ij->i"   VJP "i->ij" (broadcast back)


def _normalize_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(f"axis {a} is out of range for an array of dimension {ndim}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(out))


@functools.lru_cache(maxsize=4096)
def _sum_spec(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Spec:
    """``ij->i`` for a sum over axis 1; with keepdims, a size-1 letter in its place."""
    letters = _algebra.fresh_symbols("", 2 * len(shape))
    term = letters[: len(shape)]
    sizes = {s: n for s, n in zip(term, shape)}
    out = []
    for axis, s in enumerate(term):
        if axis not in axes:
            out.append(s)
        elif keepdims:
            kept = letters[len(shape) + axis]
            sizes[kept] = 1
            out.append(kept)
    return Spec((term,), "".join(out), tuple(sorted(sizes.items())))


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum over ``axis`` (all axes by default), as the einsum ``ij->i``.

    >>> import numpy as np, einsumad as ea
    >>> ea.sum(np.ones((2, 3)), axis=1)
    array([3., 3.])
    """
    shape = _shape(x)
    spec = _sum_spec(shape, _normalize_axes(axis, len(shape)), bool(keepdims))
    return einsum_p(x, spec=spec)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Mean over ``axis``: the sum times ``1/n``."""
    shape = _shape(x)
    axes = _normalize_axes(axis, len(shape))
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    return multiply(sum(x, axis=axes, keepdims=keepdims), 1.0 / count if count else np.nan)


# ================================================================= matmul and transpose


_MATMUL_SUBSCRIPTS = {
    (True, True): "...ij,...jk->...ik",
    (False, True): "j,...jk->...k",
    (True, False): "...ij,j->...i",
    (False, False): "j,j->",
}


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` as an einsum: ``...ij,...jk->...ik`` (vectors drop their letter)."""
    ndim_a, ndim_b = _ndim(a), _ndim(b)
    if ndim_a == 0 or ndim_b == 0:
        raise ValueError("matmul: an operand is 0-dimensional; use * to scale")
    return einsum(_MATMUL_SUBSCRIPTS[ndim_a >= 2, ndim_b >= 2], a, b)


def transpose(x: Any, axes: Sequence[int] | None = None) -> Any:
    """Permute axes (reverse them by default): the einsum ``ij->ji``."""
    ndim = _ndim(x)
    if axes is None:
        order = tuple(reversed(range(ndim)))
    else:
        for a in axes:
            if not -ndim <= int(a) < ndim:
                raise np.exceptions.AxisError(f"axis {a} is out of range for an array of dimension {ndim}")
        order = tuple(int(a) % ndim for a in axes)
    if sorted(order) != list(range(ndim)):
        raise ValueError(f"axes {tuple(axes) if axes is not None else None} are not a permutation of {ndim} axes")
    letters = _algebra.fresh_symbols("", ndim)
    subscripts = letters + "->" + "".join(letters[a] for a in order)
    return einsum_p(x, spec=_einsum_spec(subscripts, _shape(x)))


# ================================================================= dtype conversion
#   forward: y = x as dtype       VJP: ḡ as x's dtype       JVP: ẋ as dtype

astype_p = Primitive(lambda x, dtype: np.asarray(x).astype(dtype, copy=False), name="astype", batched=True)
astype_p.def_vjp(0, lambda g, ans, x, dtype: astype_p(g, dtype=np.result_type(unbox(x))))
astype_p.def_jvp(0, lambda t, ans, x, dtype: astype_p(t, dtype=dtype))


def astype(x: Any, dtype: Any) -> Any:
    """``x`` converted to ``dtype``; derivatives convert back."""
    return astype_p(x, dtype=np.dtype(dtype))
