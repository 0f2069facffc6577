"""Interleaved timing: rounds of A B C, A B C, ... so drift hits every contender alike.

Each contender is warmed up, then its one-call duration is measured to choose
how many calls make one sample (``inner``: enough to fill ``min_sample``
seconds, so tiny problems are not at the mercy of the clock's resolution) and,
unless fixed, how many rounds fit in ``budget`` seconds. Each round runs every
contender once, starting from a different one each round. Reported: the median
and the best per-call time over the rounds.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["Timing", "time_interleaved"]


@dataclass
class Timing:
    median: float
    best: float
    rounds: int
    inner: int
    samples: list[float]


def _one_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    rounds: int | None = None,
    budget: float = 2.0,
    min_rounds: int = 5,
    max_rounds: int = 100,
    min_sample: float = 2e-3,
    warmup: int = 1,
) -> dict[str, Timing]:
    """Time every callable in ``fns`` in interleaved rounds; per-call seconds.

    Args:
        fns: label -> zero-argument callable.
        rounds: fixed number of rounds; adaptive to ``budget`` when None.
        budget: seconds for all rounds of all contenders together (adaptive mode).
        min_rounds, max_rounds: bounds of the adaptive round count.
        min_sample: a sample repeats a call until it lasts at least this long.
        warmup: calls of each contender before measuring.
    """
    if not fns:
        return {}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    one = {label: min(_one_call(fn) for _ in range(2 if rounds is None else 1))
           for label, fn in fns.items()}
    inner = {label: max(1, math.ceil(min_sample / max(t, 1e-9))) for label, t in one.items()}
    if rounds is None:
        per_round = sum(one[label] * inner[label] for label in fns)
        rounds = int(min(max_rounds, max(min_rounds, budget / max(per_round, 1e-9))))
    labels = list(fns)
    samples: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(rounds):
        gc.collect()
        order = labels[r % len(labels):] + labels[: r % len(labels)]
        for label in order:
            fn, n = fns[label], inner[label]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples[label].append((time.perf_counter() - start) / n)
    return {
        label: Timing(statistics.median(s), min(s), rounds, inner[label], s)
        for label, s in samples.items()
    }
