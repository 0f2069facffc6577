"""derive: the two-layer network's derivation, checked in every rendering and numerically."""

from __future__ import annotations

import builtins
import re

import numpy as np
import pytest

import einsumad as ea
from einsumad.tools import derive as _derive
from tests.numeric import numerical_gradient


def two_layer(W1, b1, W2, b2, x, y):
    z1 = W1 @ x + b1
    a1 = ea.tanh(z1)
    z2 = W2 @ a1 + b2
    a2 = ea.tanh(z2)
    return 0.5 * ea.sum((a2 - y) ** 2)


ARG_NAMES = ["W1", "b1", "W2", "b2", "x", "y"]


@pytest.fixture
def args(rng):
    shapes = [(4, 3), (4,), (2, 4), (2,), (3,), (2,)]
    return [rng.normal(size=s) for s in shapes]


@pytest.fixture
def d(args):
    return ea.derive(two_layer, *args)


def _step(d, name, kind="backward", op=None):
    found = [s for s in d.steps if s.kind == kind and s.name == name and (op is None or s.op == op)]
    assert found, f"no {kind} step {name}"
    return found[-1]


def test_the_delta_rule_in_matrix_and_index_form(d) -> None:
    text = str(d)
    assert "delta1 = (W2^T delta2) ⊙ tanh'(z1)" in text
    assert "delta1_j = sum_i W2_ij delta2_i tanh'(z1_j)" in text
    assert "transpose from the swap ij,j->i => i,ij->j" in text
    delta = _step(d, "delta1", kind="delta")
    assert delta.matrix_form == "(W2^T delta2) ⊙ tanh'(z1)"
    assert delta.vjp_subscripts == "i,ij,j->j"


def test_backward_steps_carry_subscripts_operands_and_forms(d) -> None:
    da1 = _step(d, "da1", op="einsum")
    assert (da1.subscripts, da1.vjp_subscripts) == ("ij,j->i", "i,ij->j")
    assert da1.operands == ("delta2", "W2")
    assert da1.matrix_form == "W2^T delta2"
    assert da1.index_form == "da1_j = sum_i W2_ij delta2_i"
    dW2 = _step(d, "dW2")
    assert (dW2.vjp_subscripts, dW2.matrix_form) == ("i,j->ij", "delta2 a1^T")
    tanh_step = _step(d, "delta1", op="tanh")
    assert tanh_step.matrix_form == "da1 ⊙ tanh'(z1)"
    assert tanh_step.vjp_subscripts == "i,i->i"
    assert [s.text for s in d.forward][:3] == ["v1 = W1 x", "z1 = v1 + b1", "a1 = tanh(z1)"]


def test_gradients_agree_with_grad_and_finite_differences(d, args) -> None:
    grads = ea.grad(two_layer, argnums=tuple(range(6)))(*args)
    for name, g in zip(ARG_NAMES, grads):
        np.testing.assert_allclose(d.gradients[name], g, rtol=1e-12, atol=1e-12)
        fd = numerical_gradient(two_layer, args, ARG_NAMES.index(name))
        np.testing.assert_allclose(d.gradients[name], fd, rtol=1e-6, atol=1e-8)
    # the values recorded on the steps are the gradients themselves
    np.testing.assert_allclose(_step(d, "dW1").value, grads[0])
    np.testing.assert_allclose(_step(d, "dx").value, grads[4])
    # delta1 is the gradient with respect to the pre-activation z1
    W1, b1, W2, b2, x, y = args
    z1 = W1 @ x + b1
    fd_z1 = numerical_gradient(
        lambda z: 0.5 * np.sum((np.tanh(W2 @ np.tanh(z) + b2) - y) ** 2), [z1], 0
    )
    np.testing.assert_allclose(_step(d, "delta1", kind="delta").value, fd_z1, rtol=1e-6, atol=1e-8)


def test_latex_has_the_pieces_and_balanced_braces(d) -> None:
    tex = d.latex
    assert "W_{2}^\\top \\delta_{2}" in tex
    assert "\\odot \\tanh'(z_{1})" in tex
    assert "\\sum_{i} W_{2,ij} \\delta_{2,i} \\tanh'(z_{1,j})" in tex
    assert tex.startswith("\\begin{aligned}") and tex.endswith("\\end{aligned}")
    depth = 0
    for ch in tex.replace("\\{", "").replace("\\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert tex.count("\\left(") == tex.count("\\right)")
    assert d._repr_latex_() == "$$" + tex + "$$"


def test_jacobian_view_shapes_counts_and_agreement(d) -> None:
    view = d.jacobian_view()
    rows = {r.label: r for r in view.rows}
    tanh1 = rows["∂a1/∂z1"]
    assert tanh1.matrix_form == "Diag(tanh'(z1))"
    assert (tanh1.shape, tanh1.size, tanh1.vjp_size) == ((4, 4), 16, 4)
    lin = rows["∂v2/∂a1"]
    assert (lin.matrix_form, lin.shape, lin.size) == ("W2", (2, 4), 8)
    weight = rows["∂v2/∂W2"]
    assert (weight.matrix_form, weight.shape, weight.size, weight.vjp_size) == (None, (2, 2, 4), 16, 4)
    assert weight.subscripts == "j->iij"
    for r in view.rows:
        assert r.error < 1e-12
        assert r.size == int(np.prod(r.shape))
    # the Jacobians agree with an explicit formula
    z1 = _step(d, "z1", kind="forward").value
    np.testing.assert_allclose(tanh1.value, np.diag(1 - np.tanh(z1) ** 2), atol=1e-12)
    assert "Diag(tanh'(z1))" in str(view) and "16 elements" in str(view)


def test_to_dot_is_dot_with_subscripts(d) -> None:
    dot = d.to_dot()
    assert dot.startswith("digraph derivation {") and dot.rstrip().endswith("}")
    assert "ij,j->i" in dot and "VJP i,ij->j" in dot
    assert re.search(r"n\d+ -> n\d+ \[label=", dot)
    assert dot.count("[") == dot.count("]")
    assert all(line.count('"') % 2 == 0 for line in dot.splitlines())


def test_to_svg_without_graphviz_says_how_to_install(d, monkeypatch) -> None:
    real_import = builtins.__import__

    def no_graphviz(name, *a, **k):
        if name == "graphviz":
            raise ImportError("no graphviz")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_graphviz)
    monkeypatch.setattr(_derive.shutil, "which", lambda _: None)
    with pytest.raises(RuntimeError, match=r"pip install einsumad\[graph\]"):
        d.to_svg()


def test_names_helper_and_accumulation(rng) -> None:
    """A value used twice accumulates (+=); ea.name and names= set the labels."""

    def f(A, u):
        h = ea.name(ea.tanh(A @ u), "h", cotangent="g_h")
        return ea.sum(h * h) + ea.sum(h)

    A, u = rng.normal(size=(2, 3)), rng.normal(size=3)
    d = ea.derive(f, A, u, names=["M", "v"])
    assert _step(d, "h", kind="forward").text == "h = tanh(v1)"
    contributions = [s for s in d.backward if s.name == "g_h"]
    assert [s.accumulate for s in contributions] == [False, True, True]
    assert "g_h += " in str(d)
    np.testing.assert_allclose(d.gradients["v"], ea.grad(f, argnums=1)(A, u), rtol=1e-12)
    np.testing.assert_allclose(d.gradients["M"], ea.grad(f)(A, u), rtol=1e-12)


def test_scalar_output_required(rng) -> None:
    with pytest.raises(TypeError, match="scalar"):
        ea.derive(lambda x: ea.tanh(x), rng.normal(size=3))
