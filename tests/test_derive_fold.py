"""derive folds a definition back into a line, whatever the shape (size-1 axes included).

With ``x`` of shape (1, 1) every index drops, so ``z1_ij = x_ij x_ij`` reads
``z1 = x x``: folding it back into ``x^1`` once took half of ``x x``, left ``x^-1``
and folded that the other way, for ever. Each line printed below is evaluated with
plain NumPy and compared with central finite differences of the loss (the gradient)
or with the closed-form partial of the loss in ``z1 = x^2`` holding ``x`` (delta1).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import einsumad as ea
from einsumad.algebra.fold import FOLD_STEPS, Factor, Poly, Term, _fold_term, fold
from tests.numeric import numerical_gradient, poly_value


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


# fun, d loss / d z1 at fixed x (z1 = x^2), the partial templates the view writes
CASES = {
    "divide": (
        lambda x: ea.sum(x / (x * x + 1)),
        lambda x: -x / (x**2 + 1) ** 2,
        {},
    ),
    "maximum": (
        lambda x: ea.sum(ea.maximum(x, x * x)),
        lambda x: (x**2 > x).astype(float),
        {"∂maximum/∂x0({0})": lambda x: (x > x**2).astype(float), "∂maximum/∂x1({0})": lambda x: (x**2 > x).astype(float)},
    ),
    "logaddexp": (
        lambda x: ea.sum(ea.logaddexp(x, x * x)),
        lambda x: _sigmoid(x**2 - x),
        {"∂logaddexp/∂x0({0})": lambda x: _sigmoid(x - x**2), "∂logaddexp/∂x1({0})": lambda x: _sigmoid(x**2 - x)},
    ),
}


def evaluate(poly: Poly, env: dict, inline: dict, sizes: dict, functions: dict, x: np.ndarray) -> np.ndarray:
    """A line's value; a partial template is evaluated at ``x`` (its point)."""
    at_x = x.reshape([sizes[i] for i in poly.indices])

    def factor(f):
        if f.fn is not None:
            return functions[f.fn](at_x)  # the partial at the point of x (its argument is x or x^2)
        if f.name in env:
            return np.asarray(env[f.name], dtype=float).reshape(at_x.shape)
        return evaluate(inline[f.name], env, inline, sizes, functions, x)

    return poly_value(poly, factor, sizes)


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (2, 2)])
@pytest.mark.parametrize("case", list(CASES))
def test_derivation_with_size_one_axes_renders_and_verifies(case: str, shape: tuple[int, int]) -> None:
    fun, dz1, functions = CASES[case]
    x = np.random.default_rng(7).uniform(0.2, 1.8, size=shape)  # away from the ties x = x^2 at 0 and 1
    x[np.abs(x - 1) < 0.1] = 1.4
    d = ea.derive(fun, x)
    text = str(d)
    assert "dx" in text and "delta1" in text
    backward = {ln.name: ln for ln in d.textbook if ln.kind == "backward"}
    assert set(backward) == {"dx", "delta1"}
    assert all(ln.verified for ln in backward.values()), text
    sizes = {"i": shape[0], "j": shape[1]} if shape[0] > 1 else {"j": shape[1]} if shape[1] > 1 else {}
    env = {"x": x, "z1": x**2}
    inline = d._textbook.inline
    delta1 = evaluate(backward["delta1"].poly, env, inline, sizes, functions, x)
    np.testing.assert_allclose(delta1.reshape(x.shape), dz1(x), rtol=1e-6, atol=1e-9, err_msg=text)
    env["delta1"] = delta1
    dx = evaluate(backward["dx"].poly, env, inline, sizes, functions, x)
    truth = numerical_gradient(fun, [x], 0)
    np.testing.assert_allclose(dx.reshape(x.shape), truth, rtol=1e-5, atol=1e-7, err_msg=text)


def test_fold_takes_whole_powers_of_an_unmerged_definition() -> None:
    # z = x x (a size-1 axis dropped from x_ij x_ij): x alone does not hold z, x^3 holds z once
    z = Poly((), (Term(Fraction(1), (Factor("x"), Factor("x"))),))
    assert str(fold(Poly.parse("d = 2 x y"), "z", z)) == "d = 2 x y"
    assert str(fold(Poly.parse("d = 2 x^3 y"), "z", z)) == "d = 2 x y z"


def test_fold_term_gives_up_after_its_step_bound() -> None:
    # a definition with the folded name in it would refold for ever: the term comes back unfolded
    t = Term(Fraction(1), (Factor("a"), Factor("b")))
    d = Term(Fraction(1), (Factor("a"),))
    assert _fold_term(t, "a", (), d) == t
    assert FOLD_STEPS > 0



@pytest.mark.parametrize("wrt", [None, "z"])
def test_complex_argument_is_refused_with_what_to_use(wrt: str | None) -> None:
    z = np.array([1 + 2j, 3 - 1j])
    with pytest.raises(TypeError, match=r"argument 'z' is complex .*ea\.grad.*ea\.check_grads"):
        ea.derive(lambda z: ea.sum(ea.real(z * z)), z, wrt=wrt)
    # what the message suggests works: grad is conj(dL/da + i dL/db), by central differences in a and b
    g = ea.grad(lambda z: ea.sum(ea.real(z * z)))(z)
    loss = lambda z: np.sum(np.real(z * z))  # noqa: E731
    h, eye = 1e-6, np.eye(len(z))
    da = np.array([(loss(z + h * e) - loss(z - h * e)) / (2 * h) for e in eye])
    db = np.array([(loss(z + 1j * h * e) - loss(z - 1j * h * e)) / (2 * h) for e in eye])
    np.testing.assert_allclose(g, np.conj(da + 1j * db), rtol=1e-6)


def test_complex_constant_argument_is_refused() -> None:
    x, z = np.array([1.0, 2.0]), np.array([1 + 2j, 3 - 1j])
    with pytest.raises(TypeError, match="argument 'z' is complex"):
        ea.derive(lambda x, z: ea.sum(ea.real(z * x)), x, z)
