"""Pytrees through the transformations: nested dicts, lists and tuples of arrays.

Truths: central finite differences on the flattened leaves (tests/numeric.py) and
hand-derived gradients; the structure of every result is compared to the input's.
"""

from __future__ import annotations

import numpy as np
import pytest

import einsumad as ea
from einsumad.core.pytree import tree_flatten
from tests.numeric import numerical_directional, numerical_gradient


def _params(rng):
    return {
        "dense": [
            {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)},
            {"W": rng.normal(size=(4, 2)), "b": rng.normal(size=2)},
        ],
        "head": (rng.normal(size=2), np.array(0.3)),
        "unused": None,
    }


X = np.linspace(-1.0, 1.0, 15).reshape(5, 3)


def loss(p, x=X):
    h = ea.tanh(ea.einsum("n i, i o -> n o", x, p["dense"][0]["W"]) + p["dense"][0]["b"])
    z = ea.einsum("n i, i o -> n o", h, p["dense"][1]["W"]) + p["dense"][1]["b"]
    w, c = p["head"]
    return ea.sum(ea.sigmoid(ea.einsum("n o, o -> n", z, w) + c) ** 2)


def _numeric_tree_grad(fun, tree):
    """Finite-difference gradient of fun at tree, leaf by leaf, in the tree's structure."""
    leaves, treedef = ea.tree_flatten(tree)

    def on_leaf(i):
        def f(leaf):
            new = list(leaves)
            new[i] = leaf
            return fun(ea.tree_unflatten(treedef, new))

        return numerical_gradient(f, [leaves[i]], 0)

    return ea.tree_unflatten(treedef, [on_leaf(i) for i in range(len(leaves))])


def _assert_tree_close(got, expected, **tol):
    got_def, expected_def = tree_flatten(got)[1], tree_flatten(expected)[1]
    assert got_def == expected_def, (str(got_def), str(expected_def))
    for a, b in zip(ea.tree_flatten(got)[0], ea.tree_flatten(expected)[0]):
        assert np.shape(a) == np.shape(b)
        np.testing.assert_allclose(a, b, **tol)


# ================================================================= grad and value_and_grad


def test_grad_of_nested_dict_list_tuple_matches_finite_differences(rng):
    p = _params(rng)
    g = ea.grad(loss)(p)
    _assert_tree_close(g, _numeric_tree_grad(loss, p), rtol=1e-6, atol=1e-8)
    assert g["unused"] is None
    assert isinstance(g["dense"], list) and isinstance(g["head"], tuple)


def test_value_and_grad_returns_the_value_and_a_tree(rng):
    p = _params(rng)
    value, g = ea.value_and_grad(loss)(p)
    np.testing.assert_allclose(value, loss(p), rtol=1e-14)   # untraced evaluation
    _assert_tree_close(g, ea.grad(loss)(p), rtol=0, atol=0)


def test_grad_with_several_tree_arguments_and_argnums(rng):
    a = {"x": rng.normal(size=3)}
    b = [rng.normal(size=3), (rng.normal(size=()),)]

    def f(a, b):   # sum_i x_i y_i z  ->  d/dx = y z, d/dy = x z, d/dz = x.y
        return ea.sum(a["x"] * b[0]) * b[1][0]

    ga, gb = ea.grad(f, argnums=(0, 1))(a, b)
    z = b[1][0]
    _assert_tree_close(ga, {"x": b[0] * z}, rtol=1e-14)
    _assert_tree_close(gb, [a["x"] * z, (np.array(a["x"] @ b[0]),)], rtol=1e-14)
    _assert_tree_close(ea.grad(f, argnums=1)(a, b), gb, rtol=0)


def test_a_leaf_used_twice_and_a_leaf_not_used(rng):
    p = {"used": rng.normal(size=2), "idle": [rng.normal(size=(2, 2))]}
    g = ea.grad(lambda p: ea.sum(p["used"] * p["used"]) + ea.sum(p["used"]))(p)
    _assert_tree_close(g, {"used": 2 * p["used"] + 1, "idle": [np.zeros((2, 2))]}, rtol=1e-14)


def test_float32_leaves_keep_their_dtype_in_a_mixed_tree(rng):
    p = {"a": rng.normal(size=3).astype(np.float32), "b": (rng.normal(size=3),)}
    g = ea.grad(lambda p: ea.sum(p["a"] ** 2) + ea.sum(p["b"][0] ** 2))(p)
    assert g["a"].dtype == np.float32 and g["b"][0].dtype == np.float64
    np.testing.assert_allclose(g["a"], 2 * p["a"], rtol=1e-6)


def test_dict_keys_are_sorted_whatever_the_insertion_order(rng):
    w = rng.normal(size=2)
    f = lambda p: ea.sum(p["z"] * 2.0) + ea.sum(p["a"] * 3.0)   # noqa: E731
    g = ea.grad(f)({"z": w, "a": w})
    np.testing.assert_array_equal(g["z"], [2.0, 2.0])
    np.testing.assert_array_equal(g["a"], [3.0, 3.0])


# ================================================================= vjp


def test_vjp_with_tree_input_and_tree_output(rng):
    p = {"W": rng.normal(size=(2, 3)), "v": [rng.normal(size=3)]}

    def f(p):
        return {"y": ea.einsum("ij,j->i", p["W"], p["v"][0]), "s": (ea.sum(p["v"][0] ** 2),)}

    out, vjp_fn = ea.vjp(f, p)
    np.testing.assert_allclose(out["y"], p["W"] @ p["v"][0])
    gy, gs = rng.normal(size=2), np.array(0.7)
    (g,) = vjp_fn({"y": gy, "s": (gs,)})
    # <(gy, gs), f(p)> differentiated by hand: d/dW = gy v^T, d/dv = W^T gy + 2 gs v
    _assert_tree_close(
        g, {"W": np.outer(gy, p["v"][0]), "v": [p["W"].T @ gy + 2 * gs * p["v"][0]]}, rtol=1e-12
    )


def test_vjp_cotangent_with_a_different_structure_names_both():
    _, vjp_fn = ea.vjp(lambda p: {"x": p * 2, "y": [p]}, np.ones(2))
    with pytest.raises(ValueError, match=r"structure \{'x': \*, 'y': \*\} differs from the output's \{'x': \*, 'y': \[\*\]\}"):
        vjp_fn({"x": np.ones(2), "y": np.ones(2)})
    with pytest.raises(ValueError, match="structure"):
        vjp_fn({"x": np.ones(2)})
    with pytest.raises(ValueError, match="structure"):
        vjp_fn(({"x": np.ones(2), "y": [np.ones(2)]},))


def test_vjp_cotangent_leaf_with_a_wrong_shape():
    _, vjp_fn = ea.vjp(lambda p: [p * 2, ea.sum(p)], np.ones(3))
    with pytest.raises(ValueError, match=r"cotangent leaf 0 has shape \(2,\).*\(3,\)"):
        vjp_fn([np.ones(2), np.array(1.0)])


# ================================================================= jvp


def test_jvp_with_tree_primals_matches_finite_differences(rng):
    p = _params(rng)
    t = ea.tree_map(lambda x: rng.normal(size=np.shape(x)), p)
    value, tangent = ea.jvp(loss, (p,), (t,))
    np.testing.assert_allclose(value, loss(p), rtol=1e-14)
    leaves, treedef = ea.tree_flatten(p)
    t_leaves = ea.tree_flatten(t)[0]
    expected = numerical_directional(
        lambda *ls: loss(ea.tree_unflatten(treedef, list(ls))), leaves, t_leaves
    )
    np.testing.assert_allclose(tangent, expected, rtol=1e-6)
    # and agrees with the reverse-mode gradient: <grad, t>
    g = ea.grad(loss)(p)
    pairing = sum(np.vdot(a, b) for a, b in zip(ea.tree_flatten(g)[0], t_leaves))
    np.testing.assert_allclose(tangent, pairing, rtol=1e-10)


def test_jvp_tree_output_has_the_outputs_structure(rng):
    x = rng.normal(size=3)
    out, tangent = ea.jvp(lambda x: {"sq": x * x, "pair": (ea.sum(x), x)}, (x,), (np.ones(3),))
    _assert_tree_close(tangent, {"sq": 2 * x, "pair": (np.array(3.0), np.ones(3))}, rtol=1e-14)
    _assert_tree_close(out, {"sq": x * x, "pair": (np.array(x.sum()), x)}, rtol=1e-14)


def test_jvp_tangent_with_a_different_structure_names_both():
    p = {"a": np.ones(2), "b": [np.ones(3), (np.ones(()),)]}
    with pytest.raises(ValueError, match=r"structure \{'a': \*, 'b': \[\*\]\} but its primal has \{'a': \*, 'b': \[\*, \(\*,\)\]\}"):
        ea.jvp(lambda p: ea.sum(p["a"]), (p,), ({"a": np.ones(2), "b": [np.ones(3)]},))


def test_jvp_tangent_with_a_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(3,\) but its primal has shape \(2,\)"):
        ea.jvp(lambda p: ea.sum(p["a"]), ({"a": np.ones(2)},), ({"a": np.ones(3)},))


def test_jvp_tangent_with_a_wrong_dtype():
    with pytest.raises(TypeError, match=r"dtype float32 but its primal has dtype float64"):
        ea.jvp(lambda x: ea.sum(x), (np.ones(2),), (np.ones(2, dtype=np.float32),))


def test_jvp_primals_and_tangents_must_pair_up():
    with pytest.raises(ValueError, match="2 primals but 1 tangents"):
        ea.jvp(lambda x, y: x * y, (np.ones(2), np.ones(2)), (np.ones(2),))


# ================================================================= non-scalar functions


def test_hessian_of_a_non_scalar_function_is_an_error():
    with pytest.raises(TypeError, match=r"hessian needs a function that returns a scalar.*shape \(2,\)"):
        ea.hessian(lambda x: x**2)(np.ones(2))


def test_grad_of_a_tree_valued_function_is_an_error():
    with pytest.raises(TypeError, match="returns a scalar, but it returned a pytree"):
        ea.grad(lambda x: {"a": ea.sum(x)})(np.ones(2))


def test_integer_leaf_is_rejected_with_its_dtype():
    with pytest.raises(TypeError, match="floating-point inputs, got dtype int64"):
        ea.grad(lambda p: ea.sum(p["a"]))({"a": np.arange(3)})


def test_jacobian_of_a_tree_argument_has_one_block_per_leaf():
    p = {"a": np.ones(2), "b": 2 * np.ones(3)}
    jac = ea.jacobian(lambda p: p["a"] * ea.sum(p["b"]))(p)
    assert isinstance(jac, dict)
    np.testing.assert_allclose(jac["a"], 6 * np.eye(2))
    np.testing.assert_allclose(jac["b"], np.ones((2, 3)))


def test_hessian_of_a_tree_argument():
    p = {"a": np.array([1.0, 2.0]), "b": np.array(3.0)}
    hess = ea.hessian(lambda p: ea.sum(p["a"] ** 2) * p["b"])(p)
    np.testing.assert_allclose(hess["a"]["a"], 2 * 3.0 * np.eye(2))
