"""derive's textbook view: BP1-BP4 folded by the index algebra, with the user's own names.

Every folded line is checked against an independent truth: the line's index
polynomial is evaluated here with plain NumPy (values recomputed by hand,
``σ'`` and ``tanh'`` by their closed forms) and compared with central finite
differences of the loss.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

import einsumad as ea
from tests.numeric import numerical_gradient, poly_value


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


DERIVATIVES = {
    "σ'({0})": lambda z: sigmoid(z) * (1 - sigmoid(z)),
    "tanh'({0})": lambda z: 1 - np.tanh(z) ** 2,
}


def evaluate(poly, env: dict, sizes: dict | None = None) -> np.ndarray:
    """The value of a textbook line's polynomial (``σ'`` and ``tanh'`` by their closed forms)."""
    return poly_value(poly, lambda f: env[f.name] if f.fn is None else DERIVATIVES[f.fn](env[f.name]), sizes)


# ------------------------------------------------------------------ Nielsen's three-layer network


def nielsen(W2, b2, W3, b3, x, y):
    a1 = x
    z2 = W2 @ a1 + b2
    a2 = ea.sigmoid(z2)
    z3 = W3 @ a2 + b3
    a3 = ea.sigmoid(z3)
    return 0.5 * ea.sum((a3 - y) ** 2)


@pytest.fixture
def net(rng):
    W2, b2 = rng.normal(size=(4, 3)), rng.normal(size=4)
    W3, b3 = rng.normal(size=(2, 4)), rng.normal(size=2)
    x, y = rng.normal(size=3), rng.normal(size=2)
    return [W2, b2, W3, b3, x, y]


@pytest.fixture
def d(net):
    return ea.derive(nielsen, *net, wrt=["W2", "b2", "W3", "b3"])


def test_the_four_equations_of_backprop(d) -> None:
    lines = {ln.name: ln for ln in d.textbook if ln.kind == "backward"}
    assert [ln.label for ln in d.textbook if ln.kind == "backward"] == ["BP1", "BP3", "BP4", "BP2", "BP3", "BP4"]
    assert lines["delta3"].text == "delta3 = (a3 - y) ⊙ σ'(z3)"  # BP1, folded from four VJPs
    assert lines["delta3"].index == "delta3_i = (a3_i - y_i) σ'(z3_i)"
    assert lines["delta2"].text == "delta2 = (W3^T delta3) ⊙ σ'(z2)"  # BP2
    assert lines["delta2"].index == "delta2_j = sum_i W3_ij delta3_i σ'(z2_j)"
    assert lines["db3"].text == "db3 = delta3"  # BP3
    assert lines["dW2"].text == "dW2 = delta2 x^T"  # BP4
    assert lines["dW2"].index == "dW2_jk = delta2_j x_k"
    assert "W3^T: the swap ij,j->i => i,ij->j sums W3 over its first index, i" in lines["delta2"].note


def test_bp1_is_one_line_and_each_delta_is_defined_once(d) -> None:
    text = str(d)
    assert text.count("delta3 =") == 1 and text.count("delta2 =") == 1
    assert ",-> =>" not in text and "swap ,->" not in text
    assert "BP1  delta3 = (a3 - y) ⊙ σ'(z3)" in text


def test_the_forward_pass_reads_as_the_model(d) -> None:
    forward = [ln.text for ln in d.textbook if ln.kind == "forward"]
    assert forward == [
        "z2 = W2 x + b2", "a2 = σ(z2)", "z3 = W3 a2 + b3", "a3 = σ(z3)", "L = 0.5 (a3 - y)^T (a3 - y)",
    ]


def test_every_line_agrees_with_finite_differences(d, net) -> None:
    W2, b2, W3, b3, x, y = net
    z2 = W2 @ x + b2
    a2 = sigmoid(z2)
    z3 = W3 @ a2 + b3
    a3 = sigmoid(z3)
    loss = lambda z2_, z3_: 0.5 * np.sum((sigmoid(z3_) - y) ** 2)  # noqa: E731
    delta3 = numerical_gradient(lambda z: 0.5 * np.sum((sigmoid(z) - y) ** 2), [z3], 0)
    delta2 = numerical_gradient(lambda z: 0.5 * np.sum((sigmoid(W3 @ sigmoid(z) + b3) - y) ** 2), [z2], 0)
    env = dict(W2=W2, b2=b2, W3=W3, b3=b3, x=x, y=y, z2=z2, a2=a2, z3=z3, a3=a3, delta3=delta3, delta2=delta2)
    truths = {
        "delta3": delta3, "delta2": delta2,
        **{f"d{n}": numerical_gradient(nielsen_np, net, k) for k, n in enumerate(["W2", "b2", "W3", "b3"])},
    }
    assert loss(z2, z3) == pytest.approx(float(d.value))
    for ln in d.textbook:
        if ln.kind == "backward":
            np.testing.assert_allclose(evaluate(ln.poly, env), truths[ln.name], rtol=1e-6, atol=1e-8)
            assert ln.verified is True


def nielsen_np(W2, b2, W3, b3, x, y):
    return 0.5 * np.sum((sigmoid(W3 @ sigmoid(W2 @ x + b2) + b3) - y) ** 2)


def test_the_user_names_and_no_internal_symbol(d) -> None:
    text = str(d)
    assert "v1" not in text and "v2" not in text and "c1" not in text
    assert not re.search(r"[^\x00-\x7f⊙σ'^]", text.replace("σ", "")), "an internal symbol leaked"
    assert "dx" not in text and "dy" not in text  # data are not differentiated


# ------------------------------------------------------------------ cross-entropy folds to a - y


def softmax_ce(W2, b2, W3, b3, x, y):
    z2 = W2 @ x + b2
    a2 = ea.sigmoid(z2)
    z3 = W3 @ a2 + b3
    a3 = ea.softmax(z3)
    return -ea.sum(y * ea.log(a3))


def test_softmax_with_cross_entropy_folds_to_a_minus_y(net) -> None:
    W2, b2, W3, b3, x, _ = net
    y = np.array([0.0, 1.0])
    d = ea.derive(softmax_ce, W2, b2, W3, b3, x, y, wrt=[0, 1, 2, 3])
    bp1 = d.line("delta3")
    assert (bp1.label, bp1.text, bp1.index) == ("BP1", "delta3 = a3 - y", "delta3_i = a3_i - y_i")
    assert "using sum_i y_i = 1 (checked on the data)" in bp1.note
    z3 = W3 @ sigmoid(W2 @ x + b2) + b3
    fd = numerical_gradient(lambda z: -np.sum(y * np.log(np.exp(z) / np.exp(z).sum())), [z3], 0)
    a3 = np.exp(z3) / np.exp(z3).sum()
    np.testing.assert_allclose(evaluate(bp1.poly, {"a3": a3, "y": y}), fd, rtol=1e-6, atol=1e-9)
    assert "not an einsum" not in str(d) and "the delta rule" not in str(d)


def test_the_fact_is_only_used_where_the_data_make_it_true(net) -> None:
    """Targets that do not sum to 1: no fold to a - y, the honest (1^T y) a - y instead."""
    W2, b2, W3, b3, x, _ = net
    y = np.array([0.5, 1.0])
    d = ea.derive(softmax_ce, W2, b2, W3, b3, x, y, wrt=[0, 1, 2, 3])
    bp1 = d.line("delta3")
    assert bp1.index == "delta3_i = sum_l y_l a3_i - y_i"
    assert "using" not in bp1.note and bp1.verified


def test_sigmoid_with_cross_entropy_folds_to_a_minus_y(net) -> None:
    """Nielsen's chapter 3: the σ' of the output layer cancels, by polynomial division."""
    W2, b2, W3, b3, x, _ = net
    y = np.array([0.0, 1.0])

    def loss(W2, b2, W3, b3, x, y):
        a2 = ea.sigmoid(W2 @ x + b2)
        a3 = ea.sigmoid(W3 @ a2 + b3)
        return -ea.sum(y * ea.log(a3) + (1 - y) * ea.log(1 - a3))

    d = ea.derive(loss, W2, b2, W3, b3, x, y, wrt=[0, 1, 2, 3])
    assert d.line("delta3").text == "delta3 = a3 - y"
    assert d.line("delta2").text == "delta2 = (W3^T delta3) ⊙ σ'(z2)"
    assert all(ln.verified for ln in d.textbook if ln.kind == "backward")


# ------------------------------------------------------------------ mini-batches and named indices


def batch_net(W1, b1, W2, b2, X, Y):
    z1 = ea.einsum("batch in, in hid -> batch hid", X, W1) + b1
    a1 = ea.tanh(z1)
    z2 = ea.einsum("batch hid, hid out -> batch out", a1, W2) + b2
    a2 = ea.softmax(z2, axis=-1)
    return -ea.mean(ea.sum(Y * ea.log(a2), axis=1))


@pytest.fixture
def batch(rng):
    B = 8
    X, Y = rng.normal(size=(B, 3)), np.eye(2)[rng.integers(0, 2, size=B)]
    return [rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(4, 2)), rng.normal(size=2), X, Y]


def test_a_mini_batch_with_named_indices(batch) -> None:
    d = ea.derive(batch_net, *batch, wrt=["W1", "b1", "W2", "b2"])
    assert d.line("delta2").text == "delta2 = (a2 - Y) / 8"  # divided by the batch size (a mean)
    assert d.line("delta2").index == "delta2[batch,out] = (a2[batch,out] - Y[batch,out]) / 8"
    assert d.line("db2").index == "db2[out] = sum_batch delta2[batch,out]"  # BP3 sums over the batch
    assert d.line("dW2").index == "dW2[hid,out] = sum_batch a1[batch,hid] delta2[batch,out]"  # BP4 too
    assert d.line("delta1").text == "delta1 = (delta2 W2^T) ⊙ tanh'(z1)"
    assert [d.line(n).label for n in ("delta2", "db2", "dW2", "delta1", "db1", "dW1")] == [
        "BP1", "BP3", "BP4", "BP2", "BP3", "BP4"]
    assert "the sum over batch undoes the broadcast of b2 along it" in d.line("db2").note
    assert d.line("z1").index == "z1[batch,hid] = sum_in X[batch,in] W1[in,hid] + b1[hid]"
    W1, b1, W2, b2, X, Y = batch
    z1 = X @ W1 + b1
    a1 = np.tanh(z1)
    z2 = a1 @ W2 + b2
    a2 = np.exp(z2) / np.exp(z2).sum(axis=1, keepdims=True)

    def loss(W1, b1, W2, b2):
        h = np.tanh(X @ W1 + b1) @ W2 + b2
        p = np.exp(h) / np.exp(h).sum(axis=1, keepdims=True)
        return -np.mean(np.sum(Y * np.log(p), axis=1))

    delta2 = numerical_gradient(lambda z: -np.mean(np.sum(Y * np.log(np.exp(z) / np.exp(z).sum(1, keepdims=True)), 1)), [z2], 0)
    env = {"X": X, "Y": Y, "W1": W1, "W2": W2, "a1": a1, "a2": a2, "z1": z1, "delta2": delta2}
    for n, k in (("dW2", 2), ("db2", 3), ("delta2", None)):
        truth = delta2 if k is None else numerical_gradient(loss, [W1, b1, W2, b2], k)
        np.testing.assert_allclose(evaluate(d.line(n).poly, env, {"batch": 8}), truth, rtol=1e-6, atol=1e-9)


def test_derive_under_a_profiler_keeps_the_profiler(net) -> None:
    """derive reads the function's local names through the profiling hook; a profiler
    that holds the hook keeps it (this raised "'Profile' object is not callable")."""
    import cProfile
    import sys

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        d = ea.derive(nielsen, *net, wrt=["W2", "b2", "W3", "b3"])
        held = sys.getprofile()
    finally:
        profiler.disable()
    assert held is profiler
    assert [ln.label for ln in d.textbook if ln.label] == ["BP1", "BP3", "BP4", "BP2", "BP3", "BP4"]


def test_the_users_letters_are_kept(rng) -> None:
    """``einsum("jk,bk->bj")`` is written with j, k and b (was: ``[ij,kj->ki]``)."""
    X = rng.normal(size=(5, 3))

    def f(W):
        z = ea.einsum("jk,bk->bj", W, X)
        return ea.sum(ea.tanh(z))

    d = ea.derive(f, rng.normal(size=(2, 3)))
    assert d.line("dW").index == "dW_jk = sum_b delta_bj X_bk"
    assert d.line("z").index == "z_bj = sum_k X_bk W_jk"  # as the matrix form reads: X W^T
    assert d.steps[0].subscripts == "jk,bk->bj"


# ------------------------------------------------------------------ merging, conventions, notation


def test_all_contributions_to_one_cotangent_are_merged(rng) -> None:
    A, x = rng.normal(size=(3, 3)), rng.normal(size=3)
    d = ea.derive(lambda A, x: ea.einsum("i,ij,j->", x, A, x), A, x)
    assert d.line("dx").text == "dx = (A + A^T) x"
    assert d.line("dx").index == "dx_i = sum_j (A_ij + A_ji) x_j"
    assert "2 contributions merged" in d.line("dx").note
    np.testing.assert_allclose(evaluate(d.line("dx").poly, {"A": A, "x": x}), (A + A.T) @ x, rtol=1e-12)
    assert d.line("dA").text == "dA = x x^T"


def test_row_convention_is_kept_for_row_vectors(rng) -> None:
    """``x @ W1`` with a 1-D x reads ``x W1`` (was rewritten as ``W1^T c1``)."""
    W1, x = rng.normal(size=(3, 4)), rng.normal(size=3)

    def f(W1, x):
        z1 = x @ W1
        return ea.sum(ea.tanh(z1))

    d = ea.derive(f, W1, x, wrt="W1")
    assert d.line("z1").text == "z1 = x W1"
    assert d.line("dW1").text == "dW1 = x^T delta1"  # a column times a row: the outer product
    column = ea.derive(f, W1, x, wrt="W1", convention="column")
    assert column.line("z1").text == "z1 = W1^T x"
    assert column.line("dW1").text == "dW1 = x delta1^T"


def test_notation_options(d, net) -> None:
    sup = ea.derive(nielsen, *net, wrt=["W2", "b2", "W3", "b3"], layers="superscript")
    assert sup.line("delta2").text == "δ² = (W³^T δ³) ⊙ σ'(z²)"
    assert "W^{3}_{ij}" in sup.latex
    tanh_net = lambda W, x: ea.sum(ea.tanh(W @ x))  # noqa: E731
    W, x = net[0], net[4]
    assert "σ'(z1)" in str(ea.derive(tanh_net, W, x, wrt="W", sigma="activations"))
    assert "tanh'(z1)" in str(ea.derive(tanh_net, W, x, wrt="W"))
    assert "sigmoid'(z3)" in str(ea.derive(nielsen, *net, wrt=[0, 1, 2, 3], sigma="none"))
    for bad in (dict(sigma="greek"), dict(layers="up"), dict(convention="diagonal")):
        with pytest.raises(ValueError):
            ea.derive(nielsen, *net, **bad)


# ------------------------------------------------------------------ LaTeX


def test_latex_layout_sigma_italic_names_and_subscripts(d) -> None:
    tex = d.latex
    assert tex.startswith("\\begin{alignedat}{3}") and tex.endswith("\\end{alignedat}")
    rows = [r for r in tex.splitlines()[1:-1]]
    assert all(r.count("&") == 5 for r in rows), rows  # matrix, index and note in their columns
    bp1 = next(r for r in rows if "BP1" in r)
    assert "\\delta_{3} &= \\left(a_{3} - y\\right) \\odot \\sigma'(z_{3})" in bp1
    assert "\\delta_{3,i} = \\left(a_{3,i} - y_{i}\\right) \\, \\sigma'(z_{3,i})" in bp1
    bp2 = next(r for r in rows if "BP2" in r)
    assert "W_{3,ij}" in bp2 and "$W_{3}^\\top$: the swap" in bp2  # the note, in its column
    assert "\\mathrm{w" not in tex and "\\mathrm{W" not in tex  # variable names are italic
    assert "\\mathrm{divide" not in tex and "\\sigma" in tex
    index_only = next(r for r in ea.derive(softmax_ce, *d_args_softmax(), wrt=[0, 1, 2, 3]).latex.splitlines()
                      if "\\exp" in r)
    assert index_only.startswith(" &") or index_only.startswith("&"), index_only  # not in the matrix column
    depth = 0
    for ch in tex.replace("\\{", "").replace("\\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0 and tex.count("\\left(") == tex.count("\\right)")
    assert d._repr_latex_() == "$$" + tex + "$$"


def d_args_softmax():
    rng = np.random.default_rng(1)
    return [rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(2, 4)), rng.normal(size=2),
            rng.normal(size=3), np.array([0.0, 1.0])]


def _latex_program() -> str | None:
    return shutil.which("pdflatex") or shutil.which("latex")


@pytest.mark.skipif(_latex_program() is None, reason="no LaTeX on the PATH (apt install texlive-latex-base)")
@pytest.mark.parametrize("layers", ["subscript", "superscript"])
def test_the_latex_compiles(d, net, tmp_path, layers) -> None:
    derivation = ea.derive(nielsen, *net, wrt=[0, 1, 2, 3], layers=layers)
    batch = ea.derive(batch_net, *_batch_args(), wrt=[0, 1, 2, 3])
    for n, doc in enumerate([derivation.latex_document(), batch.latex_document(),
                             "\\documentclass{article}\\usepackage{amsmath}\\begin{document}\\[" +
                             derivation.steps_latex() + "\\]\\end{document}"]):
        source = tmp_path / f"d{n}.tex"
        source.write_text(doc, encoding="utf-8")
        done = subprocess.run([_latex_program(), "-interaction=nonstopmode", "-halt-on-error", source.name],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:]


def _batch_args():
    rng = np.random.default_rng(2)
    B = 4
    return [rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(4, 2)), rng.normal(size=2),
            rng.normal(size=(B, 3)), np.eye(2)[rng.integers(0, 2, size=B)]]


def test_a_coefficient_is_never_glued_to_a_subscript(rng) -> None:
    """``\\mathrm{dv}_{4,i} 2 v_{3,i}`` read as a subscript 2: numbers now lead their term."""
    y = rng.normal(size=3)
    d = ea.derive(lambda a: ea.sum((ea.tanh(a) - y) ** 2), rng.normal(size=3))
    tex = d.latex
    assert "2 \\left(a_{1,i} - y_{i}\\right)" in tex or "2 \\left(" in tex
    assert not re.search(r"_\{[^{}]*\} 2 ", tex)
    steps = d.steps_latex()
    assert not re.search(r"_\{[^{}]*\} 2 ", steps) and "\\mathrm{divide" not in steps


def test_the_api_reference_documents_the_views() -> None:
    from pathlib import Path

    api = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    for name in ("einsumad.tools.derive.Step", "einsumad.tools.derive.Line",
                 "einsumad.tools.derive.JacobianRow", "einsumad.tools.derive.JacobianView",
                 "einsumad.algebra.matrix.matrix_form_details"):
        assert f"::: {name}" in api
    assert ea.Derivation.backward.__doc__ and ea.Derivation.textbook.__doc__
    assert "Derivation:" in ea.derive.__doc__.split("Returns:")[1].split("\n")[1]


_X = np.random.default_rng(5).normal(size=(3, 2)) + 2.0
_A = np.random.default_rng(6).normal(size=(3, 3))
_V = np.random.default_rng(7).normal(size=3)
_T = np.random.default_rng(8).normal(size=(2, 3, 4))
_M = np.random.default_rng(9).normal(size=(4, 5))
PROGRAMS = {
    "every kind": (lambda x: ea.sum(ea.sqrt((ea.abs(x) + ea.maximum(x, 1.0) + ea.divide(x, 2.0) + ea.exp(-x)
                                             + ea.log(x)) ** 2 + 1.0)) + ea.sum(ea.max(x, axis=0)), (_X,)),
    "where": (lambda x: ea.sum(ea.where(x > 2.5, x * x, 0.0 * x)), (_X,)),
    "reshape": (lambda x: ea.sum(ea.reshape(x, (2, 3)).T @ np.ones((2, 1)) ** 2), (_X,)),
    "getitem": (lambda x: ea.sum(x[0] * x[1]), (_X,)),
    "stack": (lambda x: ea.sum(ea.stack([x, 2 * x]) ** 2), (_X,)),
    "trace": (lambda A: ea.einsum("ii->", A @ A), (_A,)),
    "diag": (lambda A: ea.sum(ea.einsum("ii->i", A) ** 2), (_A,)),
    "ellipsis": (lambda T, M: ea.sum(ea.tanh(ea.einsum("...k,kl->...l", T, M))), (_T, _M)),
    "batched matmul": (lambda T, M: ea.sum(ea.sigmoid(T @ M)), (_T, _M)),
    "logsumexp": (lambda v: ea.logsumexp(v), (_V,)),
    "log_softmax": (lambda A, v: -ea.sum(ea.log_softmax(A @ v) * np.eye(3)[0]), (_A, _V)),
    "relu": (lambda A, v: ea.sum(ea.relu(A @ v) ** 2), (_A, _V)),
    "mean": (lambda x: ea.mean(x ** 3), (_X,)),
    "x ** x": (lambda x: ea.sum(x ** x), (_X,)),
    "reciprocal": (lambda x: ea.sum(1 / x + ea.square(x)), (_X,)),
    "scalar": (lambda s: s * s * 3.0, (np.array(2.0),)),
    "sin cos": (lambda v: ea.sum(ea.sin(v) * ea.cos(v)), (_V,)),
    "outer": (lambda v: ea.sum(ea.einsum("i,j->ij", v, v)), (_V,)),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_any_program_gets_a_textbook_view(name) -> None:
    """Every kind of op (opaque transposes included) folds without error, and every line
    the algebra can evaluate equals the backward pass's cotangent."""
    fun, args = PROGRAMS[name]
    d = ea.derive(fun, *args)
    text = str(d)
    assert text.startswith("Forward pass") and "Backward pass" in text
    d.latex, d.to_dot(), d.steps_latex(), d.render("steps")
    verdicts = [ln.verified for ln in d.textbook if ln.kind == "backward"]
    assert verdicts and False not in verdicts
    assert not re.search(r"[\x00Ā-ſ]", text)  # no internal symbol


def test_diag_and_trace_read_as_matrices() -> None:
    assert ea.derive(*_prog("diag")).line("dA").text == "dA = 2 Diag(diag(A))"
    assert ea.derive(*_prog("trace")).line("dA").text == "dA = 2 A^T"
    assert ea.derive(*_prog("sin cos")).line("dv").text == "dv = cos(v) ⊙ cos(v) - sin(v) ⊙ sin(v)"


def _prog(name):
    fun, args = PROGRAMS[name]
    return (fun, *args)
