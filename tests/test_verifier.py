"""A verifier that can be trusted on pytrees, in float32 and at kinks (issue 10, items 24-27).

Every wrong derivative below is wrong by a factor or a formula stated by hand, and
every right one is a closed form (relu' = [x > 0], d|x| = sign x, d tanh = 1 - tanh^2);
element values in messages are compared with those closed forms.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import einsumad as ea


def _worst(message: str) -> tuple[str, float, float]:
    m = re.search(r"worst element (\S+(?:\[[^\]]*\])*): \S+ gives (\S+), .* gives? (\S+) \(", message)
    assert m, message
    return m.group(1), float(m.group(2)), float(m.group(3))


def _scaled_matvec(factor: float):
    """W x with a VJP for W that is ``factor`` times the truth (g x^T)."""

    @ea.primitive
    def matvec(W, x):
        return W @ x

    ea.defvjp(
        matvec,
        lambda ans, W, x: lambda g: factor * ea.einsum("i,j->ij", g, x),
        lambda ans, W, x: lambda g: ea.einsum("ij,i->j", W, g),
    )
    ea.defjvp(
        matvec,
        lambda t, ans, W, x: ea.einsum("ij,j->i", t, x),
        lambda t, ans, W, x: ea.einsum("ij,j->i", W, t),
    )
    return matvec


# ----------------------------------------------------------------- 24: pytrees


def _params(rng, dtype=np.float64):
    return {
        "W1": rng.normal(size=(5, 8)).astype(dtype), "b1": rng.normal(size=5).astype(dtype),
        "W2": rng.normal(size=(2, 5)).astype(dtype),
    }


def _net(params, x):
    h = ea.tanh(params["W1"] @ x + params["b1"])
    return ea.sum(ea.tanh(params["W2"] @ h))


def test_check_grads_accepts_a_dict_of_parameters(rng):
    ea.check_grads(_net, (_params(rng), rng.normal(size=8)), order=2)


def test_check_grads_names_the_leaf_of_a_pytree(rng):
    matvec = _scaled_matvec(2.0)
    x = np.zeros(8)
    x[7] = 1.0  # the gradient of sum(c * W1 x) for W1 is c e_7^T: column 7 only
    c = np.array([1.0, 2.0, 3.0, 9.0, 4.0])  # largest at row 3

    def loss(params, x):
        return ea.sum(matvec(params["W1"], x) * c) + ea.sum(params["b1"] ** 2)

    with pytest.raises(ea.GradientCheckError) as info:
        ea.check_grads(loss, (_params(np.random.default_rng(0)), x), modes=("rev",))
    message = str(info.value)
    assert "argument params['W1'] (shape (5, 8), float64)" in message
    element, analytic, numeric = _worst(message)
    assert element == "params['W1'][3, 7]"
    assert (analytic, numeric) == (pytest.approx(18.0), pytest.approx(9.0))


def test_check_grads_names_leaves_of_lists_and_nested_pytrees(rng):
    matvec = _scaled_matvec(3.0)
    layers = [{"W": rng.normal(size=(2, 3))}, {"W": rng.normal(size=(2, 2))}]
    x = rng.normal(size=3)

    def loss(layers, x):
        return ea.sum(layers[1]["W"] @ matvec(layers[0]["W"], x))

    with pytest.raises(ea.GradientCheckError, match=r"argument layers\[0\]\['W'\]"):
        ea.check_grads(loss, (layers, x), modes=("rev",))


def test_check_gradient_accepts_pytrees_of_hand_derived_gradients(rng):
    params, x = _params(rng), rng.normal(size=8)

    def loss(params):
        h = np.tanh(params["W1"] @ x + params["b1"])
        return np.sum(np.tanh(params["W2"] @ h))

    def by_hand(params, slip=1.0):
        h = np.tanh(params["W1"] @ x + params["b1"])
        delta2 = 1 - np.tanh(params["W2"] @ h) ** 2
        delta1 = (params["W2"].T @ delta2) * (1 - h ** 2)
        return {"W1": np.outer(delta1, x), "b1": slip * delta1, "W2": np.outer(delta2, h)}

    ea.check_gradient(loss, by_hand, (params,))
    ea.check_gradient(loss, lambda p: (by_hand(p),), (params,))  # a tuple of one gradient
    with pytest.raises(ea.GradientCheckError, match=r"argument params\['b1'\]") as info:
        ea.check_gradient(loss, lambda p: by_hand(p, slip=1.5), (params,))
    element, analytic, numeric = _worst(str(info.value))
    assert element.startswith("params['b1'][") and analytic == pytest.approx(1.5 * numeric, rel=1e-6)
    with pytest.raises(ea.GradientCheckError, match="structure"):
        ea.check_gradient(loss, lambda p: {"W1": p["W1"], "b1": p["b1"]}, (params,))


# ----------------------------------------------------------------- 25: float32


def test_a_gradient_two_per_mille_off_fails_on_float32_arguments(rng):
    W = rng.normal(size=(3, 4)).astype(np.float32)

    def loss(W):
        return np.sum(np.tanh(W) ** 2)

    def right(W):
        t = np.tanh(W)
        return 2 * t * (1 - t ** 2)

    ea.check_gradient(loss, right, (W,))
    with pytest.raises(ea.GradientCheckError, match="finite differences"):
        ea.check_gradient(loss, lambda W: 1.002 * right(W), (W,))


def test_a_vjp_two_per_mille_off_fails_check_grads_on_float32(rng):
    matvec = _scaled_matvec(1.002)
    W, x = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    ea.check_grads(_scaled_matvec(1.0), (W, x))  # the right rule passes in float32
    with pytest.raises(ea.GradientCheckError, match="reverse mode"):
        ea.check_grads(matvec, (W, x), modes=("rev",))


def test_float32_networks_pass_with_the_reference_tolerances(rng):
    params = _params(rng, np.float32)
    ea.check_grads(_net, (params, rng.normal(size=8).astype(np.float32)))
    big = rng.normal(size=(30, 40)).astype(np.float32) / 10  # checked along random directions
    ea.check_grads(lambda W: ea.sum(ea.tanh(W @ np.ones(40, np.float32))), (big,))


def test_a_float32_only_defect_is_caught_against_float64(rng):
    x = rng.normal(size=5).astype(np.float32)

    def grad_fun(x):  # right in float64, 1 % off in float32
        return 2 * x * (1.01 if x.dtype == np.float32 else 1.0)

    with pytest.raises(ea.GradientCheckError, match="in float64") as info:
        ea.check_gradient(lambda x: np.sum(x ** 2), grad_fun, (x,))
    assert "float32" in str(info.value)


def test_the_user_can_ask_for_looser_tolerances(rng):
    W = rng.normal(size=(3, 4)).astype(np.float32)
    ea.check_gradient(lambda W: np.sum(W ** 2), lambda W: 1.002 * 2 * W, (W,), rtol=5e-3, atol=5e-3)


# ----------------------------------------------------------------- 26: kinks


def test_a_relu_pre_activation_within_the_step_of_zero_passes(rng):
    z = np.array([-1e-6, 0.5, -0.3, 3e-6])
    ea.check_grads(lambda z: ea.sum(ea.relu(z) * np.arange(1.0, 5.0)), (z,))
    ea.check_gradient(
        lambda z: np.sum(np.maximum(z, 0) * np.arange(1.0, 5.0)),
        lambda z: (z > 0) * np.arange(1.0, 5.0),
        (z,),
    )


def test_a_relu_layer_near_its_kinks_passes(rng):
    W, x = rng.normal(size=(10, 8)), rng.normal(size=8)
    b = -(W @ x) + np.where(np.arange(10) % 2, 1e-6, -2e-6)  # every pre-activation near 0
    ea.check_grads(lambda W, b: ea.sum(ea.relu(W @ x + b) * np.arange(10.0)), (W, b))


def test_at_a_kink_a_one_sided_derivative_passes():
    ea.check_grads(lambda z: ea.sum(ea.relu(z)), (np.array([0.0, 1.0, -1.0]),))
    ea.check_gradient(lambda z: np.sum(np.abs(z)), np.sign, (np.array([0.0, 2.0]),))


def test_at_a_kink_a_value_between_the_sides_passes():
    # relu'(0) = 0.5 and abs'(0) = 0: generalised gradients, from one side to the other
    ea.check_gradient(lambda z: np.sum(np.maximum(z, 0)), lambda z: np.where(z == 0, 0.5, z > 0), (np.zeros(2),))
    ea.check_gradient(lambda z: np.sum(np.abs(z + 1e-12)), lambda z: np.sign(np.round(z, 6)), (np.zeros(2),))


def test_at_a_kink_a_value_outside_the_sides_is_reported_as_a_kink():
    def wrong_at_zero(z):
        return np.where(z == 0, 3.0, np.sign(z))

    with pytest.raises(ea.GradientCheckError) as info:
        ea.check_gradient(lambda z: np.sum(np.abs(z)), wrong_at_zero, (np.array([2.0, 0.0]),))
    message = str(info.value)
    assert "kink at z[1]" in message and "left -1" in message and "right 1" in message
    assert "NumPy" not in message  # the old first hint blamed a NumPy function


def test_a_wrong_gradient_near_a_kink_still_fails():
    z = np.array([-1e-6, 0.5])
    with pytest.raises(ea.GradientCheckError) as info:
        ea.check_gradient(lambda z: np.sum(np.maximum(z, 0)), lambda z: np.ones_like(z), (z,))
    element, analytic, numeric = _worst(str(info.value))
    assert element == "z[0]" and analytic == 1.0 and numeric == pytest.approx(0.0, abs=1e-6)
    assert "within the step" in str(info.value)


# ----------------------------------------------------------------- 27: a VJP in NumPy, no JVP


def _square_with_numpy_vjp():
    @ea.primitive
    def square(x):
        return x ** 2

    ea.defvjp(square, lambda ans, x: lambda g: np.outer(g, 2 * x).diagonal())
    return square


def test_a_numpy_vjp_without_jvp_is_explained_by_check_grads():
    square = _square_with_numpy_vjp()
    x = np.array([1.0, -2.0, 0.5])
    with pytest.raises(ea.GradientCheckError) as info:
        ea.check_grads(lambda x: ea.sum(square(x)), (x,))
    message = str(info.value)
    assert message.startswith("check_grads: forward mode ('fwd') cannot differentiate fun")
    for says in ("transposes the VJP", "einsumad ops", "ea.defjvp", "modes=('rev',)",
                 "reverse mode ('rev') agrees with finite differences"):
        assert says in message
    ea.check_grads(lambda x: ea.sum(square(x)), (x,), modes=("rev",))


# ----------------------------------------------------------------- rounding of the finite differences


def test_a_large_linear_map_is_not_blamed_for_the_rounding_of_finite_differences():
    # <v, 2a> sums 1e6 products: their rounding, not the rule, was the discrepancy.
    a = np.random.default_rng(0).normal(size=10**6)
    ea.check_grads(lambda a: a * 2.0, (a,))


def test_a_loss_much_larger_than_its_gradient_passes():
    x = np.array([0.3, -0.7, 1.1])
    ea.check_grads(lambda x: 1e8 + ea.sum(x**2), (x,))
    ea.check_gradient(lambda x: 1e8 + np.sum(x**2), lambda x: 2 * x, (x,))  # closed form


def test_a_gradient_off_by_1e_3_on_a_1e8_offset_loss_still_fails():
    x = np.array([0.3, -0.7, 1.1])

    @ea.primitive
    def square(x):
        return x**2

    ea.defvjp(square, lambda ans, x: lambda g: g * 2 * x * (1 + 1e-3))
    with pytest.raises(ea.GradientCheckError, match="rev gives"):
        ea.check_grads(lambda x: 1e8 + ea.sum(square(x)), (x,), modes=("rev",))
    with pytest.raises(ea.GradientCheckError, match="grad_fun gives"):
        ea.check_gradient(lambda x: 1e8 + np.sum(x**2), lambda x: 2 * x * (1 + 1e-3), (x,))


def test_forty_dimensional_arguments_are_checked():
    x = np.full((1,) * 40, 0.3)
    ea.check_grads(lambda x: ea.sum(ea.tanh(x)), (x,))  # tanh' = 1 - tanh^2, element by element
    with pytest.raises(ea.GradientCheckError):
        ea.check_gradient(lambda x: np.sum(np.tanh(x)), lambda x: 1.01 * (1 - np.tanh(x) ** 2), (x,))


def test_a_primitive_with_only_a_jvp_gets_a_report_not_an_exception():
    @ea.primitive
    def sine(a):
        return np.sin(a)

    ea.defjvp(sine, lambda t, ans, a: t * np.cos(a))  # the closed form sin' = cos
    x = np.array([0.1, 0.5, -0.3])
    ea.check_grads(sine, (x,), modes=("fwd",))
    with pytest.raises(ea.GradientCheckError, match=r"reverse mode needs a VJP.*modes=\('fwd',\)"):
        ea.check_grads(sine, (x,))


def test_a_nan_of_fun_within_the_step_is_named_as_nan_not_as_a_kink():
    with pytest.raises(ea.GradientCheckError) as info, np.errstate(invalid="ignore", divide="ignore"):
        ea.check_gradient(lambda z: np.sum(np.sqrt(z)), lambda z: 0.5 / np.sqrt(z), (np.array([2.0, 1e-9]),))
    message = str(info.value)
    assert "worst element z[1]" in message and "fun is NaN at or near z[1]" in message and "kink" not in message


def test_smooth_curvature_is_not_called_a_kink():
    with pytest.raises(ea.GradientCheckError) as info:  # a 1 % error on a cubic
        ea.check_gradient(lambda z: np.sum(z**3), lambda z: 3.03 * z**2, (np.array([0.5, 2.0]),))
    message = str(info.value)
    assert "worst element z[1]" in message and "kink" not in message and "curvature" not in message
