"""The models of the guide, checked against outside truths.

* A pre-LN transformer block (layer norm, multi-head attention, tanh-GELU MLP):
  every gradient against the hand-derived NumPy backward pass of
  ``benchmarks/transformer_block.py`` (itself checked by finite differences), and
  against PyTorch when it is installed (``pytest -m slow``: importing torch is slow).
* A Gaussian-process log-likelihood through ``solve`` and ``slogdet``: the value
  against the normal density computed through an eigendecomposition, the gradient
  against Rasmussen and Williams' closed form, the Hessian against finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import einsumad as ea
from benchmarks import transformer_block as tb
from tests.numeric import numerical_gradient, numerical_jacobian

SMALL = {"batch": 2, "seq": 5, "width": 8, "heads": 2, "mlp": 12}


def _inputs(dtype=np.float64, sizes=SMALL, seed=0):
    params, x, t = tb.setup(np.random.default_rng(seed), **sizes, dtype=dtype)
    return params, x, t, sizes["heads"]


# ================================================================= transformer block


def test_hand_derived_backward_matches_finite_differences():
    params, x, t, heads = _inputs()
    _, grads = tb.reference(params, x, t, heads)
    for name in ("g1", "Wq", "Wo", "b2", "W1", "c2"):
        def value(w, name=name):
            return tb.reference({**params, name: w}, x, t, heads)[0]
        np.testing.assert_allclose(grads[name], numerical_gradient(value, [params[name]], 0),
                                   rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("sizes", [SMALL, {"batch": 3, "seq": 7, "width": 12, "heads": 3, "mlp": 20}])
def test_every_gradient_equals_the_hand_derived_backward(sizes):
    params, x, t, heads = _inputs(sizes=sizes)
    value, grads = ea.value_and_grad(lambda p: tb.loss(p, x, t, heads))(params)
    expected_value, expected = tb.reference(params, x, t, heads)
    np.testing.assert_allclose(value, expected_value, rtol=1e-13)
    for name in tb.NAMES:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-11, atol=1e-12, err_msg=name)


def test_compiled_block_equals_the_hand_derived_backward_on_new_inputs():
    params, x, t, heads = _inputs()
    compiled = ea.compile(ea.value_and_grad(lambda p, x, t: tb.loss(p, x, t, heads)))
    compiled(params, x, t)
    params2, x2, t2, _ = _inputs(seed=1)
    value, grads = compiled(params2, x2, t2)
    expected_value, expected = tb.reference(params2, x2, t2, heads)
    np.testing.assert_allclose(value, expected_value, rtol=1e-13)
    for name in tb.NAMES:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-11, atol=1e-12, err_msg=name)


def test_block_in_float32_stays_float32():
    params, x, t, heads = _inputs(np.float32)
    value, grads = ea.value_and_grad(lambda p: tb.loss(p, x, t, heads))(params)
    assert np.asarray(value).dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    _, expected = tb.reference(p64, x.astype(np.float64), t.astype(np.float64), heads)
    for name in tb.NAMES:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-3, atol=1e-4, err_msg=name)


@pytest.mark.slow  # importing torch takes seconds
def test_block_matches_pytorch_when_installed():
    torch = pytest.importorskip("torch")
    params, x, t, heads = _inputs()
    leaves = tuple(torch.tensor(params[name], requires_grad=True) for name in tb.NAMES)
    out = tb.torch_loss(leaves, {"x": torch.tensor(x), "t": torch.tensor(t)}, heads)
    out.backward()
    value, grads = out.item(), {name: leaf.grad.numpy() for name, leaf in zip(tb.NAMES, leaves)}
    ours_value, ours = ea.value_and_grad(lambda p: tb.loss(p, x, t, heads))(params)
    np.testing.assert_allclose(ours_value, value, rtol=1e-13)
    for name in tb.NAMES:
        np.testing.assert_allclose(ours[name], grads[name], rtol=1e-11, atol=1e-12, err_msg=name)


@pytest.mark.slow
def test_pytorch_gelu_and_layer_norm_definitions_when_installed():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    z = np.linspace(-6.0, 6.0, 25)
    np.testing.assert_allclose(ea.gelu(z), F.gelu(torch.tensor(z)).numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ea.gelu(z, approximate="tanh"), F.gelu(torch.tensor(z), approximate="tanh").numpy(),
                               rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ea.softplus(z), F.softplus(torch.tensor(z)).numpy(), rtol=1e-14)
    np.testing.assert_allclose(ea.silu(z), F.silu(torch.tensor(z)).numpy(), rtol=1e-14, atol=1e-15)
    x = np.random.default_rng(0).standard_normal((3, 7))
    np.testing.assert_allclose(ea.layer_norm(x), F.layer_norm(torch.tensor(x), (7,)).numpy(), rtol=1e-13)


# ================================================================= Gaussian log-likelihood


def gp_log_likelihood(theta, t, y):
    ell, s, noise = ea.exp(theta[0]), ea.exp(theta[1]), ea.exp(theta[2])
    d2 = (t[:, None] - t[None, :]) ** 2
    K = s**2 * ea.exp(-d2 / (2 * ell**2)) + noise**2 * np.eye(len(t))
    alpha = ea.solve(K, y)
    _, logdet = ea.slogdet(K)
    return -0.5 * (ea.einsum("i,i->", y, alpha) + logdet + len(t) * math.log(2 * math.pi))


def _kernel(theta, t):
    ell, s, noise = np.exp(theta)
    d2 = (t[:, None] - t[None, :]) ** 2
    e = np.exp(-d2 / (2 * ell**2))
    k = s**2 * e + noise**2 * np.eye(len(t))
    dk = [s**2 * e * d2 / ell**2, 2 * s**2 * e, 2 * noise**2 * np.eye(len(t))]
    return k, dk


def normal_logpdf(y, mean, cov):
    """log N(y; mean, cov) for each row of y, through the eigendecomposition of cov (NumPy)."""
    w, q = np.linalg.eigh(cov)
    z = (np.atleast_2d(y) - mean) @ q / np.sqrt(w)
    return -0.5 * (np.sum(z * z, axis=-1) + np.sum(np.log(w)) + len(w) * math.log(2 * math.pi))


GP_T = np.linspace(0.0, 1.0, 9)
GP_Y = np.sin(6 * GP_T) + 0.1 * np.random.default_rng(2).standard_normal(9)
GP_THETA = np.log([0.3, 1.2, 0.15])


def test_gp_log_likelihood_value_and_gradient_match_the_closed_forms():
    k, dk = _kernel(GP_THETA, GP_T)
    value = gp_log_likelihood(GP_THETA, GP_T, GP_Y)
    np.testing.assert_allclose(value, normal_logpdf(GP_Y, np.zeros(9), k)[0], rtol=1e-12)
    a = np.linalg.solve(k, GP_Y)
    kinv = np.linalg.inv(k)
    expected = [0.5 * np.trace((np.outer(a, a) - kinv) @ d) for d in dk]
    np.testing.assert_allclose(ea.grad(gp_log_likelihood)(GP_THETA, GP_T, GP_Y), expected, rtol=1e-10)
    _, tangent = ea.jvp(lambda th: gp_log_likelihood(th, GP_T, GP_Y), (GP_THETA,), (np.array([1.0, -2.0, 0.5]),))
    np.testing.assert_allclose(tangent, np.dot(expected, [1.0, -2.0, 0.5]), rtol=1e-10)


def test_gp_log_likelihood_hessian_both_ways():
    f = lambda th: gp_log_likelihood(th, GP_T, GP_Y)
    expected = numerical_jacobian(ea.grad(f), [GP_THETA], 0)
    np.testing.assert_allclose(ea.hessian(f)(GP_THETA), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ea.jacfwd(ea.grad(f))(GP_THETA), expected, rtol=1e-6, atol=1e-6)


def test_multivariate_normal_with_a_full_covariance_and_float32():
    rng = np.random.default_rng(5)
    n = 4
    m = rng.standard_normal((n, n))
    sigma = m @ m.T + n * np.eye(n)
    mu, y = rng.standard_normal(n), rng.standard_normal((6, n))    # six observations

    def nll(mu, sigma):
        r = y - mu
        alpha = ea.solve(sigma, ea.transpose(r))                   # (n, 6)
        return 0.5 * (ea.einsum("ki,ik->", r, alpha) + 6 * ea.slogdet(sigma)[1])

    expected = -normal_logpdf(y, mu, sigma).sum() - 6 * n / 2 * math.log(2 * math.pi)
    np.testing.assert_allclose(nll(mu, sigma), expected, rtol=1e-12)
    sinv = np.linalg.inv(sigma)
    r = y - mu
    g_mu, g_sigma = ea.grad(nll, argnums=(0, 1))(mu, sigma)
    np.testing.assert_allclose(g_mu, -(sinv @ r.T).sum(axis=1), rtol=1e-11)
    np.testing.assert_allclose(g_sigma, 0.5 * (6 * sinv - sinv @ r.T @ r @ sinv), rtol=1e-10, atol=1e-13)
    g32 = ea.grad(nll, argnums=(0, 1))(mu.astype(np.float32), sigma.astype(np.float32))
    assert g32[0].dtype == g32[1].dtype == np.float32
    np.testing.assert_allclose(g32[1], g_sigma, rtol=1e-4, atol=1e-5)
