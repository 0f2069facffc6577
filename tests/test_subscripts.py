"""Parsing and resolving subscripts: NumPy's rules, named indices, and every error path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import einsumad as ea
from einsumad.algebra.subscripts import parse, resolve

# ----------------------------------------------------------------- NumPy's implicit mode


@pytest.mark.parametrize(
    "subscripts, shapes",
    [
        ("ij,jk", [(2, 3), (3, 4)]),
        ("ba", [(2, 3)]),
        ("bA", [(2, 3)]),  # ASCII order: upper case sorts first
        ("ii", [(3, 3)]),
        ("i,i", [(3,), (3,)]),
        ("...ij,...jk", [(5, 2, 3), (3, 4)]),
        ("ij ,jk", [(2, 3), (3, 4)]),  # spaces are ignored
        ("kji,ik", [(2, 3, 4), (4, 2)]),
    ],
)
def test_implicit_output_matches_numpy(subscripts, shapes, rng):
    arrays = [rng.normal(size=s) for s in shapes]
    np.testing.assert_allclose(ea.einsum(subscripts, *arrays), np.einsum(subscripts, *arrays))


def test_implicit_output_is_sorted_letters_used_once():
    assert parse("cb,ba").output == ("a", "c")
    assert parse("...a,a").output == ("...",)


# ----------------------------------------------------------------- named indices


def test_named_mode_is_chosen_by_multi_name_terms():
    sub = parse("batch in, in out -> batch out")
    assert sub.named
    assert sub.inputs == (("batch", "in"), ("in", "out"))
    assert not parse("ij, jk -> ik").named  # one name per term: letters, as NumPy
    assert parse("x1 -> x1").named  # a digit makes it a name


def test_named_einsum_matches_letters(rng):
    x, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    np.testing.assert_allclose(
        ea.einsum("batch in, in out -> batch out", x, W), np.einsum("bi,io->bo", x, W)
    )


def test_named_mode_has_no_cap_of_52_indices(rng):
    names = [f"n{i}" for i in range(60)]
    x = rng.normal(size=(1,) * 60)
    out = ea.einsum(" ".join(names) + " -> " + " ".join(reversed(names)), x)
    assert out.shape == (1,) * 60


def test_named_vjp_subscripts():
    assert ea.vjp_subscripts("batch in, in out -> batch out", 0) == "batch out, in out -> batch in"


# ----------------------------------------------------------------- resolve


def test_stretched_size_one_axis_gets_its_own_symbol():
    spec = resolve(parse("ij,ij->ij"), [(1, 3), (4, 3)])
    assert spec.inputs[0][0] != spec.inputs[1][0]
    assert spec.size(spec.inputs[0][0]) == 1


def test_ellipsis_is_right_aligned():
    spec = resolve(parse("...i,...i->...i"), [(2, 1, 3), (4, 3)])
    assert len(spec.inputs[0]) == 3 and len(spec.inputs[1]) == 2
    assert spec.shape(spec.output) == (2, 4, 3)


# ----------------------------------------------------------------- errors


def _message(subscripts, *shapes, sizes=None):
    with pytest.raises(ea.EinsumError) as info:
        ea.einsum(subscripts, *[np.ones(s) for s in shapes], sizes=sizes)
    return str(info.value)


def test_error_non_letter_points_at_the_character():
    message = _message("i#,j->i", (2, 2), (2,))
    assert "'i#,j->i'" in message and "'#'" in message
    caret_line = message.splitlines()[-1]
    assert caret_line.index("^") - 4 == 1


def test_error_arrow_twice():
    assert "'->' appears more than once" in _message("ij->j->i", (2, 2))


def test_error_stray_dot():
    assert "stray '.'" in _message("i.j->i", (2, 2))


def test_error_wrong_number_of_operands():
    message = _message("ij,jk->ik", (2, 2))
    assert "2 operand(s)" in message and "1 were given" in message


def test_error_rank_mismatch_names_operand():
    message = _message("ij,jk->ik", (2, 3), (3, 4, 5))
    assert "operand 1" in message and "(3, 4, 5)" in message and "'jk'" in message


def test_error_size_conflict_names_letter_and_both_operands():
    message = _message("ij,jk->ik", (2, 3), (4, 5))
    assert "'j'" in message and "operand 0" in message and "operand 1" in message
    assert "3" in message and "4" in message


def test_error_output_letter_without_size():
    message = _message("i->ij", (2,))
    assert "'j'" in message and "sizes" in message
    assert ea.einsum("i->ij", np.ones(2), sizes={"j": 3}).shape == (2, 3)


def test_error_repeated_letter_with_different_sizes():
    assert "'i'" in _message("ii->i", (2, 3))


def test_error_unknown_size_key():
    assert "'q'" in _message("i->i", (2,), sizes={"q": 3})


def test_output_ellipsis_without_input_ellipsis_is_empty_as_in_numpy():
    x = np.arange(4.0).reshape(2, 2)
    np.testing.assert_array_equal(ea.einsum("ij->...ji", x), np.einsum("ij->...ji", x))


def test_einsum_error_is_a_value_error():
    assert issubclass(ea.EinsumError, ValueError)


def test_vjp_subscripts_operand_out_of_range():
    with pytest.raises(ea.EinsumError, match="no operand 2"):
        ea.vjp_subscripts("ij,j->i", 2)


# ----------------------------------------------------------------- fuzzing: never a crash

_PIECES = st.sampled_from(list("ijkIJ.,->  1_é") + ["...", "->", "ij", "i j"])
_TEXT = st.lists(_PIECES, max_size=10).map("".join)


@given(_TEXT)
def test_parser_accepts_or_raises_einsum_error(text):
    try:
        sub = parse(text)
    except ea.EinsumError:
        return
    assert isinstance(str(sub), str)


@given(
    _TEXT,
    st.lists(st.lists(st.integers(1, 3), max_size=3).map(tuple), max_size=3),
)
def test_einsum_accepts_or_raises_einsum_error(text, shapes):
    arrays = [np.ones(s) for s in shapes]
    try:
        ea.einsum(text, *arrays)
    except ea.EinsumError:
        pass


@given(st.text(max_size=10), st.integers(-3, 3))
def test_vjp_subscripts_accepts_or_raises_einsum_error(text, k):
    try:
        result = ea.vjp_subscripts(text, k)
    except ea.EinsumError:
        return
    assert "->" in result
