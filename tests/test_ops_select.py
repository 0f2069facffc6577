"""Selections: maximum, minimum, abs, clip, where, one_hot; power in both arguments.

Truths: NumPy for values, central finite differences in float64 away from
kinks, exact expected values at ties (each side of a tie gets half), closed
forms for second derivatives, and ``<u, J v>`` computed by both modes.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import einsumad as ea
from einsumad.core.primitive import Primitive
from einsumad.ops import compare as _ops_compare
from tests.numeric import numerical_gradient, numerical_jacobian


def check_both_modes(f, args, rng):
    """<u, J v> by forward mode equals <Jᵀ u, v> by reverse mode (all arguments at once)."""
    y = f(*args)
    u = rng.standard_normal(np.shape(y))
    vs = tuple(rng.standard_normal(np.shape(a)) for a in args)
    _, jv = ea.jvp(f, tuple(args), vs)
    _, pullback = ea.vjp(f, *args)
    jus = pullback(u)
    reverse = sum(np.sum(ju * v) for ju, v in zip(jus, vs))
    np.testing.assert_allclose(np.sum(u * jv), reverse, rtol=1e-10, atol=1e-12)


def check_jacobians(f, args):
    for k in range(len(args)):
        expected = numerical_jacobian(f, args, k)
        np.testing.assert_allclose(ea.jacrev(f, argnums=k)(*args), expected, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ea.jacfwd(f, argnums=k)(*args), expected, rtol=1e-6, atol=1e-8)


def apart(shape, seed, offset=0.0):
    """Values on a grid of 0.1 shifted by ``offset``: two such arrays never tie if offsets differ."""
    rng = np.random.default_rng(seed)
    return rng.integers(-20, 20, size=shape) * 0.1 + offset


broadcastable_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


# ================================================================= maximum and minimum


@pytest.mark.parametrize("ours, theirs", [(ea.maximum, np.maximum), (ea.minimum, np.minimum)])
@given(shapes=broadcastable_shapes)
def test_maximum_minimum_values_and_gradients_with_broadcasting(ours, theirs, shapes):
    (sx, sy), out = shapes.input_shapes, shapes.result_shape
    x, y = apart(sx, 1, 0.03), apart(sy, 2, -0.02)
    np.testing.assert_array_equal(ours(x, y), theirs(x, y))
    u = np.random.default_rng(3).standard_normal(out)

    def loss(x, y):
        return ea.sum(ours(x, y) * u)

    gx, gy = ea.grad(loss, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, numerical_gradient(loss, [x, y], 0), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gy, numerical_gradient(loss, [x, y], 1), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("op", [ea.maximum, ea.minimum])
def test_maximum_minimum_jacobians_and_both_modes(op, rng):
    x, y = apart((2, 3), 4, 0.03), apart((3,), 5, -0.02)
    check_jacobians(op, (x, y))
    check_both_modes(op, (x, y), rng)


def test_maximum_and_minimum_share_ties_equally():
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([2.0, 2.0, 2.0])
    gx, gy = ea.grad(lambda x, y: ea.sum(ea.maximum(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(gy, [1.0, 0.5, 0.0])
    gx, gy = ea.grad(lambda x, y: ea.sum(ea.minimum(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(gy, [0.0, 0.5, 1.0])
    # a broadcast argument collects its halves from every tie
    gb = ea.grad(lambda b: ea.sum(ea.maximum(np.array([[2.0, 1.0], [2.0, 3.0]]), b)))(np.array(2.0))
    assert gb == 0.5 + 1.0 + 0.5
    # forward mode: the tangent of a tie is the average of both tangents
    _, t = ea.jvp(ea.maximum, (x, y), (np.full(3, 4.0), np.full(3, 8.0)))
    np.testing.assert_array_equal(t, [8.0, 6.0, 4.0])


def test_maximum_of_a_value_with_itself_passes_the_whole_gradient():
    x = np.array([-1.0, 2.0])
    np.testing.assert_array_equal(ea.grad(lambda x: ea.sum(ea.maximum(x, x)))(x), [1.0, 1.0])


def test_tie_weights_are_nondifferentiable_primitives():
    for mask in (_ops_compare.share_greater, _ops_compare.share_max, _ops_compare.share_min, _ops_compare.sign):
        assert isinstance(mask, Primitive) and not mask.differentiable


def test_second_derivative_through_maximum():
    # f = sum(maximum(x, 0)^3): f'' = 6 x on x > 0, 0 on x < 0
    x = np.array([-1.5, 0.5, 2.0])
    H = ea.hessian(lambda x: ea.sum(ea.maximum(x, 0.0) ** 3))(x)
    np.testing.assert_allclose(H, np.diag([0.0, 3.0, 12.0]))
    mixed = lambda x, y: ea.sum(ea.maximum(x, y) * ea.minimum(x, y) ** 2)  # noqa: E731
    y = np.array([0.3, 1.1, -0.7])
    expected = numerical_jacobian(ea.grad(mixed, argnums=1), [x, y], 1)
    np.testing.assert_allclose(ea.hessian(mixed, argnums=1)(x, y), expected, rtol=1e-6, atol=1e-8)


# ================================================================= abs


def test_abs_values_gradient_and_kink():
    x = np.array([[-2.0, 0.5], [0.0, 3.0]])
    np.testing.assert_array_equal(ea.abs(x), np.abs(x))
    np.testing.assert_array_equal(ea.grad(lambda x: ea.sum(ea.abs(x)))(x), [[-1.0, 1.0], [0.0, 1.0]])
    away = np.array([-2.0, 0.5, 1.3])
    f = lambda x: ea.sum(ea.abs(x) ** 3)  # noqa: E731
    np.testing.assert_allclose(ea.grad(f)(away), numerical_gradient(f, [away], 0), rtol=1e-7)
    np.testing.assert_allclose(ea.hessian(f)(away), np.diag(6 * np.abs(away)), rtol=1e-12)


def test_abs_jacobians_and_both_modes(rng):
    x = apart((2, 3), 6, 0.05)
    check_jacobians(ea.abs, (x,))
    check_both_modes(ea.abs, (x,), rng)


# ================================================================= clip


@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=st.integers(-30, 30).map(lambda n: n / 10 + 0.01)),
    lo=st.one_of(st.none(), st.integers(-20, 0).map(lambda n: n / 10)),
    hi=st.one_of(st.none(), st.integers(1, 20).map(lambda n: n / 10)),
)
def test_clip_values_and_gradient(x, lo, hi):
    expected = x if lo is None and hi is None else np.clip(x, lo, hi)
    np.testing.assert_array_equal(ea.clip(x, lo, hi), expected)
    inside = np.ones_like(x)
    if lo is not None:
        inside = inside * (x > lo)
    if hi is not None:
        inside = inside * (x < hi)
    np.testing.assert_array_equal(ea.grad(lambda x: ea.sum(ea.clip(x, lo, hi)))(x), inside)


def test_clip_on_a_bound_gives_half():
    x = np.array([0.0, 0.5, 1.0, 2.0, -1.0])
    np.testing.assert_array_equal(ea.grad(lambda x: ea.sum(ea.clip(x, 0.0, 1.0)))(x), [0.5, 1.0, 0.5, 0.0, 0.0])


def test_clip_differentiates_tensor_bounds():
    x = np.array([-1.0, 0.2, 0.9, 3.0])
    lo, hi = np.array(0.1), np.array([0.5, 0.5, 1.0, 2.0])
    f = lambda x, lo, hi: ea.sum(ea.clip(x, lo, hi) * np.array([1.0, 2.0, 3.0, 4.0]))  # noqa: E731
    grads = ea.grad(f, argnums=(0, 1, 2))(x, lo, hi)
    for k, g in enumerate(grads):
        np.testing.assert_allclose(g, numerical_gradient(f, [x, lo, hi], k), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(grads[1], 1.0)  # only x[0] is clipped from below
    np.testing.assert_array_equal(grads[2], [0.0, 0.0, 0.0, 4.0])
    check_jacobians(lambda x, lo, hi: ea.clip(x, lo, hi), (x, lo, hi))


# ================================================================= where with traced conditions


def test_where_with_a_traced_comparison_in_reverse_forward_and_hessian():
    x = np.array([-1.0, 0.5, 2.0])
    f = lambda x: ea.sum(ea.where(x > 0, x ** 3, 0.0))  # noqa: E731
    assert isinstance(np.asarray(x > 0), np.ndarray)
    np.testing.assert_allclose(ea.grad(f)(x), [0.0, 0.75, 12.0])
    np.testing.assert_allclose(ea.hessian(f)(x), np.diag([0.0, 3.0, 12.0]))
    _, t = ea.jvp(lambda x: ea.where(x > 0, x, 0.0), (x,), (np.ones(3),))
    np.testing.assert_array_equal(t, [0.0, 1.0, 1.0])

    def inner(x):  # the comparison happens on a value traced by two levels at once
        return ea.sum(ea.where(x > 0, x, 0.0) * x)

    np.testing.assert_allclose(ea.hessian(inner)(x), np.diag([0.0, 2.0, 2.0]))


def test_where_keeps_float32():
    x = np.array([-1.0, 2.0], np.float32)
    assert ea.where(x > 0, x, 0.0).dtype == np.float32
    assert ea.grad(lambda x: ea.sum(ea.where(x > 0, x, 0.0)))(x).dtype == np.float32


# ================================================================= power in both arguments


def test_power_gradient_in_base_and_exponent_matches_finite_differences(rng):
    x = rng.uniform(0.5, 2.0, size=(2, 3))
    y = rng.uniform(-1.5, 2.5, size=(3,))
    f = lambda x, y: ea.sum(ea.power(x, y) * np.array([1.0, -2.0, 0.5]))  # noqa: E731
    gx, gy = ea.grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, numerical_gradient(f, [x, y], 0), rtol=1e-7)
    np.testing.assert_allclose(gy, numerical_gradient(f, [x, y], 1), rtol=1e-7)
    np.testing.assert_allclose(gy, ((x ** y) * np.log(x) * np.array([1.0, -2.0, 0.5])).sum(0), rtol=1e-12)
    for k in (0, 1):
        expected = numerical_jacobian(ea.grad(f, argnums=k), [x, y], k)
        np.testing.assert_allclose(ea.hessian(f, argnums=k)(x, y), expected, rtol=1e-5, atol=1e-7)
    check_both_modes(ea.power, (x, y), rng)


def test_tensor_pow_with_a_tensor_exponent():
    x, y = np.array([2.0, 3.0]), np.array([3.0, 0.5])
    gx, gy = ea.grad(lambda x, y: ea.sum(x ** y), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, y * x ** (y - 1))
    np.testing.assert_allclose(gy, np.log(x) * x ** y)


# ================================================================= one_hot


def test_one_hot_values_dtype_and_shape():
    idx = np.array([[0, 2], [1, 1]])
    got = ea.one_hot(idx, 3)
    expected = np.zeros((2, 2, 3))
    for i, j in np.ndindex(idx.shape):
        expected[i, j, idx[i, j]] = 1.0
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float64
    assert ea.one_hot([1, 0], 2, dtype=np.float32).dtype == np.float32
    assert ea.one_hot(np.array(1), 4).tolist() == [0.0, 1.0, 0.0, 0.0]


def test_one_hot_is_a_constant_in_traced_code():
    labels = np.array([2, 0])

    def nll(logits):  # cross-entropy: its gradient is softmax - one_hot
        return -ea.sum(ea.log_softmax(logits) * ea.one_hot(labels, 3))

    logits = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.0]])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(ea.grad(nll)(logits), p - np.eye(3)[labels], rtol=1e-12)


@pytest.mark.parametrize("bad, error", [(np.array([0, 3]), ValueError), (np.array([-1]), ValueError), (np.array([0.0]), TypeError)])
def test_one_hot_rejects_bad_indices(bad, error):
    with pytest.raises(error, match="one_hot"):
        ea.one_hot(bad, 3)


# ================================================================= float32


@pytest.mark.parametrize(
    "f",
    [
        lambda x: ea.maximum(x, 0.5),
        lambda x: ea.minimum(0.5, x),
        ea.abs,
        lambda x: ea.clip(x, -0.5, 0.5),
        lambda x: ea.maximum(x, x[::-1]),
    ],
    ids=["maximum", "minimum", "abs", "clip", "maximum-tensors"],
)
def test_float32_stays_float32(f):
    x = np.array([-1.0, 0.25, 0.5, 2.0], np.float32)
    assert f(x).dtype == np.float32
    assert ea.grad(lambda x: ea.sum(f(x)))(x).dtype == np.float32
    assert ea.jacfwd(f)(x).dtype == np.float32
