"""Multi-head self-attention in named-index einsum, every parameter's gradient checked.

With ``x[batch, seq, model]`` and parameters ``Wq, Wk, Wv[model, head, dim]``,
``Wo[head, dim, model]``::

    q[batch, query, head, dim] = x[batch, query, model] Wq[model, head, dim]      (k, v alike)
    scores[batch, head, query, key] = q[batch, query, head, dim] k[batch, key, head, dim] / √dim
    attn = softmax over key of (scores + causal mask)
    heads[batch, query, head, dim] = attn[batch, head, query, key] v[batch, key, head, dim]
    out[batch, query, model] = heads[batch, query, head, dim] Wo[head, dim, model]

Each line is one ``ea.einsum`` with the index names written out, so no
reshape/transpose bookkeeping appears. The gradient of the loss with respect to
every parameter (and the input) is checked element by element against central
finite differences written below, and with ``ea.check_grads``.

Run: ``python examples/attention.py`` (``--quick`` for smaller sizes).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import einsumad as ea


def init_params(model: int, heads: int, dim: int, rng: np.random.Generator) -> dict:
    scale = 1 / np.sqrt(model)
    return {
        "Wq": rng.normal(size=(model, heads, dim)) * scale,
        "Wk": rng.normal(size=(model, heads, dim)) * scale,
        "Wv": rng.normal(size=(model, heads, dim)) * scale,
        "Wo": rng.normal(size=(heads, dim, model)) / np.sqrt(heads * dim),
    }


def causal_mask(seq: int) -> np.ndarray:
    """0 where a query may look at a key (key <= query), -1e9 elsewhere."""
    return np.where(np.tril(np.ones((seq, seq), dtype=bool)), 0.0, -1e9)


def self_attention(params: dict, x, mask=None):
    project = "batch seq model, model head dim -> batch seq head dim"
    q = ea.einsum(project, x, params["Wq"])
    k = ea.einsum(project, x, params["Wk"])
    v = ea.einsum(project, x, params["Wv"])
    dim = params["Wq"].shape[-1]
    scores = ea.einsum("batch query head dim, batch key head dim -> batch head query key", q, k)
    scores = scores / np.sqrt(dim)
    if mask is not None:
        scores = scores + mask   # [query, key], broadcast over batch and head
    attn = ea.softmax(scores, axis=-1)
    heads = ea.einsum("batch head query key, batch key head dim -> batch query head dim", attn, v)
    merge = "batch query head dim, head dim model -> batch query model"
    return ea.einsum(merge, heads, params["Wo"])


def reference_attention(params: dict, x: np.ndarray, mask=None) -> np.ndarray:
    """The same computation in plain NumPy, head by head with matrix products."""
    batch, seq, model = x.shape
    out = np.zeros_like(x)
    for b in range(batch):
        for h in range(params["Wq"].shape[1]):
            q = x[b] @ params["Wq"][:, h, :]
            k = x[b] @ params["Wk"][:, h, :]
            v = x[b] @ params["Wv"][:, h, :]
            s = q @ k.T / np.sqrt(q.shape[1])
            if mask is not None:
                s = s + mask
            a = np.exp(s - s.max(axis=1, keepdims=True))
            a /= a.sum(axis=1, keepdims=True)
            out[b] += (a @ v) @ params["Wo"][h]
    return out


def loss(params: dict, x, target, mask=None):
    return ea.mean((self_attention(params, x, mask) - target) ** 2)


def finite_difference_gradient(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d array by central differences, one element at a time."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        step = np.zeros_like(array)
        step[index] = eps
        grad[index] = (float(f(array + step)) - float(f(array - step))) / (2 * eps)
    return grad


def main(quick: bool = False) -> dict:
    batch, seq, model, heads, dim = (2, 3, 4, 2, 2) if quick else (2, 5, 8, 2, 4)
    rng = np.random.default_rng(0)
    params = init_params(model, heads, dim, rng)
    x = rng.normal(size=(batch, seq, model))
    target = rng.normal(size=(batch, seq, model))
    mask = causal_mask(seq)

    out = self_attention(params, x, mask)
    np.testing.assert_allclose(out, reference_attention(params, x, mask), rtol=1e-12, atol=1e-12)
    # causality: the first position only sees itself
    np.testing.assert_allclose(
        out[:, 0], np.einsum("bm,mhd,hdn->bn", x[:, 0], params["Wv"], params["Wo"]), rtol=1e-12
    )

    start = time.perf_counter()
    grads, grad_x = ea.grad(loss, argnums=(0, 1))(params, x, target, mask)
    seconds = time.perf_counter() - start
    print(f"gradients of {sum(p.size for p in params.values())} parameters "
          f"in {seconds * 1e3:.1f} ms; checking each against central differences:")

    worst = 0.0
    for name, value in params.items():
        numeric = finite_difference_gradient(
            lambda w: loss({**params, name: w}, x, target, mask), value
        )
        error = np.max(np.abs(grads[name] - numeric)) / np.max(np.abs(numeric))
        worst = max(worst, error)
        print(f"  {name} {str(value.shape):>10}: max relative error {error:.1e}")
        assert grads[name].shape == value.shape
    numeric = finite_difference_gradient(lambda x: loss(params, x, target, mask), x)
    error = np.max(np.abs(grad_x - numeric)) / np.max(np.abs(numeric))
    worst = max(worst, error)
    print(f"  x  {str(x.shape):>10}: max relative error {error:.1e}")
    assert worst < 1e-6, worst

    # The library's own checker (reverse and forward mode, and second order).
    for name in params:
        ea.check_grads(lambda w: self_attention({**params, name: w}, x, mask), (params[name],),
                       order=1 if quick else 2)
    print("ea.check_grads: every parameter passes" + ("" if quick else " (first and second order)"))
    return {"max_relative_error": float(worst), "seconds": seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (for the tests)")
    args = parser.parse_args()
    main(quick=args.quick)
