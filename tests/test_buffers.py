"""Buffer planning in compiled programs: large intermediates written into buffers kept
from call to call. Truths: the unplanned program (fresh allocations), NumPy, and
tracemalloc's count of the bytes a call allocates."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np

import einsumad as ea
from einsumad.tools.buffers import BufferPool, plan_buffers


def _mlp_loss(params, x, y):
    W1, b1, W2, b2 = params
    h = ea.tanh(x @ W1 + b1)
    u = ea.gelu(h @ W2 + b2, approximate="tanh")
    return ea.mean((u - y) ** 2)


def _mlp(rng):
    params = (rng.normal(size=(64, 256)) / 8, rng.normal(size=256), rng.normal(size=(256, 128)) / 16,
              rng.normal(size=128))
    return params, rng.normal(size=(512, 64)), rng.normal(size=(512, 128))


def _pool(compiled) -> BufferPool:
    (program,) = compiled.programs.values()
    return program.source.namespace["buffers"]


def _arrays(tree):
    leaves = []
    for item in tree if isinstance(tree, (tuple, list)) else [tree]:
        leaves.extend(_arrays(item) if isinstance(item, (tuple, list)) else [np.asarray(item)])
    return leaves


def test_planned_results_equal_unplanned_on_new_inputs(rng):
    params, x, y = _mlp(rng)
    vg = ea.value_and_grad(_mlp_loss)
    planned, fresh = ea.compile(vg), ea.compile(vg, buffers=False)
    planned(params, x, y)
    assert _pool(planned).nbytes > 0
    for _ in range(3):
        x, y = rng.normal(size=(512, 64)), rng.normal(size=(512, 128))
        for a, b in zip(_arrays(planned(params, x, y)), _arrays(fresh(params, x, y))):
            np.testing.assert_array_equal(a, b)


def test_outputs_alias_neither_each_other_nor_buffers(rng):
    params, x, y = _mlp(rng)
    compiled = ea.compile(ea.value_and_grad(_mlp_loss))
    first = _arrays(compiled(params, x, y))
    second = _arrays(compiled(params, x, y))
    buffers = [b for held in _pool(compiled).free for b in held]
    assert buffers
    for out in first + second:
        assert not any(np.shares_memory(out, b) for b in buffers)
    for i, a in enumerate(first + second):
        for b in (first + second)[i + 1:]:
            assert not np.shares_memory(a, b)


def test_mutating_an_output_does_not_change_the_next_call(rng):
    params, x, y = _mlp(rng)
    compiled = ea.compile(ea.value_and_grad(_mlp_loss))
    expected = [a.copy() for a in _arrays(compiled(params, x, y))]
    for out in _arrays(compiled(params, x, y)):
        out[...] = 12345.0
    for a, b in zip(_arrays(compiled(params, x, y)), expected):
        np.testing.assert_array_equal(a, b)


def test_two_threads_calling_one_compiled_function(rng):
    """Each call takes its own set of buffers: concurrent calls never corrupt each other."""
    params, _, _ = _mlp(rng)
    compiled = ea.compile(ea.grad(_mlp_loss))
    inputs = [(rng.normal(size=(512, 64)), rng.normal(size=(512, 128))) for _ in range(2)]
    expected = [_arrays(ea.compile(ea.grad(_mlp_loss), buffers=False)(params, x, y)) for x, y in inputs]
    compiled(params, *inputs[0])
    failures = []
    start = threading.Barrier(2)

    def work(k):
        start.wait()
        for _ in range(8):
            for a, b in zip(_arrays(compiled(params, *inputs[k])), expected[k]):
                if not np.array_equal(a, b):
                    failures.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert 1 <= len(_pool(compiled).free) <= 2  # one set per concurrent call, given back


def _peak(fun, *args) -> int:
    fun(*args)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        fun(*args)
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_peak_memory_with_the_kept_buffers_stays_at_or_below_fresh_allocation(rng):
    params, x, y = _mlp(rng)
    vg = ea.value_and_grad(_mlp_loss)
    planned, fresh = ea.compile(vg), ea.compile(vg, buffers=False)
    planned_peak = _peak(planned, params, x, y) + _pool(planned).nbytes
    assert planned_peak <= _peak(fresh, params, x, y)


def test_plan_of_a_written_body():
    """The planner on statements as the emitter writes them: views extend lifetimes,
    an operand that dies is overwritten in place, returned values keep fresh memory,
    and so does an elementwise result read from a transposed view (NumPy would loop in
    the transposed order)."""
    n = 128 * 1024  # bytes per (128, 128) float64 array
    known = {name: ((128, 128), np.dtype(np.float64)) for name in ("x", "v0", "v1", "v2", "v3", "v4", "v5")}
    body = [
        "    v0 = x * 2.0",
        "    v1 = np.matmul(v0.reshape((16, 8, 128)), x).reshape((128, 128))  # ij,jk->ik",
        "    v2 = np.tanh(v1)",
        "    del v1",
        "    v3 = v2 + x",
        "    v5 = v3.T * x",
        "    v4 = v0 - v5",
    ]
    out, pool, b = plan_buffers(body, known, set(), {"v4"}, lambda prefix: prefix)
    assert out[0] == "    v0 = np.multiply(x, 2.0, out=b[0])"
    assert out[1] == "    v1 = np.matmul(v0.reshape((16, 8, 128)), x, out=b[1]).reshape((128, 128))  # ij,jk->ik"
    assert out[2] == "    v2 = np.tanh(v1, out=b[2])"
    assert out[4] == "    v3 = np.add(v2, x, out=b[3])"
    assert out[5] == "    v5 = v3.T * x"  # read from a transposed view: fresh memory
    assert out[6] == "    v4 = v0 - v5"  # returned: fresh memory
    offsets = [offset for offset, _, _ in pool.views]
    assert pool.views[1][1] == (16, 8, 128)  # the matmul's own shape, viewed as (128, 128)
    assert offsets[2] != offsets[1]  # v1 is a view (a reshape) of the matmul's buffer: not in place
    assert offsets[3] == offsets[2]  # v2 dies in v2 + x: written in place
    assert offsets[0] not in offsets[1:]  # v0 lives until the last statement
    assert pool.nbytes == 3 * n
    buffers = pool.take()
    namespace = {"np": np, "x": np.full((128, 128), 0.5), "b": buffers}
    exec("\n".join(line.strip() for line in out), namespace)  # noqa: S102
    x = namespace["x"]
    v0 = x * 2.0
    np.testing.assert_allclose(namespace["v4"], v0 - (np.tanh(v0 @ x) + x).T * x)


def test_long_programs_split_into_parts_keep_buffers_and_kernels(rng, monkeypatch):
    """A program split into part functions passes its buffers (and kernels) along."""
    from einsumad.tools import program

    monkeypatch.setattr(program, "PART_LINES", 12)
    params, x, y = _mlp(rng)
    vg = ea.value_and_grad(_mlp_loss)
    compiled = ea.compile(vg)
    got = _arrays(compiled(params, x, y))
    (prog,) = compiled.programs.values()
    assert len(prog.source.parts) > 3 and "buffers.take()" in prog.source
    for a, b in zip(got, _arrays(ea.compile(vg, buffers=False, fuse=False)(params, x, y))):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    for a, b in zip(_arrays(compiled(params, x, y)), got):  # the second call reuses the buffers
        np.testing.assert_array_equal(a, b)


def test_views_of_constants_are_made_once_when_the_program_is_written(rng):
    W = rng.normal(size=(3, 4, 5))
    f = ea.grad(lambda x: ea.sum(ea.tanh(ea.einsum("ijk,bkj->bi", W, x))))
    x = rng.normal(size=(2, 5, 4))
    compiled = ea.compile(f)
    got = compiled(x)
    (program,) = compiled.programs.values()
    import re

    assert not re.search(r"\bc\d+\.(transpose|reshape|T\b)", program.source), program.source
    t = 1 - np.tanh(np.einsum("ijk,bkj->bi", W, x)) ** 2
    np.testing.assert_allclose(got, np.einsum("bi,ijk->bkj", t, W), rtol=1e-12)


def test_only_the_largest_intermediates_get_buffers_when_there_are_many(rng, monkeypatch):
    """Past MAX_BUFFERS candidates, the largest keep buffers and the rest allocate."""
    from einsumad.tools import buffers

    params, x, y = _mlp(rng)
    vg = ea.value_and_grad(_mlp_loss)
    unlimited = ea.compile(vg)
    unlimited(params, x, y)
    everything = len(_pool(unlimited).views)
    monkeypatch.setattr(buffers, "MAX_BUFFERS", 3)
    compiled = ea.compile(vg)
    got = _arrays(compiled(params, x, y))
    pool = _pool(compiled)
    assert len(pool.views) == 3 < everything
    largest = sorted((int(np.prod(shape)) * dtype.itemsize for _, shape, dtype in pool.views))
    assert largest[0] >= 512 * 128 * 8  # the (512, 256) and (512, 128) activations, not a bias gradient
    for a, b in zip(got, _arrays(ea.compile(vg, buffers=False, fuse=False)(params, x, y))):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
