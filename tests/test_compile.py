"""ea.compile and ea.codegen: replayed programs equal eager results on new inputs;
generated source executes and reproduces the gradient; plans and programs are
keyed by signature; delta-seeded passes relabel instead of multiplying."""

from __future__ import annotations

import numpy as np
import pytest

import einsumad as ea
from einsumad.algebra.subscripts import parse, resolve
from einsumad.core.backend import plan
from tests.numeric import numerical_gradient


def _mlp(params, x, y):
    h = ea.tanh(ea.einsum("batch in, in hidden -> batch hidden", x, params["W1"]) + params["b1"])
    out = ea.einsum("bh,ho->bo", h, params["W2"])
    return ea.mean((out - y) ** 2)


def _params(rng, dtype=np.float64):
    return {
        "W1": rng.normal(size=(4, 5)).astype(dtype),
        "b1": rng.normal(size=5).astype(dtype),
        "W2": rng.normal(size=(5, 2)).astype(dtype),
    }


PROBLEMS = {
    "matmul": (lambda A, B: ea.sum(ea.einsum("ij,jk->ik", A, B) ** 2), [(3, 4), (4, 5)]),
    "chain": (lambda A, B, C: ea.sum(ea.tanh(ea.einsum("ij,jk,kl->il", A, B, C))), [(3, 4), (4, 5), (5, 2)]),
    "bilinear": (lambda x, W, z: ea.sum(ea.sin(ea.einsum("bi,ijk,bk->bj", x, W, z))), [(2, 3), (3, 4, 2), (2, 2)]),
    "trace_diag": (lambda M: ea.einsum("ii->", M) * ea.sum(ea.einsum("ii->i", M) ** 3), [(4, 4)]),
    "relu_where": (lambda x: ea.sum(ea.relu(x) ** 2 + ea.where(x > 0.3, x, -x)), [(3, 4)]),
    "divide_power": (lambda x, y: ea.sum((x / (1 + y * y)) ** 3), [(3,), (2, 3)]),
    "softplus_logistic": (lambda w, X: ea.mean(ea.log(1 + ea.exp(X @ w))), [(4,), (6, 4)]),
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_compiled_gradient_equals_eager_on_new_inputs(name, rng):
    fun, shapes = PROBLEMS[name]
    argnums = tuple(range(len(shapes)))
    compiled = ea.compile(ea.grad(fun, argnums))
    first = [rng.normal(size=s) for s in shapes]
    compiled(*first)  # trace on one set of values ...
    for _ in range(3):  # ... replay on others: value-dependent masks must follow
        args = [rng.normal(size=s) for s in shapes]
        for got, want in zip(compiled(*args), ea.grad(fun, argnums)(*args)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert compiled.cache_size() == 1


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_codegen_executes_and_reproduces_the_gradient(name, rng):
    fun, shapes = PROBLEMS[name]
    argnums = tuple(range(len(shapes)))
    args = [rng.normal(size=s) for s in shapes]
    source = ea.codegen(ea.grad(fun, argnums), *args)
    generated = source.function()
    new_args = [rng.normal(size=s) for s in shapes]
    for got, want in zip(generated(*new_args), ea.grad(fun, argnums)(*new_args)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_codegen_reads_like_hand_written_backprop():
    def loss(W, x):
        return ea.sum(ea.tanh(ea.einsum("ij,j->i", W, x)))

    source = ea.codegen(ea.grad(loss, argnums=(0, 1)), np.ones((2, 3)), np.ones(3))
    assert source.startswith("def grad_loss(W, x):")
    assert "@ W  # i,ij->j" in source  # W^T delta: the swap, no explicit transpose
    assert "np.tanh(" in source


def test_compiled_pytree_mlp_matches_eager_and_finite_differences(rng):
    params, x, y = _params(rng), rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    compiled = ea.compile(ea.value_and_grad(_mlp))
    value, grads = compiled(params, x, y)
    eager_value, eager_grads = ea.value_and_grad(_mlp)(params, x, y)
    np.testing.assert_allclose(value, eager_value)
    assert set(grads) == {"W1", "b1", "W2"}
    for key in grads:
        np.testing.assert_allclose(grads[key], eager_grads[key], rtol=1e-12)

    def loss_np(W1):
        h = np.tanh(x @ W1 + params["b1"])
        return np.mean((h @ params["W2"] - y) ** 2)

    np.testing.assert_allclose(grads["W1"], numerical_gradient(loss_np, [params["W1"]], 0), atol=1e-7)


def test_compiled_hessian_and_jacobian(rng):
    A = rng.normal(size=(3, 3))
    f = lambda x: ea.sum(ea.tanh(A @ x) ** 2)  # noqa: E731
    x1, x2 = rng.normal(size=3), rng.normal(size=3)
    hess = ea.compile(ea.hessian(f))
    hess(x1)
    np.testing.assert_allclose(hess(x2), ea.hessian(f)(x2), rtol=1e-12)
    jac = ea.compile(ea.jacobian(lambda x: ea.tanh(A @ x)))
    jac(x1)
    np.testing.assert_allclose(jac(x2), (1 - np.tanh(A @ x2) ** 2)[:, None] * A, rtol=1e-12)


def test_signature_change_retraces_and_float32_stays_float32(rng):
    f = ea.compile(ea.grad(lambda x: ea.sum(ea.tanh(x) * 2.0)))
    g64 = f(rng.normal(size=3))
    g32 = f(rng.normal(size=3).astype(np.float32))
    f(rng.normal(size=4))
    assert f.cache_size() == 3
    assert g64.dtype == np.float64 and g32.dtype == np.float32
    f(rng.normal(size=3))
    assert f.cache_size() == 3  # same signature, new values: no re-trace


def test_bool_of_traced_value_is_a_clear_error():
    def branchy(x):
        return ea.sum(x) if ea.sum(x) > 0 else -ea.sum(x)

    with pytest.raises(TypeError, match="frozen"):
        ea.compile(branchy)(np.ones(3))
    assert float(branchy(np.ones(3))) == 3.0  # eager: control flow is fine


def test_compiled_outputs_are_fresh_arrays(rng):
    f = ea.compile(lambda x: x.T)
    x = rng.normal(size=(2, 3))
    out = f(x)
    out[0, 0] = 99.0
    assert x[0, 0] != 99.0


def test_plans_are_keyed_by_shape():
    spec_small = resolve(parse("ij,jk->ik"), [(2, 3), (3, 4)])
    spec_large = resolve(parse("ij,jk->ik"), [(5, 3), (3, 4)])
    assert plan(spec_small, ((2, 3), (3, 4))) is plan(spec_small, ((2, 3), (3, 4)))
    assert plan(spec_large, ((5, 3), (3, 4))) is not plan(spec_small, ((2, 3), (3, 4)))
    a, b = np.ones((5, 3), dtype=np.float32), np.ones((3, 4), dtype=np.float32)
    assert ea.einsum("ij,jk->ik", a, b).shape == (5, 4)
    assert ea.einsum("ij,jk->ik", a, b).dtype == np.float32


def test_pairwise_decomposition_gives_the_nary_swap_gradient(rng):
    """The tape records pairwise steps; their gradient equals the n-ary swap einsum."""
    mats = [rng.normal(size=s) for s in [(2, 3), (3, 4), (4, 5), (5, 2)]]
    subscripts = "ab,bc,cd,da->"
    grads = ea.grad(lambda *m: ea.einsum(subscripts, *m), argnums=(0, 1, 2, 3))(*mats)
    for k in range(4):
        swapped = ea.vjp_subscripts(subscripts, k)
        others = [m for i, m in enumerate(mats) if i != k]
        np.testing.assert_allclose(grads[k], np.einsum(swapped, np.ones(()), *others), rtol=1e-12)


def test_delta_seed_is_relabelled_not_multiplied(rng):
    """The Hessian of a logistic loss: the delta meets X @ w and becomes X^T itself."""
    X = rng.normal(size=(20, 4))
    y = (rng.random(20) < 0.5).astype(float)
    w = rng.normal(size=4)

    def loss(w):
        z = X @ w
        return ea.mean(ea.log(1 + ea.exp(z)) - y * z)

    p = 1 / (1 + np.exp(-X @ w))
    closed_form = X.T @ (X * (p * (1 - p))[:, None]) / len(y)
    np.testing.assert_allclose(ea.hessian(loss)(w), closed_form, rtol=1e-10)
    source = ea.codegen(ea.hessian(loss), w)
    # No instruction multiplies by a 4x4 identity: every einsum has operands of
    # the problem's own sizes, and the only contraction with d*d output is X^T D X.
    assert "eye" not in source
    compiled = ea.compile(ea.hessian(loss))
    compiled(w)
    (prog,) = compiled.programs.values()
    for ins in prog.instructions:
        if len(ins.shapes) >= 2:  # a product, not a final transpose of the result
            assert (4, 4) not in ins.shapes, f"a product with a d x d operand: {ins.prim.name} {ins.shapes}"


def test_kronecker_delta_contraction_is_a_relabelling():
    from einsumad.algebra.subscripts import Spec
    from einsumad.algebra.swap import contract_delta

    spec = Spec(("Zi", "ij"), "Zj", tuple((s, 3) for s in "Zij"))
    assert str(contract_delta(spec, 0)) == "ij->ij"
    spec = Spec(("ZYij", "ij"), "ZYij", tuple((s, 3) for s in "ZYij"))
    assert str(contract_delta(spec, 0)) == "ij->ijij"


def test_fusion_merges_a_product_and_its_sum_into_one_contraction(rng):
    """sum(x * g) is recorded as a product and a sum; the program runs one dot product."""
    g = rng.normal(size=(5, 6))
    compiled = ea.compile(lambda x: ea.sum(x * g))
    x = rng.normal(size=(5, 6))
    np.testing.assert_allclose(compiled(x), np.sum(x * g), rtol=1e-12)
    (program,) = compiled.programs.values()
    assert [str(ins.params["spec"]) for ins in program.instructions] == ["ij,ij->"]


def test_fusion_keeps_steps_that_save_nothing():
    def loss(W, x):
        return ea.sum(ea.einsum("ij,j->i", W, x) ** 2)

    source = ea.codegen(ea.grad(loss, argnums=1), np.ones((2, 3)), np.ones(3))
    assert "v1 = v0 * 2" in source  # not folded into the transpose-product


def test_substitute_fuses_subscripts():
    from einsumad.algebra.subscripts import Spec
    from einsumad.algebra.swap import substitute

    consumer = Spec(("ik", "k"), "i", tuple((s, 2) for s in "ik"))
    producer = Spec(("ij", "jk"), "ik", tuple((s, 2) for s in "ijk"))
    assert str(substitute(consumer, 0, producer)) == "il,lk,k->i"
    generalised = Spec(("i",), "ii", (("i", 2),))
    assert substitute(consumer, 0, generalised) is None
