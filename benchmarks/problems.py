"""The benchmark problems: each loss written once, and its derivative by hand.

A problem's loss is written once against a NumPy-like namespace ``xp`` (``einsumad``,
``jax.numpy``, ``torch``, ``autograd.numpy`` or plain NumPy all provide ``einsum``,
``sum``, ``tanh``, ``exp``, ``log`` and the operators), so every library computes
the same function. Beside it sits the *hand-derived* NumPy derivative: the
contractions an expert would write (explicit backprop with transposes, left/right
environments for a tensor train), computing the loss value too, as a training
step needs it. That is the baseline every ratio is taken against, and the truth
every library's result is checked against before anything is timed.

Four kinds of problem:

* ``grad``: the result is ``(value, gradients)``, the gradient with respect to
  every array in ``params`` (a tuple);
* ``hvp``: the Hessian-vector product ``H(x) v`` by nested reverse mode;
* ``hessian``: the full Hessian with respect to ``params[0]``;
* ``newton``: one Newton step ``x - H(x)^-1 g(x)`` for ``params[0]``.

The model problems (a transformer block, a variational MPS energy, a Newton step
of logistic regression; :mod:`benchmarks.models`) are appended to :data:`PROBLEMS`.
A model may give a library its own loss (``losses``: PyTorch's fused layer norm,
JAX's ``jax.nn.gelu``), and states targets relative to peers (``peer_targets``).

``sizes[scale]`` gives the setup's keyword arguments at the ``small``
(overhead-bound), ``large`` (BLAS-bound) and ``tiny`` (``--quick``) scales.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Problem", "Inputs", "PROBLEMS", "by_name"]

SCALES = ("tiny", "small", "large")


@dataclass
class Inputs:
    """What a problem is evaluated at: differentiable ``params``, constant ``consts``."""

    params: tuple[np.ndarray, ...]
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    #: Python values the loss needs besides arrays (a head count): never converted.
    static: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    Attributes:
        name: short identifier (used by ``--problems``).
        kind: ``"grad"``, ``"hvp"`` or ``"hessian"``.
        description: one line for the report.
        sizes: per scale, the keyword arguments of ``setup``.
        setup: ``setup(rng, **size)`` returns the :class:`Inputs`.
        loss: ``loss(xp, params, consts)``, a scalar, written with namespace ``xp``.
        reference: the hand-derived NumPy result (see the module docstring).
        einsum: for n-operand problems, ``einsum(inputs)`` returns
            ``(subscripts, operand shapes, which operands are differentiable)`` of
            the contraction at the heart of the loss, for the flop counts.
        losses: per library (``"einsumad"``, ``"jax"``, ``"torch"``, ``"autograd"``),
            a loss ``loss(params, consts, **static)`` in that library's own idiom,
            used instead of ``loss(xp, ...)``.
        peer_targets: per einsumad mode, ``(peer label, bound)`` pairs: the mode's
            median must be at most ``bound`` times the peer's (same run).
    """

    name: str
    kind: str
    description: str
    sizes: dict[str, dict[str, int]]
    setup: Callable[..., Inputs]
    loss: Callable[[Any, tuple, dict], Any]
    reference: Callable[[tuple, dict], Any]
    einsum: Callable[[Inputs], tuple[str, list[tuple[int, ...]], list[bool]]] | None = None
    losses: dict[str, Callable[..., Any]] = field(default_factory=dict)
    peer_targets: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)

    def loss_for(self, library: str, xp: Any, inputs: Inputs) -> Callable[[tuple, dict], Any]:
        """``loss(params, consts)`` as ``library`` computes it (namespace ``xp``)."""
        own = self.losses.get(library)
        if own is not None:
            return lambda params, consts: own(params, consts, **inputs.static)
        return lambda params, consts: self.loss(xp, params, consts)


def _normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return rng.standard_normal(shape) * scale


# ============================================================ matrix product
#   L = sum_ik G[i,k] (A B)[i,k]        dA = G B^T,   dB = A^T G


def _matmul_setup(rng: np.random.Generator, m: int, k: int, n: int) -> Inputs:
    return Inputs((_normal(rng, m, k), _normal(rng, k, n)), {"G": _normal(rng, m, n)})


def _matmul_loss(xp: Any, params: tuple, c: dict) -> Any:
    A, B = params
    return xp.sum(xp.einsum("ij,jk->ik", A, B) * c["G"])


def _matmul_reference(params: tuple, c: dict) -> Any:
    A, B = params
    G = c["G"]
    value = np.vdot(A @ B, G)
    return value, (G @ B.T, A.T @ G)


# ============================================================ attention scores
#   S[b,h,q,k] = sum_d Q[b,h,q,d] K[b,h,k,d];   dQ = G K,   dK = G^T Q   (per b, h)


def _attention_setup(rng: np.random.Generator, b: int, h: int, q: int, k: int, d: int) -> Inputs:
    return Inputs(
        (_normal(rng, b, h, q, d), _normal(rng, b, h, k, d)), {"G": _normal(rng, b, h, q, k)}
    )


def _attention_loss(xp: Any, params: tuple, c: dict) -> Any:
    Q, K = params
    return xp.sum(xp.einsum("bhqd,bhkd->bhqk", Q, K) * c["G"])


def _attention_reference(params: tuple, c: dict) -> Any:
    Q, K = params
    G = c["G"]
    S = Q @ K.swapaxes(-1, -2)
    return np.vdot(S, G), (G @ K, G.swapaxes(-1, -2) @ Q)


# ============================================================ 3-matrix chain
#   Y = A B C along the cheaper order (AB)C;   dAB = G C^T, dC = (AB)^T G,
#   dA = dAB B^T, dB = A^T dAB


def _chain_setup(rng: np.random.Generator, m: int, k1: int, k2: int, n: int) -> Inputs:
    params = (_normal(rng, m, k1), _normal(rng, k1, k2), _normal(rng, k2, n))
    return Inputs(params, {"G": _normal(rng, m, n)})


def _chain_loss(xp: Any, params: tuple, c: dict) -> Any:
    A, B, C = params
    return xp.sum(xp.einsum("ij,jk,kl->il", A, B, C) * c["G"])


def _chain_reference(params: tuple, c: dict) -> Any:
    A, B, C = params
    G = c["G"]
    AB = A @ B
    value = np.vdot(AB @ C, G)
    dAB = G @ C.T
    return value, (dAB @ B.T, A.T @ dAB, AB.T @ G)


def _chain_einsum(inputs: Inputs) -> tuple[str, list, list]:
    return "ij,jk,kl->il", [p.shape for p in inputs.params], [True] * 3


# ============================================================ bilinear form
#   out[b,j] = sum_ik x[b,i] W[i,j,k] y[b,k]
#   U[b,j,k] = sum_i x[b,i] W[i,jk] (one GEMM), out = U y (batched matvec)
#   dU = G ⊗ y,  dy = G U,  dx = dU W^T,  dW = x^T dU


def _bilinear_setup(rng: np.random.Generator, b: int, i: int, j: int, k: int) -> Inputs:
    params = (_normal(rng, b, i), _normal(rng, i, j, k), _normal(rng, b, k))
    return Inputs(params, {"G": _normal(rng, b, j)})


def _bilinear_loss(xp: Any, params: tuple, c: dict) -> Any:
    x, W, y = params
    return xp.sum(xp.einsum("bi,ijk,bk->bj", x, W, y) * c["G"])


def _bilinear_reference(params: tuple, c: dict) -> Any:
    x, W, y = params
    G = c["G"]
    b, i = x.shape
    _, j, k = W.shape
    W2 = W.reshape(i, j * k)
    U = (x @ W2).reshape(b, j, k)
    out = (U @ y[:, :, None])[:, :, 0]
    dU = (G[:, :, None] * y[:, None, :]).reshape(b, j * k)
    dx = dU @ W2.T
    dW = (x.T @ dU).reshape(i, j, k)
    dy = (G[:, None, :] @ U)[:, 0, :]
    return np.vdot(out, G), (dx, dW, dy)


def _bilinear_einsum(inputs: Inputs) -> tuple[str, list, list]:
    return "bi,ijk,bk->bj", [p.shape for p in inputs.params], [True] * 3


# ============================================================ tensor train (MPS) overlap
#   <A|B> = sum over all physical and bond indices of prod_t A_t B_t.
#   Hand: left environments L_t (forward sweep); backward sweep with
#   BR_t = B_t R_{t+1}, R_t = A_t BR_t, dA_t = L_t BR_t  (B is constant).


def _mps_letters(n: int) -> tuple[list[str], list[str], list[str]]:
    letters = iter(string.ascii_letters)
    phys = [next(letters) for _ in range(n)]
    a = [next(letters) for _ in range(n - 1)]
    b = [next(letters) for _ in range(n - 1)]
    return phys, a, b


def _mps_terms(phys: list[str], bonds: list[str]) -> list[str]:
    n = len(phys)
    terms = []
    for t in range(n):
        left = bonds[t - 1] if t > 0 else ""
        right = bonds[t] if t < n - 1 else ""
        terms.append(left + phys[t] + right)
    return terms


def _mps_subscripts(n: int) -> str:
    phys, a, b = _mps_letters(n)
    return ",".join(_mps_terms(phys, a) + _mps_terms(phys, b)) + "->"


def _mps_shapes(n: int, p: int, D: int) -> list[tuple[int, ...]]:
    """Open-boundary cores; bond t (between sites t and t+1) has the largest useful
    dimension min(D, p^(t+1), p^(n-1-t)), as in any canonical MPS."""
    chi = [min(D, p ** (t + 1), p ** (n - 1 - t)) for t in range(n - 1)]
    return [(p, chi[0])] + [(chi[t - 1], p, chi[t]) for t in range(1, n - 1)] + [(chi[-1], p)]


def _mps_setup(rng: np.random.Generator, n: int, p: int, D: int) -> Inputs:
    scale = 1.0 / np.sqrt(p * D)
    A = tuple(_normal(rng, *s, scale=scale) for s in _mps_shapes(n, p, D))
    B = [_normal(rng, *s, scale=scale) for s in _mps_shapes(n, p, D)]
    return Inputs(A, {f"B{t}": core for t, core in enumerate(B)})


def _mps_loss(xp: Any, params: tuple, c: dict) -> Any:
    n = len(params)
    B = [c[f"B{t}"] for t in range(n)]
    return xp.einsum(_mps_subscripts(n), *params, *B)


def _as3(core: np.ndarray, t: int, n: int) -> np.ndarray:
    """A core as (left bond, physical, right bond), boundary bonds of size 1."""
    if t == 0:
        core = core[None]
    if t == n - 1:
        core = core[..., None]
    return core


def _mps_reference(params: tuple, c: dict) -> Any:
    n = len(params)
    A = [_as3(a, t, n) for t, a in enumerate(params)]
    B = [_as3(c[f"B{t}"], t, n) for t in range(n)]
    L = [np.ones((1, 1))]
    for t in range(n):  # L_{t+1}[a', b'] = L_t[a, b] A_t[a, s, a'] B_t[b, s, b']
        T = np.tensordot(L[t], A[t], axes=([0], [0]))  # (b, s, a')
        L.append(np.tensordot(T, B[t], axes=([0, 1], [0, 1])))  # (a', b')
    value = L[n][0, 0]
    grads: list[np.ndarray] = [np.empty(0)] * n
    R = np.ones((1, 1))
    for t in reversed(range(n)):
        BR = np.tensordot(B[t], R, axes=([2], [1]))  # (b, s, a')
        grads[t] = np.tensordot(L[t], BR, axes=([1], [0])).reshape(params[t].shape)  # (a, s, a')
        if t:
            R = np.tensordot(A[t], BR, axes=([1, 2], [1, 2]))  # (a, b)
    return value, tuple(grads)


def _mps_einsum(inputs: Inputs) -> tuple[str, list, list]:
    n = len(inputs.params)
    shapes = [p.shape for p in inputs.params] + [inputs.consts[f"B{t}"].shape for t in range(n)]
    return _mps_subscripts(n), shapes, [True] * n + [False] * n


# ============================================================ trace and diagonal
#   trace:    L = sum_i A[i,i]                 dA = I        (swap "ii->"  =>  "->ii")
#   diagonal: L = sum_i G[i] A[i,i]            dA = diag(G)  (swap "ii->i" =>  "i->ii")


def _square_setup(rng: np.random.Generator, n: int) -> Inputs:
    return Inputs((_normal(rng, n, n),), {"G": _normal(rng, n)})


def _trace_loss(xp: Any, params: tuple, c: dict) -> Any:
    return xp.einsum("ii->", params[0])


def _trace_reference(params: tuple, c: dict) -> Any:
    (A,) = params
    return np.trace(A), (np.eye(A.shape[0], dtype=A.dtype),)


def _diagonal_loss(xp: Any, params: tuple, c: dict) -> Any:
    return xp.sum(xp.einsum("ii->i", params[0]) * c["G"])


def _diagonal_reference(params: tuple, c: dict) -> Any:
    (A,) = params
    G = c["G"]
    return np.vdot(np.diagonal(A), G), (np.diag(G),)


# ============================================================ 3-layer tanh MLP
#   h1 = tanh(x W1 + b1), h2 = tanh(h1 W2 + b2), out = h2 W3 + b3,
#   L = 0.5 |out - y|^2 / batch; explicit backprop with transposes.


def _mlp_setup(rng: np.random.Generator, batch: int, width: int) -> Inputs:
    s = 1.0 / np.sqrt(width)
    params = (
        _normal(rng, width, width, scale=s), _normal(rng, width, scale=0.1),
        _normal(rng, width, width, scale=s), _normal(rng, width, scale=0.1),
        _normal(rng, width, width, scale=s), _normal(rng, width, scale=0.1),
    )
    return Inputs(params, {"x": _normal(rng, batch, width), "y": _normal(rng, batch, width)})


def _mlp_loss(xp: Any, params: tuple, c: dict) -> Any:
    W1, b1, W2, b2, W3, b3 = params
    x, y = c["x"], c["y"]
    h1 = xp.tanh(x @ W1 + b1)
    h2 = xp.tanh(h1 @ W2 + b2)
    r = h2 @ W3 + b3 - y
    return 0.5 * xp.sum(r * r) / x.shape[0]


def _mlp_reference(params: tuple, c: dict) -> Any:
    W1, b1, W2, b2, W3, b3 = params
    x, y = c["x"], c["y"]
    n = x.shape[0]
    h1 = np.tanh(x @ W1 + b1)
    h2 = np.tanh(h1 @ W2 + b2)
    r = h2 @ W3 + b3 - y
    value = 0.5 * np.vdot(r, r) / n
    d3 = r / n
    dz2 = (d3 @ W3.T) * (1.0 - h2 * h2)
    dz1 = (dz2 @ W2.T) * (1.0 - h1 * h1)
    grads = (x.T @ dz1, dz1.sum(0), h1.T @ dz2, dz2.sum(0), h2.T @ d3, d3.sum(0))
    return value, grads


# ============================================================ Hessian-vector product
#   f(x) = x^T A x / 2;  H v = (A + A^T) v / 2   (nested reverse mode in every library)


def _hvp_setup(rng: np.random.Generator, n: int) -> Inputs:
    return Inputs((_normal(rng, n),), {"A": _normal(rng, n, n), "v": _normal(rng, n)})


def _quadratic_loss(xp: Any, params: tuple, c: dict) -> Any:
    (x,) = params
    return 0.5 * xp.einsum("i,ij,j->", x, c["A"], x)


def _hvp_reference(params: tuple, c: dict) -> Any:
    A, v = c["A"], c["v"]
    return 0.5 * (A @ v + v @ A)


# ============================================================ logistic-regression Hessian
#   L(w) = mean_n [log(1 + exp(-z_n)) + (1 - y_n) z_n],  z = X w
#   H = X^T diag(p (1 - p)) X / n,  p = sigmoid(z)


def _logreg_setup(rng: np.random.Generator, n: int, d: int) -> Inputs:
    X = _normal(rng, n, d)
    w = _normal(rng, d, scale=1.0 / np.sqrt(d))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-X @ w))).astype(np.float64)
    return Inputs((w * 0.5,), {"X": X, "y": y})


def _logreg_loss(xp: Any, params: tuple, c: dict) -> Any:
    (w,) = params
    X, y = c["X"], c["y"]
    z = X @ w
    return xp.sum(xp.log(1.0 + xp.exp(-z)) + (1.0 - y) * z) / X.shape[0]


def _logreg_reference(params: tuple, c: dict) -> Any:
    (w,) = params
    X = c["X"]
    p = 1.0 / (1.0 + np.exp(-(X @ w)))
    return X.T @ (X * (p * (1.0 - p))[:, None]) / X.shape[0]


# ============================================================ the list

PROBLEMS: list[Problem] = [
    Problem(
        "matmul", "grad", "matrix product ij,jk->ik",
        {"tiny": dict(m=3, k=4, n=5), "small": dict(m=8, k=8, n=8),
         "large": dict(m=768, k=768, n=768)},
        _matmul_setup, _matmul_loss, _matmul_reference,
        lambda inp: ("ij,jk->ik", [p.shape for p in inp.params], [True, True]),
    ),
    Problem(
        "attention", "grad", "attention scores bhqd,bhkd->bhqk",
        {"tiny": dict(b=1, h=2, q=3, k=4, d=5), "small": dict(b=2, h=2, q=4, k=4, d=8),
         "large": dict(b=4, h=8, q=256, k=256, d=64)},
        _attention_setup, _attention_loss, _attention_reference,
        lambda inp: ("bhqd,bhkd->bhqk", [p.shape for p in inp.params], [True, True]),
    ),
    Problem(
        "chain", "grad", "3-matrix chain ij,jk,kl->il",
        {"tiny": dict(m=3, k1=4, k2=2, n=5), "small": dict(m=8, k1=12, k2=4, n=8),
         "large": dict(m=512, k1=1024, k2=256, n=512)},
        _chain_setup, _chain_loss, _chain_reference, _chain_einsum,
    ),
    Problem(
        "bilinear", "grad", "bilinear form bi,ijk,bk->bj",
        {"tiny": dict(b=2, i=3, j=4, k=5), "small": dict(b=4, i=6, j=5, k=6),
         "large": dict(b=256, i=128, j=64, k=128)},
        _bilinear_setup, _bilinear_loss, _bilinear_reference, _bilinear_einsum,
    ),
    Problem(
        "mps", "grad", "tensor-train overlap <A|B> (10 cores), gradient wrt A's cores",
        {"tiny": dict(n=6, p=2, D=2), "small": dict(n=8, p=2, D=4),
         "large": dict(n=10, p=4, D=192)},
        _mps_setup, _mps_loss, _mps_reference, _mps_einsum,
    ),
    Problem(
        "trace", "grad", "trace ii->",
        {"tiny": dict(n=3), "small": dict(n=8), "large": dict(n=2048)},
        _square_setup, _trace_loss, _trace_reference,
        lambda inp: ("ii->", [inp.params[0].shape], [True]),
    ),
    Problem(
        "diagonal", "grad", "diagonal ii->i (weighted sum)",
        {"tiny": dict(n=3), "small": dict(n=8), "large": dict(n=2048)},
        _square_setup, _diagonal_loss, _diagonal_reference,
        lambda inp: ("ii->i", [inp.params[0].shape], [True]),
    ),
    Problem(
        "mlp", "grad", "3-layer tanh MLP, squared loss",
        {"tiny": dict(batch=3, width=4), "small": dict(batch=8, width=8),
         "large": dict(batch=256, width=512)},
        _mlp_setup, _mlp_loss, _mlp_reference,
    ),
    Problem(
        "hvp", "hvp", "Hessian-vector product of x^T A x / 2 (grad of grad)",
        {"tiny": dict(n=4), "small": dict(n=8), "large": dict(n=3000)},
        _hvp_setup, _quadratic_loss, _hvp_reference,
        lambda inp: ("i,ij,j->", [inp.params[0].shape, inp.consts["A"].shape,
                                   inp.params[0].shape], [True, False, True]),
    ),
    Problem(
        "logreg_hessian", "hessian", "full Hessian of a logistic-regression loss",
        {"tiny": dict(n=10, d=3), "small": dict(n=32, d=4), "large": dict(n=1000, d=300)},
        _logreg_setup, _logreg_loss, _logreg_reference,
    ),
]


# The model problems live in their own module (which imports Problem from here).
from benchmarks.models import MODEL_PROBLEMS  # noqa: E402

PROBLEMS += MODEL_PROBLEMS


def by_name(names: list[str] | None) -> list[Problem]:
    """The problems named (all when ``names`` is empty); unknown names raise ``ValueError``."""
    if not names:
        return list(PROBLEMS)
    known = {p.name: p for p in PROBLEMS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown problem(s) {unknown}; known: {sorted(known)}")
    return [known[n] for n in names]
