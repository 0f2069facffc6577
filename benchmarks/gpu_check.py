"""GPU check: einsumad's derivatives on CUDA arrays (PyTorch, CuPy), checked and timed.

    python benchmarks/gpu_check.py                     # every CUDA library found
    python benchmarks/gpu_check.py --device cpu        # the same run on CPU tensors (a dry run)
    python benchmarks/gpu_check.py --problems matmul,mlp --budget 5

Without a CUDA device (and without ``--device cpu``) it says so and exits 0.

For every library with a CUDA device (PyTorch with ``torch.cuda.is_available()``,
CuPy with a visible device) and every benchmark problem (``benchmarks/problems.py``,
the losses ``python -m benchmarks`` times on the CPU):

1. **check**: at the small scale, einsumad's derivative computed on the device
   (value and gradient, a Hessian-vector product, a Hessian) equals the
   hand-derived NumPy result computed on the CPU in float64 (``rtol=1e-6``), and
   stays on the device;
2. **time**: at the large scale, the same derivative on the device is timed
   (interleaved rounds, the device synchronised after each call) against the NumPy
   CPU gradient (the hand-derived one, the benchmark's baseline, and einsumad's on
   NumPy arrays) and, for PyTorch, against ``torch.autograd`` on the same device.

Exit status 1 when a check fails. Run from the checkout root (``benchmarks`` is
not part of the installed package).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import einsumad as ea  # noqa: E402
from benchmarks.problems import PROBLEMS, Problem  # noqa: E402
from benchmarks.timer import time_interleaved  # noqa: E402
from einsumad.core.arrays import to_numpy  # noqa: E402


class Library:
    """A library on a device: how to move NumPy arrays there and wait for its work."""

    def __init__(self, name: str, convert: Callable[[np.ndarray], Any], sync: Callable[[], None], device: str,
                 owns: Callable[[Any], bool]):
        self.name, self.convert, self.sync, self.device, self.owns = name, convert, sync, device, owns

    @property
    def label(self) -> str:
        return f"{self.name} ({self.device})"


def find_libraries(device: str | None) -> tuple[list[Library], list[str]]:
    """The libraries to run, and why the others are not run."""
    found: list[Library] = []
    missing: list[str] = []
    try:
        import torch
    except ImportError:
        missing.append("PyTorch is not installed")
    else:
        target = device or ("cuda" if torch.cuda.is_available() else None)
        if target is None:
            missing.append("PyTorch sees no CUDA device (torch.cuda.is_available() is False)")
        else:
            sync = torch.cuda.synchronize if target.startswith("cuda") else (lambda: None)
            found.append(Library(
                "torch", lambda a, t=target: torch.as_tensor(np.asarray(a), device=t), sync, target,
                lambda x, t=target: isinstance(x, torch.Tensor) and x.device.type == torch.device(t).type,
            ))
    if device in (None, "cuda"):
        try:
            import cupy
        except ImportError:
            missing.append("CuPy is not installed")
        else:
            try:
                count = cupy.cuda.runtime.getDeviceCount()
            except Exception as error:  # noqa: BLE001  (no driver, no device)
                count, reason = 0, str(error)
            else:
                reason = "no device"
            if count:
                found.append(Library(
                    "cupy", cupy.asarray, lambda: cupy.cuda.Device().synchronize(), "cuda",
                    lambda x: isinstance(x, cupy.ndarray),
                ))
            else:
                missing.append(f"CuPy sees no CUDA device ({reason})")
    return found, missing


def _derivative(problem: Problem, loss_namespace: Any) -> Callable[[Any, dict], Any]:
    """einsumad's derivative of the problem, as in ``python -m benchmarks``."""
    if problem.kind == "grad":
        return ea.value_and_grad(lambda p, c: problem.loss(loss_namespace, p, c))
    if problem.kind == "hvp":
        g = ea.grad(lambda x, c: problem.loss(loss_namespace, (x,), c))
        return ea.grad(lambda x, c: ea.sum(g(x, c) * c["v"]))
    return ea.hessian(lambda w, c: problem.loss(loss_namespace, (w,), c))


def _flatten(kind: str, result: Any) -> list[Any]:
    if kind == "grad":
        value, grads = result
        return [value, *grads]
    return [result]


def _on(library: Library, problem: Problem, params: tuple, consts: dict) -> tuple[Any, dict]:
    moved = tuple(library.convert(p) for p in params)
    arg = moved if problem.kind == "grad" else moved[0]
    return arg, {k: library.convert(v) for k, v in consts.items()}


def _torch_autograd(problem: Problem, params: tuple, consts: dict) -> Callable[[], Any]:
    import torch

    ps = [p.detach().clone().requires_grad_() for p in params]
    if problem.kind == "grad":
        def call() -> Any:
            loss = problem.loss(torch, tuple(ps), consts)
            return loss.detach(), torch.autograd.grad(loss, ps)
    elif problem.kind == "hvp":
        def call() -> Any:
            (g,) = torch.autograd.grad(problem.loss(torch, (ps[0],), consts), ps[0], create_graph=True)
            return torch.autograd.grad(torch.sum(g * consts["v"]), ps[0])[0]
    else:
        def call() -> Any:
            return torch.autograd.functional.hessian(
                lambda w: problem.loss(torch, (w,), consts), ps[0].detach(), vectorize=True
            )
    return call


def check(library: Library, problem: Problem, scale: str, seed: int) -> str | None:
    """None when einsumad's derivative on the device equals the NumPy reference; else why not."""
    inputs = problem.setup(np.random.default_rng(seed), **problem.sizes[scale])
    arg, consts = _on(library, problem, inputs.params, inputs.consts)
    try:
        result = _flatten(problem.kind, _derivative(problem, ea)(arg, consts))
    except Exception as error:  # noqa: BLE001  (reported)
        return f"{type(error).__name__}: {error}"
    expected = _flatten(problem.kind, problem.reference(inputs.params, inputs.consts))
    for k, (got, want) in enumerate(zip(result, expected)):
        if not library.owns(got):
            return f"result {k} is a {type(got).__module__}.{type(got).__name__}, not on {library.label}"
        if not np.allclose(to_numpy(got), want, rtol=1e-6, atol=1e-9):
            return f"result {k} differs from NumPy by {np.max(np.abs(to_numpy(got) - want)):.3g}"
    return None


def time_problem(library: Library, problem: Problem, scale: str, seed: int, budget: float) -> dict[str, float]:
    """Median seconds per call of each contender on the problem's large inputs."""
    inputs = problem.setup(np.random.default_rng(seed), **problem.sizes[scale])
    params, consts = inputs.params, inputs.consts
    arg, dev_consts = _on(library, problem, params, consts)
    on_device = _derivative(problem, ea)
    on_numpy = _derivative(problem, ea)
    numpy_arg = params if problem.kind == "grad" else params[0]

    def synced(fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            out = fn()
            library.sync()
            return out
        return call

    fns: dict[str, Callable[[], Any]] = {
        "numpy hand (cpu)": lambda: problem.reference(params, consts),
        "einsumad numpy (cpu)": lambda: on_numpy(numpy_arg, consts),
        f"einsumad {library.label}": synced(lambda: on_device(arg, dev_consts)),
    }
    if library.name == "torch":
        moved = tuple(library.convert(p) for p in params)
        fns[f"torch autograd ({library.device})"] = synced(_torch_autograd(problem, moved, dev_consts))
    timings = time_interleaved(fns, budget=budget)
    return {label: t.median for label, t in timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], help="default: CUDA when available")
    parser.add_argument("--problems", help="comma-separated names (default: all)")
    parser.add_argument("--check-scale", default="small", choices=["tiny", "small", "large"])
    parser.add_argument("--scale", default="large", choices=["tiny", "small", "large"], help="timed scale")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timing per problem")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    libraries, missing = find_libraries(args.device)
    if not libraries:
        print("no CUDA device: " + "; ".join(missing) + ". Nothing to check (run with --device cpu for a dry run).")
        return 0
    for reason in missing:
        print(f"skipped: {reason}")
    names = args.problems.split(",") if args.problems else [p.name for p in PROBLEMS]
    problems = [p for p in PROBLEMS if p.name in names]
    failed = 0
    for library in libraries:
        print(f"\n{library.label}: check at the {args.check_scale} scale, timing at the {args.scale} scale")
        header = f"{'problem':15s} {'check':6s} {'einsumad':>10s} {'/ numpy hand':>13s} {'/ einsumad np':>14s} {'/ autograd':>11s}"
        print(header)
        for problem in problems:
            problem_failure = check(library, problem, args.check_scale, args.seed)
            if problem_failure is not None:
                failed += 1
                print(f"{problem.name:15s} FAILED {problem_failure}")
                continue
            times = time_problem(library, problem, args.scale, args.seed, args.budget)
            ours = times[f"einsumad {library.label}"]
            autograd = times.get(f"torch autograd ({library.device})")
            print(
                f"{problem.name:15s} {'ok':6s} {ours * 1e3:8.2f}ms {ours / times['numpy hand (cpu)']:12.2f}x "
                f"{ours / times['einsumad numpy (cpu)']:13.2f}x "
                + (f"{ours / autograd:10.2f}x" if autograd else f"{'-':>11s}")
            )
    print("\nratios: einsumad on the device over the NumPy CPU gradients (hand-derived; einsumad on NumPy)"
          " and over the library's own autograd on the same device; below 1 is faster")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
