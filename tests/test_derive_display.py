"""derive's printed text: what each op's declaration says is shown, parenthesised as maths reads.

Each test reads the printed line and checks its numbers against NumPy.
"""

from __future__ import annotations

import numpy as np

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
