"""More data than a worker's memory: 4 GiB of lazily generated data on two Dask workers
with a 1 GiB memory limit each. The gradient equals the chunk-by-chunk NumPy sum and no
worker is killed. Slow (about a minute on two cores): ``pytest -m slow tests/test_dask_out_of_core.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_least_squares.py"
INSTALL = "pip install 'einsumad[backends]'"


@pytest.mark.slow
def test_four_gib_of_data_on_two_workers_of_one_gib():
    pytest.importorskip("dask.array", reason=f"Dask is not installed ({INSTALL})")
    pytest.importorskip("distributed", reason=f"dask.distributed is not installed ({INSTALL})")
    pytest.importorskip("array_api_compat", reason=f"array-api-compat is not installed ({INSTALL})")
    spec = importlib.util.spec_from_file_location("einsumad_example_dask_least_squares", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(
        rows=8_388_608, features=64, chunk_rows=131_072, workers=2, threads=1,
        memory_limit="1GiB", steps=1, check=True,
    )
    assert result["data_bytes"] > 4 * 2**30          # X alone is 4 GiB, y another 64 MiB
    assert result["peak_worker_memory"] < 2**30       # each worker stayed under its limit
    assert result["workers_restarted"] == 0
    assert result["max_gradient_difference"] < 1e-10  # equals the chunk-by-chunk NumPy gradient
