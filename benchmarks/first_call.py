"""What the first call of ``ea.compile(ea.grad(f))`` costs beside one eager ``ea.grad(f)``.

``f`` is a long elementwise loop, ``x = sin(x) * 0.999 + 0.001`` repeated
``--steps`` times on 3 numbers, then summed: its gradient is a program of six
instructions per step. Each measurement runs in a fresh Python process (the
peak memory of a process only grows); the ratios are to the eager gradient
measured the same way, in the same run::

    python -m benchmarks.first_call                  # 100,000 steps
    python -m benchmarks.first_call --steps 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import einsumad as ea


def chain(steps: int):
    def f(x):
        for _ in range(steps):
            x = ea.sin(x) * 0.999 + 0.001
        return ea.sum(x)

    return f


def run_once(mode: str, steps: int) -> dict[str, float]:
    """In this process: the time of one gradient (``eager``, or the first ``compiled``
    call) and this process's peak resident memory, in MiB (Linux and macOS)."""
    import resource

    f, x = chain(steps), np.linspace(0, 1, 3)
    start = time.perf_counter()
    g = ea.grad(f)(x) if mode == "eager" else ea.compile(ea.grad(f))(x)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    return {"seconds": seconds, "peak_mib": peak, "gradient": g.tolist()}


def measure(steps: int = 100_000, rounds: int = 1) -> dict[str, dict[str, float]]:
    """Median time and peak memory of each mode over ``rounds`` fresh processes."""
    results: dict[str, dict[str, float]] = {}
    for mode in ("eager", "compiled"):
        runs = []
        for _ in range(rounds):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.first_call", "--child", mode, "--steps", str(steps)],
                capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
            )
            runs.append(json.loads(out.stdout))
        results[mode] = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "peak_mib": statistics.median(r["peak_mib"] for r in runs),
            "gradient": runs[0]["gradient"],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", choices=("eager", "compiled"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(run_once(options.child, options.steps)))
        return
    results = measure(options.steps, options.rounds)
    eager = results["eager"]
    print(f"{options.steps:,}-step loop, gradient ({6 * options.steps:,} instructions), median of {options.rounds}")
    for mode, r in results.items():
        print(
            f"{mode:9s} {r['seconds']:7.2f} s {r['seconds'] / eager['seconds']:5.2f}x   "
            f"peak {r['peak_mib']:6.0f} MiB {r['peak_mib'] / eager['peak_mib']:5.2f}x"
        )


if __name__ == "__main__":
    main()
