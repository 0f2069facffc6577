"""The command line's contract for bad input (issue 10, item 11): exit status 2 and
one line on stderr, ``einsumad: error: ...``, for every input it cannot run on, and
no traceback; and large operand counts (23 and more) run.

Truth: the contract itself (status and the shape of stderr), and for valid input
NumPy's own view of it (``numpy.einsum`` accepts the subscripts and shapes).
"""

from __future__ import annotations

import numpy as np
import pytest

from einsumad.tools.cli import main


def _one_line_error(capsys: pytest.CaptureFixture, says: str) -> None:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("einsumad: error: ") and says in lines[0], lines[0]


@pytest.mark.parametrize(
    "argv, says",
    [
        (["check", "ij,jk->ik", "--shapes", "2x3,3x4", "--seed", "-1"], "invalid seed -1"),
        (["check", "ij,jk->ik", "--shapes", "2x3,3x4", "--seed", "1.5"], "invalid seed '1.5'"),
        (["check", "ij->ji", "--shapes", "100000x100000"], "too large to check"),
        (["check", "i->i", "--shapes", "99999999999999999999999999"], "too large to check"),
        (["check", "ab,bc,cd,da->", "--shapes", "2000x2000,2000x2000,2000x2000,2000x2000"],
         "too large to check"),
        (["check", "i->ij", "--shapes", "3", "--sizes", "j=100000000000"], "too large to check"),
        (["check", "...ij,...jk->ik", "--shapes", "2x2x3,3x4"], "under '...'"),
        (["check", "i->iz", "--shapes", "3", "--sizes", "q=2"], "sizes names 'q'"),
        (["check", "ij,jk->ik", "--shapes", "2x3,3x4", "--order", "3"], "invalid choice"),
        (["check", "ij,jk->ik", "--shapes", "2x3,3x4", "--names", "A,1B"], "--names"),
        (["vjp", "ij,jk->ik", "--names", "A,B,C"], "--names"),
        (["vjp", "ä"], "is not a letter"),
    ],
)
def test_every_bad_input_exits_2_with_one_line(argv, says, capsys):
    assert main(argv) == 2
    _one_line_error(capsys, says)


@pytest.mark.parametrize("count", [23, 30])
def test_vjp_and_check_with_many_operands(count, capsys):
    subscripts = ",".join("a" * count) + "->"
    shapes = ",".join(["2"] * count)
    np.einsum(subscripts, *[np.ones(2)] * count)  # NumPy accepts it
    assert main(["vjp", subscripts]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == count + 2  # the heading, the column names, one row per operand
    assert main(["check", subscripts, "--shapes", shapes]) == 0
    assert "all derivatives agree" in capsys.readouterr().out


def test_subscripts_starting_with_an_arrow_are_the_positional_argument(capsys):
    assert main(["vjp", "->"]) == 0
    assert "VJP subscripts" in capsys.readouterr().out
    assert main(["check", "->", "--shapes", "()"]) == 0


def test_forty_dimensions_are_checked(capsys):
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
    assert main(["check", letters, "--shapes", "x".join(["1"] * 40)]) == 0
    assert "all derivatives agree" in capsys.readouterr().out


def test_a_numpy_failure_is_one_line_that_names_it(capsys, monkeypatch):
    import einsumad.tools.cli as cli

    def refuse(*args, **kwargs):
        raise RuntimeError("this function only supports up to 32 dimensions\nsecond line")

    monkeypatch.setattr(cli, "_check_grads", refuse)
    assert main(["check", "ij,jk->ik", "--shapes", "2x3,3x2"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert "RuntimeError: this function only supports up to 32 dimensions" in captured.err
