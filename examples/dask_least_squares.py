"""Least squares on a data set chunked across Dask workers: the gradient is one task graph.

    python examples/dask_least_squares.py                          # a LocalCluster: 2 worker processes
    python examples/dask_least_squares.py --persist --compare-numpy    # data kept in memory; vs NumPy
    python examples/dask_least_squares.py --scheduler tcp://host:8786   # an existing cluster
    python examples/dask_least_squares.py --rows 8388608 --features 64 --memory-limit 1GiB --steps 1 --check
                                                                   # 4 GiB of data, 1 GiB per worker

The data never exist on the client: ``X`` (rows x features) and ``y = X w_true + noise``
are generated block by block on the workers. The model is written once with einsumad
ops, exactly as for NumPy arrays::

    L(w) = sum_n (sum_d X[n,d] w[d] - y[n])^2 / N        grad: 2/N sum_n X[n,d] r[n]  (the swap)

``ea.value_and_grad`` on Dask arrays returns lazy Dask arrays: the forward pass and the
backward pass (each einsum's VJP is an einsum, run by Dask's tensordot through
opt_einsum) form one task graph, which ``dask.compute`` hands to the scheduler. Each
step of gradient descent is one such graph.

``--check`` compares the first gradient with the same sum computed chunk by chunk in
NumPy on the client; ``--compare-numpy`` times the in-memory NumPy gradient against the
Dask one on the same data. The script reports the time per gradient, the workers' peak
memory (sampled), and whether any worker was restarted (a worker over its memory limit
is killed and restarted by its nanny).
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from typing import Any

import numpy as np

import einsumad as ea


def x_block(rows: int, features: int, seed: int, block_id: tuple[int, ...] = (0, 0)) -> np.ndarray:
    """Block ``block_id`` of the design matrix: standard normal, its own seed."""
    return np.random.default_rng([seed, block_id[0]]).standard_normal((rows, features))


def y_block(x: np.ndarray, w_true: np.ndarray, seed: int, block_id: tuple[int, ...] = (0,)) -> np.ndarray:
    """Targets of one block: ``x w_true`` plus noise of standard deviation 0.1."""
    noise = np.random.default_rng([seed, block_id[0], 1]).standard_normal(x.shape[0])
    return x @ w_true + 0.1 * noise


def make_data(rows: int, features: int, chunk_rows: int, seed: int) -> tuple[Any, Any, np.ndarray]:
    """Lazy Dask arrays X and y, generated on the workers block by block, and w_true."""
    import dask.array as da

    w_true = np.linspace(-1.0, 1.0, features)
    sizes = [chunk_rows] * (rows // chunk_rows) + ([rows % chunk_rows] if rows % chunk_rows else [])
    X = da.map_blocks(
        lambda block_id=None: x_block(sizes[block_id[0]], features, seed, block_id),
        chunks=(tuple(sizes), (features,)), dtype=np.float64, meta=np.empty((0, 0)),
    )
    y = X.map_blocks(
        lambda x, block_id=None: y_block(x, w_true, seed, block_id),
        drop_axis=1, dtype=np.float64, meta=np.empty((0,)),
    )
    return X, y, w_true


def loss(w: Any, X: Any, y: Any) -> Any:
    """Mean squared residual: ``sum_n (X w - y)_n^2 / N``, for NumPy and Dask arrays alike."""
    r = ea.einsum("nd,d->n", X, w) - y
    return ea.sum(r * r) / r.shape[0]


def numpy_gradient_by_chunks(w: np.ndarray, rows: int, features: int, chunk_rows: int, seed: int) -> tuple[float, np.ndarray]:
    """The loss and gradient summed chunk by chunk in NumPy (the reference for ``--check``)."""
    w_true = np.linspace(-1.0, 1.0, features)
    total, grad = 0.0, np.zeros(features)
    for i in range(math.ceil(rows / chunk_rows)):
        n = min(chunk_rows, rows - i * chunk_rows)
        x = x_block(n, features, seed, (i, 0))
        r = x @ w - y_block(x, w_true, seed, (i,))
        total += float(r @ r)
        grad += x.T @ r
    return total / rows, 2 * grad / rows


class MemorySampler:
    """Samples every worker's resident memory (RSS) a few times a second."""

    def __init__(self, client: Any, interval: float = 0.1):
        self.client = client
        self.interval = interval
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                for worker, rss in self.client.run(lambda: psutil.Process().memory_info().rss).items():
                    self.peak[worker] = max(self.peak.get(worker, 0), rss)
            except Exception:  # noqa: BLE001  (a worker restarting: keep sampling)
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main(
    quick: bool = False,
    scheduler: str | None = None,
    workers: int = 2,
    threads: int = 1,
    memory_limit: str = "2GiB",
    rows: int = 2_000_000,
    features: int = 32,
    chunk_rows: int = 125_000,
    steps: int = 5,
    lr: float = 0.4,
    check: bool = False,
    compare_numpy: bool = False,
    persist: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    if quick:
        rows, features, chunk_rows, steps, check, memory_limit = 200_000, 16, 25_000, 3, True, "1GiB"
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=threads, processes=True,
            memory_limit=memory_limit, dashboard_address=None,
        )
    client = Client(scheduler if scheduler is not None else cluster)
    try:
        before = set(client.scheduler_info()["workers"])
        print(f"cluster: {len(before)} workers, memory limit {memory_limit} each"
              if cluster is not None else f"cluster: {scheduler}, {len(before)} workers")
        X, y, w_true = make_data(rows, features, chunk_rows, seed)
        print(f"data: X {X.shape} float64 = {_gib(X.nbytes)} in {X.numblocks[0]} chunks, generated on the workers"
              + (", kept in their memory" if persist else ", again for every gradient"))
        if persist:
            from distributed import wait

            X, y = client.persist([X, y])
            wait([X, y])

        step_fn = ea.value_and_grad(loss)
        w = np.zeros(features)
        times, losses, first = [], [], None
        with MemorySampler(client) as memory:
            for step in range(steps):
                start = time.perf_counter()
                value, grad = step_fn(da.from_array(w, chunks=-1), X, y)   # lazy: a task graph
                value, grad = dask.compute(value, grad)
                times.append(time.perf_counter() - start)
                losses.append(float(value))
                if first is None:
                    first = (float(value), np.array(grad))
                w = w - lr * np.asarray(grad)
                print(f"step {step}: loss {losses[-1]:.6f}  ({times[-1]:.2f} s)")
        after = set(client.scheduler_info()["workers"])
        restarted = len(before - after)
        result: dict[str, Any] = {
            "loss_first": losses[0], "loss_last": losses[-1], "seconds_per_gradient": float(np.median(times)),
            "peak_worker_memory": max(memory.peak.values(), default=0), "workers_restarted": restarted,
            "data_bytes": X.nbytes + y.nbytes, "error_w": float(np.max(np.abs(w - w_true))),
        }
        print(f"gradient: {result['seconds_per_gradient']:.2f} s (median); peak worker memory "
              f"{_gib(result['peak_worker_memory'])}; workers restarted: {restarted}")
        if check:
            start = time.perf_counter()
            value_np, grad_np = numpy_gradient_by_chunks(np.zeros(features), rows, features, chunk_rows, seed)
            seconds = time.perf_counter() - start
            assert first is not None
            result["max_gradient_difference"] = float(np.max(np.abs(first[1] - grad_np)))
            result["relative_loss_difference"] = abs(first[0] - value_np) / value_np
            print(f"check: the first gradient equals the chunk-by-chunk NumPy sum to "
                  f"{result['max_gradient_difference']:.1e} (NumPy chunk by chunk: {seconds:.2f} s)")
            np.testing.assert_allclose(first[1], grad_np, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(first[0], value_np, rtol=1e-9)
        if compare_numpy:
            result.update(_compare_with_numpy(client, X, y, features))
        assert restarted == 0, "a worker was restarted (killed over its memory limit)"
        assert steps < 2 or losses[-1] < losses[0]
        return result
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _compare_with_numpy(client: Any, X: Any, y: Any, features: int) -> dict[str, Any]:
    """The same gradient on the same data in memory: NumPy eager on the client, Dask on the
    cluster with the data persisted in the workers' memory."""
    import dask
    import dask.array as da
    from distributed import wait

    Xn, yn = X.compute(), y.compute()   # the data in the client's memory
    w = np.linspace(0.5, -0.5, features)
    grad_np = ea.grad(loss)
    numpy_times = []
    for _ in range(5):
        start = time.perf_counter()
        g_np = grad_np(w, Xn, yn)
        numpy_times.append(time.perf_counter() - start)
    Xp, yp = client.persist([X, y])
    wait([Xp, yp])
    dask_times = []
    for _ in range(5):
        start = time.perf_counter()
        g = ea.grad(loss)(da.from_array(w, chunks=-1), Xp, yp)
        (g_dask,) = dask.compute(g)
        dask_times.append(time.perf_counter() - start)
    np.testing.assert_allclose(g_dask, g_np, rtol=1e-9)
    hand_times = []   # the same gradient written by hand in Dask: what Dask itself costs
    for _ in range(5):
        start = time.perf_counter()
        r = Xp @ da.from_array(w, chunks=-1) - yp
        (g_hand,) = dask.compute(2 * (Xp.T @ r) / r.shape[0])
        hand_times.append(time.perf_counter() - start)
    np.testing.assert_allclose(g_hand, g_np, rtol=1e-9)
    Xl, yl = da.from_array(Xn, chunks=X.chunks), da.from_array(yn, chunks=y.chunks)
    threaded_times = []   # Dask's synchronous scheduler in this process, on the client's copy
    for _ in range(5):
        start = time.perf_counter()
        (g_threads,) = dask.compute(ea.grad(loss)(da.from_array(w, chunks=-1), Xl, yl), scheduler="sync")
        threaded_times.append(time.perf_counter() - start)
    np.testing.assert_allclose(g_threads, g_np, rtol=1e-9)
    tasks = len(dict(ea.grad(loss)(da.from_array(w, chunks=-1), Xp, yp).__dask_graph__()))
    t_np, t_dask, t_hand, t_threads = (
        float(np.median(t)) for t in (numpy_times, dask_times, hand_times, threaded_times)
    )
    print(f"in memory ({_gib(Xn.nbytes)}, {X.numblocks[0]} chunks): NumPy gradient {t_np * 1e3:.0f} ms; "
          f"einsumad on the Dask cluster {t_dask * 1e3:.0f} ms ({t_dask / t_np:.2f}x NumPy, {tasks} tasks); "
          f"the same gradient written by hand in Dask {t_hand * 1e3:.0f} ms ({t_hand / t_np:.2f}x); "
          f"einsumad on Dask's synchronous scheduler in this process {t_threads * 1e3:.0f} ms ({t_threads / t_np:.2f}x)")
    return {"numpy_seconds": t_np, "dask_seconds": t_dask, "dask_over_numpy": t_dask / t_np, "tasks": tasks,
            "hand_dask_seconds": t_hand, "sync_seconds": t_threads}


def _parse() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler (tcp://host:port)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    parser.add_argument("--memory-limit", default="2GiB", help="per LocalCluster worker (default 2GiB)")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--chunk-rows", type=int, default=125_000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.4)
    parser.add_argument("--check", action="store_true", help="compare with the chunk-by-chunk NumPy gradient")
    parser.add_argument("--compare-numpy", action="store_true", help="time NumPy and Dask on the same data in memory")
    parser.add_argument("--persist", action="store_true", help="keep the data in the workers' memory between steps")
    parser.add_argument("--quick", action="store_true", help="a small run with --check (the test suite's)")
    parser.add_argument("--seed", type=int, default=0)
    return {k.replace("-", "_"): v for k, v in vars(parser.parse_args()).items()}


if __name__ == "__main__":
    main(**_parse())
