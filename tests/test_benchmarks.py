"""The benchmark runner in its reduced mode (tiny sizes, two rounds, no peers).

No timing is asserted: this only keeps the suite from rotting. Every problem must
be built, every einsumad result verified against the hand-derived NumPy one, and
the JSON written.
"""

from __future__ import annotations

import json

import numpy as np

import einsumad as ea
from benchmarks.problems import PROBLEMS
from benchmarks.run import main
from tests.numeric import numerical_gradient, sin_chain_gradient


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


def test_heisenberg_mpo_is_the_heisenberg_hamiltonian():
    """The MPS-energy problem's MPO, contracted to a dense matrix, equals the sum of
    S_i · S_{i+1} built from Kronecker products (n = 4)."""
    import numpy as np

    from benchmarks.models import heisenberg_mpo

    n = 4
    sx = np.array([[0.0, 0.5], [0.5, 0.0]])
    sy = np.array([[0.0, -0.5j], [0.5j, 0.0]])
    sz = np.diag([0.5, -0.5])
    dense = np.zeros((2**n, 2**n), dtype=complex)
    for i in range(n - 1):
        for s in (sx, sy, sz):
            ops = [np.eye(2)] * n
            ops[i], ops[i + 1] = s, s
            term = ops[0]
            for o in ops[1:]:
                term = np.kron(term, o)
            dense += term
    W = heisenberg_mpo(n)
    H = W[0][0]  # (v, out, in)
    for core in W[1:]:
        H = np.einsum("vab,vwcd->wacbd", H, core).reshape(core.shape[1], H.shape[1] * 2, H.shape[2] * 2)
    np.testing.assert_allclose(H[0], dense.real, atol=1e-14)
    assert np.allclose(dense.imag, 0)
    assert np.isclose(np.linalg.eigvalsh(dense.real)[0], -1.6160254037844386)  # the open chain's ground state


def test_newton_reference_solves_the_finite_difference_newton_system():
    """w_new = w - H^-1 g, with g and H by central differences of the loss."""
    import numpy as np

    from benchmarks.problems import by_name

    (problem,) = by_name(["newton"])
    inputs = problem.setup(np.random.default_rng(3), **problem.sizes["tiny"])
    (w,) = inputs.params
    f = lambda v: float(problem.loss(np, (v,), inputs.consts))  # noqa: E731
    eps, d = 1e-4, len(w)
    eye = np.eye(d) * eps
    g = np.array([(f(w + e) - f(w - e)) / (2 * eps) for e in eye])
    H = np.array([[(f(w + a + b) - f(w + a - b) - f(w - a + b) + f(w - a - b)) / (4 * eps**2) for b in eye] for a in eye])
    np.testing.assert_allclose(problem.reference(inputs.params, inputs.consts), w - np.linalg.solve(H, g), rtol=1e-5)


def test_derive_cost_times_grad_derive_and_the_printed_view():
    from benchmarks import derive_cost

    times = derive_cost.measure(rounds=1, number=1)
    assert list(times) == ["ea.grad", "ea.derive", "str(ea.derive(...))"] and all(t > 0 for t in times.values())
    args = derive_cost.arguments(batch=4, n_in=3, hidden=5, n_out=2)
    d = ea.derive(derive_cost.loss, *args, wrt=[0, 1, 2, 3])
    for k, name in enumerate(["W1", "b1", "W2", "b2"]):
        fd = numerical_gradient(lambda *a: float(derive_cost.loss(*a)), list(args), k)
        np.testing.assert_allclose(d.gradients[name], fd, rtol=1e-6, atol=1e-9)


def test_first_call_times_eager_and_the_first_compiled_call_in_fresh_processes():
    from benchmarks import first_call

    results = first_call.measure(steps=2000)  # 12,000 instructions: a stepped program
    assert set(results) == {"eager", "compiled"}
    expected = sin_chain_gradient(np.linspace(0, 1, 3), 2000)
    for r in results.values():
        assert r["seconds"] > 0 and r["peak_mib"] > 0
        np.testing.assert_allclose(r["gradient"], expected, rtol=1e-10)
