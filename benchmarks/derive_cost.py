"""What ``ea.derive`` costs beside ``ea.grad``, on a batch-128 64-64-10 network.

``derive`` records the forward pass and subscribes to the one backward pass
(the same tape ``grad`` runs); the textbook text is built only when it is
printed, and the Jacobian view only when asked for. The ratios are to
``ea.grad`` of the same loss, timed in the same run::

    python -m benchmarks.derive_cost
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

import einsumad as ea


def loss(W1, b1, W2, b2, X, Y):
    a1 = ea.sigmoid(X @ W1 + b1)
    return -ea.mean(ea.sum(Y * ea.log_softmax(a1 @ W2 + b2, axis=1), axis=1))


def arguments(batch: int = 128, n_in: int = 64, hidden: int = 64, n_out: int = 10, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(batch, n_in)), np.eye(n_out)[rng.integers(0, n_out, batch)]
    return rng.normal(size=(n_in, hidden)) / 8, np.zeros(hidden), rng.normal(size=(hidden, n_out)) / 8, np.zeros(n_out), X, Y


def measure(rounds: int = 5, number: int = 5) -> dict[str, float]:
    """Best time per call, in seconds, of grad, derive, and derive printed."""
    args = arguments()
    grad = ea.grad(loss, argnums=(0, 1, 2, 3))
    calls = {
        "ea.grad": lambda: grad(*args),
        "ea.derive": lambda: ea.derive(loss, *args, wrt=[0, 1, 2, 3]),
        "str(ea.derive(...))": lambda: str(ea.derive(loss, *args, wrt=[0, 1, 2, 3])),
    }
    times = {}
    for name, call in calls.items():
        call()
        times[name] = min(timeit.repeat(call, number=number, repeat=rounds)) / number
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    times = measure(options.rounds)
    for name, seconds in times.items():
        print(f"{name:22s} {seconds * 1e3:8.2f} ms   {seconds / times['ea.grad']:6.2f}x ea.grad")


if __name__ == "__main__":
    main()
