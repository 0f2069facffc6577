"""The cotangent of a sum is a scalar broadcast to the summed shape: contracted as its
core (``drop_constant_axes``), so a product with it is a scale and a scale by one is
free. Truths: ``numpy.einsum`` on the materialised operand, closed forms, and
tracemalloc's count of the bytes a gradient allocates."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import einsumad as ea
from einsumad.algebra.subscripts import parse, resolve
from einsumad.core.einsum import contract

# (subscripts, operand shapes, the broadcast operand, the shape it is broadcast from)
CORPUS = [
    ("ij,ij->ij", [(3, 4), (3, 4)], 0, ()),           # ones * G: G itself
    ("ij,ij->ij", [(3, 4), (3, 4)], 1, ()),
    ("ij,jk->ik", [(3, 4), (4, 5)], 0, ()),           # c 1 @ B: column sums, broadcast
    ("ij,i->j", [(3, 4), (3,)], 0, ()),
    ("ij,i->", [(3, 4), (3,)], 0, (1, 4)),            # a summed letter: a factor 3... of rows
    ("ijk,ik->ij", [(2, 3, 4), (2, 4)], 0, (2, 1, 1)),  # broadcast along two axes only
    ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)], 1, ()),
    ("ii,i->i", [(3, 3), (3,)], 0, ()),               # a diagonal of a constant
    ("ij,->ij", [(3, 4), ()], 0, (3, 1)),
]


@pytest.mark.parametrize("subscripts, shapes, k, core", CORPUS)
@pytest.mark.parametrize("value", [1.0, -2.5])
def test_broadcast_operand_contracts_as_numpy_einsum_on_the_array(subscripts, shapes, k, core, value, rng):
    operands = [rng.normal(size=s) for s in shapes]
    operands[k] = np.broadcast_to(np.full(core, value), shapes[k])
    assert operands[k].size == 1 or 0 in operands[k].strides
    spec = resolve(parse(subscripts), shapes)
    got = contract(spec, *operands)
    want = np.einsum(subscripts, *[np.array(o) for o in operands])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)
    assert np.asarray(got).shape == want.shape


def test_dtype_follows_the_broadcast_operand(rng):
    g = np.broadcast_to(np.ones((), np.float64), (3, 4))
    x = rng.normal(size=(3, 4)).astype(np.float32)
    spec = resolve(parse("ij,ij->ij"), [(3, 4), (3, 4)])
    assert contract(spec, g, x).dtype == np.float64  # as np.einsum would give
    g32 = np.broadcast_to(np.ones((), np.float32), (3, 4))
    out = contract(spec, g32, x)
    assert out.dtype == np.float32 and not out.flags.writeable and np.shares_memory(out, x)


def test_gradient_of_a_weighted_sum_is_the_weights_never_the_users_array(rng):
    x, G = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    g = ea.grad(lambda x: ea.sum(x * G))(x)
    np.testing.assert_array_equal(g, G)
    assert not np.shares_memory(g, G) and g.flags.writeable
    g[...] = 0.0
    assert np.all(G != 0.0)
    np.testing.assert_allclose(ea.grad(lambda x: ea.mean(x * G))(x), G / 12)


def test_second_derivative_through_the_sum_still_depends_on_the_cotangent(rng):
    """A traced cotangent is never replaced: only constant broadcasts are contracted away."""
    A = rng.normal(size=(3, 3))
    x = rng.normal(size=3)
    hess = ea.hessian(lambda x: ea.sum(ea.tanh(A @ x)))(x)
    t = np.tanh(A @ x)
    np.testing.assert_allclose(hess, A.T @ np.diag(-2 * t * (1 - t * t)) @ A, rtol=1e-10, atol=1e-12)


def test_eager_attention_gradient_makes_no_temporary_for_the_cotangent(rng):
    """sum(QKᵀ ⊙ G): the forward keeps QKᵀ and its product with G (2 score-sized arrays);
    the product of the broadcast cotangent with G is G itself, never a third one."""
    Q, K = rng.normal(size=(2, 4, 128, 16)), rng.normal(size=(2, 4, 128, 16))
    G = rng.normal(size=(2, 4, 128, 128))
    loss = ea.value_and_grad(lambda Q, K: ea.sum(ea.einsum("bhqd,bhkd->bhqk", Q, K) * G), argnums=(0, 1))
    value, (dQ, dK) = loss(Q, K)
    np.testing.assert_allclose(dQ, G @ K, rtol=1e-12)
    np.testing.assert_allclose(dK, G.swapaxes(-1, -2) @ Q, rtol=1e-12)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        loss(Q, K)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * G.nbytes
