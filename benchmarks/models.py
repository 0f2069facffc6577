"""The model problems: a transformer block, a variational MPS energy, a Newton step.

Micro-problems measure one contraction; these measure what a modeller runs.

* ``transformer`` / ``transformer32``: one pre-LN transformer block (batch 8,
  sequence 64, width 128, 4 heads, MLP 512, tanh-GELU), forward plus backward, in
  float64 and float32 (:mod:`benchmarks.transformer_block`). einsumad writes the
  block with its own ops (``ea.layer_norm``, ``ea.gelu(approximate="tanh")``,
  ``ea.softmax``, named-index einsums); PyTorch and JAX use their own fused ops.
* ``mps_energy``: the variational energy ``<ψ|H|ψ>/<ψ|ψ>`` of a matrix product
  state (bond dimension 8) for the Heisenberg chain of 10 spins-1/2, ``H`` a
  matrix product operator of bond dimension 5; gradient with respect to all cores.
  The loss sweeps left to right with one einsum per site, as a physicist writes it.
* ``newton``: one Newton step ``w - H⁻¹ g`` of L2-regularised logistic regression
  on scikit-learn's breast-cancer data (569 samples, 30 standardised features and
  an intercept; bundled with scikit-learn, nothing is downloaded). Without
  scikit-learn, and at the reduced scales, synthetic data of the same form.

Each has a hand-derived NumPy version (the baseline and the truth every library is
checked against before timing) and targets relative to the peers (``peer_targets``).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from benchmarks import transformer_block as block
from benchmarks.problems import Inputs, Problem

__all__ = ["MODEL_PROBLEMS", "heisenberg_mpo"]


# ============================================================ transformer block


def _transformer_setup(dtype: Any) -> Any:
    def setup(rng: np.random.Generator, batch: int, seq: int, width: int, heads: int, mlp: int) -> Inputs:
        params, x, t = block.setup(rng, batch, seq, width, heads, mlp, dtype=dtype)
        return Inputs(tuple(params[n] for n in block.NAMES), {"x": x, "t": t}, {"heads": heads})

    return setup


def _heads(params: tuple, consts: dict) -> int:
    """The head count, from the shapes (the generic ``loss(xp, ...)`` has no static values)."""
    width = np.shape(consts["x"])[-1]
    return 4 if width % 4 == 0 and width >= 64 else 2


def _transformer_numpy(xp: Any, params: tuple, consts: dict) -> Any:
    """The loss value in NumPy (the finite-difference check of the hand-derived gradient)."""
    if xp is not np:
        raise TypeError("the transformer problem gives each library its own loss (Problem.losses)")
    value, _ = block.reference(dict(zip(block.NAMES, params)), consts["x"], consts["t"], _heads(params, consts))
    return value


def _transformer_reference(params: tuple, consts: dict) -> Any:
    value, grads = block.reference(dict(zip(block.NAMES, params)), consts["x"], consts["t"], _heads(params, consts))
    return value, tuple(grads[n] for n in block.NAMES)


def _transformer_einsumad(params: tuple, consts: dict, heads: int) -> Any:
    return block.loss(dict(zip(block.NAMES, params)), consts["x"], consts["t"], heads)


_TRANSFORMER_SIZES = {
    "tiny": dict(batch=2, seq=3, width=8, heads=2, mlp=12),
    "small": dict(batch=2, seq=8, width=16, heads=2, mlp=32),
    "large": dict(block.SIZES),
}


def _transformer(name: str, dtype: Any) -> Problem:
    return Problem(
        name, "grad",
        f"pre-LN transformer block (b 8, s 64, d 128, 4 heads, MLP 512, tanh-GELU), {np.dtype(dtype).name}",
        _TRANSFORMER_SIZES, _transformer_setup(dtype), _transformer_numpy, _transformer_reference,
        losses={"einsumad": _transformer_einsumad, "torch": block.torch_loss, "jax": block.jax_loss},
        peer_targets={"compiled": (("torch eager", 1.0), ("jax jit", 1.1))},
    )


# ============================================================ variational MPS energy
#   E(A) = <ψ|H|ψ> / <ψ|ψ>, swept left to right:
#     L'[c,v,d] = sum L[a,w,b] A[a,p,c] W[w,v,q,p] A[b,q,d]      N'[c,d] = sum N[a,b] A[a,p,c] A[b,p,d]
#   By hand: right environments R, Rn; H_eff A_t = L_t W_t R_{t+1} A_t (symmetric), so
#     d<H>/dA_t = 2 H_eff A_t,  d<1>/dA_t = 2 N_t A_t Rn_{t+1},  dE/dA_t = (d<H> - E d<1>) / <1>


def heisenberg_mpo(n: int) -> list[np.ndarray]:
    """The matrix product operator of ``H = sum_i S_i · S_{i+1}`` (open chain, spins 1/2):
    cores ``W[w, v, out, in]`` of bond dimension 5 (1 at the ends)."""
    sp = np.array([[0.0, 1.0], [0.0, 0.0]])
    sm = sp.T
    sz = np.diag([0.5, -0.5])
    eye = np.eye(2)
    W = np.zeros((5, 5, 2, 2))
    W[0, 0] = W[4, 4] = eye
    W[1, 0], W[2, 0], W[3, 0] = sp, sm, sz
    W[4, 1], W[4, 2], W[4, 3] = 0.5 * sm, 0.5 * sp, sz
    return [W[4:5]] + [W] * (n - 2) + [W[:, 0:1]]


def _mps_energy_setup(rng: np.random.Generator, n: int, D: int) -> Inputs:
    chi = [1] + [min(D, 2 ** t, 2 ** (n - t)) for t in range(1, n)] + [1]
    cores = tuple(rng.standard_normal((chi[t], 2, chi[t + 1])) / math.sqrt(2 * chi[t]) for t in range(n))
    consts = {f"W{t}": w.copy() for t, w in enumerate(heisenberg_mpo(n))}
    consts["E0"], consts["N0"] = np.ones((1, 1, 1)), np.ones((1, 1))
    return Inputs(cores, consts)


def _mps_energy_loss(xp: Any, params: tuple, c: dict) -> Any:
    E, N = c["E0"], c["N0"]
    for t, A in enumerate(params):
        E = xp.einsum("awb,apc,wvqp,bqd->cvd", E, A, c[f"W{t}"], A)
        N = xp.einsum("ab,apc,bpd->cd", N, A, A)
    return xp.sum(E) / xp.sum(N)


def _mps_energy_reference(params: tuple, c: dict) -> Any:
    n = len(params)
    td = np.tensordot
    L, Ln = [c["E0"]], [c["N0"]]
    for t, A in enumerate(params):  # left environments
        W = c[f"W{t}"]
        T = td(td(L[t], A, ([0], [0])), W, ([0, 2], [0, 3]))           # [b, c, v, q]
        L.append(td(T, A, ([0, 3], [0, 1])))                             # [c, v, d]
        Ln.append(td(td(Ln[t], A, ([0], [0])), A, ([0, 1], [0, 1])))      # [c, d]
    numerator, norm = L[n].sum(), Ln[n].sum()
    energy = numerator / norm
    R, Rn = np.ones((1, 1, 1)), np.ones((1, 1))
    grads: list[np.ndarray] = [np.empty(0)] * n
    for t in reversed(range(n)):  # right environments, and the gradient at each site
        A, W = params[t], c[f"W{t}"]
        h_eff = td(td(td(L[t], A, ([2], [0])), W, ([1, 2], [0, 2])), R, ([1, 2], [2, 1]))   # [a, p, c]
        n_eff = td(td(Ln[t], A, ([1], [0])), Rn, ([2], [1]))                                  # [a, p, c]
        grads[t] = 2.0 * (h_eff - energy * n_eff) / norm
        T = td(td(A, R, ([2], [2])), W, ([1, 3], [2, 1]))               # [b, c, w, p]
        R = td(T, A, ([1, 3], [2, 1])).transpose(2, 1, 0)                 # [a, w, b]
        Rn = td(td(A, Rn, ([2], [0])), A, ([1, 2], [1, 2]))                # [a, b]
    return energy, tuple(grads)


# ============================================================ Newton step of logistic regression
#   L(w) = mean_n [log(1 + e^{-z_n}) + (1 - y_n) z_n] + λ/2 |w|²,  z = X w
#   g = Xᵀ (p - y) / n + λ w,   H = Xᵀ diag(p (1 - p)) X / n + λ I,   p = σ(z);   w' = w - H⁻¹ g

LAMBDA = 0.1


def _breast_cancer(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError:
        print("note: scikit-learn is not installed: the Newton step runs on synthetic data "
              "of the breast-cancer shape (569 x 30)", file=sys.stderr)
        return _synthetic(rng, 569, 30)
    X, y = load_breast_cancer(return_X_y=True)
    return X, y.astype(np.float64)


def _synthetic(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 50.0, size=d) + rng.uniform(-10, 10, size=d)
    w = rng.standard_normal(d) / np.sqrt(d)
    z = (X - X.mean(0)) / X.std(0) @ w
    return X, (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)


def _newton_setup(rng: np.random.Generator, n: int, d: int, data: str = "synthetic") -> Inputs:
    X, y = _breast_cancer(rng) if data == "breast_cancer" else _synthetic(rng, n, d)
    X = (X - X.mean(0)) / X.std(0)
    X = np.hstack([X, np.ones((X.shape[0], 1))])                      # an intercept
    w = rng.standard_normal(X.shape[1]) * 0.1
    return Inputs((w,), {"X": X, "y": y})


def _newton_loss(xp: Any, params: tuple, c: dict) -> Any:
    (w,) = params
    X, y = c["X"], c["y"]
    z = X @ w
    return xp.sum(xp.log(1.0 + xp.exp(-z)) + (1.0 - y) * z) / X.shape[0] + 0.5 * LAMBDA * xp.sum(w * w)


def _newton_reference(params: tuple, c: dict) -> Any:
    (w,) = params
    X, y = c["X"], c["y"]
    n = X.shape[0]
    p = 1.0 / (1.0 + np.exp(-(X @ w)))
    g = X.T @ (p - y) / n + LAMBDA * w
    H = X.T @ (X * (p * (1.0 - p))[:, None]) / n
    H[np.diag_indices_from(H)] += LAMBDA
    return w - np.linalg.solve(H, g)


# ============================================================ the list

MODEL_PROBLEMS: list[Problem] = [
    _transformer("transformer", np.float64),
    _transformer("transformer32", np.float32),
    Problem(
        "mps_energy", "grad", "variational MPS energy, Heisenberg chain of 10 sites, bond dimension 8",
        {"tiny": dict(n=4, D=2), "small": dict(n=6, D=4), "large": dict(n=10, D=8)},
        _mps_energy_setup, _mps_energy_loss, _mps_energy_reference,
        peer_targets={"compiled": (("jax jit", 1.3),)},
    ),
    Problem(
        "newton", "newton", "Newton step, L2-regularised logistic regression, breast-cancer data",
        {"tiny": dict(n=20, d=3), "small": dict(n=64, d=5), "large": dict(n=569, d=30, data="breast_cancer")},
        _newton_setup, _newton_loss, _newton_reference,
        peer_targets={"compiled": (("jax jit", 1.3),)},
    ),
]
