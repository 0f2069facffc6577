"""What the runner reports beside the timings.

* :func:`blas_info`: the BLAS NumPy uses, its threads, and the environment
  variables that change its speed (``OPENBLAS_CORETYPE`` forces a kernel and can
  make current NumPy much slower).
* :func:`op_overhead`: the Python overhead of one einsum node, forward plus
  backward, on tiny arrays, beside NumPy's own ``einsum`` on the same arrays.
* :func:`flop_counts`: opt_einsum's flop count of the forward contraction, of its
  gradient computed pairwise (two VJP einsums per step of the path, from the
  swapped subscripts of each step), and of the gradient as n separate n-ary VJPs.
* :func:`gradient_memory`: the peak memory (tracemalloc) of an einsumad gradient
  against the bytes of the forward intermediates plus the gradients.
* :func:`compiled_memory`: the peak memory of a compiled gradient with fresh
  allocations and with planned buffers (the buffers it keeps counted in).
"""

from __future__ import annotations

import os
import statistics
import time
import tracemalloc
from typing import Any

import numpy as np
import opt_einsum

import einsumad as ea
from benchmarks.problems import Inputs, Problem

__all__ = [
    "blas_info", "limit_threads", "op_overhead", "flop_counts", "gradient_memory", "compiled_memory", "ENV_VARS",
]

ENV_VARS = (
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
    "MKL_NUM_THREADS", "XLA_FLAGS",
)


# ================================================================= BLAS


def blas_info() -> dict[str, Any]:
    """NumPy's BLAS (build config and runtime thread pools) and the relevant environment."""
    info: dict[str, Any] = {"numpy": np.__version__, "opt_einsum": opt_einsum.__version__,
                            "einsumad": ea.__version__, "cpu_count": os.cpu_count()}
    try:
        config = np.show_config(mode="dicts")  # NumPy >= 1.26
        deps = config.get("Build Dependencies", {})
        info["blas_build"] = {k: {kk: deps[k].get(kk) for kk in ("name", "version", "openblas configuration")
                                  if kk in deps[k]} for k in ("blas", "lapack") if k in deps}
    except TypeError:
        info["blas_build"] = "numpy.show_config(mode='dicts') unavailable (NumPy < 1.26)"
    try:
        import threadpoolctl

        info["threadpools"] = [
            {k: pool.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                      "threading_layer", "filepath")}
            for pool in threadpoolctl.threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    info["env"] = {name: os.environ.get(name) for name in ENV_VARS}
    warnings = []
    if os.environ.get("OPENBLAS_CORETYPE"):
        warnings.append(
            f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set: it forces an OpenBLAS "
            "kernel and can make current NumPy much slower; unset it for representative numbers"
        )
    info["warnings"] = warnings
    return info


def format_blas(info: dict[str, Any]) -> str:
    lines = [f"numpy {info['numpy']}, opt_einsum {info['opt_einsum']}, einsumad {info['einsumad']}, "
             f"{info['cpu_count']} CPUs"]
    build = info.get("blas_build")
    if isinstance(build, dict) and "blas" in build:
        b = build["blas"]
        lines.append(f"BLAS (build): {b.get('name')} {b.get('version')}"
                     + (f" [{b['openblas configuration']}]" if b.get("openblas configuration") else ""))
    else:
        lines.append(f"BLAS (build): {build}")
    pools = info.get("threadpools")
    if isinstance(pools, list):
        for p in pools:
            lines.append(f"thread pool: {p['internal_api']} {p['version']}, {p['num_threads']} threads, "
                         f"{p.get('architecture')} ({os.path.basename(str(p.get('filepath')))})")
    else:
        lines.append(f"thread pools: {pools}")
    env = ", ".join(f"{k}={v}" for k, v in info["env"].items() if v is not None) or "none set"
    lines.append(f"BLAS/thread environment: {env}")
    lines.extend(f"WARNING: {w}" for w in info["warnings"])
    return "\n".join(lines)


def limit_threads(n: int) -> Any:
    """Every library on ``n`` threads: BLAS, OpenMP and numexpr through threadpoolctl
    (einsumad registers numexpr with it), PyTorch through ``set_num_threads``, XLA through
    ``XLA_FLAGS`` when ``n == 1`` (read when JAX is first imported). Returns the limiter."""
    if n == 1 and "jax" not in __import__("sys").modules:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    try:
        import einsumad.tools.fusion  # noqa: F401 - registers numexpr with threadpoolctl
    except ImportError:
        pass
    import threadpoolctl

    return threadpoolctl.threadpool_limits(n)


# ================================================================= per-op overhead


def _per_call(fn: Any, calls: int, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def op_overhead(calls: int = 2000, repeats: int = 7) -> dict[str, float]:
    """Microseconds per call of one ``ij,jk->ik`` einsum node on 3x4 and 4x5 arrays.

    * ``numpy_einsum``: ``np.einsum`` forward only;
    * ``numpy_fwd_bwd``: three ``np.einsum`` calls (the forward and the two VJPs);
    * ``einsumad_vjp``: ``ea.vjp`` forward plus the pullback (one node, forward+backward);
    * ``einsumad_grad``: ``ea.grad`` of ``sum(G * einsum(A, B))`` wrt A and B
      (three nodes, and the transformation's own set-up);
    * ``einsumad_compiled_grad``: the same through ``ea.compile``, when it exists.
    """
    rng = np.random.default_rng(0)
    A, B, G = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((3, 5))

    def fwd_bwd() -> Any:
        return (np.einsum("ij,jk->ik", A, B), np.einsum("ik,jk->ij", G, B),
                np.einsum("ik,ij->jk", G, A))

    def one_node() -> Any:
        _, pullback = ea.vjp(lambda a, b: ea.einsum("ij,jk->ik", a, b), A, B)
        return pullback(G)

    grad = ea.grad(lambda a, b: ea.sum(ea.einsum("ij,jk->ik", a, b) * G), argnums=(0, 1))
    out = {
        "numpy_einsum": _per_call(lambda: np.einsum("ij,jk->ik", A, B), calls, repeats),
        "numpy_fwd_bwd": _per_call(fwd_bwd, calls, repeats),
        "einsumad_vjp": _per_call(one_node, calls, repeats),
        "einsumad_grad": _per_call(lambda: grad(A, B), calls, repeats),
    }
    compile_ = getattr(ea, "compile", None)
    if compile_ is not None:
        try:
            compiled = compile_(grad)
            out["einsumad_compiled_grad"] = _per_call(lambda: compiled(A, B), calls, repeats)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            out["einsumad_compiled_grad_error"] = f"{type(exc).__name__}: {exc}"  # type: ignore[assignment]
    return {k: (v * 1e6 if isinstance(v, float) else v) for k, v in out.items()}


# ================================================================= flop counts


def flop_counts(subscripts: str, shapes: list[tuple[int, ...]], differentiable: list[bool]) -> dict[str, Any]:
    """Forward and backward flop counts (opt_einsum's ``opt_cost``) of one einsum.

    The pairwise backward walks opt_einsum's path: for each step, one VJP einsum
    (``ea.vjp_subscripts`` of the step) per operand of the step that depends on a
    differentiable input. The n-ary backward is one n-operand VJP per
    differentiable operand, each contracted along its own optimised path.
    """
    path, info = opt_einsum.contract_path(subscripts, *shapes, shapes=True)
    sizes = dict(info.size_dict)

    def cost(sub: str) -> int:
        # generalised outputs (a repeated letter writes a diagonal, "->ii"; a letter in no
        # operand broadcasts) cost what their core contraction costs
        lhs, out = sub.split("->")
        terms = lhs.split(",")
        core = "".join(c for c in dict.fromkeys(out) if c in lhs)
        if not any(terms):
            return max(1, int(np.prod([sizes[c] for c in core])))
        return int(opt_einsum.contract_path(
            f"{lhs}->{core}", *[tuple(sizes[c] for c in t) for t in terms], shapes=True)[1].opt_cost)

    forward = int(info.opt_cost)
    # track, along the path, which operands depend on a differentiable input
    needs = list(differentiable)
    pairwise = 0
    for positions, _, step, _, _ in info.contraction_list:
        positions = tuple(positions)
        for local, p in enumerate(positions):
            if needs[p]:
                pairwise += cost(ea.vjp_subscripts(step, local))
        result_needs = any(needs[p] for p in positions)
        needs = [n for i, n in enumerate(needs) if i not in positions] + [result_needs]
    nary = sum(cost(ea.vjp_subscripts(subscripts, k)) for k, d in enumerate(differentiable) if d)
    return {
        "subscripts": subscripts,
        "forward": forward,
        "backward_pairwise": pairwise,
        "backward_nary": nary,
        "pairwise_over_forward": pairwise / forward,
        "nary_over_forward": nary / forward,
        "path": [tuple(p) for p in path],
    }


# ================================================================= memory


class _Kept(np.ndarray):
    """An array whose every derived array is kept alive: a tape's worth of intermediates."""

    keep: list[np.ndarray] = []

    def __array_finalize__(self, obj: Any) -> None:
        _Kept.keep.append(self)


class _KeepingNumpy:
    """NumPy, with n-operand einsums done pairwise along opt_einsum's path (as a tape stores them)."""

    def einsum(self, subscripts: str, *operands: Any) -> Any:
        if len(operands) <= 2:
            return np.asarray(opt_einsum.contract(subscripts, *operands)).view(_Kept)
        _, info = opt_einsum.contract_path(subscripts, *operands)
        ops = list(operands)
        for positions, _, step, _, _ in info.contraction_list:
            chosen = [ops[p] for p in positions]
            ops = [o for i, o in enumerate(ops) if i not in positions]
            ops.append(np.asarray(opt_einsum.contract(step, *chosen)).view(_Kept))
        return ops[0]

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def _traced_bytes(fn: Any) -> tuple[Any, int, int]:
    """Run ``fn`` under tracemalloc: (result, bytes still held after, peak bytes above the start)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        result = fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, current - start, peak - start


def gradient_memory(problem: Problem, inputs: Inputs) -> dict[str, Any]:
    """Peak bytes of ``ea.value_and_grad`` vs forward intermediates + gradients.

    The forward intermediates are measured by running the same loss on plain
    NumPy arrays with every intermediate kept alive (n-operand einsums pairwise
    along the path), under tracemalloc. The hand-derived gradient's own peak is
    reported beside it.
    """
    consts = inputs.consts
    kept_params = tuple(p.view(_Kept) for p in inputs.params)
    _Kept.keep = []
    _, forward_bytes, _ = _traced_bytes(lambda: problem.loss(_KeepingNumpy(), kept_params, consts))
    _Kept.keep = []
    grad_bytes = sum(p.nbytes for p in inputs.params)
    expected = forward_bytes + grad_bytes
    fun = ea.value_and_grad(lambda p: problem.loss(ea, p, consts))
    fun(inputs.params)  # plans cached, not counted
    _, _, ea_peak = _traced_bytes(lambda: fun(inputs.params))
    _, _, hand_peak = _traced_bytes(lambda: problem.reference(inputs.params, consts))
    return {
        "forward_intermediates_bytes": forward_bytes,
        "gradient_bytes": grad_bytes,
        "expected_bytes": expected,
        "einsumad_peak_bytes": ea_peak,
        "hand_peak_bytes": hand_peak,
        "einsumad_over_expected": ea_peak / expected if expected else float("nan"),
        "hand_over_expected": hand_peak / expected if expected else float("nan"),
    }


def compiled_memory(problem: Problem, inputs: Inputs) -> dict[str, Any]:
    """Peak bytes of one call of ``ea.compile(ea.value_and_grad(loss))``: with every
    intermediate allocated afresh (``buffers=False``, as before buffer planning) and
    with planned buffers, whose bytes (kept between calls) are added to the call's peak."""
    loss = problem.loss_for("einsumad", ea, inputs)
    fun = ea.value_and_grad(lambda p, c: loss(p, c))
    out: dict[str, Any] = {}
    for label, options in (("fresh", {"buffers": False, "fuse": False}), ("planned", {})):
        try:
            compiled = ea.compile(fun, **options)
        except TypeError:  # an einsumad before buffer planning: every intermediate is fresh
            compiled = ea.compile(fun)
        compiled(inputs.params, inputs.consts)  # traced and buffers made, not counted
        _, _, peak = _traced_bytes(lambda: compiled(inputs.params, inputs.consts))
        kept = sum(getattr(p.source.namespace.get("buffers"), "nbytes", 0) for p in compiled.programs.values())
        out[f"{label}_call_peak_bytes"] = peak
        out[f"{label}_kept_bytes"] = kept
        out[f"{label}_bytes"] = peak + kept
    out["planned_over_fresh"] = out["planned_bytes"] / out["fresh_bytes"]
    return out
