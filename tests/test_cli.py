"""The command line, run as users run it: ``python -m einsumad ...`` in a subprocess.

Truths: the VJP subscripts of the swap rule as written in docs/index-algebra
(``ij,j->i`` => ``i,ij->j``), the exit-status contract (0 ok, 1 a failed check,
2 bad input with one line on stderr), and, for bad input that needs no
subprocess, the same ``main`` called in process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from einsumad.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "einsumad", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"},
    )


def _rows(stdout: str) -> dict[str, list[str]]:
    """Table rows keyed by their first column (the operand number)."""
    return {line.split()[0]: line.split() for line in stdout.splitlines() if line[:1].isdigit()}


# ------------------------------------------------------------------ vjp


def test_vjp_prints_the_swapped_subscripts_for_every_operand():
    result = run("vjp", "ij,j->i")
    assert result.returncode == 0, result.stderr
    rows = _rows(result.stdout)
    assert rows["0"][:4] == ["0", "A", "ij", "i,j->ij"]  # g b^T: the outer product
    assert rows["1"][:4] == ["1", "b", "j", "i,ij->j"]  # A^T g: the transpose
    assert " ".join(rows["0"][4:]) == "g b^T"
    assert " ".join(rows["1"][4:]) == "A^T g"
    assert "matrix form: A b" in result.stdout


def test_vjp_with_names_and_with_named_subscripts():
    result = run("vjp", "ij,jk->ik", "--names", "A,B")
    assert result.returncode == 0
    rows = _rows(result.stdout)
    assert rows["0"][3] == "ik,jk->ij" and rows["1"][3] == "ik,ij->jk"
    assert " ".join(rows["0"][4:]) == "G B^T"
    result = run("vjp", "batch in, in out -> batch out")
    assert result.returncode == 0
    assert "batch out, in out -> batch in" in result.stdout
    assert "batch out, batch in -> in out" in result.stdout


def test_vjp_of_a_term_without_matrix_form(capsys):
    assert main(["vjp", "ijji,kji,jj->kj"]) == 0
    out = capsys.readouterr().out
    assert "kj,kji,jj->ijji" in out  # the table in docs/index-algebra.md
    assert "(none)" in out


# ------------------------------------------------------------------ check


def test_check_passes_on_a_matrix_product():
    result = run("check", "ij,jk->ik", "--shapes", "3x4,4x5")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(result.stdout)
    assert rows["0"][3:6] == ["3x4", "ok", "ok"] and rows["1"][3:6] == ["4x5", "ok", "ok"]
    assert "all derivatives agree" in result.stdout


def test_check_fails_with_status_1_on_a_wrong_vjp():
    result = run("check", "ij,j->i", "--shapes", "3x4,4", "--wrong-vjp", "0")
    assert result.returncode == 1
    rows = _rows(result.stdout)
    assert rows["0"][4:6] == ["FAIL", "ok"] and rows["1"][4:6] == ["ok", "ok"]
    assert "reverse mode ('rev') disagrees" in result.stdout
    assert "worst element A[" in result.stdout and "2 times" in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "ii->", "--shapes", "3x3", "--order", "2"],
        ["check", "i->ij", "--shapes", "3", "--sizes", "j=2", "--dtype", "float32"],
        ["check", "i,->i", "--shapes", "3,()", "--seed", "7"],
        ["check", "...ij,...jk", "--shapes", "2x1x2x3,4x3x2"],
    ],
)
def test_check_options(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "all derivatives agree" in out


# ------------------------------------------------------------------ bad input


def test_bad_input_exits_2_with_one_line_on_stderr():
    result = run("check", "ij,jk->ik", "--shapes", "3x4,5x5")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("einsumad: error: einsum 'ij,jk->ik': index 'j' has size 4")
    result = run("vjp", "ij,j?->i")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("einsumad: error: einsum 'ij,j?->i': '?' is not a letter")


@pytest.mark.parametrize(
    "argv, says",
    [
        (["vjp", "ij,,j->->i"], "'->' appears more than once"),
        (["vjp", "ij,j->i", "--names", "W"], "give 2 comma-separated name(s)"),
        (["check", "ij,jk->ik", "--shapes", "3x4"], "gives 1 shape(s) but 'ij,jk->ik' has 2"),
        (["check", "ij,jk->ik", "--shapes", "3x4,4xa"], "'4xa' is not a shape"),
        (["check", "ij", "--shapes", "3"], "has 2 indices but the operand has 1 dimensions"),
        (["check", "i->ij", "--shapes", "3"], "pass --sizes j=N"),
        (["check", "i->ij", "--shapes", "3", "--sizes", "j:2"], "is not index=size"),
        (["check", "ij,j->i", "--shapes", "3x4,4", "--wrong-vjp", "5"], "there is no operand 5"),
        (["check", "ij"], "required: --shapes"),
        (["check", "ij", "--shapes", "3x3", "--dtype", "int8"], "invalid choice: 'int8'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "required"),
    ],
)
def test_bad_input_in_process(argv, says, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("einsumad: error: ") and says in lines[0]


# ------------------------------------------------------------------ help


@pytest.mark.parametrize("command", [[], ["vjp"], ["check"]])
def test_help_explains_each_command(command):
    result = run(*command, "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: python -m einsumad")
    if command:
        assert "examples:" in result.stdout and f"python -m einsumad {command[0]} " in result.stdout
    else:
        assert "vjp" in result.stdout and "check" in result.stdout
