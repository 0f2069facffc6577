"""derive's printed text: what each op's declaration says is shown, parenthesised as maths reads.

Each test reads the printed line and checks its numbers against NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

import einsumad as ea


def test_a_real_power_shows_its_exponent() -> None:
    x = np.array([0.5, -1.0, 2.0])
    d = ea.derive(lambda x: ea.sum(ea.power(x * x + 1, 1.5)), x)
    text = str(d)
    assert "L = sum_i (x_i^2 + 1)^1.5" in text
    assert "dx_i = 3 x_i (x_i^2 + 1)^0.5" in text
    assert "L = 1^T (x ⊙ x + 1)^1.5" in text
    assert "power(" not in text
    np.testing.assert_allclose(d.gradients["x"], 3 * x * (x * x + 1) ** 0.5)
    assert d.line("dx").verified is True
    assert "\\left(x_{i}^{2} + 1\\right)^{1.5}" in d.latex


def _tanh_chain(k: int):
    def f(x):
        for _ in range(k):
            x = ea.tanh(x)
        return ea.sum(x)

    return f


def test_a_deep_elementwise_chain_renders_in_linear_space() -> None:
    x = np.array([0.1, 0.2, 0.3])
    short = str(ea.derive(_tanh_chain(8), x))
    d = ea.derive(_tanh_chain(40), x)
    text = str(d)
    assert len(text) < 5 * len(short)  # it grew as 2^depth (and as depth^2 in the nesting)
    assert "v7 = tanh(tanh(tanh(tanh(tanh(tanh(tanh(x)))))))" in text  # long nestings get a name
    (dx,) = [ln for ln in d.textbook if ln.kind == "backward"]
    assert dx.verified is True
    # dx = prod_k tanh'(a_k) with a_0 = x, a_{k+1} = tanh(a_k)
    a, truth = x.copy(), np.ones_like(x)
    for _ in range(40):
        truth *= 1 - np.tanh(a) ** 2
        a = np.tanh(a)
    np.testing.assert_allclose(d.gradients["x"], truth)
    assert dx.index.count("tanh'(") == 40


@pytest.mark.parametrize("params", [{"W": np.ones((3, 4))}, [np.ones((3, 4)), np.ones(4)]])
def test_a_dict_or_list_argument_is_a_clear_type_error(params) -> None:
    a = np.ones(4)
    fun = (lambda p: ea.sum(p["W"] @ a)) if isinstance(params, dict) else (lambda p: ea.sum(p[0] @ p[1]))
    with pytest.raises(TypeError, match="derive takes arrays .*separate arguments"):
        ea.derive(fun, params)


def test_a_list_of_numbers_is_still_an_array() -> None:
    d = ea.derive(lambda x: ea.sum(x * x), [1.0, 2.0])
    np.testing.assert_allclose(d.gradients["x"], [2.0, 4.0])


# ------------------------------------------------------------------ a selection with a number: max(x, 0)

SELECTIONS = {
    "max({0}, 0)": lambda z: np.maximum(z, 0),
    "min({0}, 0)": lambda z: np.minimum(z, 0),
    "max({0}, -1)": lambda z: np.maximum(z, -1),
    "min({0}, 1)": lambda z: np.minimum(z, 1),
    "[{0} > 0]": lambda z: (z > 0).astype(float),
    "[{0} < 0]": lambda z: (z < 0).astype(float),
    "[{0} > -1]": lambda z: (z > -1).astype(float),
    "[{0} < 1]": lambda z: (z < 1).astype(float),
}


@pytest.mark.parametrize(
    "fun, forward, backward",
    [
        (lambda x: ea.sum(ea.maximum(x, 0.0) ** 2), "L = sum_i max(x_i, 0)^2", "dx_i = 2 [x_i > 0] max(x_i, 0)"),
        (lambda x: ea.sum(ea.minimum(x, 0.0) ** 2), "L = sum_i min(x_i, 0)^2", "dx_i = 2 [x_i < 0] min(x_i, 0)"),
        (lambda x: ea.sum(ea.clip(x, -1.0, 1.0) ** 2), "L = sum_i min(max(x_i, -1), 1)^2",
         "dx_i = 2 [x_i > -1] min(max(x_i, -1), 1) [max(x_i, -1) < 1]"),
    ],
)
def test_a_selection_against_a_number_shows_the_number_and_an_indicator(fun, forward, backward, monkeypatch) -> None:
    import tests.test_derive_sizes as sizes

    for template, f in SELECTIONS.items():
        monkeypatch.setitem(sizes.FUNCTIONS, template, f)
    x = np.array([1.5, -2.0, 3.0, 0.5, -0.25])  # no ties with 0 or the bounds ±1
    d = ea.derive(fun, x)
    text = str(d)
    assert forward in text and backward in text
    assert "∂" not in text and "maximum" not in text and "minimum" not in text
    # the printed line, evaluated by np.einsum, is the finite-difference gradient
    sizes.check_lines(d, fun, [x], {"x": x}, {"i": x.size})
    # and the indicator is the step: the gradient of max(x, 0)^2 is 2 x [x > 0], by hand
    if "max(x_i, 0)" in forward:
        np.testing.assert_allclose(d.gradients["x"], 2 * x * (x > 0))


# ------------------------------------------------------------------ parentheses: sums under a factor, products under a power

GAUSS = {
    "Φ({0}) + {0} φ({0})": lambda z: 0.5 * (1 + np.vectorize(__import__("math").erf)(z / np.sqrt(2)))
    + z * np.exp(-z * z / 2) / np.sqrt(2 * np.pi),
    "{0} Φ({0})": lambda z: z * 0.5 * (1 + np.vectorize(__import__("math").erf)(z / np.sqrt(2))),
}


def test_a_declared_sum_times_a_factor_is_parenthesised(monkeypatch) -> None:
    import tests.test_derive_sizes as sizes

    for template, f in GAUSS.items():
        monkeypatch.setitem(sizes.FUNCTIONS, template, f)
    x = np.array([1.0, -2.0, 0.5])
    fun = lambda x: ea.sum(ea.gelu(x) ** 2)  # noqa: E731
    d = ea.derive(fun, x)
    text = str(d)
    assert "L = sum_i (x_i Φ(x_i))^2" in text
    assert "dx_i = 2 (Φ(x_i) + x_i φ(x_i)) x_i Φ(x_i)" in text
    assert "L = (x Φ(x))^T (x Φ(x))" in text
    assert "dx = 2 (x Φ(x)) ⊙ (Φ(x) + x φ(x))" in text
    sizes.check_lines(d, fun, [x], {"x": x}, {"i": x.size})


def test_a_sum_in_a_denominator_is_parenthesised() -> None:
    from tests.test_derive_sizes import check_lines

    b = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.25]])
    fun = lambda b: ea.sum(b / (16 + b**2))  # noqa: E731
    d = ea.derive(fun, b)
    text = str(d)
    assert "L = sum_ij b_ij / (16 + b_ij^2)" in text
    assert "db_ij = (1 - 2 b_ij^2 / (16 + b_ij^2)) / (16 + b_ij^2)" in text
    check_lines(d, fun, [b], {"b": b}, {"i": 2, "j": 3})
    np.testing.assert_allclose(d.gradients["b"], (16 - b**2) / (16 + b**2) ** 2)


def test_a_number_times_the_ones_vector_is_not_glued_to_it() -> None:
    from tests.test_derive_sizes import check_lines

    W = np.array([[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]])
    x = np.array([0.2, -0.1, 0.3])
    fun = lambda W, x: ea.sum(ea.tanh(16 + W @ x))  # noqa: E731
    d = ea.derive(fun, W, x)
    text = str(d)
    assert "16·1 + z1" in text and "16 1" not in text
    assert "tanh(16 + z1_i)" in text
    assert "delta1 = tanh'(16·1 + z1)" in text
    delta1 = 1 - np.tanh(16 + W @ x) ** 2
    check_lines(d, fun, [W, x], {"W": W, "x": x, "z1": W @ x, "delta1": delta1}, {"i": 2, "j": 3})
    (line,) = [ln for ln in d.textbook if ln.name == "delta1"]
    assert line.verified is True
    from tests.test_derive_sizes import evaluate

    shown = evaluate(line.poly, {"z1": W @ x}, d._textbook.inline, {"i": 2, "j": 3})
    np.testing.assert_allclose(shown, delta1)
    np.testing.assert_allclose(d.gradients["x"], W.T @ delta1)
