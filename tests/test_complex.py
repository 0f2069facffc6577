"""Complex numbers, in one convention: every VJP is the transpose of the (real-)linear
map, with no conjugation inside the rule (as JAX and HIPS autograd).

A cotangent ``c`` pairs with a tangent ``v`` by ``<c, v> = Re(sum c v)``. So for a
real loss ``L`` of ``z = x + iy`` the gradient is ``∂L/∂x - i ∂L/∂y``, and for a
holomorphic ``f`` the VJP of ``g`` is ``f'(z) g`` and the Jacobian is ``f'``.

Every truth here is independent of einsumad's differentiation: central finite
differences in the real *and* the imaginary direction of each element, NumPy's
einsum, and closed forms.
"""

from __future__ import annotations

import numpy as np
import pytest

import einsumad as ea

EPS = 1e-6


def crandn(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def partials(fun, args, argnum: int, eps: float = EPS) -> tuple[np.ndarray, np.ndarray]:
    """(∂L/∂x, ∂L/∂y) of a real scalar ``fun`` at ``z = args[argnum] = x + iy``,
    by central differences along each element's real and imaginary direction."""
    args = [np.array(a) for a in args]
    z = args[argnum]
    dx = np.zeros(z.shape)
    dy = np.zeros(z.shape)
    for index in np.ndindex(z.shape):
        for step, out in ((1.0, dx), (1j, dy)):
            up = [a.copy() for a in args]
            down = [a.copy() for a in args]
            up[argnum][index] += eps * step
            down[argnum][index] -= eps * step
            out[index] = (float(np.real(fun(*up))) - float(np.real(fun(*down)))) / (2 * eps)
    return dx, dy


def directional(fun, z: np.ndarray, v: np.ndarray, eps: float = EPS) -> np.ndarray:
    """(f(z + eps v) - f(z - eps v)) / (2 eps): the derivative of ``fun`` along ``v``."""
    return (np.asarray(fun(z + eps * v)) - np.asarray(fun(z - eps * v))) / (2 * eps)


# ---------------------------------------------------------------- the swap rule on complex operands

SWAP_CORPUS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("i,i->", [(3,), (3,)]),
    ("ij,j->i", [(2, 3), (3,)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("ij->ji", [(2, 3)]),
    ("ii->i", [(3, 3)]),
    ("i->ii", [(3,)]),
    ("i,j->ij", [(2,), (3,)]),
    ("ijk,ik->kj", [(2, 3, 2), (2, 2)]),
]


@pytest.mark.parametrize("subscripts,shapes", SWAP_CORPUS, ids=[s for s, _ in SWAP_CORPUS])
def test_the_swap_rule_is_the_plain_transpose_on_complex_operands(subscripts, shapes, rng):
    operands = [crandn(rng, *s) for s in shapes]
    out, vjp_fn = ea.vjp(lambda *xs: ea.einsum(subscripts, *xs), *operands)
    g = crandn(rng, *np.shape(out))
    grads = vjp_fn(g)
    for k, x in enumerate(operands):
        for direction in (crandn(rng, *x.shape).real, 1j * crandn(rng, *x.shape).real):
            def moved(t, k=k):
                xs = list(operands)
                xs[k] = t
                return ea.einsum(subscripts, *xs)
            # The defining identity of the convention: <g, J v> = <VJP(g), v> with <c, v> = Re(sum c v).
            lhs = np.real(np.sum(g * directional(moved, x, direction)))
            rhs = np.real(np.sum(grads[k] * direction))
            np.testing.assert_allclose(rhs, lhs, rtol=1e-7, atol=1e-8)


def test_the_vjp_of_a_complex_matrix_product_has_no_conjugate(rng):
    A, B, G = crandn(rng, 2, 3), crandn(rng, 3, 4), crandn(rng, 2, 4)
    _, vjp_fn = ea.vjp(lambda A, B: ea.einsum("ij,jk->ik", A, B), A, B)
    dA, dB = vjp_fn(G)
    np.testing.assert_allclose(dA, G @ B.T)  # not G @ B^H
    np.testing.assert_allclose(dB, A.T @ G)


# ---------------------------------------------------------------- real losses of complex inputs


LOSSES = {
    "|z|^2": (lambda z: ea.sum(ea.real(z * ea.conj(z))), lambda z: np.sum(np.abs(z) ** 2)),
    "|sum z^2|": (lambda z: ea.abs(ea.sum(z * z)), lambda z: np.abs(np.sum(z * z))),
    "Re(z w z)": (lambda z: ea.real(ea.einsum("i,ij,j->", z, W, z)), lambda z: np.real(z @ W @ z)),
    "sum angle": (lambda z: ea.sum(ea.angle(z)), lambda z: np.sum(np.angle(z))),
    "sum Im exp": (lambda z: ea.sum(ea.imag(ea.exp(z))), lambda z: np.sum(np.imag(np.exp(z)))),
    "sum |z| tanh": (lambda z: ea.sum(ea.abs(ea.tanh(z))), lambda z: np.sum(np.abs(np.tanh(z)))),
    # norm, var and std of complex values sum |z|² as NumPy does (they summed z², giving 0j for [3+4j, 1j])
    "norm": (lambda z: ea.norm(z), lambda z: np.linalg.norm(z)),
    "var": (lambda z: ea.var(z), lambda z: np.var(z)),
    "std ddof 1": (lambda z: ea.std(z, ddof=1), lambda z: np.std(z, ddof=1)),
}
W = np.array([[1.0 + 0.5j, -0.3j, 0.2], [0.4, 2.0 - 1j, 0.1j], [0.3 - 0.2j, 0.0, 1.5]])


@pytest.mark.parametrize("name", LOSSES)
def test_the_gradient_of_a_real_loss_is_d_dx_minus_i_d_dy(name, rng):
    loss, numpy_loss = LOSSES[name]
    z = crandn(rng, 3)
    g = ea.grad(loss)(z)
    assert g.dtype == np.complex128
    dx, dy = partials(numpy_loss, (z,), 0)
    np.testing.assert_allclose(g, dx - 1j * dy, rtol=1e-6, atol=1e-7)


def test_the_conjugate_gradient_is_the_steepest_ascent_and_matches_pytorch(rng):
    c = crandn(rng, 4)

    def loss(z):
        d = z - c
        return ea.sum(ea.real(d * ea.conj(d)))   # |z - c|²

    z = crandn(rng, 4)
    g = ea.grad(loss)(z)
    np.testing.assert_allclose(g, 2 * np.conj(z - c))        # ∂/∂x - i ∂/∂y
    # Descent along the conjugate reaches the minimum at c in one step of 1/2.
    np.testing.assert_allclose(z - 0.5 * np.conj(g), c)
    torch = pytest.importorskip("torch", reason="PyTorch is optional (pip install 'einsumad[backends]')")
    t = torch.tensor(z, requires_grad=True)
    torch.sum(torch.abs(t - torch.tensor(c)) ** 2).backward()
    np.testing.assert_allclose(t.grad.numpy(), np.conj(g))   # PyTorch's .grad is our conjugate


# ---------------------------------------------------------------- holomorphic functions


def holomorphic(z):
    return ea.exp(ea.einsum("ij,jk->ik", z, z)) + ea.sin(z) * z ** 3 - ea.log(z) / (z + 2.0)


def holomorphic_np(z):
    return np.exp(z @ z) + np.sin(z) * z ** 3 - np.log(z) / (z + 2.0)


def test_jvps_of_a_holomorphic_function_in_real_and_imaginary_directions(rng):
    z = crandn(rng, 3, 3)
    for v in (rng.standard_normal((3, 3)) + 0j, 1j * rng.standard_normal((3, 3))):
        _, tangent = ea.jvp(holomorphic, (z,), (v,))
        np.testing.assert_allclose(tangent, directional(holomorphic_np, z, v), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("jacobian", [ea.jacobian, ea.jacrev, ea.jacfwd], ids=["jacobian", "jacrev", "jacfwd"])
def test_jacobians_of_a_holomorphic_function_are_its_complex_derivative(jacobian, rng):
    z = crandn(rng, 2, 2)
    J = jacobian(holomorphic)(z)
    assert J.shape == (2, 2, 2, 2)
    for index in np.ndindex(2, 2):
        e = np.zeros((2, 2))
        e[index] = 1.0
        np.testing.assert_allclose(J[(...,) + index], directional(holomorphic_np, z, e), rtol=1e-6, atol=1e-6)
        # The same complex number in the imaginary direction, times i: the Cauchy-Riemann equations.
        np.testing.assert_allclose(1j * J[(...,) + index], directional(holomorphic_np, z, 1j * e), rtol=1e-6, atol=1e-6)


def test_sum_exp_einsum_of_complex_A_and_B_through_jacobian(rng):
    """The issue's first case: f(A, B) = sum(exp(einsum("ij,jk->ik", A, B)))."""
    A, B = crandn(rng, 2, 3), crandn(rng, 3, 2)

    def f(A, B):
        return ea.sum(ea.exp(ea.einsum("ij,jk->ik", A, B)))

    dA, dB = ea.jacobian(f, argnums=(0, 1))(A, B)
    E = np.exp(A @ B)
    np.testing.assert_allclose(dA, E @ B.T)      # the complex derivative, closed form
    np.testing.assert_allclose(dB, A.T @ E)
    for index in np.ndindex(A.shape):
        e = np.zeros(A.shape)
        e[index] = 1.0
        for v in (e, 1j * e):   # real and imaginary directions: f(A + eps v) - f(A - eps v)
            numeric = directional(lambda a: np.sum(np.exp(a @ B)), A, v)
            np.testing.assert_allclose(np.sum(dA * v), numeric, rtol=1e-6, atol=1e-7)
    dz = ea.grad(f, argnums=(0, 1), holomorphic=True)(A, B)
    np.testing.assert_allclose(dz[0], dA)
    np.testing.assert_allclose(dz[1], dB)


def test_abs_of_a_complex_contraction_with_respect_to_a_real_scale(rng):
    """The issue's second case: L(s) = |sum(einsum("ab,bc->ac", s h, s h))| = s² |sum(h h)|."""
    h = crandn(rng, 3, 3)

    def loss(s):
        hs = h * s
        return ea.abs(ea.sum(ea.einsum("ab,bc->ac", hs, hs)))

    for s in (0.7, -1.3):
        g = ea.grad(loss)(np.array(s))
        assert g.dtype == np.float64 and g.shape == ()
        numeric = (np.abs(np.sum((h * (s + EPS)) @ (h * (s + EPS)))) - np.abs(np.sum((h * (s - EPS)) @ (h * (s - EPS))))) / (2 * EPS)
        np.testing.assert_allclose(g, numeric, rtol=1e-6)
        np.testing.assert_allclose(g, 2 * s * np.abs(np.sum(h @ h)), rtol=1e-12)


def test_the_gradient_of_a_quantum_expectation_value(rng):
    """The issue's third case: L = Re(psi^H H psi) for a Hermitian H. Its steepest-ascent
    direction is 2 H psi; in this convention the gradient is the conjugate, conj(2 H psi)."""
    M = crandn(rng, 4, 4)
    H = M + M.conj().T
    psi = crandn(rng, 4)

    def energy(psi):
        return ea.real(ea.einsum("i,ij,j->", ea.conj(psi), H, psi))

    g = ea.grad(energy)(psi)
    np.testing.assert_allclose(np.conj(g), 2 * H @ psi)
    dx, dy = partials(lambda p: np.real(np.conj(p) @ H @ p), (psi,), 0)
    np.testing.assert_allclose(g, dx - 1j * dy, rtol=1e-6, atol=1e-6)
    # One step of gradient ascent along conj(g) increases the energy at the rate |g|².
    step = 1e-6
    rise = (np.real(np.conj(psi + step * np.conj(g)) @ H @ (psi + step * np.conj(g))) - np.real(np.conj(psi) @ H @ psi)) / step
    np.testing.assert_allclose(rise, np.sum(np.abs(g) ** 2), rtol=1e-4)


# ---------------------------------------------------------------- the ops that are not holomorphic


NONHOLOMORPHIC = {
    "real": (ea.real, np.real), "imag": (ea.imag, np.imag), "conj": (ea.conj, np.conj),
    "abs": (ea.abs, np.abs), "angle": (ea.angle, np.angle),
}


@pytest.mark.parametrize("name", NONHOLOMORPHIC)
def test_nonholomorphic_ops_vjp_and_jvp_against_finite_differences(name, rng):
    op, numpy_op = NONHOLOMORPHIC[name]
    z = crandn(rng, 5)
    np.testing.assert_allclose(op(z), numpy_op(z))
    out, vjp_fn = ea.vjp(op, z)
    g = crandn(rng, 5) if np.iscomplexobj(out) else rng.standard_normal(5)
    (vjp,) = vjp_fn(g)
    for v in (rng.standard_normal(5) + 0j, 1j * rng.standard_normal(5)):
        numeric = directional(numpy_op, z, v)
        np.testing.assert_allclose(ea.jvp(op, (z,), (v,))[1], numeric, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(np.real(np.sum(vjp * v)), np.real(np.sum(g * numeric)), rtol=1e-6, atol=1e-8)


def test_the_documented_rules_in_closed_form(rng):
    z = crandn(rng, 4)
    one = np.ones(4)
    np.testing.assert_allclose(ea.vjp(ea.real, z)[1](one)[0], one + 0j)
    np.testing.assert_allclose(ea.vjp(ea.imag, z)[1](one)[0], -1j * one)
    np.testing.assert_allclose(ea.vjp(ea.conj, z)[1](z)[0], np.conj(z))
    np.testing.assert_allclose(ea.vjp(ea.abs, z)[1](one)[0], np.conj(z) / np.abs(z))
    np.testing.assert_allclose(ea.vjp(ea.angle, z)[1](one)[0], -1j * np.conj(z) / np.abs(z) ** 2)
    # At the origin, where they have no derivative, abs and angle take 0.
    assert ea.grad(lambda z: ea.sum(ea.abs(z)))(np.zeros(2, complex)).tolist() == [0, 0]
    assert ea.grad(lambda z: ea.sum(ea.angle(z)))(np.zeros(2, complex)).tolist() == [0, 0]


def test_on_real_arrays_they_are_the_real_ops():
    x = np.array([-2.0, 0.5, 3.0])
    assert ea.grad(lambda x: ea.sum(ea.real(x) * x))(x).tolist() == (2 * x).tolist()
    assert ea.grad(lambda x: ea.sum(ea.conj(x) * x))(x).tolist() == (2 * x).tolist()
    assert ea.grad(lambda x: ea.sum(ea.imag(x) + x))(x).tolist() == [1.0, 1.0, 1.0]
    assert ea.grad(lambda x: ea.sum(ea.abs(x)))(x).tolist() == [-1.0, 1.0, 1.0]


def test_tensor_methods_for_complex_values(rng):
    z = crandn(rng, 3)
    g = ea.grad(lambda z: ea.sum((z.conj() * z).real + z.imag + abs(z)))(z)
    dx, dy = partials(lambda z: np.sum((np.conj(z) * z).real + z.imag + np.abs(z)), (z,), 0)
    np.testing.assert_allclose(g, dx - 1j * dy, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- check_grads, errors, dtypes


def test_check_grads_checks_complex_arguments_in_both_directions(rng):
    A, B = crandn(rng, 2, 3), crandn(rng, 3, 2)
    ea.check_grads(lambda A, B: ea.exp(ea.einsum("ij,jk->ik", A, B)), (A, B), order=2)
    ea.check_grads(lambda z: ea.abs(z) + ea.angle(z) + ea.real(z) * ea.imag(z), (crandn(rng, 4),), order=2)


def test_check_grads_catches_a_conjugated_rule(rng):
    @ea.primitive
    def double(z):
        return 2 * z

    ea.defvjp(double, lambda ans, z: lambda g: 2 * np.conj(g))   # the PyTorch habit, wrong here
    with pytest.raises(ea.GradientCheckError, match="z.imag"):
        ea.check_grads(lambda z: double(z), (crandn(rng, 3),), modes=("rev",))


def test_a_complex_output_needs_holomorphic_true(rng):
    z = crandn(rng, 3)
    with pytest.raises(TypeError, match="holomorphic=True"):
        ea.grad(lambda z: ea.sum(z * z))(z)
    np.testing.assert_allclose(ea.grad(lambda z: ea.sum(z * z), holomorphic=True)(z), 2 * z)
    with pytest.raises(TypeError, match="needs complex inputs"):
        ea.grad(lambda x: ea.sum(x * 1j), holomorphic=True)(np.ones(2))
    with pytest.raises(TypeError, match="complex output"):
        ea.grad(lambda z: ea.abs(ea.sum(z)), holomorphic=True)(z)


def test_complex64_stays_complex64_and_real_parameters_get_real_gradients(rng):
    z = crandn(rng, 3).astype(np.complex64)
    w = np.array([0.5, -1.0, 2.0], dtype=np.float32)

    def loss(z, w):
        return ea.abs(ea.sum(z * w))

    gz, gw = ea.grad(loss, argnums=(0, 1))(z, w)
    assert gz.dtype == np.complex64 and gw.dtype == np.float32
    s = np.sum(z * w)
    np.testing.assert_allclose(gw, np.real(np.conj(s) * z) / np.abs(s), rtol=1e-5)


# ---------------------------------------------------------------- ops defined for real numbers only


@pytest.mark.parametrize(
    "op", [ea.erf, ea.gelu, lambda z: ea.gelu(z, approximate="tanh"), ea.softplus, ea.sigmoid, ea.silu,
           ea.log_sigmoid, lambda z: ea.logaddexp(z, 1.0), lambda z: ea.logaddexp(1.0, z), ea.sign],
)
def test_a_real_only_op_refuses_a_complex_operand(op):
    """These ops' stable real formulas dropped or mangled the imaginary part
    (erf(0.3+0.4j) gave 0.3286; the true value is 0.382+0.431j)."""
    with pytest.raises(TypeError, match="real numbers only"):
        op(np.array([0.3 + 0.4j]))


@pytest.mark.parametrize("op", [ea.eigh, ea.cholesky])
def test_eigh_and_cholesky_refuse_a_hermitian_matrix(op):
    with pytest.raises(TypeError, match="conjugate transpose"):
        op(np.array([[2.0, 1j], [-1j, 3.0]]))


def test_the_tangent_of_log_abs_det_of_a_complex_matrix_is_real(rng):
    """d log|det A| = Re tr(A⁻¹ dA): the JVP returned the complex trace."""
    A = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3)) + 3 * np.eye(3)
    E = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3))
    _, tangent = ea.jvp(lambda a: ea.slogdet(a)[1], (A,), (E,))
    h = 1e-6
    fd = (np.linalg.slogdet(A + h * E)[1] - np.linalg.slogdet(A - h * E)[1]) / (2 * h)
    assert not np.iscomplexobj(tangent)
    np.testing.assert_allclose(tangent, fd, rtol=1e-6)


@pytest.mark.parametrize("name", ["norm", "var", "std ddof 1"])
def test_norm_var_and_std_of_complex_values_are_numpys(name, rng):
    loss, numpy_loss = LOSSES[name]
    for z in (np.array([3 + 4j, 1j]), crandn(rng, 5)):
        value = loss(z)
        assert not np.iscomplexobj(value)
        np.testing.assert_allclose(value, numpy_loss(z), rtol=1e-13)
