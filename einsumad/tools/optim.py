"""Optimizers on pytrees of NumPy arrays, with the functional interface of optax.

An optimizer is a pair of pure functions wrapped in a small object::

    opt = ea.optim.Adam(learning_rate=1e-3)
    state = opt.init(params)                              # moments, step count
    params, state = opt.update(params, grads, state)      # one step

``params`` and ``grads`` are pytrees of one structure (nested dicts, lists and
tuples of arrays, as :func:`einsumad.grad` returns them). Nothing is mutated in
place: ``update`` returns new arrays and a new immutable state, so an old state
can be kept and replayed. Each leaf keeps its dtype (float32 stays float32).

:func:`fit` is a minimal training loop built on these: it differentiates a loss
with :func:`einsumad.value_and_grad`, applies the optimizer to every batch and
prints one line per epoch.

>>> import numpy as np, einsumad as ea
>>> opt = ea.optim.SGD(learning_rate=0.1)
>>> params = {"w": np.array([1.0, -2.0])}
>>> state = opt.init(params)
>>> grads = ea.grad(lambda p: ea.sum(p["w"] ** 2))(params)   # 2 w
>>> params, state = opt.update(params, grads, state)
>>> params["w"], state.count
(array([ 0.8, -1.6]), 1)
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterable, NamedTuple, Sequence, TextIO

import numpy as np

from ..core.pytree import tree_flatten, tree_unflatten
from ..transforms.autodiff import value_and_grad

__all__ = ["SGD", "SGDState", "Adam", "AdamState", "fit", "minibatches"]

Schedule = float | Callable[[int], float]


# ================================================================= helpers


def _leaves_of(params: Any, grads: Any, where: str) -> tuple[list[np.ndarray], list[Any], Any]:
    """Leaves of params (as arrays) and of grads, after checking the structures agree."""
    p_leaves, p_def = tree_flatten(params)
    g_leaves, g_def = tree_flatten(grads)
    if p_def != g_def:
        raise ValueError(
            f"{where}: the gradients' pytree structure {g_def} differs from the "
            f"parameters' structure {p_def}; pass the gradient of the loss with respect "
            "to the whole params pytree (ea.grad(loss)(params))"
        )
    p_arrays = [np.asarray(p) for p in p_leaves]
    for i, (p, g) in enumerate(zip(p_arrays, g_leaves)):
        if np.shape(g) != p.shape:
            raise ValueError(
                f"{where}: gradient leaf {i} has shape {np.shape(g)} but its parameter "
                f"has shape {p.shape}"
            )
    return p_arrays, g_leaves, p_def


def _zeros_like_tree(params: Any) -> Any:
    leaves, treedef = tree_flatten(params)
    return tree_unflatten(treedef, [np.zeros_like(np.asarray(p)) for p in leaves])


def _float_dtype(p: np.ndarray) -> np.dtype:
    return p.dtype if np.issubdtype(p.dtype, np.floating) else np.dtype(np.float64)


def _rate(learning_rate: Schedule, count: int) -> float:
    """The learning rate at step ``count`` (0 for the first step)."""
    return float(learning_rate(count) if callable(learning_rate) else learning_rate)


# ================================================================= SGD


class SGDState(NamedTuple):
    """State of :class:`SGD`: the number of steps taken and the momentum buffer
    (a pytree like the params, or ``None`` without momentum)."""

    count: int  # type: ignore[assignment]  # the field shadows tuple.count, as in optax
    momentum: Any


class SGD:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    With ``momentum = μ`` and learning rate ``η``, one step is (the convention of
    PyTorch and optax)::

        v ← μ v + g
        p ← p − η v                 (heavy ball)
        p ← p − η (g + μ v)         (nesterov=True, using the new v)

    Args:
        learning_rate: a float, or a function of the step count (0, 1, ...)
            returning one (a schedule).
        momentum: μ in [0, 1); 0 is plain gradient descent.
        nesterov: use Nesterov's look-ahead form.

    >>> import numpy as np, einsumad as ea
    >>> opt = ea.optim.SGD(learning_rate=0.5, momentum=0.9)
    >>> p, g = np.array([1.0]), np.array([1.0])
    >>> state = opt.init(p)
    >>> p, state = opt.update(p, g, state)   # v = 1,   p = 1 - 0.5
    >>> p, state = opt.update(p, g, state)   # v = 1.9, p = 0.5 - 0.95
    >>> p
    array([-0.45])
    """

    def __init__(self, learning_rate: Schedule, momentum: float = 0.0, nesterov: bool = False):
        if not callable(learning_rate) and not float(learning_rate) > 0:
            raise ValueError(f"SGD: learning_rate must be positive, got {learning_rate!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0.0:
            raise ValueError("SGD: nesterov=True needs a nonzero momentum")
        self.learning_rate = learning_rate
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def __repr__(self) -> str:
        return (
            f"SGD(learning_rate={self.learning_rate!r}, momentum={self.momentum}, "
            f"nesterov={self.nesterov})"
        )

    def init(self, params: Any) -> SGDState:
        """The state before the first step: count 0 and a zero momentum buffer."""
        buffer = _zeros_like_tree(params) if self.momentum else None
        return SGDState(count=0, momentum=buffer)

    def update(self, params: Any, grads: Any, state: SGDState) -> tuple[Any, SGDState]:
        """One step: returns ``(new_params, new_state)``; the inputs are not modified."""
        p_leaves, g_leaves, treedef = _leaves_of(params, grads, "SGD.update")
        lr = _rate(self.learning_rate, state.count)
        mu = self.momentum
        new_p, new_v = [], []
        v_leaves = tree_flatten(state.momentum)[0] if mu else [None] * len(p_leaves)
        for p, g, v in zip(p_leaves, g_leaves, v_leaves):
            dtype = _float_dtype(p)
            g = np.asarray(g, dtype=dtype)
            if mu:
                v = (mu * v + g).astype(dtype, copy=False)
                step = g + mu * v if self.nesterov else v
                new_v.append(v)
            else:
                step = g
            new_p.append((p - lr * step).astype(dtype, copy=False))
        momentum = tree_unflatten(treedef, new_v) if mu else None
        return tree_unflatten(treedef, new_p), SGDState(state.count + 1, momentum)


# ================================================================= Adam


class AdamState(NamedTuple):
    """State of :class:`Adam`: the step count and the first and second moment
    estimates ``mu`` and ``nu`` (pytrees like the params)."""

    count: int  # type: ignore[assignment]  # the field shadows tuple.count, as in optax
    mu: Any
    nu: Any


class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction, as in the paper's Algorithm 1.

    At step ``t = 1, 2, ...`` with gradient ``g``::

        m ← b1 m + (1 − b1) g
        v ← b2 v + (1 − b2) g²
        m̂ = m / (1 − b1ᵗ),   v̂ = v / (1 − b2ᵗ)
        p ← p − η m̂ / (√v̂ + eps)          (eps outside the square root)

    Args:
        learning_rate: η, a float or a function of the step count (0, 1, ...).
        b1: decay rate of the first moment.
        b2: decay rate of the second moment.
        eps: added to √v̂ for numerical stability.

    >>> import numpy as np, einsumad as ea
    >>> opt = ea.optim.Adam(learning_rate=0.1)
    >>> p = np.array([1.0, -1.0], dtype=np.float32)
    >>> state = opt.init(p)
    >>> p, state = opt.update(p, np.array([3.0, -0.5], dtype=np.float32), state)
    >>> p, p.dtype          # the first step moves each entry by about η·sign(g)
    (array([ 0.9, -0.9], dtype=float32), dtype('float32'))
    """

    def __init__(
        self,
        learning_rate: Schedule = 1e-3,
        b1: float = 0.9,
        b2: float = 0.999,
        eps: float = 1e-8,
    ):
        if not callable(learning_rate) and not float(learning_rate) > 0:
            raise ValueError(f"Adam: learning_rate must be positive, got {learning_rate!r}")
        for name, value in (("b1", b1), ("b2", b2)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"Adam: {name} must be in [0, 1), got {value!r}")
        if not eps >= 0:
            raise ValueError(f"Adam: eps must be non-negative, got {eps!r}")
        self.learning_rate = learning_rate
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)

    def __repr__(self) -> str:
        return (
            f"Adam(learning_rate={self.learning_rate!r}, b1={self.b1}, b2={self.b2}, "
            f"eps={self.eps})"
        )

    def init(self, params: Any) -> AdamState:
        """The state before the first step: count 0 and zero moments."""
        return AdamState(count=0, mu=_zeros_like_tree(params), nu=_zeros_like_tree(params))

    def update(self, params: Any, grads: Any, state: AdamState) -> tuple[Any, AdamState]:
        """One step: returns ``(new_params, new_state)``; the inputs are not modified."""
        p_leaves, g_leaves, treedef = _leaves_of(params, grads, "Adam.update")
        lr = _rate(self.learning_rate, state.count)
        t = state.count + 1
        b1, b2, eps = self.b1, self.b2, self.eps
        correction1, correction2 = 1.0 - b1**t, 1.0 - b2**t
        new_p, new_m, new_v = [], [], []
        m_leaves, v_leaves = tree_flatten(state.mu)[0], tree_flatten(state.nu)[0]
        for p, g, m, v in zip(p_leaves, g_leaves, m_leaves, v_leaves):
            dtype = _float_dtype(p)
            g = np.asarray(g, dtype=dtype)
            m = (b1 * m + (1.0 - b1) * g).astype(dtype, copy=False)
            v = (b2 * v + (1.0 - b2) * (g * g)).astype(dtype, copy=False)
            m_hat = m / correction1
            v_hat = v / correction2
            new_p.append((p - lr * m_hat / (np.sqrt(v_hat) + eps)).astype(dtype, copy=False))
            new_m.append(m)
            new_v.append(v)
        return tree_unflatten(treedef, new_p), AdamState(
            t, tree_unflatten(treedef, new_m), tree_unflatten(treedef, new_v)
        )


# ================================================================= a training loop


def minibatches(
    *arrays: np.ndarray, batch_size: int, shuffle: bool = True, seed: int = 0
) -> Callable[[int], Iterable[tuple[np.ndarray, ...]]]:
    """Batches for :func:`fit`: a function ``epoch -> iterable of (x, y, ...) batches``.

    The arrays are split along their first axis; with ``shuffle`` the order is
    a fresh permutation each epoch (reproducible from ``seed``). The last batch
    may be smaller.

    >>> import numpy as np, einsumad as ea
    >>> batches = ea.optim.minibatches(np.arange(5.0), batch_size=2, shuffle=False)
    >>> [b[0].tolist() for b in batches(0)]
    [[0.0, 1.0], [2.0, 3.0], [4.0]]
    """
    if not arrays:
        raise ValueError("minibatches: give at least one array")
    n = len(arrays[0])
    for a in arrays:
        if len(a) != n:
            raise ValueError(
                f"minibatches: the arrays have different lengths {[len(a) for a in arrays]}"
            )
    if batch_size < 1:
        raise ValueError(f"minibatches: batch_size must be positive, got {batch_size}")

    def epoch_batches(epoch: int) -> Iterable[tuple[np.ndarray, ...]]:
        order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            yield tuple(a[index] for a in arrays)

    return epoch_batches


def fit(
    loss_fn: Callable[..., Any],
    params: Any,
    data: Callable[[int], Iterable[Any]] | Sequence[Any],
    optimizer: SGD | Adam,
    epochs: int = 1,
    *,
    verbose: bool = True,
    print_every: int = 1,
    file: TextIO | None = None,
    callback: Callable[[int, Any, float], str | None] | None = None,
) -> tuple[Any, list[float]]:
    """Minimise ``loss_fn(params, *batch)`` with ``optimizer``; return ``(params, history)``.

    Each epoch runs one optimizer step per batch. ``history[e]`` is the mean of
    the batch losses of epoch ``e`` (measured before each step). With
    ``verbose`` a line per epoch (or per ``print_every`` epochs) is printed to
    ``file`` (default ``sys.stdout``): epoch, mean loss, elapsed seconds, and
    whatever ``callback`` returns.

    Args:
        loss_fn: ``loss_fn(params, *batch)`` returning a scalar, written with
            einsumad ops.
        params: the initial pytree of arrays (not modified).
        data: a sequence of batches, reused every epoch, or a function
            ``epoch -> iterable of batches`` (see :func:`minibatches`). A batch
            is a tuple of extra arguments to ``loss_fn`` (a lone array is
            passed as a single argument); use ``[()]`` when the loss takes none.
        optimizer: an :class:`SGD` or :class:`Adam` (anything with ``init`` and
            ``update``).
        epochs: the number of passes over ``data``.
        verbose: print a line per epoch.
        print_every: with ``verbose``, print only every ``print_every``-th epoch
            (and the last one).
        file: where the lines go (default ``sys.stdout``).
        callback: called as ``callback(epoch, params, mean_loss)`` after each
            epoch; a returned string is appended to the epoch's line
            (e.g. ``"test acc 0.97"``).

    >>> import numpy as np, einsumad as ea
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]); y = np.array([1.0, 2.0, 3.0])
    >>> def loss(p, X, y):
    ...     return ea.mean((ea.einsum("n i, i -> n", X, p["w"]) - y) ** 2)
    >>> p, history = ea.optim.fit(loss, {"w": np.zeros(2)}, [(X, y)],
    ...                           ea.optim.Adam(0.1), epochs=300, verbose=False)
    >>> np.round(p["w"], 3), history[-1] < 1e-6 < history[0]
    (array([1., 2.]), True)
    """
    out = sys.stdout if file is None else file
    step = value_and_grad(loss_fn)
    state: Any = optimizer.init(params)
    history: list[float] = []
    start = time.perf_counter()
    for epoch in range(epochs):
        batches = data(epoch) if callable(data) else data
        total, count = 0.0, 0
        for batch in batches:
            args = batch if isinstance(batch, tuple) else (batch,)
            loss, grads = step(params, *args)
            params, state = optimizer.update(params, grads, state)
            total += float(loss)
            count += 1
        if count == 0:
            raise ValueError("fit: the data produced no batches")
        mean_loss = total / count
        history.append(mean_loss)
        extra = callback(epoch, params, mean_loss) if callback is not None else None
        if verbose and ((epoch + 1) % print_every == 0 or epoch + 1 == epochs):
            line = (
                f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}  loss {mean_loss:.6g}  "
                f"time {time.perf_counter() - start:.2f}s"
            )
            print(line + (f"  {extra}" if extra else ""), file=out, flush=True)
    return params, history
