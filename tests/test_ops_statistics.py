"""Reductions and normalisation of issue 11: var, std, prod, cumsum, norm, layer_norm.

Truths: NumPy for values (every axis and keepdims combination, by hypothesis);
closed forms for derivatives (the product of the other entries, the reversed
cumulative sum, ``x / ‖x‖``, the layer-norm backward written in NumPy); central
finite differences in float64 for gradients, Jacobians and Hessians; forward mode
against reverse mode by ``<u, J v>``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import einsumad as ea
from tests.numeric import numerical_gradient, numerical_jacobian


@st.composite
def shapes_and_axes(draw, min_dims=1):
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=min_dims, max_size=3)))
    ndim = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-ndim, ndim - 1))
    else:
        axis = tuple(draw(st.sets(st.integers(0, ndim - 1), min_size=1, max_size=ndim)))
    return shape, axis, draw(st.booleans())


def both_modes_agree(f, x, rng):
    """<u, J v> by forward mode equals <Jᵀ u, v> by reverse mode."""
    u = rng.standard_normal(np.shape(f(x)))
    v = rng.standard_normal(np.shape(x))
    _, jv = ea.jvp(f, (x,), (v,))
    _, pullback = ea.vjp(f, x)
    (ju,) = pullback(u)
    np.testing.assert_allclose(np.sum(u * jv), np.sum(ju * v), rtol=1e-10, atol=1e-12)


def hessians_match(f, x, rtol=1e-5, atol=1e-6):
    """Reverse-over-reverse and forward-over-reverse Hessians against finite differences of the gradient."""
    expected = numerical_jacobian(lambda y: ea.grad(f)(y), [x], 0)
    np.testing.assert_allclose(ea.hessian(f)(x), expected, rtol=rtol, atol=atol)
    np.testing.assert_allclose(ea.jacfwd(ea.grad(f))(x), expected, rtol=rtol, atol=atol)


# ================================================================= var and std


@given(case=shapes_and_axes(), ddof=st.integers(0, 1))
def test_var_and_std_match_numpy_with_gradients(case, ddof):
    shape, axis, keepdims = case
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape)
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
    count = np.prod([shape[a] for a in axes])
    if count - ddof <= 0:
        return
    for ours, theirs in ((ea.var, np.var), (ea.std, np.std)):
        got = ours(x, axis=axis, keepdims=keepdims, ddof=ddof)
        np.testing.assert_allclose(got, theirs(x, axis=axis, keepdims=keepdims, ddof=ddof), rtol=1e-12, atol=1e-14)
        if ours is ea.std and count == 1:
            continue  # a zero standard deviation has no derivative (documented: nan)
        weights = rng.standard_normal(np.shape(got))
        loss = lambda y: ea.sum(ours(y, axis=axis, keepdims=keepdims, ddof=ddof) * weights)
        reference = lambda y: np.sum(theirs(y, axis=axis, keepdims=keepdims, ddof=ddof) * weights)
        np.testing.assert_allclose(ea.grad(loss)(x), numerical_gradient(reference, [x], 0), rtol=1e-6, atol=1e-8)


def test_var_gradient_is_the_closed_form_and_second_order():
    x = np.array([[1.0, 2.0, 6.0], [0.5, -1.0, 2.0]])
    m = x.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(ea.grad(lambda y: ea.sum(ea.var(y, axis=1, ddof=1)))(x), (x - m), rtol=1e-14)
    # Hessian of var(x) over n entries: 2/n (I - 1 1ᵀ/n)
    n = 3
    np.testing.assert_allclose(ea.hessian(lambda y: ea.var(y))(x[0]), 2 / n * (np.eye(n) - 1 / n), atol=1e-15)
    hessians_match(lambda y: ea.sum(ea.std(y, axis=0) ** 3), x)
    both_modes_agree(lambda y: ea.std(y, axis=1, keepdims=True), x, np.random.default_rng(0))


def test_var_and_std_keep_float32():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for op in (ea.var, ea.std):
        assert op(x, axis=1).dtype == np.float32
        assert ea.grad(lambda y: ea.sum(op(y, axis=1)))(x).dtype == np.float32
        assert ea.hessian(lambda y: op(y))(x).dtype == np.float32


# ================================================================= prod


@given(case=shapes_and_axes())
def test_prod_matches_numpy_with_gradients(case):
    shape, axis, keepdims = case
    rng = np.random.default_rng(sum(shape))
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)
    got = ea.prod(x, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(got, np.prod(x, axis=axis, keepdims=keepdims), rtol=1e-14)
    weights = rng.standard_normal(np.shape(got))
    loss = lambda y: ea.sum(ea.prod(y, axis=axis, keepdims=keepdims) * weights)
    reference = lambda y: np.sum(np.prod(y, axis=axis, keepdims=keepdims) * weights)
    np.testing.assert_allclose(ea.grad(loss)(x), numerical_gradient(reference, [x], 0), rtol=1e-7, atol=1e-9)
    both_modes_agree(lambda y: ea.prod(y, axis=axis, keepdims=keepdims), x, rng)


def others(x):
    """∂ prod(x) / ∂x_i = prod_{j != i} x_j, by brute force."""
    return np.array([np.prod(np.delete(x, i)) for i in range(x.size)])


def hessian_of_prod(x):
    """∂² prod(x) / ∂x_i ∂x_j = prod_{k != i, j} x_k for i != j, 0 on the diagonal."""
    n = x.size
    return np.array([[0.0 if i == j else np.prod(np.delete(x, [i, j])) for j in range(n)] for i in range(n)])


@pytest.mark.parametrize("x", [
    np.array([2.0, 0.0, 5.0, 3.0, 7.0]),       # one zero
    np.array([2.0, 0.0, 5.0, 0.0, 7.0]),       # two zeros
    np.array([0.0, 0.0, 0.0]),                 # all zeros
    np.array([1.5, -2.0, 3.0, 0.5, 4.0, -1.0, 2.0]),  # no zero, odd length
    np.array([0.0]),
])
def test_prod_zero_entries_in_both_modes_and_second_order(x):
    f = lambda y: ea.prod(y)
    np.testing.assert_array_equal(ea.grad(f)(x), others(x))
    np.testing.assert_array_equal(ea.jacfwd(f)(x), others(x))
    np.testing.assert_array_equal(ea.hessian(f)(x), hessian_of_prod(x))
    np.testing.assert_array_equal(ea.jacfwd(ea.grad(f))(x), hessian_of_prod(x))


def test_prod_along_an_axis_with_zeros_and_float32():
    x = np.array([[2.0, 0.0, 5.0], [0.0, 3.0, 0.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    g = ea.grad(lambda y: ea.sum(ea.prod(y, axis=1)))(x)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.stack([others(row) for row in x]))
    assert ea.prod(x, axis=0).dtype == np.float32
    np.testing.assert_array_equal(ea.prod(np.zeros((2, 0)), axis=1), [1.0, 1.0])  # the empty product


# ================================================================= cumsum


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data())
def test_cumsum_matches_numpy_and_its_vjp_is_the_reversed_cumsum(shape, data):
    shape = tuple(shape)
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape)
    y = ea.cumsum(x, axis=axis)
    np.testing.assert_allclose(y, np.cumsum(x, axis=axis), rtol=1e-14)
    g = rng.standard_normal(y.shape)
    _, pullback = ea.vjp(lambda z: ea.cumsum(z, axis=axis), x)
    (xbar,) = pullback(g)
    if axis is None:
        expected = np.flip(np.cumsum(np.flip(g))).reshape(shape)
    else:
        expected = np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis)
    np.testing.assert_allclose(xbar, expected, rtol=1e-13)
    both_modes_agree(lambda z: ea.cumsum(z, axis=axis), x, rng)


def test_cumsum_jacobian_is_the_triangular_matrix_both_modes():
    lower = np.tril(np.ones((4, 4)))
    np.testing.assert_array_equal(ea.jacrev(ea.cumsum)(np.zeros(4)), lower)
    np.testing.assert_array_equal(ea.jacfwd(ea.cumsum)(np.zeros(4)), lower)
    f = lambda x: ea.sum(ea.cumsum(x) ** 2)  # Hessian 2 Lᵀ L
    x = np.array([0.5, -1.0, 2.0, 0.3])
    np.testing.assert_allclose(ea.hessian(f)(x), 2 * lower.T @ lower)
    np.testing.assert_allclose(ea.jacfwd(ea.grad(f))(x), 2 * lower.T @ lower)
    x32 = x.astype(np.float32)
    assert ea.cumsum(x32).dtype == ea.grad(f)(x32).dtype == np.float32


# ================================================================= norm


@pytest.mark.parametrize("shape,axis,ord", [
    ((5,), None, None), ((5,), 0, 2), ((3, 4), None, None), ((3, 4), None, "fro"),
    ((3, 4), 1, None), ((2, 3, 4), (1, 2), "fro"), ((2, 3, 4), -1, 2), ((2, 3, 4), None, None),
])
def test_norm_matches_numpy_and_its_gradient_is_x_over_norm(shape, axis, ord):
    x = np.random.default_rng(1).standard_normal(shape)
    for keepdims in (False, True):
        got = ea.norm(x, ord=ord, axis=axis, keepdims=keepdims)
        if not (axis is None and len(shape) > 2):
            np.testing.assert_allclose(got, np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims), rtol=1e-14)
        else:
            np.testing.assert_allclose(got, np.sqrt(np.sum(x * x)), rtol=1e-14)
    n = ea.norm(x, ord=ord, axis=axis, keepdims=True)
    grad = ea.grad(lambda y: ea.sum(ea.norm(y, ord=ord, axis=axis)))(x)
    np.testing.assert_allclose(grad, x / n, rtol=1e-13)


def test_norm_subgradient_at_zero_and_hessian():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(ea.grad(ea.norm)(np.zeros(3)), np.zeros(3))
        _, t = ea.jvp(ea.norm, (np.zeros(3),), (np.ones(3),))
        assert t == 0.0
        np.testing.assert_array_equal(ea.hessian(ea.norm)(np.zeros(3)), np.zeros((3, 3)))
    x = np.array([3.0, 4.0, 12.0])
    r = np.linalg.norm(x)
    expected = (np.eye(3) - np.outer(x, x) / r**2) / r
    np.testing.assert_allclose(ea.hessian(ea.norm)(x), expected, rtol=1e-13)
    np.testing.assert_allclose(ea.jacfwd(ea.grad(ea.norm))(x), expected, rtol=1e-13)
    x32 = x.astype(np.float32)
    assert ea.norm(x32).dtype == ea.grad(ea.norm)(x32).dtype == np.float32


def test_norm_rejects_other_orders_with_a_pointer():
    with pytest.raises(ValueError, match="Frobenius"):
        ea.norm(np.ones((2, 2)), ord=2)
    with pytest.raises(ValueError, match="2-norm"):
        ea.norm(np.ones(3), ord=1)


# ================================================================= layer_norm


def layer_norm_reference(x, axis=-1, eps=1e-5):
    """``torch.nn.functional.layer_norm`` without weight and bias, in NumPy."""
    m = x.mean(axis=axis, keepdims=True)
    v = ((x - m) ** 2).mean(axis=axis, keepdims=True)
    return (x - m) / np.sqrt(v + eps)


def layer_norm_backward(x, g, eps=1e-5):
    """The textbook backward of layer norm over the last axis: (ḡ - mean ḡ - ŷ mean(ḡ ŷ)) / σ."""
    m = x.mean(axis=-1, keepdims=True)
    s = np.sqrt(((x - m) ** 2).mean(axis=-1, keepdims=True) + eps)
    y = (x - m) / s
    return (g - g.mean(axis=-1, keepdims=True) - y * (g * y).mean(axis=-1, keepdims=True)) / s


def test_layer_norm_matches_the_formula_and_the_textbook_backward():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5))
    g = rng.standard_normal(x.shape)
    np.testing.assert_allclose(ea.layer_norm(x), layer_norm_reference(x), rtol=1e-13)
    _, pullback = ea.vjp(ea.layer_norm, x)
    np.testing.assert_allclose(pullback(g)[0], layer_norm_backward(x, g), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(ea.layer_norm(x, axis=(1, 2), eps=0.1), layer_norm_reference(x, (1, 2), 0.1), rtol=1e-13)
    both_modes_agree(lambda y: ea.layer_norm(y, axis=(0, 2)), x, rng)


def test_layer_norm_second_order_and_float32():
    x = np.random.default_rng(4).standard_normal((2, 4))
    w = np.random.default_rng(5).standard_normal((2, 4))
    hessians_match(lambda y: ea.sum(ea.layer_norm(y) ** 3 * w), x)
    x32 = x.astype(np.float32)
    assert ea.layer_norm(x32).dtype == np.float32
    assert ea.grad(lambda y: ea.sum(ea.layer_norm(y) * w))(x32).dtype == np.float32


def test_layer_norm_derivation_shows_its_steps():
    derivation = ea.derive(lambda x: ea.sum(ea.layer_norm(x) * np.arange(3.0)), np.array([[1.0, 2.0, 4.0]]))
    text = str(derivation)
    assert "sqrt" in text and "Backward" in text
    assert len(derivation.backward) >= 8   # centring, variance, root, normalisation: every step shown
