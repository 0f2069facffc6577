"""ea.check_grads and ea.check_gradient: they pass on right derivatives and catch wrong ones.

Each wrong derivative below is wrong in a way stated by hand (twice the truth, the
truth transposed, the Hadamard factor tanh'(z) left out), and each test checks
that the error names the argument, the element and the mode that a reader would
need to find the mistake. Element values quoted in messages are compared with
closed forms computed here in NumPy, not with the library.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import einsumad as ea
from einsumad.core.tape import unbox
from einsumad.tools.testing import _arg_names, _check_grads


def _message(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


def _worst(message: str) -> tuple[str, float, float]:
    """(element, analytic, numeric) from the 'worst element' line of a message."""
    m = re.search(r"worst element (\S+(?:\[[\d, ]+\])?): \S+ gives (\S+), .* gives? (\S+) \(", message)
    assert m, message
    return m.group(1), float(m.group(2)), float(m.group(3))


# =========================================================== check_grads passes


@pytest.mark.parametrize(
    "subscripts, shapes",
    [
        ("ij,jk->ik", [(2, 3), (3, 4)]),
        ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 3)]),  # recorded as pairwise steps
        ("ii->", [(3, 3)]),
        ("ii->i", [(3, 3)]),
        ("bi,i->bi", [(2, 3), (3,)]),
        ("i,j->ij", [(2,), (3,)]),
        ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),
    ],
)
def test_check_grads_passes_on_einsum_chains(subscripts, shapes, rng):
    args = tuple(rng.standard_normal(s) for s in shapes)
    ea.check_grads(lambda *xs: ea.einsum(subscripts, *xs), args)


def _layer(W, b, x):
    return ea.tanh(ea.einsum("ij,j->i", W, x) + b)


def test_check_grads_passes_on_a_tanh_layer(rng):
    W, b, x = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3)
    ea.check_grads(_layer, (W, b, x))
    ea.check_grads(lambda W, b, x: ea.sum(_layer(W, b, x) ** 2), (W, b, x), modes=("rev",))


def test_float32_arguments_pass_and_tolerances_can_be_tightened(rng):
    args = tuple(a.astype(np.float32) for a in (rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3)))
    ea.check_grads(_layer, args)  # float64 copies against finite differences; float32 against float64
    with pytest.raises(ea.GradientCheckError):  # finite differences' error is far above 1e-12
        ea.check_grads(_layer, args, atol=1e-12, rtol=1e-12)


def test_large_arguments_are_checked_along_random_directions(rng):
    W, x = rng.standard_normal((12, 10)), rng.standard_normal(10)  # 120 > 64 elements
    ea.check_grads(lambda W, x: ea.tanh(W @ x), (W, x))
    report = _check_grads(lambda W, x: ea.tanh(W @ x), (W, x), 1, ("rev", "fwd"), None, None, None, 0)
    hows = {o.name: o.how for o in report.outcomes}
    assert hows == {"W": "along 3 random directions", "x": "element by element"}


def test_order_2_passes_on_a_quadratic_form(rng):
    A = rng.standard_normal((4, 4))  # not symmetric: the Hessian is A + A^T
    ea.check_grads(lambda x: ea.einsum("i,ij,j->", x, A, x), (rng.standard_normal(4),), order=2)


def test_order_2_passes_on_a_tanh_network(rng):
    W1, W2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 4))
    x = rng.standard_normal(3)

    def net(W1, W2, x):
        return ea.sum(ea.tanh(W2 @ ea.tanh(W1 @ x)))

    ea.check_grads(net, (W1, W2, x), order=2)


def test_integer_arguments_are_held_constant(rng):
    x = rng.standard_normal(3)
    ea.check_grads(lambda x, n: ea.sum(x ** 2) * float(n), (x, np.int64(3)))


def test_bad_options_are_rejected(rng):
    x = rng.standard_normal(3)
    with pytest.raises(ValueError, match="modes"):
        ea.check_grads(ea.tanh, (x,), modes=("sideways",))
    with pytest.raises(ValueError, match="order"):
        ea.check_grads(ea.tanh, (x,), order=3)


# =========================================================== check_grads catches


def _cube_with_rule(factor: float):
    @ea.primitive
    def cube(x):
        return x ** 3

    ea.defvjp(cube, lambda ans, x: lambda g: g * factor * x ** 2)
    return cube


def test_a_vjp_twice_the_truth_is_named_by_argument_element_and_mode():
    cube = _cube_with_rule(6.0)  # the truth is 3 x^2
    mask = np.zeros((3, 4))
    mask[2, 1] = 1.0  # only W[2, 1] reaches the output
    W = np.full((3, 4), 0.5)
    W[2, 1] = 2.0
    with pytest.raises(ea.GradientCheckError) as excinfo:
        ea.check_grads(lambda W: ea.sum(cube(W) * mask), (W,), modes=("rev",))
    message = _message(excinfo)
    assert isinstance(excinfo.value, AssertionError)
    assert "'rev'" in message and "argument W" in message
    element, analytic, numeric = _worst(message)
    assert element == "W[2, 1]"
    assert analytic == pytest.approx(2 * 3 * 2.0 ** 2, rel=1e-5)
    assert numeric == pytest.approx(3 * 2.0 ** 2, rel=1e-5)
    assert "2 times" in message


def _matvec(wrong_vjp_for_W, with_jvp: bool):
    @ea.primitive
    def matvec(W, x):
        return W @ x

    ea.defvjp(
        matvec,
        lambda ans, W, x: lambda g: wrong_vjp_for_W(g, x),
        lambda ans, W, x: lambda g: ea.einsum("i,ij->j", g, W),
    )
    if with_jvp:  # a right forward rule: forward mode then agrees with the truth
        ea.defjvp(
            matvec,
            lambda t, ans, W, x: ea.einsum("ij,j->i", t, x),
            lambda t, ans, W, x: ea.einsum("ij,j->i", W, t),
        )
    return matvec


def test_a_transposed_vjp_is_found_in_rev_while_fwd_agrees(rng):
    # the truth is dL/dW = g x^T ("i,j->ij" of (g, x)); this rule returns x g^T.
    matvec = _matvec(lambda g, x: ea.einsum("i,j->ij", x, g), with_jvp=True)
    W, x, c = rng.standard_normal((3, 3)), rng.standard_normal(3), rng.standard_normal(3)
    with pytest.raises(ea.GradientCheckError) as excinfo:
        ea.check_grads(lambda W, x: ea.sum(matvec(W, x) * c), (W, x))
    message = _message(excinfo)
    assert message.startswith("check_grads: reverse mode ('rev')")
    assert "argument W" in message and "transposed" in message
    assert "forward mode ('fwd') agrees" in message and "VJP rule" in message
    element, analytic, numeric = _worst(message)
    i, j = map(int, re.findall(r"\d+", element))
    truth = np.outer(c, x)
    assert i != j
    assert numeric == pytest.approx(truth[i, j], rel=1e-5, abs=1e-8)
    assert analytic == pytest.approx(truth[j, i], rel=1e-5, abs=1e-8)
    assert "for x" not in message  # x's rule is right


def test_without_a_jvp_rule_forward_mode_inherits_the_wrong_vjp(rng):
    matvec = _matvec(lambda g, x: 2.0 * ea.einsum("i,j->ij", g, x), with_jvp=False)
    W, x = rng.standard_normal((2, 3)), rng.standard_normal(3)
    with pytest.raises(ea.GradientCheckError) as excinfo:
        ea.check_grads(lambda W, x: matvec(W, x), (W, x))
    message = _message(excinfo)
    assert "forward mode ('fwd') disagrees too" in message
    assert "also: fwd" in message


def test_a_wrong_jvp_is_found_in_fwd_while_rev_agrees(rng):
    matvec = _matvec(lambda g, x: ea.einsum("i,j->ij", g, x), with_jvp=False)
    ea.defjvp(matvec, None, lambda t, ans, W, x: ea.einsum("ji,j->i", W, t))  # W^T t, not W t
    W, x = rng.standard_normal((3, 3)), rng.standard_normal(3)
    with pytest.raises(ea.GradientCheckError) as excinfo:
        ea.check_grads(lambda W, x: matvec(W, x), (W, x))
    message = _message(excinfo)
    assert message.startswith("check_grads: forward mode ('fwd') disagrees")
    assert "argument x" in message and "JVP rule" in message
    assert "reverse mode ('rev') agrees" in message


def test_a_wrong_vjp_on_a_large_argument_is_localised(rng):
    matvec = _matvec(lambda g, x: 2.0 * ea.einsum("i,j->ij", g, x), with_jvp=True)
    W, x = rng.standard_normal((10, 10)), np.zeros(10)
    x[7] = 1.0  # so the true gradient of sum(c * W x) is c e_7^T: only column 7 is non-zero
    c = np.arange(1.0, 11.0)
    with pytest.raises(ea.GradientCheckError) as excinfo:
        ea.check_grads(lambda W, x: ea.sum(matvec(W, x) * c), (W, x), modes=("rev",))
    element, analytic, numeric = _worst(_message(excinfo))
    assert element == "W[9, 7]"  # the largest entry, c[9] = 10
    assert (analytic, numeric) == (pytest.approx(20.0), pytest.approx(10.0))


def test_a_wrong_vjp_on_a_huge_argument_is_caught_along_a_direction(rng):
    matvec = _matvec(lambda g, x: 2.0 * ea.einsum("i,j->ij", g, x), with_jvp=True)
    W, x = rng.standard_normal((70, 70)), rng.standard_normal(70)  # 4900 > 4096
    with pytest.raises(ea.GradientCheckError, match=r"random directions.*random direction \d"):
        ea.check_grads(lambda W, x: ea.tanh(matvec(W, x)), (W, x), modes=("rev",))


def test_order_2_catches_a_rule_that_is_right_but_not_differentiable():
    @ea.primitive
    def cube(x):
        return x ** 3

    # Right values, but computed on the unboxed x: the rule's own derivative is lost.
    ea.defvjp(cube, lambda ans, x: lambda g: g * (3 * unbox(x) ** 2))
    x = np.array(2.0)
    ea.check_grads(cube, (x,), modes=("rev",))  # order 1 is fine
    with pytest.raises(ea.GradientCheckError) as excinfo:
        ea.check_grads(cube, (x,), modes=("rev",), order=2)
    message = _message(excinfo)
    assert "of the VJP of fun for x (order 2)" in message
    element, analytic, numeric = _worst(message)
    assert element == "x"  # a 0-d argument has no index
    assert analytic == 0.0 and numeric == pytest.approx(6 * 2.0, rel=1e-5)  # d/dx 3x^2


def test_names_come_from_the_signature_or_fall_back_to_args():
    assert _arg_names(lambda W, b, *rest: None, 4) == ["W", "b", "args[2]", "args[3]"]
    with pytest.raises(ea.GradientCheckError, match=r"argument args\[1\]"):
        ea.check_grads(
            lambda *xs: ea.sum(_cube_with_rule(1.0)(xs[1])), (np.ones(2), np.ones(2)), modes=("rev",)
        )


def test_check_grads_on_an_output_pytree_whose_leaves_depend_on_each_other():
    def two_outputs(x):
        y = ea.sin(x)
        return y, y * 3.0

    ea.check_grads(two_outputs, (np.array([0.5, 1.0]),), modes=("rev",))


# =========================================================== check_gradient

Y = np.array([0.3, -0.2, 0.5])


def loss(W, x):
    """Plain NumPy: 0.5 |tanh(W x) - y|^2."""
    return 0.5 * np.sum((np.tanh(W @ x) - Y) ** 2)


def dloss(W, x):
    """By hand: delta = (a - y) ⊙ tanh'(z); dL/dW = delta x^T; dL/dx = W^T delta."""
    a = np.tanh(W @ x)
    delta = (a - Y) * (1 - a ** 2)
    return np.outer(delta, x), W.T @ delta


@pytest.fixture
def Wx(rng):
    return rng.standard_normal((3, 3)), rng.standard_normal(3)


def test_check_gradient_accepts_a_right_hand_derived_gradient(Wx):
    ea.check_gradient(loss, dloss, Wx)


def test_check_gradient_catches_a_transposed_gradient(Wx):
    with pytest.raises(ea.GradientCheckError) as excinfo:
        ea.check_gradient(loss, lambda W, x: (dloss(W, x)[0].T, dloss(W, x)[1]), Wx)
    message = _message(excinfo)
    assert "grad_fun" in message and "argument W" in message and "transposed" in message
    element, analytic, numeric = _worst(message)
    i, j = map(int, re.findall(r"\d+", element))
    truth = dloss(*Wx)[0]
    assert (analytic, numeric) == (pytest.approx(truth[j, i], rel=1e-5), pytest.approx(truth[i, j], rel=1e-5))


def test_check_gradient_catches_a_constant_factor(Wx):
    with pytest.raises(ea.GradientCheckError, match=r"argument x .*\n.*\n  it is 0.5 times"):
        ea.check_gradient(loss, lambda W, x: (dloss(W, x)[0], dloss(W, x)[1] / 2), Wx)


def test_check_gradient_catches_a_missing_hadamard_factor(Wx):
    def forgot_tanh_prime(W, x):
        delta = np.tanh(W @ x) - Y  # the ⊙ tanh'(z) is missing
        return np.outer(delta, x), W.T @ delta

    with pytest.raises(ea.GradientCheckError) as excinfo:
        ea.check_gradient(loss, forgot_tanh_prime, Wx)
    message = _message(excinfo)
    assert "argument W" in message and "also: grad_fun vs finite differences for x" in message
    element, analytic, numeric = _worst(message)
    i, j = map(int, re.findall(r"\d+", element))
    assert analytic == pytest.approx(forgot_tanh_prime(*Wx)[0][i, j], rel=1e-5)
    assert numeric == pytest.approx(dloss(*Wx)[0][i, j], rel=1e-5, abs=1e-8)


def test_check_gradient_reports_a_wrong_count(Wx):
    with pytest.raises(ea.GradientCheckError, match=r"returned a single gradient .* fun takes 2 argument"):
        ea.check_gradient(loss, lambda W, x: dloss(W, x)[0], Wx)
    with pytest.raises(ea.GradientCheckError, match=r"tuple of 3 gradient"):
        ea.check_gradient(loss, lambda W, x: (*dloss(W, x), x), Wx)


def test_check_gradient_reports_a_wrong_shape(rng):
    W, x = rng.standard_normal((3, 2)), rng.standard_normal(2)
    with pytest.raises(ea.GradientCheckError, match=r"for W has shape \(2, 3\), but W has shape \(3, 2\) \(the transposed"):
        ea.check_gradient(loss, lambda W, x: (dloss(W, x)[0].T, dloss(W, x)[1]), (W, x))
    with pytest.raises(ea.GradientCheckError, match=r"for x has shape \(\), but x has shape \(2,\)"):
        ea.check_gradient(loss, lambda W, x: (dloss(W, x)[0], 0.0), (W, x))


def test_check_gradient_with_one_argument_takes_a_single_array(rng):
    x = rng.standard_normal(5)
    ea.check_gradient(lambda x: np.sum(np.sin(x)), lambda x: np.cos(x), x)
    ea.check_gradient(lambda x: np.sum(np.sin(x)), lambda x: (np.cos(x),), (x,))


def test_check_gradient_on_a_large_argument(rng):
    W, x = rng.standard_normal((10, 10)), rng.standard_normal(10)
    f = lambda W: np.sum(np.tanh(W @ x))  # noqa: E731
    g = lambda W: np.outer(1 - np.tanh(W @ x) ** 2, x)  # noqa: E731
    ea.check_gradient(f, g, W)
    ea.check_gradient(f, g, W.astype(np.float32))
    with pytest.raises(ea.GradientCheckError, match="transposed"):
        ea.check_gradient(f, lambda W: g(W).T, W)


def test_check_gradient_also_compares_with_einsumad_when_fun_is_traceable(Wx):
    def traceable(W, x):
        return 0.5 * ea.sum((ea.tanh(W @ x) - Y) ** 2)

    ea.check_gradient(traceable, dloss, Wx)
    wrong = lambda W, x: (2 * dloss(W, x)[0], dloss(W, x)[1])  # noqa: E731
    with pytest.raises(ea.GradientCheckError, match="einsumad's gradient of fun agrees"):
        ea.check_gradient(traceable, wrong, Wx)
    with pytest.raises(ea.GradientCheckError) as excinfo:  # plain NumPy: no such comparison
        ea.check_gradient(loss, wrong, Wx)
    assert "einsumad" not in _message(excinfo)


def test_check_gradient_skips_einsumad_when_fun_returns_an_untraced_value(rng):
    # float() unboxes the traced value: einsumad would see a constant (gradient 0).
    x = rng.standard_normal(3)
    ea.check_gradient(lambda x: float(ea.sum(x * x)), lambda x: 2 * x, x)


def test_check_gradient_needs_a_scalar_and_float_arguments(rng):
    x = rng.standard_normal(3)
    with pytest.raises(TypeError, match="scalar"):
        ea.check_gradient(lambda x: x * 2, lambda x: 2 * np.ones(3), x)
    with pytest.raises(TypeError, match="floating-point"):
        ea.check_gradient(lambda n: float(n), lambda n: 1.0, np.int64(2))
