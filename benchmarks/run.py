"""The benchmark runner: ``python -m benchmarks`` or ``python benchmarks/run.py``.

For every problem and scale: build the inputs, compute the hand-derived NumPy
result, run every implementation once and check it against that result
(``numpy.allclose``; a mismatch or an exception marks the row failed and it is
not timed), then time the verified ones in interleaved rounds. Afterwards: the
per-op overhead of one einsum node, the flop counts of the n-operand problems,
and the peak memory of a gradient. Writes ``results.json`` and ``ratios.png``
to ``--out``.

Exit status: 0, or 1 when an einsumad (or baseline) row failed verification or
raised. A peer's failure is reported but does not change the status.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks import libraries, measures, report  # noqa: E402
from benchmarks.problems import Problem, by_name  # noqa: E402
from benchmarks.timer import time_interleaved  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
BUDGET = {"tiny": 0.05, "small": 1.0, "large": 3.0}  # seconds of timing per problem and scale
TOO_SLOW_S, TOO_SLOW_RATIO = 1.0, 50.0  # a contender slower than both, once, is not timed in rounds


def target_for(problem: Problem, scale: str, library: str, mode: str) -> float | None:
    """The issue's targets, as ratios to the hand-derived NumPy baseline (medians)."""
    if library != "einsumad" or problem.peer_targets:  # a model's targets are relative to peers
        return None
    if scale == "large" and mode == "eager":
        return 1.5 if problem.kind == "hessian" else 1.2
    if scale == "small":
        return {"eager": 2.0, "compiled": 1.3, "compiled no-fast": 1.3}.get(mode)
    return None


def peer_targets_for(problem: Problem, scale: str, library: str, mode: str) -> tuple[tuple[str, float], ...]:
    """A model problem's targets relative to peers, at the model's own size (large scale)."""
    if library != "einsumad" or scale != "large":
        return ()
    return problem.peer_targets.get("compiled" if mode.startswith("compiled") else mode, ())


def _tolerance(expected: np.ndarray) -> tuple[float, float]:
    rtol = 1e-6 if expected.dtype == np.float64 else 1e-3
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    return rtol, rtol * 1e-2 * max(scale, 1.0)


def verify(got: list[np.ndarray], expected: list[np.ndarray]) -> str | None:
    """None when ``got`` matches ``expected``; otherwise what differs."""
    if len(got) != len(expected):
        return f"{len(got)} results, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        g = np.asarray(g)
        if g.shape != e.shape:
            return f"result {i}: shape {g.shape}, expected {e.shape}"
        rtol, atol = _tolerance(e)
        if not np.allclose(g, e, rtol=rtol, atol=atol):
            err = float(np.max(np.abs(g - e)))
            return f"result {i}: max abs error {err:.3g} (rtol {rtol}, atol {atol:.3g})"
    return None


def run_problem(problem: Problem, scale: str, peers: list[str], args: argparse.Namespace) -> tuple[list[dict], list[str]]:
    """Verify then time every implementation of ``problem`` at ``scale``."""
    rng = np.random.default_rng(args.seed)
    inputs = problem.setup(rng, **problem.sizes[scale])
    baseline = libraries.baseline_impl(problem, inputs)
    impls = [baseline]
    notes: list[str] = []
    try:
        impls += libraries.einsumad_impls(problem, inputs)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"einsumad: could not build: {type(exc).__name__}: {exc}")
    peer_impls, peer_notes = libraries.peer_impls(problem, inputs, peers)
    impls += peer_impls
    notes += peer_notes
    start = time.perf_counter()
    expected = baseline.to_numpy(baseline.fn())
    baseline_once = time.perf_counter() - start

    rows: list[dict[str, Any]] = []
    timed = {}
    for impl in impls:
        row = {"problem": problem.name, "kind": problem.kind, "scale": scale,
               "sizes": problem.sizes[scale], "library": impl.library, "mode": impl.mode,
               "label": impl.label, "target": target_for(problem, scale, impl.library, impl.mode)}
        start = time.perf_counter()
        try:
            mismatch = verify(impl.to_numpy(impl.fn()), expected)
            once = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - the row is marked failed, loudly
            mismatch = None
            row["status"] = "ERROR"
            row["error"] = f"{type(exc).__name__}: {exc}"
            row["traceback"] = traceback.format_exc(limit=6)
        if mismatch is not None:
            row["status"] = "FAILED verification"
            row["error"] = mismatch
        if "status" in row:
            print(f"!!! {problem.name} [{scale}] {impl.label}: {row['status']}: {row['error']}",
                  file=sys.stderr, flush=True)
        else:
            row["status"] = "ok"
            slow = max(TOO_SLOW_S, TOO_SLOW_RATIO * baseline_once)
            if not args.quick and once > slow:  # the first call may include compilation
                start = time.perf_counter()
                impl.fn()
                once = time.perf_counter() - start
            if not args.quick and once > slow:
                row["note"] = f"too slow to time in rounds: one call took {once:.2f} s"
                row.update(median_s=once, best_s=once, rounds=1, inner=1)
            else:
                timed[impl.label] = impl.fn
        rows.append(row)

    quick = args.quick
    timings = time_interleaved(
        timed,
        rounds=args.repeats if args.repeats else (2 if quick else None),
        budget=BUDGET[scale],
        warmup=0 if quick else 1,
        min_sample=0.0 if quick else 2e-3,
    )
    base = timings.get(baseline.label)
    for row in rows:
        t = timings.get(row["label"])
        if t is not None:
            row.update(median_s=t.median, best_s=t.best, rounds=t.rounds, inner=t.inner)
        if base is not None and "median_s" in row:
            row["ratio"] = row["median_s"] / base.median
            row["best_ratio"] = row["best_s"] / base.best
            if row["target"] is not None:
                row["target_met"] = row["ratio"] <= row["target"]
    medians = {row["label"]: row["median_s"] for row in rows if "median_s" in row}
    for row in rows:
        versus = []
        for peer, bound in peer_targets_for(problem, scale, row["library"], row["mode"]):
            if peer in medians and row["label"] in medians:
                ratio = medians[row["label"]] / medians[peer]
                versus.append({"vs": peer, "bound": bound, "ratio": ratio, "met": ratio <= bound})
        if versus:
            row["peer_targets"] = versus
    return rows, notes


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="reduced mode: tiny sizes, 2 rounds, no timing claims (used by the tests)")
    parser.add_argument("--scale", choices=("small", "large", "both"), default="both")
    parser.add_argument("--problems", default="", help="comma-separated problem names (default: all)")
    parser.add_argument("--peers", dest="peers", action="store_true", default=None,
                        help="time JAX, PyTorch and autograd when importable (default, except --quick)")
    parser.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for results.json and ratios.png")
    parser.add_argument("--repeats", type=int, default=0, help="rounds of timing (default: adaptive)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-extras", action="store_true",
                        help="skip the overhead, flop and memory measurements")
    parser.add_argument("--threads", type=int, default=0,
                        help="limit every library to N threads: BLAS, OpenMP and numexpr (threadpoolctl), "
                             "PyTorch (set_num_threads), XLA (N=1 only) (default: no limit)")
    args = parser.parse_args(argv)
    if args.peers is None:
        args.peers = not args.quick
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    problems = by_name([p for p in args.problems.split(",") if p])
    scales = ["tiny"] if args.quick else (["small", "large"] if args.scale == "both" else [args.scale])

    limiter = measures.limit_threads(args.threads) if args.threads else None
    blas = measures.blas_info()
    print(measures.format_blas(blas), flush=True)
    if args.threads:
        print(f"threads limited to {args.threads} per library", flush=True)
    found = libraries.available_peers() if args.peers else {}
    peers = [name for name, version in found.items() if not version.startswith("unavailable")]
    if args.peers:
        print("peers: " + ", ".join(f"{k} {v}" for k, v in found.items()), flush=True)
    else:
        print("peers: disabled", flush=True)

    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for scale in scales:
        for problem in problems:
            print(f"... {problem.name} [{scale}]", flush=True)
            r, n = run_problem(problem, scale, peers, args)
            rows += r
            notes += [f"{problem.name} [{scale}] {x}" for x in n]
    if peers:  # threadpools of peers (torch's OpenMP, ...) appear once they are imported
        blas = {**blas, **{"threadpools_after_peers": measures.blas_info()["threadpools"]}}

    print()
    print(report.format_table(rows))
    for note in notes:
        print(f"note: {note}")

    extras: dict[str, Any] = {}
    if not args.no_extras:
        extras = run_extras(problems, scales, args)

    failed = [r for r in rows if r["status"] != "ok" and r["library"] in ("numpy", "einsumad")]
    peer_failed = [r for r in rows if r["status"] != "ok" and r["library"] not in ("numpy", "einsumad")]
    for r in failed + peer_failed:
        print(f"failed: {r['problem']} [{r['scale']}] {r['label']}: {r['status']}: {r['error']}")
    with_target = [r for r in rows if r.get("target") is not None and "ratio" in r]
    missed = [r for r in with_target if not r["target_met"]]
    print()
    if with_target:
        print(f"targets: {len(with_target) - len(missed)} of {len(with_target)} met"
              + ("; missed: " + ", ".join(f"{r['problem']} [{r['scale']}] {r['mode']} "
                                          f"{r['ratio']:.2f}x > {r['target']:.1f}x" for r in missed)
                 if missed else ""))
    versus = [(r, v) for r in rows for v in r.get("peer_targets", ())]
    if versus:
        print("targets relative to peers (einsumad median / peer median, same run):")
        for r, v in versus:
            print(f"  {r['problem']:14s} {r['mode']:17s} {v['ratio']:5.2f}x {v['vs']:12s} "
                  f"(<= {v['bound']:.1f}x {'met' if v['met'] else 'MISSED'})")
    if limiter is not None:
        limiter.restore_original_limits()
    if peer_failed:
        print(f"{len(peer_failed)} peer row(s) failed (not einsumad's fault; see above)")
    if failed:
        print(f"!!! {len(failed)} einsumad/baseline row(s) failed: "
              + ", ".join(f"{r['problem']} [{r['scale']}] {r['label']}" for r in failed))

    data = {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "argv": sys.argv[1:] if argv is None else argv, "quick": args.quick,
            "scales": scales, "blas": blas, "peers": found, "notes": notes,
        },
        "rows": rows,
        **extras,
    }
    out = Path(args.out)
    report.write_json(out / "results.json", data)
    print(f"results written to {out / 'results.json'}")
    print(report.plot_ratios(out / "ratios.png", rows))
    return 1 if failed else 0


def run_extras(problems: list[Problem], scales: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Per-op overhead, flop counts (n-operand problems), gradient memory (largest scale)."""
    extras: dict[str, Any] = {}
    overhead = measures.op_overhead(calls=20 if args.quick else 2000, repeats=2 if args.quick else 7)
    extras["op_overhead_us"] = overhead
    print("\nper-op overhead, one ij,jk->ik node on 3x4 and 4x5 arrays (microseconds per call):")
    for k, v in overhead.items():
        print(f"  {k:26s} {v:8.1f}" if isinstance(v, float) else f"  {k:26s} {v}")

    flops: dict[str, Any] = {}
    print("\nflop counts (opt_einsum opt_cost): forward, gradient pairwise along the path, "
          "gradient as n-ary VJPs")
    for scale in scales:
        for problem in problems:
            if problem.einsum is None:
                continue
            inputs = problem.setup(np.random.default_rng(args.seed), **problem.sizes[scale])
            fc = measures.flop_counts(*problem.einsum(inputs))
            flops[f"{problem.name}/{scale}"] = fc
            print(f"  {problem.name:10s} {scale:5s} {fc['subscripts']:34s} fwd {fc['forward']:.3e}  "
                  f"bwd pairwise {fc['backward_pairwise']:.3e} ({fc['pairwise_over_forward']:.2f}x)  "
                  f"bwd n-ary {fc['backward_nary']:.3e} ({fc['nary_over_forward']:.2f}x)")
    extras["flops"] = flops

    memory: dict[str, Any] = {}
    scale = scales[-1]
    print(f"\npeak memory of an einsumad gradient ({scale} scale, tracemalloc) vs forward "
          "intermediates + gradients (target <= 1.5x):")
    for problem in problems:
        if problem.kind != "grad" or problem.losses:  # models: see the compiled memory below
            continue
        inputs = problem.setup(np.random.default_rng(args.seed), **problem.sizes[scale])
        try:
            m = measures.gradient_memory(problem, inputs)
        except Exception as exc:  # noqa: BLE001
            memory[f"{problem.name}/{scale}"] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  {problem.name:10s} ERROR {type(exc).__name__}: {exc}")
            continue
        if scale == "large":  # at small sizes Python objects, not arrays, dominate
            m["target"] = 1.5
            m["target_met"] = m["einsumad_over_expected"] <= 1.5
        memory[f"{problem.name}/{scale}"] = m
        print(f"  {problem.name:10s} expected {m['expected_bytes'] / 2**20:9.2f} MiB  "
              f"einsumad peak {m['einsumad_peak_bytes'] / 2**20:9.2f} MiB "
              f"({m['einsumad_over_expected']:.2f}x{_mark(m)})  "
              f"hand peak {m['hand_peak_bytes'] / 2**20:9.2f} MiB ({m['hand_over_expected']:.2f}x)")
    extras["memory"] = memory

    compiled: dict[str, Any] = {}
    models = [p for p in problems if p.kind == "grad" and p.peer_targets]
    if models:
        print(f"\npeak memory of a compiled gradient ({scale} scale, tracemalloc; planned: the call's "
              "peak plus the buffers kept between calls):")
    for problem in models:
        inputs = problem.setup(np.random.default_rng(args.seed), **problem.sizes[scale])
        try:
            m = measures.compiled_memory(problem, inputs)
        except Exception as exc:  # noqa: BLE001
            compiled[f"{problem.name}/{scale}"] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  {problem.name:14s} ERROR {type(exc).__name__}: {exc}")
            continue
        compiled[f"{problem.name}/{scale}"] = m
        print(f"  {problem.name:14s} fresh allocations {m['fresh_bytes'] / 2**20:8.2f} MiB   "
              f"planned buffers {m['planned_bytes'] / 2**20:8.2f} MiB "
              f"({m['planned_call_peak_bytes'] / 2**20:.2f} + {m['planned_kept_bytes'] / 2**20:.2f} kept; "
              f"{m['planned_over_fresh']:.2f}x)")
    extras["compiled_memory"] = compiled
    return extras


def _mark(m: dict[str, Any]) -> str:
    if "target_met" not in m:
        return ""
    return ", met" if m["target_met"] else ", MISSED"


if __name__ == "__main__":
    raise SystemExit(main())
