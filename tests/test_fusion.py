"""Fusion in compiled programs: elementwise groups written as one expression, numexpr
kernels where they pay. Truths: the unfused program (buffers off, fusion off), eager
einsumad, and closed-form NumPy derivatives."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import einsumad as ea
from einsumad.core.elementwise import Elementwise
from einsumad.core.primitive import Primitive
from einsumad.tools import fusion
from einsumad.tools.program import trace

numexpr = pytest.importorskip("numexpr")  # the `fast` extra; installed by the `test` extra
threadpoolctl = pytest.importorskip("threadpoolctl")

K, A = math.sqrt(2 / math.pi), 0.044715


@pytest.fixture
def two_threads(monkeypatch):
    """numexpr on two threads that each count fully, as on an idle machine, so the cost
    model fuses arithmetic (restored afterwards)."""
    monkeypatch.setattr(fusion, "PARALLEL_EFFICIENCY", 1.0)
    before = numexpr.set_num_threads(2)
    yield
    numexpr.set_num_threads(before)


def _gelu_tanh_slope(x: np.ndarray) -> np.ndarray:
    """d/dx of 0.5 x (1 + tanh(K (x + A x^3))), written out by hand (NumPy)."""
    t = np.tanh(K * (x + A * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * A * x * x)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _unfused(fun):
    return ea.compile(fun, fuse=False, buffers=False)


def test_gelu_backward_is_fused_and_equals_the_unfused_program(rng, two_threads):
    x, w = rng.normal(size=(256, 512)) * 3, rng.normal(size=(256, 512))
    grad = ea.grad(lambda x: ea.sum(ea.gelu(x, approximate="tanh") * w))
    source = ea.codegen(grad, x)
    kernels = re.findall(r'evaluate\("([^"]*)"', source)
    assert kernels, source  # the arithmetic around tanh runs in numexpr kernels
    assert "np.tanh(" in source  # numexpr without VML computes tanh slower than NumPy
    assert "gelu_tanh(" not in source  # the op is written as the ufuncs of its definition
    fused, plain = ea.compile(grad)(x), _unfused(grad)(x)
    assert _rel(fused, plain) <= 1e-13
    np.testing.assert_allclose(fused, w * _gelu_tanh_slope(x), rtol=1e-12, atol=1e-12)


def test_float32_stays_float32(rng, two_threads, monkeypatch):
    x = rng.normal(size=(256, 512)).astype(np.float32)
    w = rng.normal(size=(256, 512)).astype(np.float32)
    grad = ea.grad(lambda x: ea.sum(ea.gelu(x, approximate="tanh") * w))
    assert "evaluate(" not in ea.codegen(grad, x)  # NumPy's float32 loops are faster here
    # A machine where kernels pay for float32 too (numexpr computes its float literals
    # in double; the kernel's result is still float32, as NumPy's would be):
    monkeypatch.setitem(fusion.NUMPY_NS, "arith", (0.25, 2.0))
    assert "evaluate(" in ea.codegen(grad, x)
    out = ea.compile(grad)(x)
    assert out.dtype == np.float32
    truth = w.astype(np.float64) * _gelu_tanh_slope(x.astype(np.float64))
    np.testing.assert_allclose(out, truth, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, _unfused(grad)(x), rtol=1e-5, atol=1e-6)


def test_mlp_gradient_equals_unfused_and_eager_on_new_inputs(rng, two_threads):
    W1, W2 = rng.normal(size=(128, 256)) / 11, rng.normal(size=(256, 64)) / 16
    b1 = rng.normal(size=256)

    def loss(params, x, y):
        W1, b1, W2 = params
        h = ea.tanh(x @ W1 + b1)
        return ea.mean((h @ W2 - y) ** 2)

    vg = ea.value_and_grad(loss)
    fused, plain = ea.compile(vg), _unfused(vg)
    for _ in range(3):  # trace once, replay on new values
        x, y = rng.normal(size=(512, 128)), rng.normal(size=(512, 64))
        (v1, g1), (v2, g2), (v3, g3) = fused((W1, b1, W2), x, y), plain((W1, b1, W2), x, y), vg((W1, b1, W2), x, y)
        assert abs(v1 - v2) <= 1e-13 * abs(v2) and abs(v1 - v3) <= 1e-12 * abs(v3)
        for a, b, c in zip(g1, g2, g3):
            assert _rel(a, b) <= 1e-13
            assert _rel(a, c) <= 1e-12


def test_without_numexpr_groups_are_numpy_statements(rng):
    x, w = rng.normal(size=(256, 512)), rng.normal(size=(256, 512))
    grad = ea.grad(lambda x: ea.sum(ea.gelu(x, approximate="tanh") * w))
    compiled = ea.compile(grad, fuse=False)
    out = compiled(x)
    (program,) = compiled.programs.values()
    assert "evaluate(" not in program.source and "np.tanh(" in program.source
    np.testing.assert_allclose(out, w * _gelu_tanh_slope(x), rtol=1e-12, atol=1e-12)


def test_small_programs_are_written_as_before(rng, two_threads):
    """Below the size threshold nothing is grouped or buffered: NumPy's loops are
    fastest there, and small blocks are allocated cheaply."""
    x = rng.normal(size=(8, 8))
    f = ea.value_and_grad(lambda x: ea.sum(ea.gelu(x, approximate="tanh")))
    program = trace(f, (x,), {})
    assert fusion.plan_groups(program) == []
    source = ea.codegen(f, x)
    assert "evaluate(" not in source and "buffers" not in source
    assert "gelu_tanh(x)" in source  # the op's implementation, called as before


def test_one_thread_gives_no_kernels(rng):
    """On one thread numexpr's loops are slower than NumPy's here: the cost model declines."""
    x, w = rng.normal(size=(256, 512)), rng.normal(size=(256, 512))
    grad = ea.grad(lambda x: ea.sum(ea.gelu(x, approximate="tanh") * w))
    with threadpoolctl.threadpool_limits(1):
        assert numexpr.get_num_threads() == 1
        source = ea.codegen(grad, x)
    assert "evaluate(" not in source


def test_threadpoolctl_limits_numexpr(rng, two_threads):
    assert any(pool["user_api"] == "numexpr" for pool in threadpoolctl.threadpool_info())
    x, w = rng.normal(size=(256, 512)), rng.normal(size=(256, 512))
    compiled = ea.compile(ea.grad(lambda x: ea.sum(ea.gelu(x, approximate="tanh") * w)))
    expected = compiled(x)
    with threadpoolctl.threadpool_limits(1):
        assert numexpr.get_num_threads() == 1
        np.testing.assert_array_equal(compiled(x), expected)  # the kernels run on one thread
    assert numexpr.get_num_threads() == 2


def test_a_users_declared_spelling_fuses_and_an_undeclared_op_does_not(rng, two_threads):
    """Fusion reads the declaration, not the op's name."""
    def cube_impl(x):
        return x * x * x

    cube = Primitive(cube_impl, name="cube", declaration=Elementwise(
        (lambda ans, x: ea.multiply(ea.square(x), 3.0),), numexpr="{0} * {0} * {0}"))
    opaque = Primitive(cube_impl, name="opaque", declaration=Elementwise((lambda ans, x: ea.multiply(ea.square(x), 3.0),)))
    x = rng.normal(size=(256, 512))
    for prim, fused in ((cube, True), (opaque, False)):
        f = ea.grad(lambda x: ea.sum(prim(x) * x + 1.0 * x))
        program = trace(f, (x,), {})
        in_groups = {program.instructions[m].prim.name for g in fusion.plan_groups(program) for m in g.members}
        assert (prim.name in in_groups) is fused
        np.testing.assert_allclose(ea.compile(f)(x), 4 * x**3 + 1, rtol=1e-12, atol=1e-12)


def test_spellings_compute_what_the_implementations_compute(rng):
    """Every declared spelling, evaluated by numexpr and by NumPy, equals the op's
    implementation on inputs covering both signs and large magnitudes."""
    from einsumad.ops import arith, elementary, functions, nn, select

    x = np.concatenate([rng.normal(size=200) * 4, [-800.0, -30.0, -1e-9, 0.0, 1e-9, 30.0, 800.0]])
    prims = [
        arith.exp_p, arith.log_p, arith.sqrt_p, arith.square_p, arith.reciprocal_p, functions.tanh_p,
        functions.sigmoid_p, functions.sin_p, functions.cos_p, functions.relu_p, nn.softplus_p,
        nn.log_sigmoid_p, nn.silu_p, nn.gelu_tanh_p, select.abs_p, elementary.arctan_p, elementary.sinh_p,
    ]
    for prim in prims:
        text = prim.declaration.numexpr.format("x")
        arg = np.abs(x) + 0.5 if prim in (arith.log_p, arith.sqrt_p, arith.reciprocal_p) else x
        with np.errstate(all="ignore"):
            want = prim.impl(arg)
            by_numpy = eval(re.sub(r"\b(where|maximum|minimum|tanh|exp|log1p|log|sqrt|sin|cos|abs|arctan|sinh)\(",
                                   r"np.\1(", text).replace("np.abs(", "np.absolute("), {"np": np, "x": arg})
        np.testing.assert_array_equal(by_numpy, want, err_msg=prim.name)  # the same operations
        # numexpr's elementary functions differ from NumPy's by an ulp or so
        np.testing.assert_allclose(numexpr.evaluate(text, local_dict={"x": arg}), want, rtol=1e-13,
                                   atol=1e-15 * np.max(np.abs(want[np.isfinite(want)])), err_msg=prim.name)


# Random chains of elementwise ops on large arrays: the compiled gradient (grouped,
# buffered, kernels on two threads) against eager einsumad.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_UNARY = [ea.tanh, ea.sigmoid, ea.relu, ea.softplus, ea.square, ea.negative, ea.sin, ea.silu,
          lambda z: ea.gelu(z, approximate="tanh"), lambda z: ea.exp(-z * z), lambda z: 1.0 / (1.0 + z * z)]
_BINARY = [ea.add, ea.subtract, ea.multiply, lambda a, b: ea.where(a > b, a, b * 0.5), ea.maximum]


@settings(max_examples=12, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_UNARY) - 1), st.integers(0, len(_BINARY) - 1),
                          st.booleans()), min_size=2, max_size=7))
def test_random_elementwise_chains_equal_eager(steps):
    rng = np.random.default_rng(len(steps))
    x, y = rng.normal(size=(128, 256)), rng.normal(size=(1, 256))

    def f(x, y):
        h, g = x, y
        for u, b, mix in steps:
            h = _UNARY[u](h)
            if mix:
                h = _BINARY[b](h, g)
            g = h if mix else g
        return ea.sum(h * x)

    grad = ea.grad(f, argnums=(0, 1))
    before, efficiency = numexpr.set_num_threads(2), fusion.PARALLEL_EFFICIENCY
    fusion.PARALLEL_EFFICIENCY = 1.0
    try:
        compiled = ea.compile(grad)(x, y)
    finally:
        numexpr.set_num_threads(before)
        fusion.PARALLEL_EFFICIENCY = efficiency
    for got, want in zip(compiled, grad(x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * max(1.0, float(np.max(np.abs(want)))))


def test_a_group_that_cannot_be_written_as_one_expression_is_written_op_by_op(rng, monkeypatch):
    from einsumad.tools import program as emitter

    monkeypatch.setattr(emitter, "render", lambda *args, **kwargs: None)
    x, w = rng.normal(size=(256, 512)), rng.normal(size=(256, 512))
    f = ea.grad(lambda x: ea.sum(ea.gelu(x, approximate="tanh") * w - ea.tanh(x) * x))
    assert fusion.plan_groups(trace(f, (x,), {}))  # there are groups, written unfused
    compiled = ea.compile(f)
    np.testing.assert_allclose(compiled(x), f(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(compiled(x * 0.5), f(x * 0.5), rtol=1e-12, atol=1e-12)


def test_a_long_chain_on_large_arrays_is_written_in_shallow_groups(two_threads):
    """400 single-use elementwise steps would be one group (and one expression too
    deep for Python's parser); groups stop at MAX_MEMBERS instructions."""

    def f(x):
        for _ in range(400):
            x = ea.sin(x) * 0.999 + 0.001
        return x

    x = np.linspace(0, 1, 10_000)
    compiled = ea.compile(f)
    got = compiled(x)
    expected = x.copy()
    for _ in range(400):
        expected = np.sin(expected) * 0.999 + 0.001
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    program = next(iter(compiled.programs.values()))
    sizes = [len(g.members) for g in fusion.plan_groups(program)]
    assert sizes and max(sizes) <= fusion.MAX_MEMBERS < sum(sizes), sizes


def test_kernels_written_again_over_other_variables_are_compiled_once(rng, two_threads):
    """A loop writes one kernel per step; numexpr compiles its canonical text once."""
    assert fusion._canonical("x * (1 - t * t) + tx", ["x", "t"]) == "_0 * (1 - _1 * _1) + tx"
    x = rng.normal(size=(256, 256))

    def f(x):
        for _ in range(5):
            x = ea.gelu(x, approximate="tanh")
        return ea.sum(x)

    compiled = ea.compile(ea.grad(f))
    got = compiled(x)
    namespace = next(iter(compiled.programs.values())).source.namespace
    (registry,) = [v for v in namespace.values() if isinstance(v, fusion.Kernels)]
    kernels = [k[0] for k in registry.kernels.values()]
    assert len({id(k) for k in kernels}) < len(kernels), list(registry.kernels)
    np.testing.assert_allclose(got, _unfused(ea.grad(f))(x), rtol=1e-12)
