"""The elementwise ops of issue 11: log1p, expm1, logaddexp, softplus, log_sigmoid,
silu, erf, gelu (exact and tanh), tan, arctan, arcsin, arccos, sinh, cosh, arctanh,
sign, floor, round.

Truths: NumPy and ``math.erf`` for values; the closed-form derivative ``f'``
written in NumPy; central finite differences in float64 of the reference ``f`` (first
order) and of the closed-form ``f'`` (second order). Reverse mode (``grad``, ``grad``
of ``grad``, ``hessian``) and forward mode (``jvp``, ``jacfwd`` of ``grad``) are both
checked, in float64 and float32, and at ±1e3, ±1e4 and 0 without overflow warnings.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import einsumad as ea

SQRT2PI = math.sqrt(2 * math.pi)
K, A = math.sqrt(2 / math.pi), 0.044715
erf_np = np.vectorize(math.erf, otypes=[float])


def sigmoid(x):
    """1 / (1 + e^-x) in NumPy, without overflow."""
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def gelu_tanh_ref(x):
    """PyTorch's ``gelu(x, approximate='tanh')`` / JAX's ``gelu(x, approximate=True)``, in NumPy."""
    return 0.5 * x * (1 + np.tanh(K * (x + A * x**3)))


def gelu_tanh_prime(x):
    t = np.tanh(K * (x + A * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * K * (1 + 3 * A * x**2)


# name: (einsumad op, reference f, closed-form f', sample points)
GENERAL = np.linspace(-3.0, 3.0, 13) + 0.01
UNIT = np.linspace(-0.9, 0.9, 9) + 0.01
OPS = {
    "log1p": (ea.log1p, np.log1p, lambda x: 1 / (1 + x), np.linspace(-0.9, 3.0, 9)),
    "expm1": (ea.expm1, np.expm1, np.exp, GENERAL),
    "softplus": (ea.softplus, lambda x: np.logaddexp(0, x), sigmoid, GENERAL),
    "log_sigmoid": (ea.log_sigmoid, lambda x: -np.logaddexp(0, -x), lambda x: sigmoid(-x), GENERAL),
    "silu": (ea.silu, lambda x: x * sigmoid(x), lambda x: sigmoid(x) * (1 + x * (1 - sigmoid(x))), GENERAL),
    "erf": (ea.erf, erf_np, lambda x: 2 / math.sqrt(math.pi) * np.exp(-x**2), GENERAL),
    "gelu": (ea.gelu, lambda x: 0.5 * x * (1 + erf_np(x / math.sqrt(2))),
             lambda x: 0.5 * (1 + erf_np(x / math.sqrt(2))) + x * np.exp(-x**2 / 2) / SQRT2PI, GENERAL),
    "gelu_tanh": (lambda x: ea.gelu(x, approximate="tanh"), gelu_tanh_ref, gelu_tanh_prime, GENERAL),
    "tan": (ea.tan, np.tan, lambda x: 1 / np.cos(x) ** 2, np.linspace(-1.2, 1.2, 9)),
    "arctan": (ea.arctan, np.arctan, lambda x: 1 / (1 + x**2), GENERAL),
    "arcsin": (ea.arcsin, np.arcsin, lambda x: 1 / np.sqrt(1 - x**2), UNIT),
    "arccos": (ea.arccos, np.arccos, lambda x: -1 / np.sqrt(1 - x**2), UNIT),
    "sinh": (ea.sinh, np.sinh, np.cosh, GENERAL),
    "cosh": (ea.cosh, np.cosh, np.sinh, GENERAL),
    "arctanh": (ea.arctanh, np.arctanh, lambda x: 1 / (1 - x**2), UNIT),
    "sign": (ea.sign, np.sign, np.zeros_like, GENERAL),
    "floor": (ea.floor, np.floor, np.zeros_like, GENERAL + 0.3),
    "round": (ea.round, np.round, np.zeros_like, GENERAL + 0.2),
}
NAMES = sorted(OPS)

# Ops whose value and derivatives are representable at ±1e3 and ±1e4: they must be
# computed there without overflow (no nan, no inf, no warning).
STABLE = ["softplus", "log_sigmoid", "silu", "erf", "gelu", "gelu_tanh", "arctan", "sign", "floor", "round"]
EXTREMES = np.array([-1e4, -1e3, 0.0, 1e3, 1e4])


def second_order(op, x):
    """d²f/dx² elementwise by reverse-over-reverse: grad of sum(grad(sum f))."""
    return ea.grad(lambda y: ea.sum(ea.grad(lambda z: ea.sum(op(z)))(y)))(x)


def fd_derivative(f, x, eps=1e-6):
    x = np.asarray(x, dtype=np.float64)
    return (f(x + eps) - f(x - eps)) / (2 * eps)


# ================================================================= values


@pytest.mark.parametrize("name", NAMES)
def test_values_match_the_reference(name):
    op, ref, _, x = OPS[name]
    np.testing.assert_allclose(op(x), ref(x), rtol=1e-14, atol=1e-15)


def test_erf_is_within_one_ulp_of_math_erf_in_float64():
    x = np.concatenate([
        np.linspace(-7.0, 7.0, 20001),
        np.logspace(-310, 3, 2000), -np.logspace(-310, 3, 2000),
        [0.84375, 1.25, 1 / 0.35, 6.0, np.nextafter(6.0, 0), 1e308, -1e308],
    ])
    expected = np.array([math.erf(v) for v in x])
    got = ea.erf(x)
    ulps = np.abs(got - expected) / np.spacing(np.abs(expected))
    assert got.dtype == np.float64
    assert ulps.max() <= 1.0, (ulps.max(), x[np.argmax(ulps)])


def test_erf_is_within_one_ulp_of_math_erf_in_float32():
    x = np.concatenate([
        np.linspace(-7.0, 7.0, 20001), np.logspace(-45, 38, 2000), -np.logspace(-45, 38, 2000),
    ]).astype(np.float32)
    expected = np.array([math.erf(float(v)) for v in x]).astype(np.float32)
    got = ea.erf(x)
    assert got.dtype == np.float32
    tiny = expected == 0
    ulps = np.abs(got.astype(np.float64) - expected) / np.spacing(np.where(tiny, 1, np.abs(expected)))
    assert ulps.max() <= 1.0, (ulps.max(), x[np.argmax(ulps)])


def test_erf_special_values():
    got = ea.erf(np.array([0.0, -0.0, np.inf, -np.inf, np.nan]))
    np.testing.assert_array_equal(got[:4], [0.0, -0.0, 1.0, -1.0])
    assert np.signbit(got[1]) and np.isnan(got[4])
    assert ea.erf(3) == math.erf(3.0)  # integers are promoted, as NumPy's ufuncs do


@given(st.floats(-1e300, 1e300, allow_subnormal=True))
def test_erf_matches_math_erf_anywhere(v):
    assert abs(float(ea.erf(np.array(v))) - math.erf(v)) <= np.spacing(abs(math.erf(v))) + 1e-320


def test_logaddexp_values_broadcast_and_infinities():
    x = np.array([[-1e4], [0.0], [3.0], [1e4]])
    y = np.array([-1e4, -2.0, 0.0, 1e4])
    np.testing.assert_allclose(ea.logaddexp(x, y), np.logaddexp(x, y), rtol=1e-15)
    inf = np.inf
    np.testing.assert_array_equal(
        ea.logaddexp(np.array([-inf, inf, -inf, 1.0]), np.array([-inf, inf, 2.0, inf])),
        np.logaddexp(np.array([-inf, inf, -inf, 1.0]), np.array([-inf, inf, 2.0, inf])),
    )


def test_round_with_decimals_matches_numpy():
    x = np.array([1.234567, -2.5, 0.5, 1.5, 123.456, -0.125])
    for decimals in (-1, 0, 1, 2, 3):
        np.testing.assert_allclose(ea.round(x, decimals=decimals), np.round(x, decimals), rtol=0, atol=1e-12)


# ================================================================= first derivatives: both modes


@pytest.mark.parametrize("name", NAMES)
def test_gradient_is_the_closed_form_and_matches_finite_differences(name):
    op, ref, prime, x = OPS[name]
    g = ea.grad(lambda z: ea.sum(op(z)))(x)
    np.testing.assert_allclose(g, prime(x), rtol=1e-12, atol=1e-14)
    if name not in ("sign", "floor", "round"):  # away from the jumps, the pieces are flat
        np.testing.assert_allclose(g, fd_derivative(ref, x), rtol=1e-7, atol=1e-8)
    else:
        np.testing.assert_array_equal(fd_derivative(ref, x), 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_forward_mode_is_the_closed_form(name):
    op, _, prime, x = OPS[name]
    v = np.linspace(0.5, 1.5, x.size)
    _, tangent = ea.jvp(op, (x,), (v,))
    np.testing.assert_allclose(tangent, prime(x) * v, rtol=1e-12, atol=1e-14)


def test_logaddexp_partials_are_sigmoids_of_the_difference():
    x, y = np.array([[-1.0], [0.5], [2.0]]), np.array([0.3, -0.7])
    gx, gy = ea.grad(lambda a, b: ea.sum(ea.logaddexp(a, b)), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, np.sum(sigmoid(x - y), axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(gy, np.sum(sigmoid(y - x), axis=0), rtol=1e-14)
    _, t = ea.jvp(ea.logaddexp, (x, y), (np.ones_like(x), np.zeros_like(y)))
    np.testing.assert_allclose(t, sigmoid(x - y), rtol=1e-14)


# ================================================================= second derivatives: both modes


@pytest.mark.parametrize("name", NAMES)
def test_second_derivative_reverse_and_forward_over_reverse(name):
    op, _, prime, x = OPS[name]
    expected = fd_derivative(prime, x)
    np.testing.assert_allclose(second_order(op, x), expected, rtol=1e-6, atol=1e-7)
    grad = ea.grad(lambda z: ea.sum(op(z)))
    np.testing.assert_allclose(np.diag(ea.jacfwd(grad)(x)), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.diag(ea.hessian(lambda z: ea.sum(op(z)))(x)), expected, rtol=1e-6, atol=1e-7)


def test_logaddexp_hessian_matches_finite_differences():
    xy = np.array([0.3, -1.2])
    f = lambda v: ea.logaddexp(v[0], v[1])
    expected = np.array([[1, -1], [-1, 1]]) * sigmoid(xy[0] - xy[1]) * sigmoid(xy[1] - xy[0])
    np.testing.assert_allclose(ea.hessian(f)(xy), expected, rtol=1e-12)
    np.testing.assert_allclose(ea.jacfwd(ea.grad(f))(xy), expected, rtol=1e-12)


# ================================================================= float32 in, float32 out


@pytest.mark.parametrize("name", NAMES)
def test_float32_in_float32_out_to_second_order(name):
    op, ref, prime, x = OPS[name]
    x32 = x.astype(np.float32)
    y = op(x32)
    g = ea.grad(lambda z: ea.sum(op(z)))(x32)
    _, t = ea.jvp(op, (x32,), (np.ones_like(x32),))
    h = second_order(op, x32)
    assert (y.dtype, g.dtype, t.dtype, h.dtype) == (np.float32,) * 4, name
    np.testing.assert_allclose(y, ref(x32.astype(np.float64)), rtol=2e-6, atol=2e-7)
    np.testing.assert_allclose(g, prime(x32.astype(np.float64)), rtol=2e-5, atol=2e-6)


def test_logaddexp_float32():
    x = np.array([-1e4, 0.0, 1e4], dtype=np.float32)
    y = ea.logaddexp(x, 1.0)
    g = ea.grad(lambda v: ea.sum(ea.logaddexp(v, 1.0)))(x)
    assert y.dtype == g.dtype == ea.logaddexp(1.0, x).dtype == np.float32
    np.testing.assert_allclose(g, [0.0, sigmoid(-1.0), 1.0], rtol=1e-6)


# ================================================================= the whole float range


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", STABLE)
def test_stable_at_large_inputs_and_zero(name, dtype):
    op, ref, prime, _ = OPS[name]
    x = EXTREMES.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = op(x)
            g = ea.grad(lambda z: ea.sum(op(z)))(x)
            h = second_order(op, x)
    for value in (y, g, h):
        assert value.dtype == dtype and np.all(np.isfinite(value)), (name, value)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(y, ref(EXTREMES), rtol=1e-6)
        np.testing.assert_allclose(g, np.nan_to_num(prime(EXTREMES)), rtol=1e-6, atol=1e-30)


def test_softplus_at_800_is_not_nan_where_the_naive_form_is():
    naive = ea.grad(lambda z: ea.sum(ea.log(1 + ea.exp(z))))
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(naive(np.array([800.0]))[0])
    np.testing.assert_array_equal(ea.grad(lambda z: ea.sum(ea.softplus(z)))(np.array([800.0])), [1.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log1p_expm1_logaddexp_at_large_inputs(dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big = np.array([0.0, 1e3, 1e4], dtype=dtype)
        np.testing.assert_allclose(ea.log1p(big), np.log1p(big.astype(float)), rtol=1e-6)
        np.testing.assert_allclose(ea.grad(lambda z: ea.sum(ea.log1p(z)))(big), 1 / (1 + big.astype(float)), rtol=1e-6)
        small = -big
        np.testing.assert_allclose(ea.expm1(small), [0.0, -1.0, -1.0])
        np.testing.assert_allclose(ea.grad(lambda z: ea.sum(ea.expm1(z)))(small), np.exp(small.astype(float)), atol=1e-30)
        for a, b in [(1e4, -1e4), (-1e4, 1e4), (1e3, 1e3), (0.0, 0.0)]:
            xa, xb = np.array(a, dtype=dtype), np.array(b, dtype=dtype)
            value = ea.logaddexp(xa, xb)
            ga, gb = ea.grad(lambda u, v: ea.logaddexp(u, v), argnums=(0, 1))(xa, xb)
            assert np.isfinite(value) and value.dtype == dtype
            np.testing.assert_allclose(value, np.logaddexp(a, b), rtol=1e-6)
            np.testing.assert_allclose([ga, gb], [sigmoid(a - b), sigmoid(b - a)], atol=1e-30)


def test_hyperbolic_functions_overflow_exactly_as_numpy_does():
    x = np.array([-1e3, 1e3])
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(ea.sinh(x), np.sinh(x))
        np.testing.assert_array_equal(ea.cosh(x), np.cosh(x))


def test_zero_gradient_ops_pass_no_gradient_at_their_jumps():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.5])
    for op in (ea.sign, ea.floor, ea.round):
        np.testing.assert_array_equal(ea.grad(lambda z: ea.sum(op(z) * z))(x), op(x))


def test_numpy_functions_on_traced_values_name_the_op():
    for fn, name in [(np.log1p, "ea.log1p"), (np.expm1, "ea.expm1"), (np.logaddexp, "ea.logaddexp"),
                     (np.arctan, "ea.arctan"), (np.sinh, "ea.sinh"), (np.floor, "ea.floor"), (np.round, "ea.round")]:
        with pytest.raises(TypeError, match=name.replace(".", r"\.")):
            ea.grad(lambda z: ea.sum(fn(z) if fn is not np.logaddexp else fn(z, z)))(np.ones(2))


def test_compiled_gradient_of_the_new_ops_matches_eager():
    def loss(x):
        y = ea.softplus(x) + ea.log_sigmoid(x) + ea.silu(x) + ea.gelu(x) + ea.gelu(x, approximate="tanh")
        y = y + ea.erf(x) + ea.arctan(x) + ea.tan(x / 4) + ea.sinh(x) + ea.cosh(x) + ea.log1p(x * x)
        y = y + ea.expm1(x) + ea.arcsin(x / 4) + ea.arccos(x / 4) + ea.arctanh(x / 4)
        y = y + ea.logaddexp(x, 1.0) + ea.sign(x) + ea.floor(x) + ea.round(x, decimals=1)
        return ea.sum(y)

    x = np.linspace(-2.0, 2.0, 7) + 0.05
    fast = ea.compile(ea.grad(loss))
    np.testing.assert_allclose(fast(x), ea.grad(loss)(x), rtol=1e-13)
    np.testing.assert_allclose(fast(x + 0.1), ea.grad(loss)(x + 0.1), rtol=1e-13)
    np.testing.assert_allclose(ea.compile(loss)(x + 0.2), loss(x + 0.2), rtol=1e-14)
    source = ea.codegen(loss, x)
    assert "np.log1p(" in source and "np.atan(" in source
