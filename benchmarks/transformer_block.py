"""A pre-LN transformer block: einsumad eager and compiled against hand-derived NumPy.

The block (GPT-2 style, no mask, no dropout)::

    h  = LN(x) g1 + b1                           LN: layer norm over the width, eps 1e-5
    q, k, v = h Wq, h Wk, h Wv                   split into heads: (b, s, (h e)) -> (b, h, s, e)
    a  = softmax(q kᵀ / √e)                      per head, over the keys
    x1 = x + merge(a v) Wo
    h2 = LN(x1) g2 + b2
    y  = x1 + gelu_tanh(h2 W1 + c1) W2 + c2      gelu_tanh: GELU with PyTorch's approximate="tanh"
    L  = sum(y ⊙ T)

``loss`` is the block written with einsumad ops (``ea.layer_norm``, ``ea.gelu``,
``ea.softmax``, named-index ``ea.einsum`` and ``ea.rearrange``). ``reference``
is the same block written in NumPy with the backward pass derived by hand (the
textbook layer-norm and softmax backwards, explicit transposes): the baseline
every time is divided by, and the truth the tests compare einsumad's gradients with.

Run from the checkout::

    python -m benchmarks.transformer_block                 # batch 8, sequence 64, width 128, 4 heads, MLP 512
    python -m benchmarks.transformer_block --dtype float32 --budget 10

Times are medians of interleaved rounds (``benchmarks.timer``), in one process.
PyTorch eager is timed too when ``torch`` is importable.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

import einsumad as ea
from benchmarks.timer import time_interleaved

__all__ = ["SIZES", "setup", "loss", "reference", "gelu_tanh", "layer_norm", "main"]

SIZES = {"batch": 8, "seq": 64, "width": 128, "heads": 4, "mlp": 512}
NAMES = ("g1", "b1", "Wq", "Wk", "Wv", "Wo", "g2", "b2", "W1", "c1", "W2", "c2")
EPS = 1e-5
_K, _A = math.sqrt(2.0 / math.pi), 0.044715


def setup(rng: np.random.Generator, batch: int, seq: int, width: int, heads: int, mlp: int,
          dtype: Any = np.float64) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Parameters (a dict), the input ``x`` and the loss weights ``T``."""
    s, sm = 1.0 / math.sqrt(width), 1.0 / math.sqrt(mlp)
    params = {
        "g1": 1.0 + 0.1 * rng.standard_normal(width), "b1": 0.1 * rng.standard_normal(width),
        "Wq": s * rng.standard_normal((width, width)), "Wk": s * rng.standard_normal((width, width)),
        "Wv": s * rng.standard_normal((width, width)), "Wo": s * rng.standard_normal((width, width)),
        "g2": 1.0 + 0.1 * rng.standard_normal(width), "b2": 0.1 * rng.standard_normal(width),
        "W1": s * rng.standard_normal((width, mlp)), "c1": 0.1 * rng.standard_normal(mlp),
        "W2": sm * rng.standard_normal((mlp, width)), "c2": 0.1 * rng.standard_normal(width),
    }
    params = {k: v.astype(dtype) for k, v in params.items()}
    x = rng.standard_normal((batch, seq, width)).astype(dtype)
    t = rng.standard_normal((batch, seq, width)).astype(dtype)
    return params, x, t


# ============================================================ the block in einsumad


def loss(params: dict, x: Any, t: Any, heads: int) -> Any:
    """The block's loss ``sum(y ⊙ T)``, written with einsumad ops."""
    p = params
    e = x.shape[-1] // heads
    h = ea.layer_norm(x, axis=-1, eps=EPS) * p["g1"] + p["b1"]

    def split(w: Any) -> Any:
        return ea.rearrange(ea.einsum("b s d, d f -> b s f", h, w), "b s (h e) -> b h s e", h=heads)

    q, k, v = split(p["Wq"]), split(p["Wk"]), split(p["Wv"])
    a = ea.softmax(ea.einsum("b h q e, b h k e -> b h q k", q, k) * (1.0 / math.sqrt(e)), axis=-1)
    o = ea.rearrange(ea.einsum("b h q k, b h k e -> b h q e", a, v), "b h s e -> b s (h e)")
    x1 = x + ea.einsum("b s d, d f -> b s f", o, p["Wo"])
    h2 = ea.layer_norm(x1, axis=-1, eps=EPS) * p["g2"] + p["b2"]
    u = ea.gelu(ea.einsum("b s d, d m -> b s m", h2, p["W1"]) + p["c1"], approximate="tanh")
    y = x1 + ea.einsum("b s m, m d -> b s d", u, p["W2"]) + p["c2"]
    return ea.sum(y * t)


# ============================================================ the block in NumPy, backward by hand


def gelu_tanh(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's ``gelu(z, approximate="tanh")`` and its derivative."""
    th = np.tanh(_K * (z + _A * (z * z * z)))   # z * z * z: NumPy's z**3 is a slow pow
    value = 0.5 * z * (1.0 + th)
    slope = 0.5 * (1.0 + th) + 0.5 * z * (1.0 - th * th) * _K * (1.0 + 3.0 * _A * z * z)
    return value, slope


def layer_norm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x - mean) / sqrt(var + eps)`` over the last axis, and ``1/sqrt(var + eps)``."""
    centred = x - x.mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + EPS)
    return centred * r, r


def _layer_norm_backward(dxhat: np.ndarray, xhat: np.ndarray, r: np.ndarray) -> np.ndarray:
    return r * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))


def reference(params: dict, x: np.ndarray, t: np.ndarray, heads: int) -> tuple[Any, dict]:
    """The loss and its gradient with respect to every parameter, by hand-derived backprop."""
    p = params
    b, s, d = x.shape
    e = d // heads
    scale = 1.0 / math.sqrt(e)

    def split(z: np.ndarray) -> np.ndarray:          # (b, s, d) -> (b, h, s, e)
        return z.reshape(b, s, heads, e).transpose(0, 2, 1, 3)

    def merge(z: np.ndarray) -> np.ndarray:          # (b, h, s, e) -> (b, s, d)
        return z.transpose(0, 2, 1, 3).reshape(b, s, d)

    # forward
    xhat1, r1 = layer_norm(x)
    h = xhat1 * p["g1"] + p["b1"]
    q, k, v = split(h @ p["Wq"]), split(h @ p["Wk"]), split(h @ p["Wv"])
    scores = (q @ k.transpose(0, 1, 3, 2)) * scale
    scores = scores - scores.max(axis=-1, keepdims=True)
    a = np.exp(scores)
    a /= a.sum(axis=-1, keepdims=True)
    o = merge(a @ v)
    x1 = x + o @ p["Wo"]
    xhat2, r2 = layer_norm(x1)
    h2 = xhat2 * p["g2"] + p["b2"]
    u, slope = gelu_tanh(h2 @ p["W1"] + p["c1"])
    y = x1 + u @ p["W2"] + p["c2"]
    value = np.vdot(y, t)

    # backward
    flat = lambda z: z.reshape(-1, z.shape[-1])
    g = {}
    dy = t
    g["W2"], g["c2"] = flat(u).T @ flat(dy), flat(dy).sum(0)
    dz = (dy @ p["W2"].T) * slope
    g["W1"], g["c1"] = flat(h2).T @ flat(dz), flat(dz).sum(0)
    dh2 = dz @ p["W1"].T
    g["g2"], g["b2"] = flat(dh2 * xhat2).sum(0), flat(dh2).sum(0)
    dx1 = dy + _layer_norm_backward(dh2 * p["g2"], xhat2, r2)
    g["Wo"] = flat(o).T @ flat(dx1)
    do = split(dx1 @ p["Wo"].T)
    da = do @ v.transpose(0, 1, 3, 2)
    dv = a.transpose(0, 1, 3, 2) @ do
    ds = a * (da - (da * a).sum(axis=-1, keepdims=True)) * scale
    dq, dk = ds @ k, ds.transpose(0, 1, 3, 2) @ q
    dq, dk, dv = merge(dq), merge(dk), merge(dv)
    g["Wq"], g["Wk"], g["Wv"] = flat(h).T @ flat(dq), flat(h).T @ flat(dk), flat(h).T @ flat(dv)
    dh = dq @ p["Wq"].T + dk @ p["Wk"].T + dv @ p["Wv"].T
    g["g1"], g["b1"] = flat(dh * xhat1).sum(0), flat(dh).sum(0)
    return value, {name: g[name] for name in NAMES}


# ============================================================ PyTorch (optional)


def _torch_value_and_grad(params: dict, x: np.ndarray, t: np.ndarray, heads: int) -> Any:
    import torch
    import torch.nn.functional as F

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx, tt = torch.tensor(x), torch.tensor(t)
    b, s, d = x.shape
    e = d // heads

    def run() -> Any:
        h = F.layer_norm(tx, (d,), tp["g1"], tp["b1"], eps=EPS)
        split = lambda z: z.reshape(b, s, heads, e).transpose(1, 2)
        q, k, v = split(h @ tp["Wq"]), split(h @ tp["Wk"]), split(h @ tp["Wv"])
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(e), dim=-1)
        x1 = tx + (a @ v).transpose(1, 2).reshape(b, s, d) @ tp["Wo"]
        h2 = F.layer_norm(x1, (d,), tp["g2"], tp["b2"], eps=EPS)
        y = x1 + F.gelu(h2 @ tp["W1"] + tp["c1"], approximate="tanh") @ tp["W2"] + tp["c2"]
        value = (y * tt).sum()
        grads = torch.autograd.grad(value, [tp[n] for n in NAMES])
        return value.item(), {n: gr.numpy() for n, gr in zip(NAMES, grads)}

    return run


# ============================================================ timing


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--budget", type=float, default=6.0, help="seconds for the interleaved rounds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)
    params, x, t = setup(np.random.default_rng(args.seed), **{k: SIZES[k] for k in ("batch", "seq", "width", "heads", "mlp")},
                         dtype=dtype)
    heads = SIZES["heads"]
    eager = ea.value_and_grad(lambda p: loss(p, x, t, heads))
    compiled = ea.compile(ea.value_and_grad(lambda p, x, t: loss(p, x, t, heads)))
    contenders = {
        "NumPy, backward by hand": lambda: reference(params, x, t, heads),
        "einsumad eager (ea.value_and_grad)": lambda: eager(params),
        "einsumad compiled (ea.compile)": lambda: compiled(params, x, t),
    }
    try:
        contenders["PyTorch eager"] = _torch_value_and_grad(params, x, t, heads)
    except ImportError:
        pass

    truth_value, truth = reference(params, x, t, heads)
    tol = 1e-9 if dtype == np.float64 else 2e-3
    for label, fn in contenders.items():
        value, grads = fn()
        worst = max(float(np.max(np.abs(grads[n] - truth[n])) / (np.max(np.abs(truth[n])) + 1e-30)) for n in NAMES)
        if worst > tol or not np.isclose(float(value), float(truth_value), rtol=tol):
            raise AssertionError(f"{label}: gradients differ from the hand-derived ones (relative {worst:.1e})")
        print(f"checked {label}: worst relative gradient error {worst:.1e}")

    timings = time_interleaved(contenders, budget=args.budget)
    base = timings["NumPy, backward by hand"].median
    sizes = ", ".join(f"{k} {v}" for k, v in SIZES.items())
    print(f"\npre-LN transformer block, forward + backward ({sizes}; tanh-GELU), {dtype.name}")
    print(f"{'':38s} {'median':>10s} {'best':>10s} {'ratio':>7s}")
    for label, timing in timings.items():
        print(f"{label:38s} {timing.median * 1e3:8.2f} ms {timing.best * 1e3:8.2f} ms {timing.median / base:6.2f}x")
    return {label: timing.median for label, timing in timings.items()}


if __name__ == "__main__":
    main()
