"""derive's textbook view counts a sum over an index that no factor carries.

``sum_j (2 x_j - 0.5 sum_k x_k)`` is ``2 sum_j x_j - 0.5 n sum_k x_k``: the size
``n`` of ``j`` multiplies the second term. Every printed line below is evaluated
here with plain NumPy (its index polynomial, unnamed values through the
definitions the view writes inline) and compared with central finite
differences of the loss; a line that cannot be confirmed is never shown
unmarked.
"""

from __future__ import annotations

import numpy as np
import pytest

import einsumad as ea
from einsumad.algebra.fold import Poly, resolve_sizes, substitute
from tests.numeric import numerical_gradient, poly_value

FUNCTIONS = {
    "sqrt({0})": np.sqrt,
    "tanh({0})": np.tanh,
    "tanh'({0})": lambda z: 1 - np.tanh(z) ** 2,
}


def evaluate(poly: Poly, env: dict, inline: dict, sizes: dict) -> np.ndarray:
    """A line's value; unnamed values the view writes in place are evaluated from their definitions."""

    def value(name: str) -> np.ndarray:
        return env[name] if name in env else evaluate(inline[name], env, inline, sizes)

    return poly_value(poly, lambda f: value(f.name) if f.fn is None else FUNCTIONS[f.fn](value(f.name)), sizes)


def check_lines(d: ea.Derivation, fun, args: list, env: dict, sizes: dict) -> None:
    """Every backward line of ``d`` that names an argument's gradient equals finite differences."""
    assert d.textbook  # builds the view (and its inline definitions)
    inline = d._textbook.inline  # the definitions the view writes in place of unnamed values
    names = list(d.gradients)
    checked = 0
    for ln in d.textbook:
        if ln.kind != "backward" or ln.name[1:] not in names:
            continue
        k = names.index(ln.name[1:])
        truth = numerical_gradient(fun, args, k)
        shown = evaluate(ln.poly, env, inline, sizes)
        np.testing.assert_allclose(np.broadcast_to(shown, truth.shape), truth, rtol=1e-5, atol=1e-7, err_msg=ln.index)
        assert ln.verified is True and "NOT VERIFIED" not in ln.note
        checked += 1
    assert checked == len(names)


def test_a_sum_over_an_index_no_factor_carries_is_its_size() -> None:
    g = Poly.parse("g_j = 2 x_j - 0.5 x_k")
    total = substitute(Poly.parse("s = g_j"), "g", g)
    x = np.array([1.0, 2.0, 4.0, 8.0])
    shown = resolve_sizes(total, {"j": 4, "k": 4}.get)
    assert str(shown) == "s = 0"  # 2 sum x - 0.5 * 4 * sum x
    assert np.sum(2 * x - 0.5 * x.sum()) == 0


def test_mean_centred_square_shows_two_over_n() -> None:
    x = np.array([1.0, 2.0, 4.0, 8.0])
    fun = lambda x: ea.sum((x - ea.mean(x)) ** 2)  # noqa: E731
    d = ea.derive(fun, x)
    assert "dx_i = 2 x_i - 0.5 sum_j x_j" in str(d)  # 2/n with n = 4 (it was 0.875)
    check_lines(d, fun, [x], {"x": x}, {"i": 4, "j": 4})


def test_broadcast_to_multiplies_by_the_broadcast_size() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    fun = lambda x: ea.sum(ea.broadcast_to(x, (3, 4)) ** 2)  # noqa: E731
    d = ea.derive(fun, x)
    assert "dx = 6 x" in str(d)
    check_lines(d, fun, [x], {"x": x}, {"i": 3, "j": 4})


def check_broadcast_addition(fun, x: np.ndarray, y: np.ndarray, dy: str = "dy") -> ea.Derivation:
    """dv1 (the cotangent of x as a column) and ``dy``, printed, against finite differences."""
    d = ea.derive(fun, x, y)
    lines = {ln.name: ln for ln in d.textbook if ln.kind == "backward"}
    assert all(ln.verified is not False for ln in lines.values()), str(d)
    env = {"x": x, "y": y, "v1": x, "v2": y}
    sizes = {"i": 4, "j": 3}
    truth_x = numerical_gradient(lambda x, y: np.sum((x[:, None] + y[None, :]) ** 2), [x, y], 0)
    truth_y = numerical_gradient(lambda x, y: np.sum((x[:, None] + y[None, :]) ** 2), [x, y], 1)
    np.testing.assert_allclose(evaluate(lines["dv1"].poly, env, d._textbook.inline, sizes), truth_x, rtol=1e-6)
    np.testing.assert_allclose(evaluate(lines[dy].poly, env, d._textbook.inline, sizes), truth_y, rtol=1e-6)
    return d


def test_broadcast_addition() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=4), rng.normal(size=3)
    d = check_broadcast_addition(lambda x, y: ea.sum((ea.reshape(x, (4, 1)) + y) ** 2), x, y)
    # dy_j = sum_i 2 (x_i + y_j) = 2 sum_i x_i + 2 * 4 y_j (it was 2 y_j)
    assert "dy_j = 2 sum_i v1_i + 8 y_j" in str(d)
    assert "dv1_i = 6 v1_i + 2 sum_j y_j" in str(d)


def test_broadcast_addition_by_indexing() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=4), rng.normal(size=3)
    d = check_broadcast_addition(lambda x, y: ea.sum((x[:, None] + y[None, :]) ** 2), x, y, dy="dv2")
    assert "dv1_i = 6 v1_i + 2 sum_j v2_j" in str(d)


@pytest.mark.parametrize("reduce", ["var", "std"])
def test_var_and_std(reduce: str) -> None:
    rng = np.random.default_rng(3)
    x, g = rng.normal(size=(3, 4)), rng.normal(size=3)
    op = getattr(ea, reduce)
    fun = lambda x, g: ea.sum(op(x, axis=1) * g)  # noqa: E731
    d = ea.derive(fun, x, g)
    check_lines(d, fun, [x, g], {"x": x, "g": g}, {"i": 3, "j": 4})


def test_layer_norm_coefficients() -> None:
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(5, 4)), rng.normal(size=4)
    fun = lambda x, g: ea.sum(ea.layer_norm(x) * g)  # noqa: E731
    d = ea.derive(fun, x, g)
    text = d.line("dx").index
    assert "/ (64 " in text and "/ (256 " not in text  # 1/n^3 with n = 4 (it was 7/256)
    check_lines(d, fun, [x, g], {"x": x, "g": g}, {"i": 5, "j": 4})


def test_a_line_that_does_not_verify_is_marked(monkeypatch) -> None:
    from einsumad.tools.derive import textbook

    x = np.array([1.0, 2.0, 3.0])
    monkeypatch.setattr(textbook.Textbook, "verify", lambda self, node, p: False)
    d = ea.derive(lambda x: ea.sum(ea.tanh(x)), x)
    text = str(d)
    assert "NOT VERIFIED" in text
    assert all(ln.verified is False for ln in d.textbook if ln.kind == "backward")
