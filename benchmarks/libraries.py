"""Implementations of each problem, one per library and mode.

An :class:`Impl` is a zero-argument callable (inputs already converted to the
library's arrays, outside the timed region) plus a converter of its result to a
flat list of NumPy arrays for verification: ``[value, *gradients]`` for a
``grad`` problem, ``[result]`` for ``hvp`` and ``hessian``.

The hand-derived NumPy baseline and einsumad are always available; the peers
(JAX eager and jit, PyTorch eager, HIPS autograd) are built only when their
import works. Every library differentiates the same loss (``problem.loss``,
written once against a NumPy-like namespace) by the same method: reverse mode
for gradients, reverse over reverse for the Hessian-vector product, the
library's own ``hessian`` for Hessians, and both plus the library's ``solve``
for a Newton step. A model problem may give a library its own loss
(``Problem.losses``); the derivative is then taken the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from benchmarks.problems import Inputs, Problem

__all__ = ["Impl", "baseline_impl", "einsumad_impls", "peer_impls", "PEERS"]

PEERS = ("jax", "torch", "autograd")


@dataclass
class Impl:
    """One library's way of computing a problem's derivative."""

    library: str
    mode: str
    fn: Callable[[], Any]
    to_numpy: Callable[[Any], list[np.ndarray]]

    @property
    def label(self) -> str:
        return f"{self.library} {self.mode}"


def _flatten(kind: str, result: Any, convert: Callable[[Any], np.ndarray]) -> list[np.ndarray]:
    if kind == "grad":
        value, grads = result
        return [convert(value)] + [convert(g) for g in grads]
    return [convert(result)]


def baseline_impl(problem: Problem, inputs: Inputs) -> Impl:
    """The hand-derived NumPy derivative: the baseline of every ratio."""
    params, consts = inputs.params, inputs.consts
    return Impl(
        "numpy", "hand",
        lambda: problem.reference(params, consts),
        lambda r: _flatten(problem.kind, r, np.asarray),
    )


# ================================================================= einsumad


def einsumad_impls(problem: Problem, inputs: Inputs) -> list[Impl]:
    """einsumad eager, and compiled when ``ea.compile`` exists."""
    import einsumad as ea

    consts = inputs.consts
    loss = problem.loss_for("einsumad", ea, inputs)
    if problem.kind == "grad":
        fun = ea.value_and_grad(lambda params, c: loss(params, c))
        arg: Any = inputs.params
    elif problem.kind == "hvp":
        v = consts["v"]
        g = ea.grad(lambda x, c: loss((x,), c))
        fun = ea.grad(lambda x, c: ea.sum(g(x, c) * v))
        arg = inputs.params[0]
    elif problem.kind == "newton":
        scalar = lambda w, c: loss((w,), c)

        def fun(w: Any, c: dict) -> Any:
            return w - ea.solve(ea.hessian(scalar)(w, c), ea.grad(scalar)(w, c))

        arg = inputs.params[0]
    else:
        fun = ea.hessian(lambda w, c: loss((w,), c))
        arg = inputs.params[0]

    def convert(r: Any) -> list[np.ndarray]:
        return _flatten(problem.kind, r, np.asarray)

    impls = [Impl("einsumad", "eager", lambda: fun(arg, consts), convert)]
    if problem.kind == "hvp":  # forward over reverse, for comparison
        impls.append(
            Impl("einsumad", "eager jvp(grad)", lambda: ea.jvp(lambda x: g(x, consts), (arg,), (v,))[1], convert)
        )
    compile_ = getattr(ea, "compile", None)
    if compile_ is not None:
        variants = [("compiled", {})]
        if _fusion_available():  # the `fast` extra: compiled with and without numexpr
            variants.append(("compiled no-fast", {"fuse": False}))
        for mode, options in variants:
            try:
                compiled = compile_(fun, **options)
            except Exception as exc:  # noqa: BLE001 - reported as a failed row
                def compiled(*_: Any, _exc: Exception = exc) -> Any:
                    raise _exc
            impls.append(Impl("einsumad", mode, lambda compiled=compiled: compiled(arg, consts), convert))
    return impls


def _fusion_available() -> bool:
    """Whether ``ea.compile`` fuses elementwise chains here (numexpr importable)."""
    try:
        from einsumad.tools import fusion
    except ImportError:
        return False
    return bool(fusion.available())


# ================================================================= peers


def _jax_impls(problem: Problem, inputs: Inputs) -> list[Impl]:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    params = tuple(jnp.asarray(p) for p in inputs.params)
    consts = {k: jnp.asarray(v) for k, v in inputs.consts.items()}
    loss = problem.loss_for("jax", jnp, inputs)
    if problem.kind == "grad":
        fun = jax.value_and_grad(lambda p, c: loss(p, c))
        arg: Any = params
    elif problem.kind == "hvp":
        g = jax.grad(lambda x, c: loss((x,), c))
        fun = jax.grad(lambda x, c: jnp.sum(g(x, c) * c["v"]))
        arg = params[0]
    elif problem.kind == "newton":
        scalar = lambda w, c: loss((w,), c)
        fun = lambda w, c: w - jnp.linalg.solve(jax.hessian(scalar)(w, c), jax.grad(scalar)(w, c))
        arg = params[0]
    else:
        fun = jax.hessian(lambda w, c: loss((w,), c))
        arg = params[0]
    jitted = jax.jit(fun)

    def convert(r: Any) -> list[np.ndarray]:
        return _flatten(problem.kind, r, np.asarray)

    return [
        Impl("jax", "eager", lambda: jax.block_until_ready(fun(arg, consts)), convert),
        Impl("jax", "jit", lambda: jax.block_until_ready(jitted(arg, consts)), convert),
    ]


def _torch_impls(problem: Problem, inputs: Inputs) -> list[Impl]:
    import torch

    params = [torch.from_numpy(np.array(p)).requires_grad_() for p in inputs.params]
    consts = {k: torch.from_numpy(np.array(v)) for k, v in inputs.consts.items()}
    loss = problem.loss_for("torch", torch, inputs)

    if problem.kind == "grad":
        def call() -> Any:
            value = loss(tuple(params), consts)
            return value.detach(), torch.autograd.grad(value, params)
    elif problem.kind == "hvp":
        x, v = params[0], consts["v"]

        def call() -> Any:
            (g,) = torch.autograd.grad(loss((x,), consts), x, create_graph=True)
            return torch.autograd.grad(torch.sum(g * v), x)[0]
    elif problem.kind == "newton":
        w = params[0].detach()

        def call() -> Any:
            H = torch.autograd.functional.hessian(lambda w_: loss((w_,), consts), w, vectorize=True)
            wg = w.clone().requires_grad_()
            (g,) = torch.autograd.grad(loss((wg,), consts), wg)
            return w - torch.linalg.solve(H, g)
    else:
        w = params[0].detach()

        def call() -> Any:
            return torch.autograd.functional.hessian(lambda w_: loss((w_,), consts), w, vectorize=True)

    def convert(r: Any) -> list[np.ndarray]:
        return _flatten(problem.kind, r, lambda t: t.detach().numpy())

    return [Impl("torch", "eager", call, convert)]


class _AutogradNumpy:
    """``autograd.numpy``, with n-operand ``einsum`` split into pairwise einsums.

    autograd's einsum VJP calls ``numpy.einsum`` on the n-operand swapped
    subscripts *without* ``optimize=``, a nested loop over every index (hours
    for the tensor train), so the harness contracts pairwise along opt_einsum's
    path, as a user of autograd would have to.
    """

    def __init__(self) -> None:
        import autograd.numpy as anp

        self._anp = anp

    def einsum(self, subscripts: str, *operands: Any) -> Any:
        if len(operands) <= 2:
            return self._anp.einsum(subscripts, *operands, optimize=True)
        import opt_einsum

        _, info = opt_einsum.contract_path(subscripts, *[np.shape(o) for o in operands], shapes=True)
        ops = list(operands)
        for positions, _, step, _, _ in info.contraction_list:
            chosen = [ops[p] for p in positions]
            ops = [o for i, o in enumerate(ops) if i not in positions]
            ops.append(self._anp.einsum(step, *chosen, optimize=True))
        return ops[0]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._anp, name)


def _autograd_impls(problem: Problem, inputs: Inputs) -> list[Impl]:
    import autograd

    anp = _AutogradNumpy()
    consts = inputs.consts
    if problem.losses and "autograd" not in problem.losses:
        raise NotImplementedError("this model has no autograd version")
    loss = problem.loss_for("autograd", anp, inputs)
    if problem.kind == "grad":
        fun = autograd.value_and_grad(lambda p, c: loss(p, c))
        arg: Any = inputs.params
    elif problem.kind == "hvp":
        g = autograd.grad(lambda x, c: loss((x,), c))
        fun = autograd.grad(lambda x, c: anp.sum(g(x, c) * c["v"]))
        arg = inputs.params[0]
    elif problem.kind == "newton":
        scalar = lambda w, c: loss((w,), c)
        fun = lambda w, c: w - anp.linalg.solve(autograd.hessian(scalar)(w, c), autograd.grad(scalar)(w, c))
        arg = inputs.params[0]
    else:
        fun = autograd.hessian(lambda w, c: loss((w,), c))
        arg = inputs.params[0]

    def convert(r: Any) -> list[np.ndarray]:
        return _flatten(problem.kind, r, np.asarray)

    return [Impl("autograd", "eager", lambda: fun(arg, consts), convert)]


_PEER_BUILDERS = {"jax": _jax_impls, "torch": _torch_impls, "autograd": _autograd_impls}


def available_peers() -> dict[str, str]:
    """Which peers import here: name -> version, or the reason it is missing."""
    from importlib import metadata

    found = {}
    for name in PEERS:
        try:
            __import__(name)
            found[name] = metadata.version(name)
        except Exception as exc:  # noqa: BLE001 - any import failure means "absent"
            found[name] = f"unavailable ({type(exc).__name__}: {exc})"
    return found


def peer_impls(problem: Problem, inputs: Inputs, peers: list[str]) -> tuple[list[Impl], list[str]]:
    """Implementations by the importable ``peers``, and notes on those that failed to build."""
    impls, notes = [], []
    for name in peers:
        try:
            impls.extend(_PEER_BUILDERS[name](problem, inputs))
        except Exception as exc:  # noqa: BLE001 - a peer that cannot build is noted, not fatal
            notes.append(f"{name}: {type(exc).__name__}: {exc}")
    return impls, notes
