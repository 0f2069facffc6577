"""Linear algebra of issue 11: inv, solve, det, slogdet, cholesky, eigh, trace.

Truths: :mod:`numpy.linalg` for values; the closed forms of matrix calculus,
written here in NumPy, for the VJPs (``Ā = -Xᵀ Ḡ Xᵀ`` for the inverse, the
adjoint solve, ``ḡ det(A) A⁻ᵀ``, ...); central finite differences in float64 for
JVPs and Hessians; forward mode against reverse mode by ``<U, J V> = <Jᵀ U, V>``.
Hypothesis draws the matrix size and leading stack axes; matrices are well
conditioned by construction (``Q diag(s) Pᵀ`` with singular values in [1, 3]),
symmetric ones have well-separated eigenvalues.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einsumad as ea
from einsumad.ops import linalg
from tests.numeric import numerical_directional, numerical_jacobian

cases = st.tuples(
    st.integers(1, 4),                                        # n
    st.lists(st.integers(1, 3), max_size=2).map(tuple),       # stack axes
    st.integers(0, 2**16),                                    # seed
)


def orthogonal(rng, stack, n):
    q, r = np.linalg.qr(rng.standard_normal(stack + (n, n)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def general(rng, stack, n):
    """A well-conditioned matrix with a random sign of its determinant."""
    s = rng.uniform(1.0, 3.0, stack + (n,))
    return orthogonal(rng, stack, n) * s[..., None, :] @ np.swapaxes(orthogonal(rng, stack, n), -1, -2)


def spd(rng, stack, n):
    """Symmetric positive definite, eigenvalues at least 0.5 apart."""
    w = 1.0 + np.arange(n) + rng.uniform(0.0, 0.5, stack + (n,))
    q = orthogonal(rng, stack, n)
    return (q * w[..., None, :]) @ np.swapaxes(q, -1, -2)


def mT(x):
    return np.swapaxes(x, -1, -2)


def sym(x):
    return (x + mT(x)) / 2


def phi(x):
    return np.tril(x, -1) + 0.5 * np.eye(x.shape[-1]) * x


def eigh_vjp(a, gw, gv):
    """The eigendecomposition's VJP (Giles 2008), written in NumPy."""
    w, v = np.linalg.eigh(a)
    d = w[..., None, :] - w[..., :, None]
    f = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0)
    inner = np.eye(w.shape[-1]) * gw[..., None, :] + f * (mT(v) @ gv)
    return sym(v @ inner @ mT(v))


# One scalar loss per op, the op's NumPy twin, and how matrices are drawn.
def _eigh_loss(xp_eigh, a, c):
    w, v = xp_eigh(a)
    return (w * c[0]).sum() + (v * v * c).sum()   # sign-invariant in each eigenvector


OPS = {
    "inv": (ea.inv, np.linalg.inv, general),
    "det": (ea.det, np.linalg.det, general),
    "logabsdet": (lambda a: ea.slogdet(a)[1], lambda a: np.linalg.slogdet(a)[1], general),
    "cholesky": (lambda a: ea.cholesky(sym_ea(a)), lambda a: np.linalg.cholesky(sym(a)), spd),
    "eigvals": (lambda a: ea.eigh(sym_ea(a))[0], lambda a: np.linalg.eigh(sym(a))[0], spd),
    "eigvecs_squared": (lambda a: ea.eigh(sym_ea(a))[1] ** 2, lambda a: np.linalg.eigh(sym(a))[1] ** 2, spd),
    "trace": (ea.trace, np.linalg.trace, general),
}


def sym_ea(a):
    return (a + ea.einsum("...ij->...ji", a)) * 0.5


# ================================================================= values


@settings(max_examples=25)
@given(case=cases)
def test_values_match_numpy(case):
    n, stack, seed = case
    rng = np.random.default_rng(seed)
    a, s = general(rng, stack, n), spd(rng, stack, n)
    np.testing.assert_allclose(ea.inv(a), np.linalg.inv(a), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ea.det(a), np.linalg.det(a), rtol=1e-12)
    sign, logdet = ea.slogdet(a)
    np.testing.assert_array_equal(sign, np.linalg.slogdet(a)[0])
    np.testing.assert_allclose(logdet, np.linalg.slogdet(a)[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ea.cholesky(s), np.linalg.cholesky(s), rtol=1e-12, atol=1e-12)
    w, v = ea.eigh(s)
    np.testing.assert_allclose(w, np.linalg.eigh(s)[0], rtol=1e-12)
    np.testing.assert_allclose((v * w[..., None, :]) @ mT(v), s, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(ea.trace(a), np.linalg.trace(a), rtol=1e-14)
    b, bv = rng.standard_normal(stack + (n, 2)), rng.standard_normal(n)
    np.testing.assert_allclose(ea.solve(a, b), np.linalg.solve(a, b), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(ea.solve(a, bv), np.linalg.solve(a, bv), rtol=1e-11, atol=1e-12)


# ================================================================= VJPs against the closed forms


@settings(max_examples=25)
@given(case=cases)
def test_vjps_are_the_matrix_calculus_identities(case):
    n, stack, seed = case
    rng = np.random.default_rng(seed)
    a, s = general(rng, stack, n), spd(rng, stack, n)
    g = rng.standard_normal(stack + (n, n))
    gs = rng.standard_normal(stack)
    x, ainv = np.linalg.inv(a), np.linalg.inv(a)

    def pull(f, *args, cot, argnum=0):
        _, pullback = ea.vjp(f, *args)
        return pullback(cot)[argnum]

    np.testing.assert_allclose(pull(ea.inv, a, cot=g), -mT(x) @ g @ mT(x), rtol=1e-10, atol=1e-12)
    det = np.linalg.det(a)
    np.testing.assert_allclose(pull(ea.det, a, cot=gs), (gs * det)[..., None, None] * mT(ainv), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pull(lambda m: ea.slogdet(m)[1], a, cot=gs), gs[..., None, None] * mT(ainv),
                               rtol=1e-10, atol=1e-12)
    # solve: the adjoint solve B̄ = A⁻ᵀ Ḡ, and Ā = -B̄ Xᵀ
    b = rng.standard_normal(stack + (n, 3))
    gx = rng.standard_normal(stack + (n, 3))
    sol = np.linalg.solve(a, b)
    bbar = np.linalg.solve(mT(a), gx)
    np.testing.assert_allclose(pull(ea.solve, a, b, cot=gx, argnum=1), bbar, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pull(ea.solve, a, b, cot=gx, argnum=0), -bbar @ mT(sol), rtol=1e-10, atol=1e-12)
    # cholesky: sym(L⁻ᵀ Φ(Lᵀ L̄) L⁻¹)
    chol = np.linalg.cholesky(s)
    linv = np.linalg.inv(chol)
    expected = sym(mT(linv) @ phi(mT(chol) @ g) @ linv)
    np.testing.assert_allclose(pull(ea.cholesky, s, cot=g), expected, rtol=1e-10, atol=1e-11)
    # eigh
    gw = rng.standard_normal(stack + (n,))
    got = pull(lambda m: ea.sum(ea.eigh(m)[0] * gw) + ea.sum(ea.eigh(m)[1] * g), s, cot=np.ones(()))
    np.testing.assert_allclose(got, eigh_vjp(s, gw, g), rtol=1e-9, atol=1e-10)
    # trace: Ḡ I
    np.testing.assert_allclose(pull(ea.trace, a, cot=gs), gs[..., None, None] * np.eye(n), rtol=1e-15)


# ================================================================= JVPs against finite differences; both modes agree


@pytest.mark.parametrize("name", sorted(OPS))
@settings(max_examples=10)
@given(case=cases)
def test_jvp_matches_finite_differences_and_the_vjp(name, case):
    ours, theirs, draw = OPS[name]
    n, stack, seed = case
    rng = np.random.default_rng(seed)
    a = draw(rng, stack, n)
    v = rng.standard_normal(a.shape)
    y, jv = ea.jvp(ours, (a,), (v,))
    np.testing.assert_allclose(y, theirs(a), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jv, numerical_directional(theirs, [a], [v]), rtol=1e-5, atol=1e-6)
    u = rng.standard_normal(np.shape(y))
    _, pullback = ea.vjp(ours, a)
    np.testing.assert_allclose(np.sum(u * jv), np.sum(pullback(u)[0] * v), rtol=1e-9, atol=1e-10)


@settings(max_examples=10)
@given(case=cases)
def test_solve_jvp_in_both_arguments(case):
    n, stack, seed = case
    rng = np.random.default_rng(seed)
    a, b = general(rng, stack, n), rng.standard_normal(stack + (n, 2))
    va, vb = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    _, t = ea.jvp(ea.solve, (a, b), (va, vb))
    np.testing.assert_allclose(t, numerical_directional(np.linalg.solve, [a, b], [va, vb]), rtol=1e-5, atol=1e-6)


# ================================================================= Jacobians (batched rules) and second order


@pytest.mark.parametrize("name", sorted(OPS))
def test_jacobians_in_both_modes_match_finite_differences(name):
    ours, theirs, draw = OPS[name]
    a = draw(np.random.default_rng(7), (2,), 3)
    expected = numerical_jacobian(theirs, [a], 0)
    np.testing.assert_allclose(ea.jacrev(ours)(a), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ea.jacfwd(ours)(a), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPS))
def test_hessians_reverse_and_forward_over_reverse(name):
    ours, theirs, draw = OPS[name]
    rng = np.random.default_rng(8)
    a = draw(rng, (2,), 3)
    weights = rng.standard_normal(np.shape(theirs(a)))
    f = lambda m: ea.sum(ours(m) * weights)
    expected = numerical_jacobian(ea.grad(f), [a], 0)
    np.testing.assert_allclose(ea.hessian(f)(a), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ea.jacfwd(ea.grad(f))(a), expected, rtol=1e-5, atol=1e-6)


def test_solve_hessian_in_both_arguments():
    rng = np.random.default_rng(9)
    a, b = general(rng, (), 3), rng.standard_normal(3)
    c = rng.standard_normal(3)
    f = lambda m, r: ea.sum(ea.solve(m, r) ** 2 * c)
    for k in (0, 1):
        expected = numerical_jacobian(lambda m, r: ea.grad(f, argnums=k)(m, r), [a, b], k)
        np.testing.assert_allclose(ea.hessian(f, argnums=k)(a, b), expected, rtol=1e-5, atol=1e-6)


# ================================================================= broadcasting, float32, degenerate cases, errors


def test_solve_broadcasts_stack_axes_and_sums_cotangents_back():
    rng = np.random.default_rng(10)
    a, b = general(rng, (), 3), rng.standard_normal((4, 3, 2))   # one A for four right-hand sides
    f = lambda m, r: ea.sum(ea.solve(m, r) ** 2)
    ref = lambda m, r: np.sum(np.linalg.solve(m, r) ** 2)
    for k in (0, 1):
        np.testing.assert_allclose(ea.grad(f, argnums=k)(a, b), numerical_jacobian(ref, [a, b], k), rtol=1e-6, atol=1e-8)
        _, t = ea.jvp(lambda m, r: ea.solve(m, r), (a, b), tuple(np.ones_like(z) if i == k else np.zeros_like(z)
                                                               for i, z in enumerate((a, b))))
        d = [np.zeros_like(a), np.zeros_like(b)]
        d[k] = np.ones_like(d[k])
        np.testing.assert_allclose(t, numerical_directional(np.linalg.solve, [a, b], d), rtol=1e-6, atol=1e-8)
    stacked, vec = general(rng, (2,), 3), rng.standard_normal(3)    # stacked A, one vector
    np.testing.assert_allclose(ea.solve(stacked, vec), np.linalg.solve(stacked, vec), rtol=1e-12)
    g = ea.grad(lambda r: ea.sum(ea.solve(stacked, r)))(vec)
    np.testing.assert_allclose(g, numerical_jacobian(lambda r: np.sum(np.linalg.solve(stacked, r)), [vec], 0),
                               rtol=1e-6)


@pytest.mark.parametrize("name", sorted(OPS))
def test_float32_in_float32_out_to_second_order(name):
    ours, theirs, draw = OPS[name]
    a = draw(np.random.default_rng(11), (2,), 3).astype(np.float32)
    f = lambda m: ea.sum(ours(m))
    assert ours(a).dtype == np.float32
    assert ea.grad(f)(a).dtype == np.float32
    assert ea.hessian(f)(a).dtype == np.float32
    np.testing.assert_allclose(ours(a), theirs(a.astype(np.float64)), rtol=2e-4, atol=2e-4)


def test_eigh_with_repeated_eigenvalues_keeps_the_eigenvalue_gradient():
    a = np.diag([1.0, 1.0, 2.0])
    np.testing.assert_array_equal(ea.grad(lambda m: ea.sum(ea.eigh(m)[0]))(a), np.eye(3))   # d tr = I
    np.testing.assert_allclose(ea.grad(lambda m: ea.eigh(m)[0][2])(a), np.diag([0.0, 0.0, 1.0]), atol=1e-15)
    np.testing.assert_allclose(ea.jacfwd(lambda m: ea.eigh(m)[0])(a)[:, [0, 1, 2], [0, 1, 2]],
                               [[1, 0, 0], [0, 1, 0], [0, 0, 1]], atol=1e-15)


def test_each_primitive_states_its_vjp_in_matrix_notation():
    notations = {p.name: p.declaration.notation for p in
                 (linalg.inv_p, linalg.solve_p, linalg.det_p, linalg.logabsdet_p, linalg.cholesky_p, linalg.eigh_p)}
    assert notations["inv"].vjp == ("-{ans}^T {g} {ans}^T",)
    assert notations["solve"].vjp == ("-{0}^-T {g} {ans}^T", "{0}^-T {g}")
    assert notations["det"].vjp == ("{g} {ans} {0}^-T",)
    assert notations["logabsdet"].vjp == ("{g} {0}^-T",)
    assert all(n.vjp and n.forward for n in notations.values())
    assert ea.matrix_form("ii->") == "tr(A)"   # trace is an einsum: its rule is the swap


def test_errors_quote_the_shapes():
    with pytest.raises(np.linalg.LinAlgError, match=r"square; got shape \(2, 3\)"):
        ea.inv(np.ones((2, 3)))
    with pytest.raises(np.linalg.LinAlgError, match="at least two-dimensional"):
        ea.det(np.ones(3))
    with pytest.raises(ValueError, match="b needs 2 entries"):
        ea.solve(np.eye(2), np.ones(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, k\)"):
        ea.solve(np.eye(2), np.ones((3, 3)))
    with pytest.raises(TypeError, match=r"ea\.inv"):
        ea.grad(lambda m: ea.sum(np.linalg.inv(m)))(np.eye(2))


@pytest.mark.parametrize("shape_a,shape_b", [((2, 3, 3), (3, 2)), ((3, 3), (4, 3, 2)), ((2, 1, 3, 3), (4, 3, 1))])
def test_solve_jacobians_with_broadcast_stack_axes_in_both_modes(shape_a, shape_b):
    rng = np.random.default_rng(12)
    a = general(rng, shape_a[:-2], 3)
    b = rng.standard_normal(shape_b)
    for k in (0, 1):
        expected = numerical_jacobian(np.linalg.solve, [a, b], k)
        np.testing.assert_allclose(ea.jacrev(ea.solve, argnums=k)(a, b), expected, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ea.jacfwd(ea.solve, argnums=k)(a, b), expected, rtol=1e-6, atol=1e-8)
