"""Nothing silently wrong: escaped tracers, conversions that would cut a derivative,
dtypes kept in every transformation, threads, memory, and compile/codegen over
the whole op table. Each test reproduces a defect found by red-teaming."""

from __future__ import annotations

import gc
import threading
import warnings
import weakref

import numpy as np
import pytest

import einsumad as ea
from einsumad.core.tape import unbox
from einsumad.tools.program import trace
from einsumad.tools.stepper import STEP_CALLS, Stepper
from tests.numeric import numerical_gradient, sin_chain, sin_chain_gradient

# ---------------------------------------------------------------- escaped tracers


def test_a_tracer_that_escaped_an_earlier_transformation_is_refused():
    leak = []
    ea.grad(lambda x: (leak.append(x), ea.sum(x * x))[1])(np.array([1.0, 2.0]))
    with pytest.raises(ea.EscapedTracerError, match="escaped its trace"):
        ea.grad(lambda y: ea.sum(leak[0] * y))(np.full(2, 5.0))
    with pytest.raises(ea.EscapedTracerError, match="shape \\(2,\\)"):
        ea.grad(lambda y: ea.sum(y * leak[0]))(np.full(2, 5.0))


def test_a_tracer_of_the_enclosing_transformation_is_not_an_escape():
    # Nested transformations legitimately see the outer trace's values.
    def f(x):
        return ea.sum(ea.grad(lambda y: ea.sum(x * y * y))(x))

    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(ea.grad(f)(x), 4 * x)


# ---------------------------------------------------------------- conversions


@pytest.mark.parametrize(
    "convert",
    [float, int, bool, complex, lambda t: t.item(), lambda t: t.tolist(), lambda t: range(t)],
    ids=["float", "int", "bool", "complex", "item", "tolist", "index"],
)
def test_converting_a_traced_value_to_python_raises_instead_of_cutting_the_gradient(convert):
    with pytest.raises(TypeError, match="stop_gradient|cut its derivative"):
        ea.grad(lambda z: ea.sum(z) * convert(ea.sum(z)))(np.array([-2.0, 0.5, 3.0]))


def test_stop_gradient_makes_the_constant_explicit():
    z = np.array([-2.0, 0.5, 3.0])
    g = ea.grad(lambda z: ea.sum(z) * float(ea.stop_gradient(ea.sum(z))))(z)
    np.testing.assert_allclose(g, np.full(3, z.sum()))
    # and the correct gradient when the product is kept traced: d/dz (sum z)^2 = 2 sum z
    np.testing.assert_allclose(ea.grad(lambda z: ea.sum(z) * ea.sum(z))(z), np.full(3, 2 * z.sum()))


def test_converting_inside_compile_says_the_control_flow_would_be_frozen():
    with pytest.raises(TypeError, match="frozen"):
        ea.compile(lambda x: x * float(ea.sum(x)))(np.ones(2))


@pytest.mark.parametrize(
    "numpy_call, suggestion",
    [(np.sum, "ea.sum"), (np.tanh, "ea.tanh"), (np.exp, "ea.exp"), (np.mean, "ea.mean"), (np.log1p, "ea.log1p")],
)
def test_numpy_functions_on_a_traced_value_name_the_einsumad_op(numpy_call, suggestion):
    with pytest.raises(TypeError, match=suggestion.replace(".", "\\.")):
        ea.grad(lambda z: ea.sum(numpy_call(z ** 2)))(np.ones(3))


def test_numpy_arithmetic_with_a_traced_value_still_works():
    x = np.array([1.0, 2.0])
    w = np.array([3.0, 4.0])

    def f(z):
        return ea.sum(np.float64(2.0) * z + w * z - w / (z + 1) + (w < z))

    want = numerical_gradient(lambda z: np.sum(2 * z + w * z - w / (z + 1)), [x], 0)
    np.testing.assert_allclose(ea.grad(f)(x), want, rtol=1e-7)


# ---------------------------------------------------------------- outputs and dtypes


@pytest.mark.parametrize(
    "fun, what",
    [(lambda x: "a", "str"), (lambda x: None, "NoneType"), (lambda x: (ea.sum(x), ea.sum(x)), "pytree"),
     (lambda x: ea.sum(x) * 1j, "complex"), (lambda x: x, "shape")],
)
def test_grad_of_a_function_that_returns_no_real_scalar_says_what_it_returned(fun, what):
    with pytest.raises(TypeError, match=what):
        ea.grad(fun)(np.ones(2))


def test_power_zero_has_gradient_zero_everywhere():
    np.testing.assert_array_equal(ea.grad(lambda x: ea.sum(x ** 0))(np.zeros(3)), np.zeros(3))
    np.testing.assert_array_equal(ea.grad(lambda x: ea.sum(x ** 0.0 * x))(np.zeros(2)), np.ones(2))


def test_compile_refuses_integer_inputs_to_grad_as_eager_does():
    f = ea.grad(lambda x: ea.sum(ea.tanh(x * 0.5)))
    with pytest.raises(TypeError, match="floating-point"):
        f(np.arange(3))
    with pytest.raises(TypeError, match="floating-point"):
        ea.compile(f)(np.arange(3))


FLOAT32_FUNCTIONS = [
    lambda x: x / 2.0,
    lambda x: x * 2.0,
    lambda x: ea.tanh(x) ** 2 / 3.0 + ea.exp(x) * 0.5 - 1.0,
    lambda x: ea.sum(ea.softplus(x) * ea.sigmoid(x)) + 0.5,
]


@pytest.mark.parametrize("fun", FLOAT32_FUNCTIONS)
def test_float32_in_float32_out_in_every_transformation(fun):
    x = np.linspace(-1, 1, 3).astype(np.float32)
    t = np.ones(3, np.float32)
    assert ea.jvp(fun, (x,), (t,))[1].dtype == np.float32
    assert ea.jacfwd(fun)(x).dtype == np.float32
    assert ea.jacrev(fun)(x).dtype == np.float32
    assert ea.jacobian(fun)(x).dtype == np.float32
    assert ea.vjp(fun, x)[1](np.ones_like(fun(x)))[0].dtype == np.float32
    scalar = lambda x: ea.sum(fun(x))  # noqa: E731
    assert ea.grad(scalar)(x).dtype == np.float32
    assert ea.hessian(scalar)(x).dtype == np.float32
    assert ea.compile(ea.grad(scalar))(x).dtype == np.float32
    assert ea.compile(ea.jacfwd(fun))(x).dtype == np.float32


# ---------------------------------------------------------------- deep trees and memory


def test_a_pytree_thousands_of_levels_deep_is_differentiated():
    tree = np.array([1.0, 2.0])
    for _ in range(3000):
        tree = [tree]

    def f(t):
        while isinstance(t, list):
            t = t[0]
        return ea.sum(t * t)

    g = ea.grad(f)(tree)
    leaves, _ = ea.tree_flatten(g)
    np.testing.assert_allclose(leaves[0], [2.0, 4.0])


def _intermediate_refs(transform):
    refs = []

    def f(x):
        y = ea.tanh(x) * 2.0
        refs.append(weakref.ref(y))
        refs.append(weakref.ref(unbox(y)))
        return ea.sum(y * y)

    result = transform(f)
    del result
    return refs


TRANSFORMS = {
    "grad": lambda f: ea.grad(f)(np.ones(4)),
    "value_and_grad": lambda f: ea.value_and_grad(f)(np.ones(4)),
    "vjp": lambda f: ea.vjp(f, np.ones(4))[1](np.array(1.0)),
    "jvp": lambda f: ea.jvp(f, (np.ones(4),), (np.ones(4),)),
    "hessian": lambda f: ea.hessian(f)(np.ones(4)),
    "jacobian": lambda f: ea.jacobian(lambda x: f(x) * np.ones(2))(np.ones(4)),
    "compile": lambda f: ea.compile(ea.grad(f))(np.ones(4)),
    "codegen": lambda f: ea.codegen(ea.grad(f), np.ones(4)),
    "check_grads": lambda f: ea.check_grads(f, (np.ones(4),)),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_a_finished_transformation_is_freed_by_reference_counting(name):
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        refs = _intermediate_refs(TRANSFORMS[name])
        assert refs and all(r() is None for r in refs), "an intermediate outlived its transformation"
    finally:
        if enabled:
            gc.enable()


# ---------------------------------------------------------------- threads


def test_nested_gradients_in_two_threads_interleave_correctly():
    """Both threads hold a nested trace open at once (forced by barriers): with a
    process-wide trace depth, one thread's values were read at the other's level."""
    barrier = threading.Barrier(2, timeout=10)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            def inner(y):
                barrier.wait()  # both threads are inside two nested traces here
                out = ea.sum(y * y * y)
                barrier.wait()
                return out

            def outer(x):
                return ea.sum(ea.grad(inner)(x) * (k + 1))

            results[k] = ea.grad(outer)(np.array([1.0, float(k + 1)]))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(2):  # d/dx sum(3 x^2 (k+1)) = 6 x (k+1)
        np.testing.assert_allclose(results[k], 6 * np.array([1.0, k + 1]) * (k + 1))


# ---------------------------------------------------------------- compile's cache


def test_python_numbers_are_inputs_not_part_of_the_signature():
    f = ea.compile(lambda x, scale: ea.sum(ea.tanh(x) * scale))
    x = np.linspace(-1, 2, 4)
    for scale in (0.5, 1.5, 2.5, -3.0):
        np.testing.assert_allclose(f(x, scale), np.sum(np.tanh(x) * scale))
    assert f.cache_size() == 1


def test_static_argnums_make_a_python_value_part_of_the_signature():
    f = ea.compile(lambda x, n: ea.sum(ea.reshape(x, (n, -1))[0]), static_argnums=1)
    x = np.arange(6.0)
    assert f(x, 2) == 3.0 and f(x, 3) == 1.0
    assert f.cache_size() == 2


def test_the_program_cache_is_bounded_and_retracing_is_warned_about():
    from einsumad.tools import compile as compile_module

    f = ea.compile(lambda x: ea.sum(x * x))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, compile_module.CACHE_SIZE + 10):
            f(np.ones(n))
    assert f.cache_size() == compile_module.CACHE_SIZE
    assert any("traced" in str(w.message) and "signatures" in str(w.message) for w in caught)


def test_a_long_chain_compiles_and_equals_eager():
    f = sin_chain(3000)
    x = np.linspace(0, 1, 3)
    compiled = ea.compile(ea.grad(f))
    eager = ea.grad(f)(x)
    for _ in range(STEP_CALLS):  # 18,000 instructions: stepped through, then written
        np.testing.assert_allclose(compiled(x), eager, rtol=1e-12)
    assert "def _part" in next(iter(compiled.programs.values())).source  # emitted in parts
    np.testing.assert_allclose(compiled(x), eager, rtol=1e-12)


def test_the_collector_is_paused_only_while_a_program_is_built():
    import gc

    seen = []

    def f(x):
        seen.append(gc.isenabled())
        return ea.sum(x * x)

    was = gc.isenabled()
    try:
        gc.enable()
        ea.compile(f)(np.ones(3))
        assert seen == [False] and gc.isenabled()  # paused while tracing, then back on
        gc.disable()  # the user's choice is kept
        ea.compile(f)(np.ones(4))
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


def test_long_programs_delete_only_large_values(monkeypatch):
    """Split into parts, a program leaves small values to die with their part, but
    still deletes a large one after its last use."""
    from einsumad.tools import program

    monkeypatch.setattr(program, "PART_LINES", 12)
    f = sin_chain(20)

    for n, deletes in ((3, False), (1000, True)):  # 24 and 8,000 bytes
        x = np.linspace(0, 1, n)
        compiled = ea.compile(ea.grad(f), fuse=False, buffers=False)
        got = compiled(x)
        source = next(iter(compiled.programs.values())).source
        body = [line for part in source.parts[:-1] for line in part.splitlines()]
        assert any(line.strip().startswith("del ") for line in body) == deletes, source
        np.testing.assert_allclose(got, sin_chain_gradient(x, 20), rtol=1e-12)


@pytest.mark.slow
def test_a_100000_step_chain_differentiates_eagerly_and_compiled():
    f = sin_chain(100_000)
    x = np.linspace(0, 1, 3)
    eager = ea.grad(f)(x)
    np.testing.assert_allclose(ea.compile(ea.grad(f))(x), eager, rtol=1e-12)


# ---------------------------------------------------------------- codegen over the op table

X = np.linspace(0.2, 0.8, 6).reshape(2, 3)
SPD = np.array([[2.0, 0.5, 0.1], [0.5, 1.5, 0.2], [0.1, 0.2, 1.0]])

# Every public op, in a scalar loss of a 2x3 (or 3x3) argument.
OPS = {
    "einsum": lambda x: ea.einsum("ij,kj->ik", x, x),
    "add": lambda x: x + 1.5, "subtract": lambda x: 2.0 - x, "multiply": lambda x: x * x,
    "divide": lambda x: 1.0 / (x + 1), "negative": lambda x: -x, "power": lambda x: x ** 3,
    "power_traced": lambda x: x ** x, "matmul": lambda x: x @ x.T, "transpose": lambda x: ea.transpose(x),
    "sum": lambda x: ea.sum(x, axis=0), "mean": lambda x: ea.mean(x, axis=1, keepdims=True),
    "exp": ea.exp, "log": ea.log, "tanh": ea.tanh, "sigmoid": ea.sigmoid, "sin": ea.sin, "cos": ea.cos,
    "sqrt": ea.sqrt, "relu": lambda x: ea.relu(x - 0.5), "reciprocal": ea.reciprocal, "square": ea.square,
    "where": lambda x: ea.where(x > 0.5, x, x * x), "reshape": lambda x: ea.reshape(x, (3, 2)),
    "broadcast_to": lambda x: ea.broadcast_to(x[0], (4, 3)), "concatenate": lambda x: ea.concatenate([x, x * 2]),
    "stack": lambda x: ea.stack([x, x * 2], axis=1), "max": lambda x: ea.max(x, axis=1),
    "min": lambda x: ea.min(x), "logsumexp": lambda x: ea.logsumexp(x, axis=0), "softmax": ea.softmax,
    "log_softmax": ea.log_softmax, "maximum": lambda x: ea.maximum(x, 0.5), "minimum": lambda x: ea.minimum(x, 0.5),
    "abs": lambda x: ea.abs(x - 0.5), "clip": lambda x: ea.clip(x, 0.3, 0.7),
    "one_hot": lambda x: x * ea.one_hot(np.array([0, 2]), 3), "rearrange": lambda x: ea.rearrange(x, "a b -> b a"),
    "stop_gradient": lambda x: x * ea.stop_gradient(x), "log1p": ea.log1p, "expm1": ea.expm1,
    "logaddexp": lambda x: ea.logaddexp(x, x * x), "softplus": ea.softplus, "log_sigmoid": ea.log_sigmoid,
    "silu": ea.silu, "erf": ea.erf, "gelu": ea.gelu, "gelu_tanh": lambda x: ea.gelu(x, approximate="tanh"),
    "tan": ea.tan, "arctan": ea.arctan, "arcsin": ea.arcsin, "arccos": ea.arccos, "sinh": ea.sinh,
    "cosh": ea.cosh, "arctanh": ea.arctanh, "sign": lambda x: ea.sign(x - 0.5) * x, "floor": lambda x: ea.floor(x * 4) * x,
    "round": lambda x: ea.round(x * 4) * x, "var": lambda x: ea.var(x, axis=1), "std": lambda x: ea.std(x, axis=0),
    "prod": lambda x: ea.prod(x, axis=1), "cumsum": lambda x: ea.cumsum(x, axis=1),
    "layer_norm": lambda x: ea.layer_norm(x, axis=-1), "norm": ea.norm, "getitem": lambda x: x[1, ::2],
    "fancy_index": lambda x: x[np.array([1, 1, 0])],
    "inv": lambda x: ea.inv(SPD + 0.1 * x.T @ x), "solve": lambda x: ea.solve(SPD + 0.1 * x.T @ x, x[0]),
    "det": lambda x: ea.det(SPD + 0.1 * x.T @ x), "slogdet": lambda x: ea.slogdet(SPD + 0.1 * x.T @ x)[1],
    "cholesky": lambda x: ea.cholesky(SPD + 0.1 * x.T @ x), "eigh": lambda x: ea.eigh(SPD + x.T @ x)[0],
    "trace": lambda x: ea.trace(x @ x.T),
    "real": lambda x: ea.real(x * (1 + 2j) * x), "imag": lambda x: ea.imag(x * (1 + 2j) * x),
    "conj": lambda x: ea.real(ea.conj(x * (1 + 2j)) * x * 1j), "angle": lambda x: ea.angle(x * (1 + 2j) - 0.5),
    "abs_complex": lambda x: ea.abs(x * (1 + 2j) - 0.5j),
}


def _loss(op):
    return lambda x: ea.sum(ea.tanh(op(x)))


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_compiles_and_codegen_prints_what_compile_runs(name):
    loss = _loss(OPS[name])
    grad = ea.grad(loss)
    eager = grad(X)
    source = ea.codegen(grad, X)
    np.testing.assert_allclose(source.function()(X * 1.01), grad(X * 1.01), rtol=1e-12, atol=1e-14)
    compiled = ea.compile(grad)
    np.testing.assert_allclose(compiled(X), eager, rtol=1e-12, atol=1e-14)
    (program,) = compiled.programs.values()
    assert str(program.source) == str(source)  # compile runs exactly what codegen prints
    stepped = Stepper(trace(grad, (X,), {}), frozenset())  # a long program's first calls
    np.testing.assert_allclose(stepped(X * 1.01), grad(X * 1.01), rtol=1e-12, atol=1e-14)


def test_the_op_table_covers_every_public_op():
    ops = {n for n in ea.__all__ if callable(getattr(ea, n)) and n not in NOT_OPS}
    missing = ops - set(OPS)
    assert not missing, f"ops without a codegen test: {sorted(missing)}"


NOT_OPS = {
    "vjp_subscripts", "jvp_subscripts", "derive", "Derivation", "matrix_form", "name", "compile", "codegen", "einsum_path",
    "grad", "value_and_grad", "vjp", "jvp", "jacobian", "jacfwd", "jacrev", "hessian", "Tensor", "primitive",
    "defvjp", "defvjp_all", "defjvp", "tree_flatten", "tree_unflatten", "tree_map", "check_grads",
    "check_gradient", "EinsumError", "GradientCheckError", "EscapedTracerError", "MixedLibrariesError",
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_derive_names_the_declared_kind_of_every_op(name):
    d = ea.derive(_loss(OPS[name]), X)
    text = d.render("steps")
    for step in d.steps:
        if step.node is not None and step.kind != "delta":  # a delta-rule line composes two steps
            assert step.declared == step.node.prim.declaration.kind
    general = {s.op for s in d.backward if s.declared == "general"}
    for kind in ("einsum", "elementwise", "linear"):
        for step in d.backward:
            if step.declared == kind:
                assert "not an einsum" not in (step.note or ""), (step.op, step.note)
    if "(not an einsum)" in text:
        assert general, "only an op of the general kind may say it is not an einsum"


# ---------------------------------------------------------------- Python values under ea.compile


@pytest.mark.parametrize(
    "op", [lambda x, s: ea.sum(x, axis=s), lambda x, s: ea.softmax(x, axis=s), lambda x, s: ea.cumsum(x, axis=s),
           lambda x, s: ea.var(x, axis=s), lambda x, s: x[s], lambda x, s: x[s, 1:]],
)
def test_a_traced_number_used_as_an_axis_or_index_asks_for_static_argnums(op, rng):
    """A Python int argument is traced (an input, as in jax.jit): used as an axis it was
    silently ignored (iterating a 0-d value gave no axes)."""
    x = rng.normal(size=(3, 4))
    with pytest.raises(TypeError, match="static_argnums"):
        ea.compile(op)(x, 1)
    expected = op(x, 1)  # eagerly the int is a Python value
    np.testing.assert_allclose(ea.compile(op, static_argnums=1)(x, 1), expected)
    with pytest.raises(TypeError, match="iteration over a 0-d"):
        ea.grad(lambda t: ea.sum(x) * len(tuple(t)))(np.float64(2.0))


def test_an_index_array_argument_of_a_compiled_function_is_a_clear_error(rng):
    with pytest.raises(TypeError, match="index array of shape \\(2,\\)"):
        ea.compile(lambda x, i: x[i])(rng.normal(size=(3, 4)), np.array([0, 2]))


def test_static_values_are_keyed_by_type_and_nan_and_inf_replay():
    c = ea.compile(lambda x, n: x * n, static_argnums=1)
    x = np.arange(3)
    for n in (1, 1.0, True, 1):
        got = c(x, n)
        assert got.dtype == (x * n).dtype, (n, got.dtype)
    clip = ea.compile(lambda x, t: ea.clip(x, -t, t), static_argnums=1)
    for t in (np.inf, np.inf, 1.0, np.nan, np.nan):
        np.testing.assert_array_equal(clip(np.arange(-2.0, 3.0), t), np.clip(np.arange(-2.0, 3.0), -t, t))
    assert clip.cache_size() == 3


def test_a_python_number_argument_can_be_returned():
    c = ea.compile(lambda x, s: (x * s, s, -s))
    for s in (3.0, 4.5):
        y, same, negated = c(np.ones(2), s)
        np.testing.assert_array_equal(y, np.full(2, s))
        assert (same, negated) == (s, -s) and type(same) is float


def test_a_named_tuple_result_is_a_clear_error_and_its_tuple_compiles():
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    with pytest.raises(TypeError, match="SlogdetResult.*tuple\\(result\\)"):
        ea.compile(lambda a: ea.slogdet(a))(a)
    sign, logabsdet = ea.compile(lambda a: tuple(ea.slogdet(a)))(a)
    assert (sign, logabsdet) == pytest.approx(np.linalg.slogdet(a))


@pytest.mark.parametrize("name", ["np", "contract", "evaluate", "x", "inv"])
def test_a_compiled_function_named_like_something_its_program_calls(name, rng):
    """The generated ``def`` took the user's function name: ``def np(x)`` or
    ``def inv(a): v0 = inv(a)`` shadowed what the body calls."""
    a = rng.normal(size=(3, 3)) + 3 * np.eye(3)

    def fun(x):
        return ea.sum(ea.tanh(ea.inv(x)) * x)

    fun.__name__ = name
    compiled = ea.compile(ea.grad(fun))
    np.testing.assert_allclose(compiled(a), ea.grad(fun)(a), rtol=1e-12)
    np.testing.assert_allclose(compiled(a), numerical_gradient(lambda x: np.sum(np.tanh(np.linalg.inv(x)) * x), [a], 0),
                               rtol=1e-6, atol=1e-8)


def test_the_fast_signature_check_sends_other_structures_to_the_cache(rng):
    """The generated check takes one parameter per argument and looks dict keys up:
    another arity or other keys raise inside it and must count as a new signature."""
    f = ea.compile(lambda *xs: sum(ea.sum(ea.tanh(v)) for x in xs for v in (x.values() if isinstance(x, dict) else [x])))
    a, b = rng.normal(size=3), rng.normal(size=3)
    cases = [(a,), (a, b), ({"u": a},), ({"w": b},), ({"u": a, "w": b},), (a,)]
    for args in cases:
        expected = sum(np.tanh(v).sum() for x in args for v in (x.values() if isinstance(x, dict) else [x]))
        np.testing.assert_allclose(f(*args), expected, rtol=1e-12)
    assert f.cache_size() == 5
