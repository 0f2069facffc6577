"""derive: the step-by-step view, checked in every rendering and numerically.

The textbook view (the default ``str``) has its own file, tests/test_derive_textbook.py.
"""

from __future__ import annotations

import builtins
import re

import numpy as np
import pytest

import einsumad as ea
from einsumad.algebra.letters import relabel_terms
from einsumad.tools.derive import graph as _graph
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
    text = d.render("steps")
    assert "delta1 = (W2^T delta2) ⊙ tanh'(z1)    <- the delta rule" in text
    assert "delta1_j = sum_i W2_ij delta2_i tanh'(z1_j)" in text
    assert "transpose from the swap ij,j->i => i,ij->j" in text
    delta = _step(d, "delta1", kind="delta")
    assert delta.matrix_form == "(W2^T delta2) ⊙ tanh'(z1)"
    assert delta.vjp_subscripts == "i,ij,j->j"


def test_steps_is_a_view_of_its_own(args) -> None:
    d = ea.derive(two_layer, *args, view="steps")
    assert str(d) == d.render("steps") != d.render("textbook")
    assert str(d).startswith("Forward pass\n  v1 = W1 x    [ij,j->i]")
    with pytest.raises(ValueError, match="view"):
        ea.derive(two_layer, *args, view="slides")


def test_backward_steps_carry_subscripts_operands_and_forms(d) -> None:
    da1 = _step(d, "da1", op="einsum")
    assert (da1.subscripts, da1.vjp_subscripts) == ("ij,j->i", "i,ij->j")
    assert da1.operands == ("delta2", "W2")
    assert da1.matrix_form == "W2^T delta2"
    assert da1.index_form == "da1_j = sum_i W2_ij delta2_i"
    assert da1.declared == "einsum"
    dW2 = _step(d, "dW2")
    assert (dW2.vjp_subscripts, dW2.matrix_form) == ("i,j->ij", "delta2 a1^T")
    tanh_step = _step(d, "delta1", op="tanh")
    assert tanh_step.matrix_form == "da1 ⊙ tanh'(z1)"
    assert tanh_step.vjp_subscripts == "i,i->i"
    assert tanh_step.declared == "elementwise"
    assert [s.text for s in d.forward][:3] == ["v1 = W1 x", "z1 = v1 + b1", "a1 = tanh(z1)"]


def test_gradients_agree_with_grad_and_finite_differences(d, args) -> None:
    grads = ea.grad(two_layer, argnums=tuple(range(6)))(*args)
    for name, g in zip(ARG_NAMES, grads):
        np.testing.assert_allclose(d.gradients[name], g, rtol=1e-12, atol=1e-12)
        fd = numerical_gradient(two_layer, args, ARG_NAMES.index(name))
        np.testing.assert_allclose(d.gradients[name], fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(_step(d, "dW1").value, grads[0])
    W1, b1, W2, b2, x, y = args
    z1 = W1 @ x + b1
    fd_z1 = numerical_gradient(
        lambda z: 0.5 * np.sum((np.tanh(W2 @ np.tanh(z) + b2) - y) ** 2), [z1], 0
    )
    np.testing.assert_allclose(_step(d, "delta1", kind="delta").value, fd_z1, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ labels (issue 9, "correct labels")


def test_a_broadcast_is_called_a_broadcast_not_a_transpose(rng) -> None:
    """ea.sum of a matrix: its VJP broadcasts the cotangent (was: "transpose from the swap ij->")."""
    Y = rng.normal(size=(3, 2))
    d = ea.derive(lambda a: ea.sum((a - Y) ** 2), rng.normal(size=(3, 2)))
    step = next(s for s in d.backward if s.subscripts == "ij->")
    assert step.matrix_form == "dL 1 1^T"
    assert "transpose" not in step.note
    assert step.note == "einsum: broadcast over ij (the reverse of the sum): the swap ij-> => ->ij"


def test_transpose_only_where_a_matrix_operand_turns_around(d) -> None:
    assert "transpose" in _step(d, "da1", op="einsum").note  # W2^T delta2
    assert "transpose" not in _step(d, "dW2").note  # delta2 a1^T: an outer product
    notes = [s.note for s in d.backward if s.vjp_subscripts == "i,j->ij"]
    assert notes and all(n == "einsum: the swap ij,j->i => i,j->ij" for n in notes)


def test_unbroadcasting_is_a_sum_over_the_broadcast_index(rng) -> None:
    s = rng.normal(size=3)
    d = ea.derive(lambda x, s: ea.sum(x * s), rng.normal(size=(2, 3)), s)
    step = next(st for st in d.backward if st.vjp_subscripts == "ij,ij->j")
    assert step.note.startswith("einsum: sum over the broadcast index i")


def test_no_annotation_on_scalar_steps(d) -> None:
    """The ``swap ,-> => ,->`` noise is gone: a scalar step says nothing."""
    assert ",-> =>" not in d.render("steps")
    scalar = [s for s in d.backward if s.subscripts == ",->"]
    assert scalar and all(s.note == "" for s in scalar)


def test_the_delta_rule_marker_only_on_the_delta_rule(rng) -> None:
    """Softmax and cross-entropy: ``y ⊙ log(a)`` is a Hadamard product, not the delta rule."""
    y = np.eye(3)[1]

    def loss(W, x):
        a = ea.softmax(W @ x)
        return -ea.sum(y * ea.log(a))

    d = ea.derive(loss, rng.normal(size=(3, 4)), rng.normal(size=4))
    marked = [s for s in d.steps if s.kind == "delta"]
    assert marked == []
    assert "the delta rule" not in d.render("steps")
    assert "(not an einsum)" not in d.render("steps")


def test_every_op_names_the_kind_it_was_declared_with(rng) -> None:
    x = rng.normal(size=(3, 2)) + 2.0

    def f(x):
        t = ea.abs(x) + ea.maximum(x, 1.0) + ea.divide(x, 2.0) + ea.exp(-x) + ea.log(x)
        t = ea.where(x > 2.5, t, 0.0 * t) + ea.max(x, axis=0) + ea.reshape(x, (2, 3)).T
        return ea.sum(ea.sqrt(t * t + 1.0))

    d = ea.derive(f, x)
    text = d.render("steps")
    for step in d.steps:
        if step.node is not None:
            assert step.declared == step.node.prim.declaration.kind
    general = {s.op for s in d.backward if s.declared == "general"}
    assert "(not an einsum)" not in text.replace("(general kind, not an einsum)", "")
    assert general == {"max"}  # the one op of the general kind here
    assert "elementwise abs" in text and "elementwise divide" in text and "elementwise maximum" in text


# ------------------------------------------------------------------ letters: the one relabeller


def test_steps_view_writes_the_letters_codegen_writes(rng) -> None:
    """Each einsum step of the steps view reads exactly as codegen's comment for that step."""
    X, T = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))

    def loss(W, V):
        h = ea.tanh(ea.einsum("jk,bk->bj", W, X))
        z = ea.einsum("bj,mj->bm", h, V)
        return ea.sum(ea.einsum("bm,bm->b", z - T, z - T))

    W, V = rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    d = ea.derive(loss, W, V, view="steps")
    source = str(ea.codegen(ea.grad(loss, argnums=(0, 1)), W, V))
    comments = re.findall(r"#\s*(\S+)$", source, re.MULTILINE)
    mine = {s.subscripts for s in d.forward if s.subscripts and s.op == "einsum"}
    mine |= {s.vjp_subscripts for s in d.backward if s.vjp_subscripts and s.declared == "einsum"}
    assert comments, source
    for c in comments:
        assert c in mine, (c, sorted(mine))
    # and each recorded spec relabelled by the one relabeller is what the step shows
    for s in d.forward:
        if s.op == "einsum":
            spec = s.node.prim.declaration.spec(s.node.args, s.node.params)
            terms, out = relabel_terms(spec.inputs, spec.output)
            assert s.subscripts == ",".join(terms) + "->" + out
    assert "jk,bk->bj" in mine and "bj,mj->bm" in mine and "bm,bk->mk"[:0] + "bm,bj->mj" in mine


def test_a_user_primitive_is_explained_like_a_built_in(rng) -> None:
    """Declared elementwise or as an einsum, a user op reads like tanh or einsum (issue 8)."""
    cube = ea.primitive(lambda x: x ** 3, elementwise=lambda x: 3 * x ** 2)
    mm = ea.primitive(lambda a, b: a @ b, einsum="ij,jk->ik")

    def f(A, B):
        return ea.sum(cube(mm(A, B)))

    A, B = rng.normal(size=(2, 3)), rng.normal(size=(3, 2))
    d = ea.derive(f, A, B, view="steps")
    dA = next(s for s in d.backward if s.name == "dA")
    assert (dA.declared, dA.vjp_subscripts, dA.matrix_form) == ("einsum", "ik,jk->ij", "delta1 B^T")
    cube_step = next(s for s in d.backward if s.declared == "elementwise")
    assert cube_step.vjp_subscripts == "ij,ij->ij"
    np.testing.assert_allclose(d.gradients["A"], numerical_gradient(lambda A, B: np.sum((A @ B) ** 3), [A, B], 0),
                               rtol=1e-6)
    # the textbook view folds the declared derivative 3 x^2 into the line
    assert d.line("delta1").matrix == "3 z1 ⊙ z1"


# ------------------------------------------------------------------ data, constants, names


def test_wrt_differentiates_only_the_parameters(args) -> None:
    d = ea.derive(two_layer, *args, wrt=["W1", "b1", "W2", "b2"])
    assert set(d.gradients) == {"W1", "b1", "W2", "b2"}
    names = {s.name for s in d.backward}
    assert "dx" not in names and "dy" not in names
    assert "dx" not in str(d) and "dy" not in str(d)
    same = ea.derive(two_layer, *args, wrt=[0, 1, 2, 3])
    assert str(same) == str(d)
    with pytest.raises(ValueError, match="names no argument"):
        ea.derive(two_layer, *args, wrt="w1")


def test_constants_take_their_variable_names(rng) -> None:
    """Arrays from a closure or the module's globals are named as in the source (not c1, c2)."""
    M, target = rng.normal(size=(2, 3)), rng.normal(size=2)

    def make():
        def loss(v):
            return ea.sum((ea.einsum("ij,j->i", M, v) - target) ** 2)

        return loss

    d = ea.derive(make(), rng.normal(size=3))
    text = d.render("steps") + str(d)
    assert "c1" not in text and "c2" not in text
    assert "M v" in text and "- target" in text
    assert d.line("dv").matrix == "2 M^T (M v - target)"


def test_names_helper_and_accumulation(rng) -> None:
    """A value used twice accumulates (+=); ea.name and names= set the labels."""

    def f(A, u):
        h = ea.name(ea.tanh(A @ u), "h", cotangent="g_h")
        return ea.sum(h * h) + ea.sum(h)

    A, u = rng.normal(size=(2, 3)), rng.normal(size=3)
    d = ea.derive(f, A, u, names=["M", "v"])
    assert _step(d, "h", kind="forward").text == "h = tanh(z1)"  # the layer's pre-activation
    contributions = [s for s in d.backward if s.name == "g_h"]
    assert [s.accumulate for s in contributions] == [False, True, True]
    assert "g_h += " in d.render("steps")
    np.testing.assert_allclose(d.gradients["v"], ea.grad(f, argnums=1)(A, u), rtol=1e-12)
    np.testing.assert_allclose(d.gradients["M"], ea.grad(f)(A, u), rtol=1e-12)


def test_scalar_output_required(rng) -> None:
    with pytest.raises(TypeError, match="scalar"):
        ea.derive(lambda x: ea.tanh(x), rng.normal(size=3))


# ------------------------------------------------------------------ graphs


def test_to_dot_draws_the_backward_pass_and_constants(rng) -> None:
    X = rng.normal(size=(4, 3))
    d = ea.derive(lambda W: ea.sum(ea.tanh(ea.einsum("jk,bk->bj", W, X))), rng.normal(size=(2, 3)))
    dot = d.to_dot()
    assert dot.startswith("digraph derivation {") and dot.rstrip().endswith("}")
    assert "cluster_forward" in dot and "cluster_backward" in dot
    assert re.search(r'c\d+ \[label="X\\n\(4, 3\)\\n\(constant\)"', dot)  # the constant is a node
    assert re.search(r'g\d+ -> g\d+ \[label="VJP bj,bk->jk', dot)  # a cotangent's einsum on its edge
    assert 'label="dW\\n(2, 3)"' in dot
    assert dot.count("[") == dot.count("]")
    assert all(line.count('"') % 2 == 0 for line in dot.splitlines())


def test_to_svg_without_graphviz_says_how_to_install(d, monkeypatch) -> None:
    real_import = builtins.__import__

    def no_graphviz(name, *a, **k):
        if name == "graphviz":
            raise ImportError("no graphviz")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_graphviz)
    monkeypatch.setattr(_graph.shutil, "which", lambda _: None)
    with pytest.raises(RuntimeError, match=r"pip install einsumad\[graph\]"):
        d.to_svg()


# ------------------------------------------------------------------ the Jacobian view


def test_derive_builds_no_jacobian(args, monkeypatch) -> None:
    """The Jacobian view is built only when asked for (it used to cost 6.5 s and 1.7 GiB)."""
    from einsumad.tools.derive import jacobian

    def refuse(*a, **k):
        raise AssertionError("a Jacobian was built")

    monkeypatch.setattr(jacobian, "_fd_jacobian", refuse)
    d = ea.derive(two_layer, *args)
    str(d), d.render("steps"), d.latex, d.to_dot()
    with pytest.raises(AssertionError, match="a Jacobian was built"):
        d.jacobian_view()


def test_jacobian_view_chain_operands_cost_and_agreement(args) -> None:
    d = ea.derive(two_layer, *args, wrt=["W1", "b1", "W2", "b2"])
    view = d.jacobian_view()
    rows = {r.label: r for r in view.rows}
    tanh1 = rows["∂a1/∂z1"]
    assert tanh1.formula == "Diag(tanh'(z1))"
    assert (tanh1.shape, tanh1.size, tanh1.vjp_size) == ((4, 4), 16, 4)
    weight = rows["∂v2/∂W2"]
    assert weight.formula == "einsum 'j->iij' of (a1)"  # says of what
    assert (weight.shape, weight.size, weight.jacobian_flops, weight.vjp_flops) == ((2, 2, 4), 16, 16, 8)
    assert rows["∂z1/∂b1"].formula == "I"  # a bias has its Jacobian too
    text = str(view)
    assert "∂L/∂W1 = ∂L/∂v5 ∂v5/∂v4" in text and "(4x4x3)" in text  # the chain, loss first, with shapes
    assert f"the Jacobian chain stores {view.jacobian_memory} elements and takes {view.jacobian_flops} multiply-adds" in text
    assert view.jacobian_memory > view.vjp_memory and view.jacobian_flops > view.vjp_flops
    # the Jacobians agree with closed forms
    W1, b1, W2, b2, x, y = args
    z1 = W1 @ x + b1
    np.testing.assert_allclose(tanh1.value, np.diag(1 - np.tanh(z1) ** 2), atol=1e-8)
    expected = np.einsum("ik,j->ikj", np.eye(2), np.tanh(z1))
    np.testing.assert_allclose(weight.value, expected, atol=1e-8)
    assert all(r.error < 1e-6 for r in view.rows)


def test_jacobian_view_of_a_broadcast_bias(rng) -> None:
    X = rng.normal(size=(5, 3))
    d = ea.derive(lambda W, b: ea.sum(ea.tanh(ea.einsum("bk,jk->bj", X, W) + b)),
                  rng.normal(size=(2, 3)), rng.normal(size=2))
    row = next(r for r in d.jacobian_view().rows if r.arg_name == "b")
    assert row.formula == "einsum '->bii' (a Kronecker delta)"
    assert row.shape == (5, 2, 2) and "no closed form" not in str(d.jacobian_view())


def test_a_wrong_custom_vjp_shows_in_the_check_column(rng) -> None:
    """The check uses finite differences of the op, not its rules: a wrong rule is caught."""

    @ea.primitive
    def my_tanh(x):
        return np.tanh(x)

    ea.defvjp(my_tanh, lambda ans, x: lambda g: 2 * g * (1 - ans ** 2))  # twice the truth
    W, x = rng.normal(size=(3, 4)), rng.normal(size=4)
    view = ea.derive(lambda W, x: ea.sum(my_tanh(W @ x)), W, x, wrt="W").jacobian_view()
    errors = {r.label: r.error for r in view.rows}
    assert errors["∂v2/∂v1"] > 0.1
    assert errors["∂v1/∂W"] < 1e-6


def test_large_jacobians_are_checked_along_a_direction(args) -> None:
    d = ea.derive(two_layer, *args)
    view = d.jacobian_view(max_elements=10)
    big = [r for r in view.rows if r.size > 10]
    assert big and all(r.value is None and r.error < 1e-6 for r in big)
