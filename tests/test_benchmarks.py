"""The benchmark runner in its reduced mode (tiny sizes, two rounds, no peers).

No timing is asserted: this only keeps the suite from rotting. Every problem must
be built, every einsumad result verified against the hand-derived NumPy one, and
the JSON written.
"""

from __future__ import annotations

import json

from benchmarks.problems import PROBLEMS
from benchmarks.run import main


def test_quick_run_verifies_every_problem(tmp_path, capsys):
    status = main(["--quick", "--no-peers", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    data = json.loads((tmp_path / "results.json").read_text())
    rows = data["rows"]
    assert {r["problem"] for r in rows} == {p.name for p in PROBLEMS}
    for problem in PROBLEMS:
        libraries = {(r["library"], r["mode"]) for r in rows if r["problem"] == problem.name}
        assert ("numpy", "hand") in libraries
        assert ("einsumad", "eager") in libraries
    failed = [(r["problem"], r["label"], r.get("error")) for r in rows if r["status"] != "ok"]
    assert not failed
    assert all(r["median_s"] > 0 and r["ratio"] > 0 for r in rows)
    assert {"op_overhead_us", "flops", "memory"} <= set(data)
    assert data["flops"]["mps/tiny"]["backward_pairwise"] < data["flops"]["mps/tiny"]["backward_nary"]
    assert "BLAS" in out


def test_hand_derived_gradients_match_finite_differences():
    """The baselines are the truths: check each against central finite differences."""
    import numpy as np

    rng = np.random.default_rng(1)
    for problem in PROBLEMS:
        if problem.kind != "grad":
            continue
        inputs = problem.setup(rng, **problem.sizes["tiny"])
        value, grads = problem.reference(inputs.params, inputs.consts)
        assert np.isclose(value, problem.loss(np, inputs.params, inputs.consts))
        for k, (p, g) in enumerate(zip(inputs.params, grads)):
            d = rng.standard_normal(p.shape)
            eps = 1e-6

            def f(t):
                params = list(inputs.params)
                params[k] = p + t * d
                return problem.reference(tuple(params), inputs.consts)[0]

            numeric = (f(eps) - f(-eps)) / (2 * eps)
            assert np.isclose(np.vdot(g, d), numeric, rtol=1e-5, atol=1e-7), (problem.name, k)
