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

``torch_loss`` and ``jax_loss`` are the block in the peers' own idioms. The
benchmark runner times them as the problems ``transformer`` (float64) and
``transformer32`` (float32) (:mod:`benchmarks.models`); from the checkout::

    python -m benchmarks --problems transformer,transformer32 --scale large
    python -m benchmarks.transformer_block --dtype float32     # the same, one dtype
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

import einsumad as ea

__all__ = ["SIZES", "NAMES", "setup", "loss", "reference", "torch_loss", "jax_loss", "gelu_tanh", "layer_norm", "main"]

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


# ============================================================ the block in PyTorch and JAX (peers)


def torch_loss(params: tuple, consts: dict, heads: int) -> Any:
    """The block in PyTorch's own idiom: fused ``layer_norm``, ``gelu`` and ``softmax``."""
    import torch
    import torch.nn.functional as F

    p = dict(zip(NAMES, params))
    x, t = consts["x"], consts["t"]
    b, s, d = x.shape
    e = d // heads
    h = F.layer_norm(x, (d,), p["g1"], p["b1"], eps=EPS)
    split = lambda z: z.reshape(b, s, heads, e).transpose(1, 2)
    q, k, v = split(h @ p["Wq"]), split(h @ p["Wk"]), split(h @ p["Wv"])
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(e), dim=-1)
    x1 = x + (a @ v).transpose(1, 2).reshape(b, s, d) @ p["Wo"]
    h2 = F.layer_norm(x1, (d,), p["g2"], p["b2"], eps=EPS)
    y = x1 + F.gelu(h2 @ p["W1"] + p["c1"], approximate="tanh") @ p["W2"] + p["c2"]
    return (y * t).sum()


def jax_loss(params: tuple, consts: dict, heads: int) -> Any:
    """The block in JAX's idiom: ``jax.nn.gelu(approximate=True)``, ``jax.nn.softmax``,
    layer norm written with ``jax.numpy`` (JAX has no layer-norm function of its own)."""
    import jax
    import jax.numpy as jnp

    p = dict(zip(NAMES, params))
    x, t = consts["x"], consts["t"]
    b, s, d = x.shape
    e = d // heads

    def norm(z: Any, g: Any, c: Any) -> Any:
        centred = z - z.mean(axis=-1, keepdims=True)
        return centred / jnp.sqrt((centred * centred).mean(axis=-1, keepdims=True) + EPS) * g + c

    split = lambda z: z.reshape(b, s, heads, e).transpose(0, 2, 1, 3)
    h = norm(x, p["g1"], p["b1"])
    q, k, v = split(h @ p["Wq"]), split(h @ p["Wk"]), split(h @ p["Wv"])
    a = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(e), axis=-1)
    x1 = x + (a @ v).transpose(0, 2, 1, 3).reshape(b, s, d) @ p["Wo"]
    h2 = norm(x1, p["g2"], p["b2"])
    y = x1 + jax.nn.gelu(h2 @ p["W1"] + p["c1"], approximate=True) @ p["W2"] + p["c2"]
    return jnp.sum(y * t)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.transformer_block``: the runner on the transformer problems."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="both", choices=["float64", "float32", "both"])
    known, rest = parser.parse_known_args(argv)
    from benchmarks.run import main as run

    names = {"float64": "transformer", "float32": "transformer32", "both": "transformer,transformer32"}
    return run(["--problems", names[known.dtype], "--scale", "large", "--no-extras", *rest])


if __name__ == "__main__":
    raise SystemExit(main())
