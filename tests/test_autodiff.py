"""Reverse mode and its API: grad, value_and_grad, vjp, argnums, dtypes, Tensor
arithmetic, elementwise functions, nesting (Hessian-vector products), and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import einsumad as ea
from tests.numeric import numerical_gradient

# ----------------------------------------------------------------- elementwise functions
# (einsumad function, numpy function, a domain sampler)

ELEMENTWISE = [
    (ea.exp, np.exp, lambda r: r.normal(size=(2, 3))),
    (ea.log, np.log, lambda r: r.uniform(0.5, 2.0, size=(2, 3))),
    (ea.tanh, np.tanh, lambda r: r.normal(size=(2, 3))),
    (ea.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda r: r.normal(size=(2, 3))),
    (ea.sin, np.sin, lambda r: r.normal(size=(2, 3))),
    (ea.cos, np.cos, lambda r: r.normal(size=(2, 3))),
    (ea.sqrt, np.sqrt, lambda r: r.uniform(0.5, 2.0, size=(2, 3))),
    (ea.relu, lambda x: np.maximum(x, 0), lambda r: r.choice([-1, 1], size=(2, 3)) * r.uniform(0.1, 2, size=(2, 3))),
    (ea.square, np.square, lambda r: r.normal(size=(2, 3))),
    (ea.reciprocal, lambda x: 1 / x, lambda r: r.uniform(0.5, 2.0, size=(2, 3))),
]
NAMES = [f[0].__name__ for f in ELEMENTWISE]


@pytest.mark.parametrize("fun, reference, sample", ELEMENTWISE, ids=NAMES)
def test_elementwise_values_and_gradients(fun, reference, sample, rng):
    x = sample(rng)
    w = rng.normal(size=x.shape)
    np.testing.assert_allclose(fun(x), reference(x), rtol=1e-12)
    g = ea.grad(lambda x: ea.sum(fun(x) * w))(x)
    np.testing.assert_allclose(g, numerical_gradient(lambda x: np.sum(reference(x) * w), [x], 0), atol=1e-7)


@pytest.mark.parametrize("fun, reference, sample", ELEMENTWISE, ids=NAMES)
def test_elementwise_second_derivative(fun, reference, sample, rng):
    """The diagonal of the Hessian of sum(f(x)) is f''(x), by differences of f'."""
    x = sample(rng)
    hess = ea.hessian(lambda x: ea.sum(fun(x)))(x)
    first = lambda x: ea.grad(lambda x: ea.sum(fun(x)))(x)  # noqa: E731
    eps = 1e-6
    for index in [(0, 0), (1, 2)]:
        e = np.zeros_like(x)
        e[index] = eps
        numeric = (first(x + e) - first(x - e)) / (2 * eps)
        np.testing.assert_allclose(hess[index], numeric, atol=1e-6)


def test_elementwise_keeps_float32(rng):
    x = rng.uniform(0.5, 2.0, size=(3,)).astype(np.float32)
    for fun, _, _ in ELEMENTWISE:
        assert fun(x).dtype == np.float32, fun
        assert ea.grad(lambda x: ea.sum(fun(x)))(x).dtype == np.float32, fun


def test_sigmoid_does_not_overflow():
    x = np.array([-1000.0, 0.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_allclose(ea.sigmoid(x), [0.0, 0.5, 1.0])


# ----------------------------------------------------------------- Tensor arithmetic


OPERATORS = [
    (lambda a, b: a + b, "a + b"),
    (lambda a, b: a - b, "a - b"),
    (lambda a, b: a * b, "a * b"),
    (lambda a, b: a / b, "a / b"),
    (lambda a, b: a**b, "a ** b"),
    (lambda a, b: a @ b.T, "a @ b.T"),
    (lambda a, b: -a * b, "-a * b"),
]


@pytest.mark.parametrize("op, label", OPERATORS, ids=[o[1] for o in OPERATORS])
def test_operators_between_tensors(op, label, rng):
    a, b = rng.uniform(0.5, 2.0, size=(2, 3)), rng.uniform(0.5, 2.0, size=(2, 3))
    for k in (0, 1):
        g = ea.grad(lambda a, b: ea.sum(op(a, b)), argnums=k)(a, b)
        np.testing.assert_allclose(g, numerical_gradient(lambda a, b: np.sum(op(a, b)), [a, b], k), atol=1e-6)


@pytest.mark.parametrize("other", [2.0, 3, np.array([1.0, 2.0, 3.0]), np.array(2.0)])
def test_operators_mix_with_arrays_and_scalars_on_either_side(other, rng):
    x = rng.uniform(0.5, 2.0, size=(2, 3))

    def both_sides(x):
        return (x + other) * (other + x) - (other - x) / (x - other + 10) + other / x + x**2 * other

    g = ea.grad(lambda x: ea.sum(both_sides(x)))(x)
    np.testing.assert_allclose(g, numerical_gradient(lambda x: np.sum(both_sides(x)), [x], 0), atol=1e-6)


def test_matmul_shapes_follow_numpy(rng):
    for sa, sb in [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((5, 2, 3), (3, 4)), ((5, 2, 3), (5, 3, 4))]:
        a, b = rng.normal(size=sa), rng.normal(size=sb)
        np.testing.assert_allclose(ea.matmul(a, b), a @ b)
        w = rng.normal(size=np.shape(a @ b))
        ga, gb = ea.grad(lambda a, b: ea.sum((a @ b) * w), (0, 1))(a, b)
        np.testing.assert_allclose(ga, numerical_gradient(lambda a, b: np.sum((a @ b) * w), [a, b], 0), atol=1e-6)
        np.testing.assert_allclose(gb, numerical_gradient(lambda a, b: np.sum((a @ b) * w), [a, b], 1), atol=1e-6)


def test_tensor_attributes_inside_traced_code(rng):
    seen = {}

    def f(x):
        seen.update(shape=x.shape, ndim=x.ndim, dtype=x.dtype, T=x.T.shape)
        return ea.sum(x)

    ea.grad(f)(rng.normal(size=(2, 3)).astype(np.float32))
    assert seen == {"shape": (2, 3), "ndim": 2, "dtype": np.float32, "T": (3, 2)}


def test_comparisons_give_plain_boolean_arrays(rng):
    x = rng.normal(size=4)

    def f(x):
        mask = x > 0
        assert type(mask) is np.ndarray and mask.dtype == bool
        return ea.sum(ea.where(mask, x, 0.0))

    np.testing.assert_array_equal(ea.grad(f)(x), (x > 0).astype(float))


# ----------------------------------------------------------------- sum and mean


@given(
    st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
    st.data(),
)
def test_sum_and_mean_over_axes(shape, data):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    axis = data.draw(
        st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1), st.sets(st.integers(0, len(shape) - 1)).map(tuple))
    )
    keepdims = data.draw(st.booleans())
    for fun, reference in ((ea.sum, np.sum), (ea.mean, np.mean)):
        value = fun(x, axis=axis, keepdims=keepdims)
        np.testing.assert_allclose(value, reference(x, axis=axis, keepdims=keepdims))
        w = rng.normal(size=np.shape(value))
        g = ea.grad(lambda x: ea.sum(fun(x, axis=axis, keepdims=keepdims) * w))(x)
        expected = numerical_gradient(lambda x: np.sum(reference(x, axis=axis, keepdims=keepdims) * w), [x], 0)
        np.testing.assert_allclose(g, expected, atol=1e-7)


def test_sum_axis_out_of_range():
    with pytest.raises(np.exceptions.AxisError):
        ea.sum(np.ones((2, 3)), axis=2)


# ----------------------------------------------------------------- the functional API


def test_grad_argnums_tuple_and_value_and_grad(rng):
    W, a = rng.normal(size=(3, 4)), rng.normal(size=4)
    f = lambda W, a: ea.sum(ea.tanh(ea.einsum("ij,j->i", W, a)))  # noqa: E731
    gW, ga = ea.grad(f, argnums=(0, 1))(W, a)
    delta = 1 - np.tanh(W @ a) ** 2
    np.testing.assert_allclose(gW, np.outer(delta, a))
    np.testing.assert_allclose(ga, W.T @ delta)
    value, g = ea.value_and_grad(f, argnums=1)(W, a)
    assert isinstance(value, np.ndarray) and value.shape == ()
    np.testing.assert_allclose(value, np.sum(np.tanh(W @ a)))
    np.testing.assert_allclose(g, ga)
    np.testing.assert_allclose(ea.grad(f, argnums=-1)(W, a), ga)


def test_grad_of_unused_argument_is_zeros(rng):
    g = ea.grad(lambda x, y: ea.sum(x), argnums=1)(np.ones(2), np.ones(3, dtype=np.float32))
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.zeros(3))


def test_grad_with_scalar_argument():
    g = ea.grad(lambda x: x * x * 3.0)(2.0)
    assert float(g) == 12.0


def test_grad_kwargs_are_passed_through(rng):
    x = rng.normal(size=3)
    g = ea.grad(lambda x, scale=1.0: ea.sum(x * x) * scale)(x, scale=3.0)
    np.testing.assert_allclose(g, 6 * x)


def test_has_aux(rng):
    x = rng.normal(size=3)
    g, aux = ea.grad(lambda x: (ea.sum(x * x), "aux"), has_aux=True)(x)
    assert aux == "aux"
    np.testing.assert_allclose(g, 2 * x)


def test_vjp_returns_one_gradient_per_primal(rng):
    A, B = rng.normal(size=(2, 3)), rng.normal(size=(3, 4))
    out, vjp_fn = ea.vjp(lambda A, B: ea.einsum("ij,jk->ik", A, B), A, B)
    np.testing.assert_allclose(out, A @ B)
    g = rng.normal(size=(2, 4))
    gA, gB = vjp_fn(g)
    np.testing.assert_allclose(gA, g @ B.T)  # the swap ik,jk->ij
    np.testing.assert_allclose(gB, A.T @ g)  # the swap ik,ij->jk


def test_value_used_twice_accumulates(rng):
    x = rng.normal(size=3)
    np.testing.assert_allclose(ea.grad(lambda x: ea.sum(x * x + x))(x), 2 * x + 1)


def test_gradients_are_writable_arrays(rng):
    g = ea.grad(lambda x: ea.sum(x))(rng.normal(size=(2, 2)))
    assert type(g) is np.ndarray and g.flags.writeable
    g[0, 0] = 5.0


# ----------------------------------------------------------------- nesting


def test_hessian_vector_product_by_nested_grad(rng):
    A = rng.normal(size=(4, 4))
    x, v = rng.normal(size=4), rng.normal(size=4)

    def f(x):
        return ea.sum(ea.tanh(ea.einsum("ij,j->i", A, x)) ** 2) + ea.sum(ea.sin(x) * x)

    hvp = ea.grad(lambda x: ea.sum(ea.grad(f)(x) * v))(x)
    gradient = ea.grad(f)
    eps = 1e-6
    numeric = (gradient(x + eps * v) - gradient(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(hvp, numeric, atol=1e-6)


def test_third_derivative_by_nesting():
    d3 = ea.grad(ea.grad(ea.grad(lambda x: ea.sin(x) * x)))(0.7)
    x = 0.7
    np.testing.assert_allclose(d3, -3 * np.sin(x) - x * np.cos(x))


def test_grad_inside_traced_function_returns_traced_values(rng):
    seen = []

    def outer(x):
        inner = ea.grad(lambda y: ea.sum(y * y * x))(x)
        seen.append(type(inner))
        return ea.sum(inner)

    ea.grad(outer)(rng.normal(size=3))
    assert seen == [ea.Tensor]


# ----------------------------------------------------------------- errors


def test_grad_of_non_scalar_is_a_clear_error():
    with pytest.raises(TypeError, match=r"scalar.*shape \(3,\)"):
        ea.grad(lambda x: x * 2)(np.ones(3))


def test_grad_of_integer_input_is_a_clear_error():
    with pytest.raises(TypeError, match="floating-point"):
        ea.grad(lambda x: ea.sum(x))(np.arange(3))


def test_grad_bad_argnums():
    with pytest.raises(ValueError, match="argnums"):
        ea.grad(lambda x: ea.sum(x), argnums=2)(np.ones(2))


def test_numpy_function_on_traced_value_is_a_clear_error():
    with pytest.raises(TypeError, match="einsumad functions"):
        ea.grad(lambda x: np.sum(np.asarray(x)))(np.ones(2))


def test_vjp_cotangent_shape_mismatch():
    _, vjp_fn = ea.vjp(lambda x: x * 2, np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        vjp_fn(np.ones(4))


def test_vjp_when_one_output_is_an_ancestor_of_another():
    """Regression: seeds that are ancestors of other seeds were double counted."""
    x = np.array([0.5, 1.0])
    (g,) = ea.vjp(lambda x: (ea.sin(x), ea.sin(x) * 3.0), x)[1]((np.ones(2), np.ones(2)))
    np.testing.assert_allclose(g, 4 * np.cos(x))

    def shared(x):
        y = ea.sin(x)
        return y, y * 3.0

    (g,) = ea.vjp(shared, x)[1]((np.ones(2), np.ones(2)))
    np.testing.assert_allclose(g, 4 * np.cos(x))
