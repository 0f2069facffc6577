"""Reductions: max, min, logsumexp, softmax, log_softmax, and sum/mean with keepdims.

Truths: NumPy for values, closed forms (softmax is the gradient of logsumexp,
``diag(p) - p pᵀ`` its Hessian), central finite differences in float64 for
gradients and second derivatives, and ``<u, J v>`` computed by both modes.
Ties are tested with exact expected values, never with finite differences.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import einsumad as ea
from tests.numeric import numerical_gradient, numerical_jacobian

REDUCTIONS = {
    "max": (ea.max, np.max),
    "min": (ea.min, np.min),
    "sum": (ea.sum, np.sum),
    "mean": (ea.mean, np.mean),
    "logsumexp": (ea.logsumexp, lambda x, axis=None, keepdims=False: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))),
}


def distinct(shape, seed=0):
    """Entries at least 0.1 apart: no ties, so finite differences are valid everywhere."""
    n = int(np.prod(shape, dtype=np.int64))
    values = np.random.default_rng(seed).permutation(n) * 0.1 - 0.05 * n
    return values.reshape(shape).astype(float)


@st.composite
def shapes_and_axes(draw):
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    ndim = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-ndim, ndim - 1))
    else:
        axis = tuple(draw(st.sets(st.integers(0, ndim - 1), max_size=ndim)))
    return shape, axis, draw(st.booleans())


def check_both_modes(f, x, rng):
    """<u, J v> by forward mode equals <Jᵀ u, v> by reverse mode."""
    y = f(x)
    u = rng.standard_normal(np.shape(y))
    v = rng.standard_normal(np.shape(x))
    _, jv = ea.jvp(f, (x,), (v,))
    _, pullback = ea.vjp(f, x)
    (ju,) = pullback(u)
    np.testing.assert_allclose(np.sum(u * jv), np.sum(ju * v), rtol=1e-10, atol=1e-12)


def check_jacobians(f, x):
    """Batched rules: one delta-seeded pass in each mode matches finite differences."""
    expected = numerical_jacobian(f, [x], 0)
    np.testing.assert_allclose(ea.jacrev(f)(x), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ea.jacfwd(f)(x), expected, rtol=1e-6, atol=1e-7)


def check_hessian(f, x):
    expected = numerical_jacobian(ea.grad(f), [x], 0)
    np.testing.assert_allclose(ea.hessian(f)(x), expected, rtol=1e-5, atol=1e-6)


# ================================================================= values against NumPy


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(case=shapes_and_axes())
def test_values_match_numpy_for_every_axis_and_keepdims(name, case):
    shape, axis, keepdims = case
    ours, theirs = REDUCTIONS[name]
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    got = ours(x, axis=axis, keepdims=keepdims)
    expected = theirs(x, axis=axis, keepdims=keepdims)
    assert np.shape(got) == np.shape(expected)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data())
def test_softmax_and_log_softmax_match_the_closed_form(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(sum(shape)).standard_normal(shape) * 3
    e = np.exp(x)
    p = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(ea.softmax(x, axis=axis), p, rtol=1e-12)
    np.testing.assert_allclose(ea.log_softmax(x, axis=axis), np.log(p), rtol=1e-12, atol=1e-12)


def test_softmax_over_several_axes_sums_to_one_over_them():
    x = distinct((2, 3, 4))
    p = ea.softmax(x, axis=(0, 2))
    np.testing.assert_allclose(p.sum(axis=(0, 2)), np.ones(3))
    np.testing.assert_allclose(ea.softmax(x, axis=None).sum(), 1.0)


# ================================================================= numerical stability


@pytest.mark.parametrize("scale", [1e3, -1e3, 1e4])
def test_no_overflow_at_large_inputs(scale):
    x = scale + np.array([[0.0, 1.0, 2.0], [3.0, 3.0, -1.0]])
    shift = x - scale  # the closed forms, evaluated at moderate values
    expected_lse = scale + np.log(np.exp(shift).sum(axis=1))
    expected_p = np.exp(shift) / np.exp(shift).sum(axis=1, keepdims=True)
    with np.errstate(all="raise"):
        np.testing.assert_allclose(ea.logsumexp(x, axis=1), expected_lse, rtol=1e-14)
        np.testing.assert_allclose(ea.softmax(x), expected_p, rtol=1e-12)
        np.testing.assert_allclose(ea.log_softmax(x), np.log(expected_p), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ea.grad(lambda x: ea.sum(ea.logsumexp(x, axis=1)))(x), expected_p, rtol=1e-12)
        u = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]])
        g_softmax = ea.grad(lambda x: ea.sum(ea.softmax(x) * u))(x)
        g_log_softmax = ea.grad(lambda x: ea.sum(ea.log_softmax(x) * u))(x)
    # closed forms: Jᵀu = p ⊙ (u - <u, p>) for softmax, u - p sum(u) for log_softmax
    np.testing.assert_allclose(g_softmax, expected_p * (u - (u * expected_p).sum(1, keepdims=True)), atol=1e-12)
    np.testing.assert_allclose(g_log_softmax, u - expected_p * u.sum(1, keepdims=True), atol=1e-12)


def test_no_overflow_in_float32():
    x = np.array([1e3, 1e3 + 1.0], dtype=np.float32)
    for f in (ea.logsumexp, ea.softmax, ea.log_softmax):
        value = f(x)
        gradient = ea.grad(lambda x: ea.sum(f(x) * np.array([1.0, 2.0], np.float32)))(x)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
        assert value.dtype == np.float32 and gradient.dtype == np.float32


def test_logsumexp_of_infinities_follows_the_limits():
    with np.errstate(divide="ignore"):  # log(0), as in NumPy and SciPy
        assert ea.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    assert ea.logsumexp(np.array([np.inf, 0.0])) == np.inf
    np.testing.assert_allclose(ea.logsumexp(np.array([-np.inf, 0.0])), 0.0)


# ================================================================= gradients


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(case=shapes_and_axes())
def test_gradients_match_finite_differences(name, case):
    shape, axis, keepdims = case
    ours, _ = REDUCTIONS[name]
    x = distinct(shape, seed=len(shape))
    u = np.random.default_rng(1).standard_normal(np.shape(ours(x, axis=axis, keepdims=keepdims)))

    def loss(x):
        return ea.sum(ours(x, axis=axis, keepdims=keepdims) * u)

    np.testing.assert_allclose(ea.grad(loss)(x), numerical_gradient(loss, [x], 0), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: ea.max(x, axis=1),
        lambda x: ea.min(x, axis=0, keepdims=True),
        lambda x: ea.max(x),
        lambda x: ea.logsumexp(x, axis=(0, 2)),
        lambda x: ea.logsumexp(x, axis=-1, keepdims=True),
        lambda x: ea.softmax(x, axis=1),
        lambda x: ea.log_softmax(x, axis=0),
        lambda x: ea.sum(x, axis=1, keepdims=True),
        lambda x: ea.mean(x, axis=(0, 2), keepdims=True),
    ],
    ids=["max1", "min0k", "max", "lse02", "lse-1k", "softmax1", "logsoftmax0", "sum1k", "mean02k"],
)
def test_jacobians_and_both_modes(f, rng):
    x = distinct((2, 3, 2), seed=3)
    check_jacobians(f, x)
    check_both_modes(f, x, rng)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: ea.sum(ea.logsumexp(x, axis=1) ** 2),
        lambda x: ea.sum(ea.softmax(x) * np.array([1.0, -2.0, 0.5])),
        lambda x: ea.sum(ea.log_softmax(x, axis=0) ** 2),
        lambda x: ea.sum(ea.max(x, axis=1) * ea.min(x, axis=1)),
        lambda x: ea.sum(ea.mean(x, axis=1, keepdims=True) * x),
    ],
    ids=["lse", "softmax", "log_softmax", "max*min", "mean-keepdims"],
)
def test_hessians_match_finite_differences_of_the_gradient(f):
    check_hessian(f, distinct((2, 3), seed=5))


def test_hessian_of_logsumexp_is_diag_p_minus_ppT():
    x = np.array([0.3, -1.2, 2.0, 0.1])
    p = np.exp(x) / np.exp(x).sum()
    np.testing.assert_allclose(ea.grad(ea.logsumexp)(x), p, rtol=1e-12)
    np.testing.assert_allclose(ea.hessian(ea.logsumexp)(x), np.diag(p) - np.outer(p, p), atol=1e-12)


def test_grad_of_grad_of_softmax_matches_finite_differences():
    v = np.array([1.0, -1.0, 2.0])
    u = np.array([0.5, 0.2, -0.3])

    def directional(x):  # <grad <u, softmax(x)>, v>
        return ea.sum(ea.grad(lambda x: ea.sum(ea.softmax(x) * u))(x) * v)

    x = np.array([0.1, 0.7, -0.4])
    np.testing.assert_allclose(ea.grad(directional)(x), numerical_gradient(directional, [x], 0), rtol=1e-6)


def test_max_is_piecewise_linear_so_its_hessian_vanishes():
    x = distinct((3, 2))
    np.testing.assert_array_equal(ea.hessian(lambda x: ea.max(x))(x), np.zeros((3, 2, 3, 2)))


# ================================================================= ties share the gradient


def test_tied_maxima_share_the_gradient_equally():
    np.testing.assert_array_equal(ea.grad(ea.max)(np.array([1.0, 3.0, 3.0])), [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(ea.grad(ea.min)(np.array([1.0, 3.0, 1.0, 1.0])), [1 / 3, 0.0, 1 / 3, 1 / 3])
    np.testing.assert_array_equal(ea.grad(ea.max)(np.full(4, 2.0)), np.full(4, 0.25))


def test_ties_are_shared_within_each_slice_of_the_reduced_axis():
    x = np.array([[1.0, 5.0, 5.0], [7.0, 2.0, 7.0], [0.0, 0.0, 0.0], [4.0, 3.0, 2.0]])
    u = np.array([1.0, 2.0, 3.0, 4.0])
    expected = np.array([[0, 0.5, 0.5], [1.0, 0, 1.0], [1.0, 1.0, 1.0], [4.0, 0, 0]])
    got = ea.grad(lambda x: ea.sum(ea.max(x, axis=1) * u))(x)
    np.testing.assert_allclose(got, expected)
    got_keepdims = ea.grad(lambda x: ea.sum(ea.max(x, axis=1, keepdims=True) * u[:, None]))(x)
    np.testing.assert_allclose(got_keepdims, expected)
    # forward mode gives the same average of the tied tangents
    v = np.arange(12.0).reshape(4, 3)
    _, tangent = ea.jvp(lambda x: ea.max(x, axis=1), (x,), (v,))
    np.testing.assert_allclose(tangent, [1.5, 4.0, 7.0, 9.0])


def test_ties_in_the_jacobian_of_min_over_axis_zero():
    x = np.array([[2.0, 1.0], [2.0, 3.0]])
    expected = np.array([[[0.5, 0.0], [0.5, 0.0]], [[0.0, 1.0], [0.0, 0.0]]])
    np.testing.assert_array_equal(ea.jacrev(lambda x: ea.min(x, axis=0))(x), expected)
    np.testing.assert_array_equal(ea.jacfwd(lambda x: ea.min(x, axis=0))(x), expected)


# ================================================================= dtype, methods, errors


@pytest.mark.parametrize("f", [ea.max, ea.min, ea.logsumexp, ea.softmax, ea.log_softmax])
def test_float32_stays_float32(f):
    x = distinct((2, 3)).astype(np.float32)
    assert f(x).dtype == np.float32
    g = ea.grad(lambda x: ea.sum(f(x) * 0.5))(x)
    assert g.dtype == np.float32
    assert ea.hessian(lambda x: ea.sum(f(x)))(x).dtype == np.float32


def test_tensor_methods_max_and_min():
    x = distinct((2, 3))
    g = ea.grad(lambda t: ea.sum(t.max(axis=1)) - t.min())(x)
    expected = (x == x.max(axis=1, keepdims=True)) * 1.0
    expected[np.unravel_index(np.argmin(x), x.shape)] -= 1.0
    np.testing.assert_array_equal(g, expected)


@pytest.mark.parametrize("f", [ea.max, ea.min, ea.logsumexp, ea.sum, ea.mean, ea.softmax, ea.log_softmax])
@pytest.mark.parametrize("axis", [2, -3, (0, 5)])
def test_axis_out_of_range_raises_axis_error(f, axis):
    with pytest.raises(np.exceptions.AxisError, match=r"axis -?\d+ .*dimension 2"):
        f(np.ones((2, 3)), axis=axis)


def test_max_of_an_empty_axis_raises_like_numpy():
    with pytest.raises(ValueError):
        ea.max(np.ones((0, 2)), axis=0)
