"""matrix_form: a table of subscripts in, matrix notation out, each entry checked numerically.

The numerical check does not trust the table: a tiny evaluator reads the matrix
expression (vectors as n x 1 columns, ``1`` the ones vector, ``I`` the identity,
``⊙`` Hadamard, ``tr``, ``diag``, ``Diag``) and its value is compared with a
brute-force generalised einsum (a loop over every index assignment).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einsumad as ea
from einsumad.algebra.matrix import matrix_form_details
from einsumad.algebra.subscripts import parse
from tests.numeric import brute_force_einsum

# ------------------------------------------------------------------ the table

TABLE = {
    "products": [
        ("ij,jk->ik", "A B"),
        ("ij,kj->ik", "A B^T"),
        ("ji,jk->ik", "A^T B"),
        ("ij,jk->ki", "B^T A^T"),
        ("ij,j->i", "A b"),
        ("i,ij->j", "B^T a"),
        ("j,ij->i", "B a"),
        ("i,i->", "a^T b"),
        ("i,j->ij", "a b^T"),
        ("i,j->ji", "b a^T"),
        ("ij,ij->", "tr(A^T B)"),
        ("ij,ji->", "tr(A B)"),
        ("ij,jk->", "1^T A B 1"),
    ],
    "hadamard-like": [
        ("ij,ij->ij", "A ⊙ B"),
        ("ij,ji->ij", "A ⊙ B^T"),
        ("i,i->i", "a ⊙ b"),
        ("bi,i->bi", "A Diag(b)"),
        ("b,bi->bi", "Diag(a) B"),
        ("ij,ij->i", "(A ⊙ B) 1"),
        ("bi,bi->i", "(A ⊙ B)^T 1"),
        ("ij,j->j", "(A^T 1) ⊙ b"),
    ],
    "scalars": [
        (",->", "a b"),
        (",i->i", "a b"),
        ("i,->i", "b a"),
        (",ij->ij", "a B"),
    ],
    "unary": [
        ("ij->ij", "A"),
        ("ij->ji", "A^T"),
        ("ii->", "tr(A)"),
        ("ii->i", "diag(A)"),
        ("i->ii", "Diag(a)"),
        ("ii->ii", "Diag(diag(A))"),
        ("ij->i", "A 1"),
        ("ij->j", "A^T 1"),
        ("ij->", "1^T A 1"),
        ("i->", "1^T a"),
    ],
    "chains, forms and traces (three or more operands)": [
        ("ij,jk,kl->il", "A B C"),
        ("ij,jk,kl->li", "C^T B^T A^T"),
        ("i,ij,j->", "a^T B c"),
        ("ij,jk,ki->", "tr(A B C)"),
        ("jk,ki,ij->", "tr(A B C)"),  # the cyclic rule: the first operand leads
        ("ij,jk,kl,li->", "tr(A B C D)"),
        ("ij,ij,ij->ij", "A ⊙ B ⊙ C"),
        ("i,ij,j->j", "(B^T a) ⊙ c"),  # the delta rule: (W^T delta) ⊙ sigma'(z)
        ("ii,i->i", "diag(A) ⊙ b"),
        ("i,ij->ij", "Diag(a) B"),
        ("ij,jk,kl->", "1^T A B C 1"),
        ("i,j,k->ij", "1^T c a b^T"),
    ],
    "broadcasts": [
        ("i->ij", "a 1^T"),
        ("i->ji", "1 a^T"),
        ("->i", "a 1"),
        ("->ij", "a 1 1^T"),
        ("->ii", "a I"),
    ],
}
CASES = [case for group in TABLE.values() for case in group]

NONE_CASES = [
    ("ijk,k->ij", "operand 0 has rank 3"),
    ("ij,jk,lmn->ik", "operand 2 has rank 3"),
    ("ijji,kji,jj->kj", "operand 0 has rank 4"),  # the design note's example
    ("ij,jk->ijk", "the output has rank 3"),
    ("...ij,...jk->...ik", "operand 0 has '...', which stands for any number of axes"),
    ("ij,k->ijk", "the output has rank 3"),
]


@pytest.mark.parametrize("subscripts, expected", CASES, ids=[c[0] for c in CASES])
def test_matrix_form_table(subscripts: str, expected: str) -> None:
    assert ea.matrix_form(subscripts) == expected


@pytest.mark.parametrize("subscripts, reason", NONE_CASES, ids=[c[0] for c in NONE_CASES])
def test_no_matrix_form_says_why(subscripts: str, reason: str) -> None:
    assert ea.matrix_form(subscripts) is None
    details = matrix_form_details(subscripts)
    assert details.text is None and details.reason == reason
    assert str(details) == f"(none: {reason})"


def test_the_reason_names_the_operand_when_names_are_given() -> None:
    assert matrix_form_details("ij,jk,lmn->ik", ["A", "B", "T"]).reason == "operand 2 (T) has rank 3"


def test_many_operands_do_not_crash() -> None:
    """issue 10, item 10: 23 vector operands ran out of default names (IndexError)."""
    assert ea.matrix_form(",".join("a" * 23) + "->") == "(a ⊙ b ⊙ c ⊙ d ⊙ e ⊙ f ⊙ g ⊙ h ⊙ k ⊙ l ⊙ m ⊙ n ⊙ p ⊙ q ⊙ r ⊙ s ⊙ u ⊙ v ⊙ w ⊙ x ⊙ y ⊙ z)^T a1"
    assert ea.matrix_form(",".join("ab" * 1 for _ in range(30)) + "->ab").count("⊙") == 29


@settings(max_examples=300)
@given(st.text(alphabet="ijk,->. aAB1_", max_size=14))
def test_any_string_gives_a_form_none_or_einsum_error(text: str) -> None:
    """No input string crashes matrix_form with anything but EinsumError."""
    try:
        result = ea.matrix_form(text)
        details = matrix_form_details(text)
    except ea.EinsumError:
        return
    assert result == details.text
    assert (details.text is None) == (details.reason is not None)


def test_transposed_operands_are_reported() -> None:
    assert matrix_form_details("ij,j->i", ["W", "a"]).transposed == frozenset()
    assert matrix_form_details("i,ij->j", ["g", "W"]).transposed == {1}
    assert matrix_form_details("i,j->ij", ["g", "a"]).transposed == frozenset()  # a vector, not a matrix
    assert matrix_form_details("->ij", ["g"]).transposed == frozenset()  # a broadcast


def test_cli_prints_the_reason(capsys) -> None:
    from einsumad.tools.cli import main

    assert main(["vjp", "ijk,k->ij"]) == 0
    out = capsys.readouterr().out
    assert "matrix form: (none): operand 0 (A) has rank 3" not in out  # default names are not the user's
    assert "matrix form: (none): operand 0 has rank 3" in out or "operand 0 (a) has rank 3" in out


def test_names_and_the_backprop_transpose() -> None:
    assert ea.matrix_form("ij,j->i", ["W2", "a1"]) == "W2 a1"
    assert ea.matrix_form("i,ij->j", ["delta2", "W2"]) == "W2^T delta2"
    assert ea.matrix_form("i,j->ij", ["delta2", "a1"]) == "delta2 a1^T"
    assert ea.matrix_form("->ii", ["g"]) == "g I"
    assert ea.matrix_form(",->", ["g", "0.5"]) == "0.5 g"  # a number goes first


def test_named_indices_and_implicit_output() -> None:
    assert ea.matrix_form("batch in, in out -> batch out") == "A B"
    assert ea.matrix_form("ij,jk") == "A B"
    assert ea.matrix_form("ii") == "tr(A)"


def test_latex_and_ascii() -> None:
    assert ea.matrix_form("i,ij->j", ["delta2", "W2"], latex=True) == "W_{2}^\\top \\delta_{2}"
    assert ea.matrix_form("ij,ij->ij", latex=True) == "A \\odot B"
    assert ea.matrix_form("ij->i", latex=True) == "A \\mathbf{1}"
    assert ea.matrix_form("ii->", latex=True) == "\\operatorname{tr}\\left(A\\right)"
    assert ea.matrix_form("ij,ij->ij", ascii=True) == "A * B"


def test_wrong_number_of_names() -> None:
    with pytest.raises(ea.EinsumError, match="2 operand"):
        ea.matrix_form("ij,jk->ik", ["A"])


# ------------------------------------------------------------------ independent truths

SIZES = {"i": 2, "j": 3, "k": 4, "b": 5, "l": 6}


class _Ones:
    """The all-ones vector of whatever length its neighbour needs (``t``: transposed)."""

    def __init__(self, t: bool = False):
        self.t = t


def _mul(x, y):
    if isinstance(x, _Ones) and isinstance(y, _Ones):
        raise AssertionError("1 1 is never produced")
    if isinstance(y, _Ones):
        return x.sum(axis=1, keepdims=True) if not y.t else x  # X 1, or x 1^T (stretch later)
    if isinstance(x, _Ones):
        return y.sum(axis=0, keepdims=True) if x.t else y  # 1^T X, or 1 a^T (stretch later)
    if x.shape == (1, 1) or y.shape == (1, 1):
        return x * y  # a scalar factor
    return x @ y


def evaluate_matrix_expression(text: str, env: dict, out_shape: tuple) -> np.ndarray:
    """Evaluate our own output format with plain NumPy (vectors are n x 1 columns)."""
    tokens = re.findall(r"\^T|⊙|tr\(|diag\(|Diag\(|\(|\)|[A-Za-z0-9]+", text)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def hadamard():
        value = product()
        while peek() == "⊙":
            take()
            value = value * product()
        return value

    def product():
        value = postfix()
        while peek() not in (None, ")", "⊙"):
            value = _mul(value, postfix())
        return value

    def postfix():
        value = primary()
        if peek() == "^T":
            take()
            value = _Ones(not value.t) if isinstance(value, _Ones) else value.T
        return value

    def primary():
        tok = take()
        if tok == "(":
            value = hadamard()
            assert take() == ")"
            return value
        if tok in ("tr(", "diag(", "Diag("):
            arg = hadamard()
            assert take() == ")"
            if tok == "tr(":
                return np.trace(arg).reshape(1, 1)
            if tok == "diag(":
                return np.diag(arg).reshape(-1, 1)
            return np.diag(arg.ravel())
        if tok == "1":
            return _Ones()
        if tok == "I":
            return np.eye(out_shape[0])
        return env[tok]

    value = hadamard()
    assert pos == len(tokens), text
    return value


def _as_column_convention(array: np.ndarray) -> np.ndarray:
    """Scalars as 1 x 1, vectors as n x 1 columns, matrices unchanged."""
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        return array.reshape(-1, 1)
    return array


@pytest.mark.parametrize("subscripts, expected", CASES, ids=[c[0] for c in CASES])
def test_matrix_form_agrees_with_einsum(subscripts: str, expected: str, rng) -> None:
    sub = parse(subscripts)
    arrays = [rng.normal(size=[SIZES[s] for s in term]) for term in sub.inputs]
    names = [(c if len(t) == 2 else c.lower()) for c, t in zip("ABCD", sub.inputs)]
    env = {n: _as_column_convention(a) for n, a in zip(names, arrays)}
    present = set().union(*map(set, sub.inputs))
    truth = brute_force_einsum(subscripts, *arrays, sizes={s: SIZES[s] for s in sub.output if s not in present})
    # numpy.einsum agrees with the brute force wherever it accepts the subscripts
    if all(s in "".join("".join(t) for t in sub.inputs) for s in sub.output) and len(set(sub.output)) == len(sub.output):
        np.testing.assert_allclose(np.einsum(subscripts, *arrays), truth, atol=1e-12)
    got = evaluate_matrix_expression(ea.matrix_form(subscripts), env, truth.shape)
    want = _as_column_convention(truth)
    assert got.ndim == 2
    # a stretched ones vector leaves a size-1 axis: it must broadcast, never transpose
    assert all(g in (w, 1) for g, w in zip(got.shape, want.shape)), (got.shape, want.shape)
    np.testing.assert_allclose(np.broadcast_to(got, want.shape), want, atol=1e-12)


def test_evaluator_catches_a_wrong_transpose(rng) -> None:
    """The check has teeth: a table entry with a missing transpose fails it."""
    A, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 1))
    with pytest.raises(ValueError):
        evaluate_matrix_expression("A b", {"A": A, "b": b}, (3, 1))
