"""Jacobian and reduction edge cases found by red-teaming: all-size-1 outputs in reverse
mode, real-to-complex Jacobians, small-integer reductions, non-square trace, the
gradient of logaddexp at equal infinities, torch operands of mixed float dtypes.
Truths: central finite differences (tests/numeric.py), NumPy, closed forms."""

from __future__ import annotations

import numpy as np
import pytest

import einsumad as ea
from tests.numeric import numerical_gradient, numerical_jacobian

# ------------------------------------------------- 1. every output axis of size 1, reverse mode

ALL_SIZE_ONE = [
    ("sum keepdims (3,)", (3,), lambda x: ea.sum(x * 2.0, keepdims=True), lambda x: np.sum(x * 2.0, keepdims=True)),
    ("var keepdims", (3,), lambda x: ea.var(x * 2.0, keepdims=True), lambda x: np.var(x * 2.0, keepdims=True)),
    ("std keepdims", (4,), lambda x: ea.std(x * 2.0, keepdims=True), lambda x: np.std(x * 2.0, keepdims=True)),
    ("norm keepdims", (3,), lambda x: ea.norm(x * 3.0, keepdims=True), lambda x: np.linalg.norm(x * 3.0, keepdims=True)),
    (
        "logsumexp keepdims",
        (3,),
        lambda x: ea.logsumexp(x * 2.0, keepdims=True),
        lambda x: np.log(np.sum(np.exp(x * 2.0), keepdims=True)),
    ),
    ("sum keepdims 2-d", (2, 3), lambda x: ea.sum(ea.exp(x) * 2.0, keepdims=True), lambda x: np.sum(np.exp(x) * 2.0, keepdims=True)),
    ("(1,) output", (1,), lambda x: x * 2.0, lambda x: x * 2.0),
    ("(1, 1) output", (1, 1), lambda x: ea.tanh(x) * 3.0, lambda x: np.tanh(x) * 3.0),
    (
        "(1, 1) from (2, 3)",
        (2, 3),
        lambda x: ea.reshape(ea.sum(x * x * 0.5), (1, 1)),
        lambda x: np.reshape(np.sum(x * x * 0.5), (1, 1)),
    ),
]


@pytest.mark.parametrize("name, shape, fun, truth", ALL_SIZE_ONE, ids=[c[0] for c in ALL_SIZE_ONE])
@pytest.mark.parametrize("transform", ["jacrev", "jacobian", "jacfwd"])
def test_jacobian_of_all_size_one_output_matches_finite_differences(name, shape, fun, truth, transform):
    x = np.random.default_rng(1).normal(size=shape)
    expected = numerical_jacobian(truth, [x], 0)
    got = getattr(ea, transform)(fun)(x)
    assert np.shape(got) == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


# ------------------------------------------------- 2. real input, complex output

C = np.array([1 + 2j, 0.5 - 1j, 2j])
REAL_TO_COMPLEX = [
    ("c * s", lambda s: C * s, lambda s: np.diag(C)),
    ("exp(c s)", lambda s: ea.exp(C * s), lambda s: np.diag(C * np.exp(C * s))),
    ("sum exp(c s)", lambda s: ea.sum(ea.exp(C * s)), lambda s: C * np.exp(C * s)),
    ("sum c s keepdims", lambda s: ea.sum(C * s, keepdims=True), lambda s: C[None, :]),
]


@pytest.mark.parametrize("name, fun, truth", REAL_TO_COMPLEX, ids=[c[0] for c in REAL_TO_COMPLEX])
def test_jacobian_of_real_to_complex_function_keeps_imaginary_part(name, fun, truth):
    s = np.array([0.1, 0.2, 0.3])
    expected = truth(s)  # closed form, checked below against finite differences of Re and Im
    fd = numerical_jacobian(lambda z: np.real(np.asarray(fun(z))), [s], 0) + 1j * numerical_jacobian(
        lambda z: np.imag(np.asarray(fun(z))), [s], 0
    )
    np.testing.assert_allclose(fd, expected, rtol=1e-6, atol=1e-8)
    for transform in (ea.jacobian, ea.jacfwd):
        got = transform(fun)(s)
        assert np.iscomplexobj(got)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, fun, truth", REAL_TO_COMPLEX, ids=[c[0] for c in REAL_TO_COMPLEX])
def test_jacrev_of_real_to_complex_function_is_refused(name, fun, truth):
    with pytest.raises(TypeError, match=r"ea\.jacfwd"):
        ea.jacrev(fun)(np.array([0.1, 0.2, 0.3]))


def test_jacrev_of_complex_input_and_real_to_real_still_work():
    s = np.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(ea.jacrev(lambda x: ea.exp(x) * 2.0)(s), np.diag(2 * np.exp(s)))
    z = s.astype(complex)
    np.testing.assert_allclose(ea.jacfwd(lambda x: C * x)(z), np.diag(C))


# ------------------------------------------------- 3. small-integer reductions accumulate as NumPy

SMALL_INTEGERS = [
    np.int8([100, 100, -3]),
    np.int8([[100, -100], [100, 100]]),
    np.int16([300, 400, 250]),
    np.int32([2**30, 2**30]),
    np.uint8([200, 100, 7]),
    np.uint16([60000, 60000]),
    np.array([True, True, False]),
]


@pytest.mark.parametrize("x", SMALL_INTEGERS, ids=lambda x: f"{x.dtype}{x.shape}")
@pytest.mark.parametrize("name, truth", [("sum", np.sum), ("prod", np.prod), ("mean", np.mean), ("norm", np.linalg.norm), ("var", np.var)])
@pytest.mark.parametrize("axis", [None, 0])
def test_small_integer_reduction_matches_numpy(x, name, truth, axis):
    expected = truth(x, axis=axis)
    got = np.asarray(getattr(ea, name)(x, axis=axis))
    assert got.dtype == np.asarray(expected).dtype
    np.testing.assert_array_equal(got, expected) if got.dtype.kind in "iu" else np.testing.assert_allclose(got, expected)


def test_empty_small_integer_product_is_int64():
    got = np.asarray(ea.prod(np.int8([])))
    assert got.dtype == np.prod(np.int8([])).dtype and got == 1


# ------------------------------------------------- 4. trace of non-square matrices, as numpy.linalg.trace


@pytest.mark.parametrize("shape", [(2, 3), (3, 2), (1, 4), (2, 4, 3), (3, 3)])
def test_trace_of_non_square_matches_numpy_and_finite_differences(shape):
    a = np.random.default_rng(2).normal(size=shape)
    np.testing.assert_allclose(ea.trace(a), np.linalg.trace(a))
    weights = np.arange(1.0, 1.0 + np.prod(shape[:-2], dtype=int)).reshape(shape[:-2])
    loss = lambda m: np.sum(weights * np.linalg.trace(m) ** 2)  # noqa: E731
    got = ea.grad(lambda m: ea.sum(weights * ea.trace(m) ** 2))(a)
    np.testing.assert_allclose(got, numerical_gradient(loss, [a], 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ea.jacfwd(ea.trace)(a), numerical_jacobian(np.linalg.trace, [a], 0), atol=1e-8)


def test_trace_of_vector_is_refused():
    with pytest.raises(ValueError, match="two-dimensional"):
        ea.trace(np.ones(3))


# ------------------------------------------------- 5. logaddexp at equal infinities


@pytest.mark.parametrize("inf", [-np.inf, np.inf])
def test_logaddexp_gradient_at_equal_infinities_is_one_half_each(inf):
    assert ea.logaddexp(inf, inf) == np.logaddexp(inf, inf)
    gx, gy = ea.grad(lambda x, y: ea.logaddexp(x, y), argnums=(0, 1))(inf, inf)
    assert gx == 0.5 and gy == 0.5  # JAX's value: σ(0)
    _, tangent = ea.jvp(lambda x: ea.logaddexp(x, inf), (np.array(inf),), (np.array(1.0),))
    assert tangent == 0.5


def test_logaddexp_derivatives_elsewhere_still_match_closed_form():
    # equal finite arguments keep their second derivative σ(0)(1 - σ(0)) = 1/4
    x = np.array([0.0, 1.0, -np.inf, 3.0])
    y = np.array([0.0, 1.0, 0.0, -2.0])
    sig = 1 / (1 + np.exp(-(x - y)))
    np.testing.assert_allclose(ea.grad(lambda v: ea.sum(ea.logaddexp(v, y)))(x), sig)
    hess = ea.hessian(lambda v: ea.sum(ea.logaddexp(v, y)))(x)
    np.testing.assert_allclose(hess, np.diag(sig * (1 - sig)), atol=1e-15)


# ------------------------------------------------- 6. torch operands of different float dtypes


def test_einsum_of_torch_float32_and_float64_promotes_as_numpy():
    torch = pytest.importorskip(
        "torch", reason="PyTorch is not installed (pip install 'einsumad[backends]'); nothing installed here"
    )
    pytest.importorskip("array_api_compat", reason="array-api-compat is not installed (pip install 'einsumad[backends]')")
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3, 4))
    got = ea.einsum("ij,jk->ik", torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float64))
    assert got.dtype == torch.float64
    expected = np.einsum("ij,jk->ik", a.astype(np.float32), b)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
