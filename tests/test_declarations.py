"""A user primitive of each kind, declared once, differentiated every way.

For each kind (einsum, elementwise, linear, general) the primitive's value
comes from its own NumPy implementation and its derivatives from the
declaration alone. Every transformation is checked against central finite
differences in float64, ``compile`` and ``codegen`` against eager values, and
``derive`` against the declared mathematics.
"""

from __future__ import annotations

import numpy as np
import pytest

import einsumad as ea
from tests.numeric import numerical_directional, numerical_gradient, numerical_jacobian

# ---------------------------------------------------------------- the four declarations

# einsum: x^T A y, computed by NumPy; VJPs by the swap of "i,ij,j->".
@ea.primitive(einsum="i,ij,j->")
def bilinear(x, A, y):
    return np.einsum("i,ij,j->", x, A, y)

# elementwise: softsign x / (1 + |x|), with f'(x) = 1 / (1 + |x|)^2.
@ea.primitive(elementwise=lambda x: 1 / (1 + ea.abs(x)) ** 2)
def softsign(x):
    return x / (1 + np.abs(x))


# linear: the cumulative sum, whose transpose is the reversed cumulative sum.
def _reversed_cumsum(g, x):
    n = x.shape[-1]
    upper = np.triu(np.ones((n, n)))  # upper[i, j] = 1 for j >= i
    return ea.einsum("...j,ij->...i", g, upper)


@ea.primitive(linear=_reversed_cumsum)
def cumsum(x):
    return np.cumsum(x, axis=-1)


# general: logsumexp with a hand-written VJP (softmax) and no JVP (forward mode
# transposes the VJP).
@ea.primitive
def lse(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


ea.defvjp(lse, lambda ans, x: lambda g: g * ea.exp(x - ans))


def _np_lse(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


# Each case: the primitive, a scalar loss using it, the same loss in NumPy, arguments.
def _cases(rng):
    x, y, A = rng.normal(size=3), rng.normal(size=4), rng.normal(size=(3, 4))
    v = rng.normal(size=5)
    return {
        "einsum": (
            bilinear,
            lambda x, A, y: ea.tanh(bilinear(x, A, y)),
            lambda x, A, y: np.tanh(np.einsum("i,ij,j->", x, A, y)),
            [x, A, y],
        ),
        "elementwise": (
            softsign,
            lambda v: ea.sum(softsign(v) ** 3),
            lambda v: np.sum((v / (1 + np.abs(v))) ** 3),
            [v],
        ),
        "linear": (
            cumsum,
            lambda v: ea.sum(ea.sin(cumsum(v))),
            lambda v: np.sum(np.sin(np.cumsum(v))),
            [v],
        ),
        "general": (
            lse,
            lambda v: lse(v * v),
            lambda v: _np_lse(v * v),
            [v],
        ),
    }


KINDS = ["einsum", "elementwise", "linear", "general"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_primitive_is_declared_with_its_kind(kind, rng):
    prim = _cases(rng)[kind][0]
    assert prim.kind == kind


@pytest.mark.parametrize("kind", KINDS)
def test_grad_and_vjp_match_finite_differences(kind, rng):
    _, loss, loss_np, args = _cases(rng)[kind]
    argnums = tuple(range(len(args)))
    grads = ea.grad(loss, argnums=argnums)(*args)
    for k, g in enumerate(grads):
        np.testing.assert_allclose(g, numerical_gradient(loss_np, args, k), rtol=1e-6, atol=1e-8)
    _, vjp_fn = ea.vjp(loss, *args)
    for g, want in zip(vjp_fn(np.array(2.0)), grads):
        np.testing.assert_allclose(g, 2 * want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_jvp_matches_finite_differences(kind, rng):
    _, loss, loss_np, args = _cases(rng)[kind]
    tangents = [rng.normal(size=np.shape(a)) for a in args]
    _, tangent = ea.jvp(loss, tuple(args), tuple(tangents))
    np.testing.assert_allclose(tangent, numerical_directional(loss_np, args, tangents), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", KINDS)
def test_jacobian_of_the_primitive_itself_matches_finite_differences(kind, rng):
    prim, _, _, args = _cases(rng)[kind]
    if kind == "einsum":
        fun, fun_np, arg = (lambda A: prim(args[0], A, args[2])), (lambda A: np.einsum("i,ij,j->", args[0], A, args[2])), args[1]
    else:
        fun, fun_np, arg = prim, prim.impl, args[0]
    want = numerical_jacobian(fun_np, [arg], 0)
    for jac in (ea.jacobian, ea.jacrev, ea.jacfwd):
        np.testing.assert_allclose(jac(fun)(arg), want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", KINDS)
def test_hessian_matches_finite_differences_of_the_gradient(kind, rng):
    _, loss, loss_np, args = _cases(rng)[kind]
    last = len(args) - 1

    def grad_np(*a):
        return numerical_gradient(loss_np, a, last, eps=1e-5)

    hess = ea.hessian(loss, argnums=last)(*args)
    n = np.size(args[last])
    want = np.zeros((n, n))
    for i in range(n):
        up, down = [np.array(a, dtype=float) for a in args], [np.array(a, dtype=float) for a in args]
        up[last].flat[i] += 1e-4
        down[last].flat[i] -= 1e-4
        want[:, i] = ((grad_np(*up) - grad_np(*down)) / 2e-4).ravel()
    np.testing.assert_allclose(hess.reshape(n, n), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_compile_and_codegen_replay_the_gradient(kind, rng):
    _, loss, _, args = _cases(rng)[kind]
    argnums = tuple(range(len(args)))
    compiled = ea.compile(ea.grad(loss, argnums=argnums))
    compiled(*args)
    new_args = [a + 0.1 * rng.normal(size=np.shape(a)) for a in args]
    eager = ea.grad(loss, argnums=argnums)(*new_args)
    generated = ea.codegen(ea.grad(loss, argnums=argnums), *args).function()
    for got_c, got_g, want in zip(compiled(*new_args), generated(*new_args), eager):
        np.testing.assert_allclose(got_c, want, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got_g, want, rtol=1e-12, atol=1e-14)


def test_codegen_writes_the_swap_of_a_declared_einsum(rng):
    x, A, y = rng.normal(size=3), rng.normal(size=(3, 4)), rng.normal(size=4)
    source = ea.codegen(ea.grad(lambda A: ea.tanh(bilinear(x, A, y))), A)
    assert ",i,j->ij" in source  # dA = g x y^T: the swap of i,ij,j-> for operand 1


def test_derive_explains_each_kind_by_its_declaration(rng):
    cases = _cases(rng)
    x, A, y = cases["einsum"][3]
    d = ea.derive(lambda A: bilinear(x, A, y), A)
    (step,) = [s for s in d.steps if s.kind != "forward" and s.name == "dA"]
    assert step.vjp_subscripts == ",i,j->ij"  # the swap of i,ij,j-> for operand 1
    v = cases["elementwise"][3][0]
    steps = ea.derive(lambda v: ea.sum(softsign(v)), v).render(view="steps")
    assert "dv1 ⊙ softsign'(v)" in steps and "elementwise softsign" in steps
    steps = ea.derive(lambda v: ea.sum(cumsum(v)), v).render(view="steps")
    assert "cumsum^T(dv1)" in steps and "linear cumsum" in steps
    steps = ea.derive(lambda v: lse(v), v).render(view="steps")
    assert "general kind" in steps
    for case in ("einsum", "elementwise", "linear"):
        prim = cases[case][0]
        derivation = ea.derive(lambda v: ea.sum(cumsum(softsign(v))), v).render(view="steps")
        assert f"{prim.name}: its own VJP rule" not in derivation


# ---------------------------------------------------------------- no arity cap

N = 300  # past every former cap (64 einsum operands, 256 traced operands)


def test_einsum_of_300_traced_operands_differentiates_both_ways(rng):
    xs = [1 + 0.01 * rng.standard_normal(2) for _ in range(N)]
    spec = ",".join(["i"] * N) + "->i"

    def f(xs):
        return ea.sum(ea.einsum(spec, *xs))

    product = np.prod(xs, axis=0)
    grads = ea.grad(f)(xs)
    for x, g in zip(xs, grads):
        np.testing.assert_allclose(g, product / x, rtol=1e-12)  # d/dx_k prod = prod of the others
    ts = [rng.standard_normal(2) for _ in range(N)]
    value, tangent = ea.jvp(f, (xs,), (ts,))
    np.testing.assert_allclose(value, product.sum(), rtol=1e-12)
    np.testing.assert_allclose(tangent, sum(np.sum(t * product / x) for x, t in zip(xs, ts)), rtol=1e-10)


@pytest.mark.parametrize("op", [ea.concatenate, ea.stack])
def test_concatenate_and_stack_of_300_traced_operands_differentiate_both_ways(op, rng):
    xs = [rng.standard_normal(3) for _ in range(N)]
    reference = np.concatenate if op is ea.concatenate else np.stack
    u = rng.standard_normal(reference(xs, axis=0).shape)

    def f(xs):
        return ea.sum(op(xs, axis=0) * u)

    grads = ea.grad(f)(xs)
    np.testing.assert_array_equal(reference(grads, axis=0), u)  # each operand gets its block
    ts = [rng.standard_normal(3) for _ in range(N)]
    _, tangent = ea.jvp(lambda xs: op(xs, axis=0), (xs,), (ts,))
    np.testing.assert_array_equal(tangent, reference(ts, axis=0))
