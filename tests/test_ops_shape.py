"""Shape ops: transpose, reshape, broadcast_to, concatenate, stack, and indexing.

They are linear, so the truths are exact: values against NumPy, the adjoint
identity ``<g, f(v)> == <f^T(g), v>`` with ``f^T`` the VJP, Jacobians by
delta-seeded passes in both modes against finite differences (this exercises
the leading batch axes of every rule), and brute-force counts for the
scatter-add of repeated indices.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import einsumad as ea
from tests.numeric import numerical_jacobian


def check_linear_op(f, x, rng):
    """Adjointness, both modes and both Jacobians (values are compared by the callers)."""
    y = f(x)
    g = rng.standard_normal(np.shape(y))
    v = rng.standard_normal(np.shape(x))
    _, pullback = ea.vjp(f, x)
    (fg,) = pullback(g)
    np.testing.assert_allclose(np.sum(g * f(v)), np.sum(fg * v), rtol=1e-12, atol=1e-12)
    _, fv = ea.jvp(f, (x,), (v,))
    np.testing.assert_allclose(fv, f(v), rtol=1e-12, atol=1e-12)
    # copy: on a plain array f may return a view of x, which numerical_jacobian perturbs in place
    expected = numerical_jacobian(lambda x: np.array(f(x)), [x], 0)
    np.testing.assert_allclose(ea.jacrev(f)(x), expected, atol=1e-8)
    np.testing.assert_allclose(ea.jacfwd(f)(x), expected, atol=1e-8)


def check_hessian(f, x):
    expected = numerical_jacobian(ea.grad(f), [x], 0)
    np.testing.assert_allclose(ea.hessian(f)(x), expected, rtol=1e-6, atol=1e-6)


# ================================================================= transpose


@given(data=st.data(), shape=st.lists(st.integers(1, 3), min_size=0, max_size=4))
def test_transpose_matches_numpy_for_every_permutation(data, shape):
    x = np.arange(float(np.prod(shape, dtype=int))).reshape(shape)
    perm = data.draw(st.permutations(range(len(shape))))
    signed = [p - len(shape) if data.draw(st.booleans()) else p for p in perm]
    np.testing.assert_array_equal(ea.transpose(x, signed), np.transpose(x, perm))
    np.testing.assert_array_equal(ea.transpose(x), np.transpose(x))


def test_transpose_gradients_and_methods(rng):
    x = rng.standard_normal((2, 3, 4))
    check_linear_op(lambda x: ea.transpose(x, (2, 0, 1)), x, rng)
    check_linear_op(lambda x: x.T, x, rng)
    np.testing.assert_array_equal(ea.grad(lambda t: ea.sum(t.transpose(1, 0, 2)[0] * 2.0))(x)[:, 0], 2 * np.ones((2, 4)))


@pytest.mark.parametrize("axes", [(0, 5), (0, -3), (3, 1)])
def test_transpose_axis_out_of_range_raises_axis_error(axes):
    with pytest.raises(np.exceptions.AxisError, match=r"axis -?\d .*dimension 2"):
        ea.transpose(np.ones((2, 3)), axes)


def test_transpose_rejects_a_non_permutation():
    with pytest.raises(ValueError, match="permutation"):
        ea.transpose(np.ones((2, 3)), (0, 0))


# ================================================================= reshape


@pytest.mark.parametrize("shape, new", [((2, 3), (3, 2)), ((2, 3), (-1,)), ((2, 3, 4), (4, -1)), ((6,), (1, 2, 3, 1)), ((), (1, 1))])
def test_reshape_values_and_gradients(shape, new, rng):
    x = rng.standard_normal(shape)
    np.testing.assert_array_equal(ea.reshape(x, new), np.reshape(x, new))
    check_linear_op(lambda x: ea.reshape(x, new), x, rng)
    check_linear_op(lambda x: x.reshape(new) * 1.0, x, rng)


def test_reshape_to_an_incompatible_shape_raises():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        ea.reshape(np.ones((2, 3)), (4,))


# ================================================================= broadcast_to


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=1, min_dims=0, max_dims=3, max_side=3))
def test_broadcast_to_values_and_gradient_sums_over_broadcast_axes(shapes):
    (shape,), target = shapes.input_shapes, shapes.result_shape
    x = np.arange(1.0, 1.0 + np.prod(shape, dtype=int)).reshape(shape)
    np.testing.assert_array_equal(ea.broadcast_to(x, target), np.broadcast_to(x, target))
    u = np.arange(float(np.prod(target, dtype=int))).reshape(target)
    expected = np.zeros(shape)  # brute force: every output entry reads back one input entry
    for index in np.ndindex(*target):
        source = tuple(i if n != 1 else 0 for i, n in zip(index[len(target) - len(shape):], shape))
        expected[source] += u[index]
    np.testing.assert_allclose(ea.grad(lambda x: ea.sum(ea.broadcast_to(x, target) * u))(x), expected)


def test_broadcast_to_jacobians(rng):
    check_linear_op(lambda x: ea.broadcast_to(x, (2, 3, 4)), rng.standard_normal((3, 1)), rng)


@pytest.mark.parametrize("shape, target", [((2, 3), (3,)), ((3,), (4,)), ((2, 1), (3, 3))])
def test_broadcast_to_an_incompatible_shape_raises(shape, target):
    with pytest.raises(ValueError):
        ea.broadcast_to(np.ones(shape), target)


# ================================================================= concatenate and stack


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_concatenate_values_and_gradients(axis, rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    c = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(ea.concatenate([a, b, c], axis=axis), np.concatenate([a, b, c], axis=axis))
    u = rng.standard_normal(np.concatenate([a, b, c], axis=axis).shape)
    grads = ea.grad(lambda a, b, c: ea.sum(ea.concatenate([a, b, c], axis=axis) * u), argnums=(0, 1, 2))(a, b, c)
    np.testing.assert_array_equal(np.concatenate(grads, axis=axis), u)  # each input gets its block
    check_linear_op(lambda b: ea.concatenate([b * 3.0, b, b * 2.0], axis=axis), b, rng)


def test_concatenate_blocks_of_different_lengths(rng):
    a, b = rng.standard_normal((2, 1)), rng.standard_normal((2, 4))
    np.testing.assert_array_equal(ea.concatenate([a, b], axis=1), np.concatenate([a, b], axis=1))
    check_linear_op(lambda a: ea.concatenate([a * 2.0, a, a[:, ::-1]], axis=1), a, rng)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack_values_and_gradients(axis, rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    np.testing.assert_array_equal(ea.stack([a, b], axis=axis), np.stack([a, b], axis=axis))
    u = rng.standard_normal(np.stack([a, b], axis=axis).shape)
    ga, gb = ea.grad(lambda a, b: ea.sum(ea.stack([a, b], axis=axis) * u), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(np.stack([ga, gb], axis=axis), u)
    check_linear_op(lambda b: ea.stack([b * 0.5, b, -b], axis=axis), b, rng)


@pytest.mark.parametrize("op, axis", [(ea.concatenate, 2), (ea.concatenate, -3), (ea.stack, 3), (ea.stack, -4)])
def test_concatenate_and_stack_axis_out_of_range(op, axis):
    with pytest.raises(np.exceptions.AxisError, match=r"axis -?\d .*dimension"):
        op([np.ones((2, 3)), np.ones((2, 3))], axis=axis)


def test_second_derivatives_through_stack_and_concatenate():
    x = np.array([0.5, -1.0, 2.0])
    check_hessian(lambda x: ea.sum(ea.stack([x ** 2, ea.sin(x)], axis=1) ** 2), x)
    check_hessian(lambda x: ea.sum(ea.concatenate([x ** 3, x[:2] * x[1:]]) ** 2), x)


# ================================================================= indexing

INDICES = {
    # basic indexing
    "int": 1,
    "negative int": -1,
    "int pair": (1, -2),
    "slice": slice(1, None),
    "slice with step": (slice(None), slice(None, None, 2)),
    "negative step": (slice(None, None, -1), slice(3, 0, -2)),
    "none (newaxis)": (None, 0, None),
    "ellipsis": (..., 1),
    "ellipsis in the middle": (0, ..., slice(1, 3)),
    # advanced indexing
    "int array with repeats": np.array([0, 2, 0, 0]),
    "2-d int array": np.array([[0, 1], [2, 2]]),
    "int list": [2, -1],
    "arrays on two axes": (np.array([0, 2, 2]), np.array([1, 3, 1])),
    "array after a slice": (slice(None), np.array([3, 0, 3])),
    "arrays separated by a slice": (np.array([0, 1]), slice(None), np.array([1, 0])),
    "int and array separated by a slice": (0, slice(None), np.array([1, 1, 0])),
    "array, newaxis, array": (np.array([0, 2]), None, np.array([1, 3])),
    "boolean mask": np.array([True, False, True]),
    "boolean mask on axis 1": (slice(None), np.array([True, False, True, True])),
    "full boolean mask": np.arange(24).reshape(3, 4, 2) % 3 == 0,
    "ellipsis and array": (..., np.array([1, 1, 0])),
}


@pytest.mark.parametrize("index", list(INDICES.values()), ids=list(INDICES))
def test_indexing_values_gradients_and_batched_rules(index, rng):
    x = rng.standard_normal((3, 4, 2))
    value, _ = ea.vjp(lambda t: t[index], x)  # indexing a traced value
    np.testing.assert_array_equal(value, x[index])
    traced = ea.grad(lambda x: ea.sum(x[index] * 1.0))(x)
    counts = np.zeros(x.size)  # brute force: how often each entry is read
    np.add.at(counts, np.arange(x.size).reshape(x.shape)[index].ravel(), 1.0)
    np.testing.assert_array_equal(traced, counts.reshape(x.shape))
    check_linear_op(lambda x: x[index], x, rng)


def test_repeated_indices_accumulate():
    x = np.arange(5.0)
    idx = np.array([4, 1, 4, 4, 0, 1])
    u = np.arange(1.0, 7.0)
    g = ea.grad(lambda x: ea.sum(x[idx] * u))(x)
    expected = [sum(u[k] for k in range(len(idx)) if idx[k] == i) for i in range(5)]
    np.testing.assert_array_equal(g, expected)  # [5, 8, 0, 0, 1+3+4]


def test_second_derivatives_through_indexing():
    x = np.array([0.5, -1.0, 2.0, 1.5])
    check_hessian(lambda x: ea.sum(x[np.array([0, 0, 3])] ** 3 * x[1:][::-1][:3]), x)
    m = np.arange(1.0, 7.0).reshape(2, 3) / 4
    check_hessian(lambda m: ea.sum(m[np.array([1, 0]), :, None][..., 0] ** 2 * m[0, ::2].sum()), m)


def test_index_out_of_bounds_raises_index_error():
    with pytest.raises(IndexError):
        ea.grad(lambda x: ea.sum(x[np.array([0, 3])]))(np.ones(3))
    with pytest.raises(IndexError):
        ea.grad(lambda x: ea.sum(x[0.5]))(np.ones(3))


def test_indexing_keeps_float32():
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    g = ea.grad(lambda x: ea.sum(x[np.array([1, 1]), ::-1]))(x)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, [[0, 0, 0], [2, 2, 2]])
    assert ea.jacfwd(lambda x: x[:, np.array([0, 2])])(x).dtype == np.float32


@pytest.mark.parametrize(
    "f",
    [
        lambda x: ea.transpose(x),
        lambda x: ea.reshape(x, (-1,)),
        lambda x: ea.broadcast_to(x, (2, 2, 3)),
        lambda x: ea.concatenate([x, x], axis=1),
        lambda x: ea.stack([x, x], axis=-1),
        lambda x: ea.rearrange(x, "a b -> (b a)"),
    ],
    ids=["transpose", "reshape", "broadcast_to", "concatenate", "stack", "rearrange"],
)
def test_shape_ops_keep_float32(f):
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    assert f(x).dtype == np.float32
    assert ea.grad(lambda x: ea.sum(f(x)))(x).dtype == np.float32
    assert ea.jacrev(f)(x).dtype == np.float32
