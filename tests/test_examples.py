"""Run every example in its reduced (``quick``) mode; each example asserts its own result.

The examples are imported by path (they are scripts, not a package) and their
``main(quick=True)`` is called; one is also run as a subprocess to check the
command line. Nothing is written into the repository: the PNG goes to tmp_path.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"einsumad_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WITH_QUICK_MODE = {"mlp_digits", "attention", "tensor_train", "hessian_logreg", "dask_least_squares"}
OTHERS = sorted({p.stem for p in EXAMPLES.glob("*.py")} - WITH_QUICK_MODE)


def test_the_issue_examples_exist():
    assert WITH_QUICK_MODE <= {p.stem for p in EXAMPLES.glob("*.py")}


@pytest.mark.parametrize("name", OTHERS)
def test_other_examples_run(name, capsys):
    """Every other script in examples/ (e.g. quickstart.py) runs and asserts what it shows."""
    load(name).main()
    assert capsys.readouterr().out


def test_mlp_digits(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    png = tmp_path / "loss.png"
    result = load("mlp_digits").main(quick=True, png=png)
    assert result["test_accuracy"] >= 0.80
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_attention():
    result = load("attention").main(quick=True)
    assert result["max_relative_error"] < 1e-6


def test_attention_matches_a_plain_numpy_reference():
    attention = load("attention")
    rng = np.random.default_rng(1)
    params = attention.init_params(6, 3, 2, rng)
    x = rng.normal(size=(2, 4, 6))
    mask = attention.causal_mask(4)
    for m in (None, mask):
        np.testing.assert_allclose(
            attention.self_attention(params, x, m), attention.reference_attention(params, x, m), rtol=1e-12
        )


def test_tensor_train():
    result = load("tensor_train").main(quick=True)
    assert result["loss_after"] < result["loss_before"] / 5


def test_tensor_train_chain_subscripts():
    tt = load("tensor_train")
    assert tt.chain_subscripts(3) == "n p1, n p2, n p3, p1 b1, b1 p2 b2, b2 p3 -> n"


def test_hessian_logreg():
    result = load("hessian_logreg").main(quick=True)
    assert result["relative_error"] < 1e-8


def test_hessian_logreg_closed_form_is_a_true_hessian():
    # The example's yardstick itself, against finite differences of the NumPy loss.
    module = load("hessian_logreg")
    X, y = module.make_data(30, 3)
    w = np.array([0.2, -0.4, 0.1])

    def numpy_grad(w):
        p = 1 / (1 + np.exp(-(X @ w)))
        return X.T @ (p - y)

    eps = 1e-6
    numeric = np.stack([(numpy_grad(w + eps * e) - numpy_grad(w - eps * e)) / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(module.closed_form_hessian(w, X), numeric, rtol=1e-7)


def test_dask_least_squares():
    """Two worker processes fit the model; the first gradient equals the chunk-by-chunk NumPy sum."""
    pytest.importorskip("dask.array", reason="Dask is not installed (pip install 'einsumad[backends]')")
    pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'einsumad[backends]')")
    pytest.importorskip("array_api_compat", reason="array-api-compat is not installed (pip install 'einsumad[backends]')")
    result = load("dask_least_squares").main(quick=True)
    assert result["max_gradient_difference"] < 1e-10
    assert result["workers_restarted"] == 0
    assert result["loss_last"] < result["loss_first"] / 100


def test_quick_flag_on_the_command_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "hessian_logreg.py"), "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "relative error" in done.stdout
    assert list(tmp_path.iterdir()) == []
