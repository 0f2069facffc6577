"""A long compiled program runs step by step for its first calls, then as written source.

Truths: closed forms in NumPy and eager ``ea.grad``; the stepped program must keep
every promise of the written one (pytrees, Python numbers, static arguments,
dtypes, results that never share memory with arguments, read-only constants).
"""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import einsumad as ea
from einsumad.tools import compile as compile_module
from einsumad.tools import stepper
from einsumad.tools.program import trace
from einsumad.tools.stepper import Stepper
from tests.numeric import sin_chain, sin_chain_gradient


def _only_program(compiled):
    (program,) = compiled.programs.values()
    return program


def test_a_long_program_is_stepped_for_its_first_calls_then_written(monkeypatch):
    monkeypatch.setattr(stepper, "STEP_ABOVE", 50)
    monkeypatch.setattr(stepper, "STEP_CALLS", 3)
    f = sin_chain(20)  # 120 instructions
    compiled = ea.compile(ea.grad(f))
    x = np.linspace(0, 1, 3)
    for call in range(2):
        xs = x + 0.1 * call
        np.testing.assert_allclose(compiled(xs), sin_chain_gradient(xs, 20), rtol=1e-12)
        program = _only_program(compiled)
        assert isinstance(program.function, Stepper) and program.source is None
    np.testing.assert_allclose(compiled(x * 0.5), sin_chain_gradient(x * 0.5, 20), rtol=1e-12)
    program = _only_program(compiled)
    assert not isinstance(program.function, Stepper)
    assert str(program.source) == str(ea.codegen(ea.grad(f), x))  # then it runs what codegen prints
    for scale in (0.25, 0.75):  # later calls (the fast path) run the written source
        np.testing.assert_allclose(compiled(x * scale), sin_chain_gradient(x * scale, 20), rtol=1e-12)
    assert compiled.cache_size() == 1


def test_a_short_program_is_written_at_once():
    compiled = ea.compile(ea.grad(sin_chain(3)))
    compiled(np.ones(2))
    assert _only_program(compiled).source is not None


def _model(params, xs, scale, mode):
    h = ea.tanh(ea.einsum("ij,j->i", params["W"], xs[0]) + params["b"]) * scale
    if mode == "double":
        h = h * 2.0
    return {"h": h, "x": xs[0], "again": (h, h), "ones": np.ones(2), "scale": scale, "t": ea.transpose(xs[1])}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stepping_keeps_every_promise_of_the_written_program(monkeypatch, dtype):
    monkeypatch.setattr(stepper, "STEP_ABOVE", 0)
    monkeypatch.setattr(stepper, "STEP_CALLS", 10**9)
    rng = np.random.default_rng(0)
    params = {"W": rng.normal(size=(2, 3)).astype(dtype), "b": rng.normal(size=2).astype(dtype)}
    xs = [rng.normal(size=3).astype(dtype), rng.normal(size=(2, 4)).astype(dtype)]
    compiled = ea.compile(_model, static_argnums=3)
    written = ea.codegen(_model, params, xs, 0.5, "double").function()
    for scale, mode in ((0.5, "double"), (1.5, "double"), (0.5, "once")):
        got = compiled(params, xs, scale, mode)
        assert all(isinstance(p.function, Stepper) for p in compiled.programs.values())
        expected_h = np.tanh(params["W"] @ xs[0] + params["b"]) * scale * (2.0 if mode == "double" else 1.0)
        np.testing.assert_allclose(got["h"], expected_h, rtol=1e-6 if dtype == np.float32 else 1e-13)
        assert got["h"].dtype == dtype and got["t"].dtype == dtype
        np.testing.assert_array_equal(got["x"], xs[0])
        np.testing.assert_array_equal(got["t"], xs[1].T)
        assert not np.shares_memory(got["x"], xs[0]) and not np.shares_memory(got["t"], xs[1])
        assert got["again"][0] is not got["again"][1] and not np.shares_memory(*got["again"])
        assert type(got["scale"]) is float and got["scale"] == scale
        assert not got["ones"].flags.writeable
        if mode == "double":  # the same program, written as source: the same values, the same structure
            reference = written(params, xs, scale, mode)
            assert reference.keys() == got.keys()
            np.testing.assert_array_equal(reference["h"], got["h"])
    assert compiled.cache_size() == 2  # one program per static value


def test_python_number_arguments_stay_weak_when_stepped(monkeypatch):
    """A Python float input times a float32 array stays float32, as eagerly."""
    monkeypatch.setattr(stepper, "STEP_ABOVE", 0)
    f = ea.compile(lambda a, x: x * (a * 2.0))
    x = np.ones(3, np.float32)
    got = f(1.5, x)
    assert got.dtype == np.float32 and isinstance(_only_program(f).function, Stepper)
    np.testing.assert_array_equal(got, np.full(3, 3.0, np.float32))


def test_stepping_frees_each_value_after_its_last_use(monkeypatch):
    """40 steps on 1 MiB arrays: about three arrays live at once, not forty."""
    monkeypatch.setattr(stepper, "STEP_ABOVE", 0)

    def chain(x):
        for _ in range(40):
            x = ea.sin(x) * 0.999 + 0.001
        return x

    x = np.linspace(0, 1, 2**17)
    compiled = ea.compile(chain, fuse=False, buffers=False)
    compiled(x)
    tracemalloc.start()
    try:
        got = compiled(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = x
    for _ in range(40):
        expected = np.sin(expected) * 0.999 + 0.001
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    assert peak < 8 * x.nbytes, peak


def test_threads_step_while_one_of_them_writes_the_source(monkeypatch):
    monkeypatch.setattr(stepper, "STEP_ABOVE", 50)
    monkeypatch.setattr(stepper, "STEP_CALLS", 3)
    writes = []
    real_written = compile_module._written

    def counted(*args, **kwargs):
        writes.append(1)
        return real_written(*args, **kwargs)

    monkeypatch.setattr(compile_module, "_written", counted)
    compiled = ea.compile(ea.grad(sin_chain(20)))
    x = np.linspace(0, 1, 3)
    compiled(x)  # traced (and stepped) once
    failures = []

    def work(k: int) -> None:
        for call in range(6):
            xs = x + 0.01 * (k + call)
            if not np.allclose(compiled(xs), sin_chain_gradient(xs, 20), rtol=1e-12):
                failures.append((k, call))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert len(writes) == 1 and _only_program(compiled).source is not None


def test_an_unhashable_static_argument_steps_a_long_program_once(monkeypatch):
    monkeypatch.setattr(stepper, "STEP_ABOVE", 0)
    f = ea.compile(lambda x, weights: ea.sum(x * np.asarray(weights)), static_argnums=1)
    assert f(np.ones(3), [1.0, 2.0, 3.0]) == 6.0
    assert f.cache_size() == 0


def test_the_stepper_runs_a_traced_program_directly():
    g = ea.grad(lambda x: ea.sum(ea.exp(x) * x))
    x = np.array([0.0, 1.0, -2.0])
    program = trace(g, (x,), {})
    np.testing.assert_allclose(Stepper(program, frozenset())(x * 2), np.exp(2 * x) * (1 + 2 * x), rtol=1e-14)


def test_a_program_that_cannot_be_written_keeps_stepping_and_says_why(monkeypatch):
    monkeypatch.setattr(stepper, "STEP_ABOVE", 0)
    monkeypatch.setattr(stepper, "STEP_CALLS", 2)

    def broken(*args, **kwargs):
        raise RuntimeError("no room")

    monkeypatch.setattr(compile_module, "_written", broken)
    f = ea.compile(ea.grad(lambda x: ea.sum(ea.sin(x))))
    x = np.array([0.5, 1.0])
    np.testing.assert_allclose(f(x), np.cos(x), rtol=1e-15)
    with pytest.warns(RuntimeWarning, match=r"could not write .*RuntimeError: no room.*step by step"):
        np.testing.assert_allclose(f(x), np.cos(x), rtol=1e-15)
    np.testing.assert_allclose(f(x * 2), np.cos(x * 2), rtol=1e-15)  # no second attempt, no second warning
    assert isinstance(_only_program(f).function, Stepper)


def test_a_dropped_compiled_function_frees_its_stepped_program_by_reference_counting(monkeypatch):
    import gc
    import weakref

    monkeypatch.setattr(stepper, "STEP_ABOVE", 0)
    was = gc.isenabled()
    gc.disable()
    try:
        compiled = ea.compile(ea.grad(sin_chain(5)))
        compiled(np.ones(3))
        program = weakref.ref(_only_program(compiled))
        stepped = weakref.ref(_only_program(compiled).function)
        del compiled
        assert program() is None and stepped() is None
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("step_above", [-1, 10**9])  # stepped, and written at once
@pytest.mark.parametrize("a", [2.0, np.float32(2.0), np.array(2.0)])
def test_gradients_with_respect_to_numbers_are_0d_arrays_as_eagerly(monkeypatch, step_above, a):
    monkeypatch.setattr(stepper, "STEP_ABOVE", step_above)
    f = lambda a: a * a * 3.0  # noqa: E731
    eager = [ea.grad(f)(a), *ea.value_and_grad(f)(a)]
    compiled = [ea.compile(ea.grad(f))(a), *ea.compile(ea.value_and_grad(f))(a)]
    for e, c, value in zip(eager, compiled, (12.0, 12.0, 12.0)):
        assert type(e) is np.ndarray and type(c) is np.ndarray
        assert c.shape == e.shape == () and c.dtype == e.dtype == np.asarray(a).dtype and c == e == value


# Functions whose compiled results must have eager's type, dtype and value on every
# call: stepped, across the switch to source, and written at once.
_LIKE_EAGER = {
    "float32 times an op of a float": (lambda x, s: x * ea.sin(s), (np.ones(2, np.float32), 0.5)),
    "a maximum of floats": (lambda x, s: x + ea.maximum(s, 0.1), (np.ones(2, np.float32), 0.5)),
    "an op of a float": (lambda s: ea.sin(s), (0.5,)),
    "a reduction of a float": (lambda s: ea.prod(s), (0.5,)),
    "a cumulative sum of a float": (lambda s: ea.cumsum(s), (0.5,)),
    "the gradient of a max of a float": (ea.grad(lambda s: ea.max(s) * 2.0), (0.5,)),
    "a NumPy scalar returned": (lambda x: x, (np.float32(1.5),)),
    "the real part of a NumPy scalar": (lambda x: ea.real(x), (np.float64(1.5),)),
    "a full max": (lambda x: ea.max(x), (np.array([1.0, 3.0]),)),
    "a full min, kept dims": (lambda x: ea.min(x, keepdims=True), (np.array([1.0, 3.0]),)),
    "a constant string": (lambda x: (x * 2.0, "s"), (np.ones(1),)),
    "float32 times a product of floats": (lambda x, a: ea.sin(x) * (a * a) + x, (np.ones(3, np.float32), 0.7)),
    "large float32 times a product of floats": (  # fused and with kept buffers when written
        lambda x, a: ea.sin(ea.sin(x) * (a * a)) + x, (np.linspace(0, 1, 20000, dtype=np.float32), 0.7)),
    "float32 times a power of a float": (lambda x, a: ea.power(a, 2) * x, (np.ones(3, np.float32), 1.5)),
    "a sum of an op of a 0-d array": (lambda x: ea.sum(ea.sin(x)), (np.array(0.5, np.float32),)),
    "a complex number times a sum": (lambda x, a: ea.sum(x) * a, (np.ones(2), 0.5 + 1j)),
    "the tangent of a full max": (lambda x, t: ea.jvp(ea.max, (x,), (t,)), (np.array([1.0, 3.0]), np.ones(2))),
    "the tangent of a full sum": (lambda x, t: ea.jvp(ea.sum, (x,), (t,)), (np.array([1.0, 3.0]), np.ones(2))),
}


def _described(value):
    if isinstance(value, tuple):
        return tuple(_described(v) for v in value)
    return type(value), getattr(value, "dtype", None), getattr(value, "shape", None)


@pytest.mark.parametrize("case", sorted(_LIKE_EAGER))
@pytest.mark.parametrize("mode", ["stepped", "switched", "written"])
def test_compiled_results_have_eager_types_before_and_after_the_switch(monkeypatch, case, mode):
    fun, args = _LIKE_EAGER[case]
    monkeypatch.setattr(stepper, "STEP_ABOVE", 10**9 if mode == "written" else -1)
    monkeypatch.setattr(stepper, "STEP_CALLS", {"stepped": 10**9, "switched": 2, "written": 8}[mode])
    eager = fun(*args)
    compiled = ea.compile(fun)
    for _ in range(3):
        got = compiled(*args)
        assert _described(got) == _described(eager)
        for g, e in zip(got if isinstance(got, tuple) else (got,), eager if isinstance(eager, tuple) else (eager,)):
            if isinstance(e, str):
                assert g == e
            else:
                np.testing.assert_allclose(g, e, rtol=1e-15)


def test_a_stepped_program_with_a_torch_array_and_a_float_switches_to_source(monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("array_api_compat")
    monkeypatch.setattr(stepper, "STEP_ABOVE", -1)
    monkeypatch.setattr(stepper, "STEP_CALLS", 2)
    f = ea.compile(lambda x, s: x * ea.sin(s))
    x = torch.ones(2, dtype=torch.float64)
    for _ in range(3):
        np.testing.assert_allclose(f(x, 0.5).numpy(), np.full(2, np.sin(0.5)), rtol=1e-15)


def test_no_calls_to_step_means_written_at_the_first_call(monkeypatch):
    monkeypatch.setattr(stepper, "STEP_ABOVE", -1)
    monkeypatch.setattr(stepper, "STEP_CALLS", 0)
    f = ea.compile(lambda x: ea.sin(x) * 2.0)
    np.testing.assert_allclose(f(np.ones(2)), 2 * np.sin(np.ones(2)), rtol=1e-15)
    assert _only_program(f).source is not None


@pytest.mark.parametrize("step_above", [-1, 10**9])  # stepped, and written at once
def test_a_dropped_compiled_function_frees_its_buffers_by_reference_counting(monkeypatch, step_above):
    import gc
    import weakref

    monkeypatch.setattr(stepper, "STEP_ABOVE", step_above)
    x = np.linspace(0, 1, 2**15)  # 256 KiB: large enough for kept buffers
    was = gc.isenabled()
    gc.disable()
    try:
        compiled = ea.compile(ea.grad(lambda x: ea.sum(ea.tanh(x * 2.0) * x)))
        np.testing.assert_allclose(compiled(x), np.tanh(2 * x) + 2 * x / np.cosh(2 * x) ** 2, rtol=1e-12)
        program = _only_program(compiled)
        held = [weakref.ref(program), weakref.ref(program.function)]
        if program.source is not None:
            held.append(weakref.ref(program.source.namespace["buffers"]))
        del compiled, program
        assert all(ref() is None for ref in held)
    finally:
        (gc.enable if was else gc.disable)()


def test_a_dropped_program_written_in_parts_is_freed_by_reference_counting(monkeypatch):
    import gc
    import weakref

    from einsumad.tools import program as program_module

    monkeypatch.setattr(program_module, "PART_LINES", 12)
    monkeypatch.setattr(stepper, "STEP_ABOVE", 10**9)
    x = np.linspace(0, 1, 3)
    was = gc.isenabled()
    gc.disable()
    try:
        compiled = ea.compile(ea.grad(sin_chain(20)))
        np.testing.assert_allclose(compiled(x), sin_chain_gradient(x, 20), rtol=1e-12)
        program = _only_program(compiled)
        assert len(program.source.parts) > 3
        parts = [f for name, f in program.function.__globals__.items() if name.startswith("_part")]
        held = [weakref.ref(program), weakref.ref(program.function), *map(weakref.ref, parts)]
        assert len(held) > 4
        del parts
        del compiled, program
        assert all(ref() is None for ref in held)
    finally:
        (gc.enable if was else gc.disable)()


def test_auxiliary_values_come_back_as_arrays_eagerly_and_compiled():
    """``has_aux``: the aux values leave their trace as arrays (they used to be traced
    values that raised when used)."""
    h = ea.grad(lambda a: (ea.sum(ea.sin(a)), a * 2.0), has_aux=True)
    x = np.array([0.5, 1.0])
    for run in (h, ea.compile(h)):
        g, aux = run(x)
        assert type(aux) is np.ndarray
        np.testing.assert_allclose(aux + 1, 2 * x + 1, rtol=1e-15)
        np.testing.assert_allclose(g, np.cos(x), rtol=1e-15)
    g, aux = h(1.5)
    assert type(aux) is np.ndarray and aux.shape == () and aux + 1 == 4.0


@pytest.mark.parametrize("step_above", [-1, 10**9])  # stepped, and written at once
def test_compiled_gradients_are_writable_arrays_as_eager_ones(monkeypatch, step_above):
    """The gradient of ``sum(x * a)`` is a broadcast of ``a``: a read-only view, copied."""
    monkeypatch.setattr(stepper, "STEP_ABOVE", step_above)
    h = ea.grad(lambda a, x: ea.sum(x * a), argnums=1)
    for run in (h, ea.compile(h)):
        g = run(2.0, np.ones((2, 3), np.float32))
        assert g.flags.writeable and g.dtype == np.float32
        g += 1
        np.testing.assert_array_equal(g, np.full((2, 3), 3.0, np.float32))
