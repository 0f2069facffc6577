"""A tensor-train (matrix product state) model, fitted by gradient descent.

Each input ``x`` has ``L`` coordinates in [0, 1]; coordinate ``k`` is mapped to a
local feature vector ``phi_k = (cos(pi x_k / 2), sin(pi x_k / 2))``. The model
contracts one core per site along a chain of bond indices::

    f(x) = sum_{b,p}  G1[p1, b1] G2[b1, p2, b2] ... GL[b(L-1), pL]  phi_1[p1] ... phi_L[pL]

The whole chain is ONE einsum over ``2 L`` operands, with named indices
(``"n p1, n p2, ..., p1 b1, b1 p2 b2, ..., b7 p8 -> n"``). Its gradient with
respect to core ``k`` is, by the swap rule, the einsum of the cotangent with every
*other* operand, whose output is core ``k``'s subscripts: the "environment" of
the core that DMRG-style algorithms build by hand. einsumad evaluates all the
environments in one backward pass of pairwise contractions.

The example prints those subscripts, checks the gradient of every core against
central finite differences, and fits the model to a teacher tensor train, asserting
that the loss falls by a large factor.

Run: ``python examples/tensor_train.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import einsumad as ea


def chain_subscripts(sites: int) -> str:
    """``"n p1, ..., n pL, p1 b1, b1 p2 b2, ..., b(L-1) pL -> n"``."""
    features = [f"n p{k}" for k in range(1, sites + 1)]
    cores = ["p1 b1"]
    cores += [f"b{k - 1} p{k} b{k}" for k in range(2, sites)]
    cores += [f"b{sites - 1} p{sites}"]
    return ", ".join(features + cores) + " -> n"


def features(x: np.ndarray) -> list[np.ndarray]:
    """One (n, 2) feature matrix per site."""
    angle = np.pi * x / 2
    return [np.stack([np.cos(angle[:, k]), np.sin(angle[:, k])], axis=1) for k in range(x.shape[1])]


def tt_model(cores, phis):
    return ea.einsum(chain_subscripts(len(cores)), *phis, *cores)


def loss(cores, phis, y):
    return ea.mean((tt_model(cores, phis) - y) ** 2)


def random_cores(sites: int, rank: int, noise: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Cores near a product state: the identity on the bond times (1, 1)/sqrt(2), plus noise."""
    phys = np.ones(2) / np.sqrt(2)
    eye = np.eye(rank)
    cores = [np.einsum("p,b->pb", phys, eye[0]) + noise * rng.normal(size=(2, rank))]
    for _ in range(sites - 2):
        cores.append(np.einsum("ab,p->apb", eye, phys) + noise * rng.normal(size=(rank, 2, rank)))
    cores.append(np.einsum("p,b->bp", phys, eye[0]) + noise * rng.normal(size=(rank, 2)))
    return cores


def finite_difference_check(cores, phis, y, rng, eps=1e-6) -> float:
    """Largest relative error of <grad_k, v_k> against a central difference, over every core k."""
    grads = ea.grad(loss)(cores, phis, y)
    worst = 0.0
    for k in range(len(cores)):
        v = rng.normal(size=cores[k].shape)
        up = [c + eps * v if i == k else c for i, c in enumerate(cores)]
        down = [c - eps * v if i == k else c for i, c in enumerate(cores)]
        numeric = (float(loss(up, phis, y)) - float(loss(down, phis, y))) / (2 * eps)
        analytic = float(np.vdot(grads[k], v))
        worst = max(worst, abs(analytic - numeric) / max(abs(numeric), 1e-12))
    return worst


def main(quick: bool = False) -> dict:
    sites, rank = 8, 3
    n, epochs = (200, 60) if quick else (1000, 500)
    rng = np.random.default_rng(0)
    x = rng.random((n, sites))
    phis = features(x)
    teacher = random_cores(sites, rank, noise=0.3, rng=rng)
    y = np.asarray(tt_model(teacher, phis))
    cores = random_cores(sites, rank, noise=0.1, rng=rng)

    spec = chain_subscripts(sites)
    middle = sites + sites // 2   # the operand index of core L/2 + 1
    print(f"forward:             {spec}")
    print(f"gradient of core {sites // 2 + 1}:  {ea.vjp_subscripts(spec, middle)}")

    worst = finite_difference_check(cores, phis, y, rng)
    print(f"gradient of all {sites} cores vs central differences: max relative error {worst:.1e}")
    assert worst < 1e-6, worst

    start = time.perf_counter()
    loss_before = float(loss(cores, phis, y))
    forward_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ea.value_and_grad(loss)(cores, phis, y)
    print(f"one forward pass {forward_seconds * 1e3:.1f} ms; value and gradient of all "
          f"{sites} cores {(time.perf_counter() - start) * 1e3:.1f} ms")

    start = time.perf_counter()
    cores, history = ea.optim.fit(
        loss, cores, [(phis, y)], ea.optim.SGD(learning_rate=0.04, momentum=0.9), epochs=epochs,
        print_every=max(1, epochs // 10),
    )
    seconds = time.perf_counter() - start
    loss_after = float(loss(cores, phis, y))
    factor = loss_before / loss_after
    print(f"{epochs} steps of gradient descent in {seconds:.1f} s: "
          f"loss {loss_before:.3e} -> {loss_after:.3e} (down by a factor {factor:.0f})")
    assert factor > (5 if quick else 100), factor
    return {"loss_before": loss_before, "loss_after": loss_after, "factor": factor,
            "seconds": seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (for the tests)")
    args = parser.parse_args()
    main(quick=args.quick)
