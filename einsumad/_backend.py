"""The one place that turns a resolved :class:`Spec` into NumPy calls.

``evaluate(spec, *arrays)`` computes a generalised einsum. Each (spec, shapes)
pair is planned once and the plan is cached, so a training loop pays parsing and
path search once. A plan picks the cheapest faithful NumPy route:

* a permutation of one operand is a ``transpose`` view;
* a product whose terms all survive into the output (Hadamard, outer and
  broadcast products) is ``numpy.multiply`` on aligned views;
* anything else goes to an opt_einsum contraction expression (BLAS where the
  contraction allows, an optimised path for three or more operands).

The generalised output forms are applied after the contraction: a symbol absent
from every input is a broadcast, a repeated symbol writes onto a diagonal.
"""

from __future__ import annotations

import functools
import string
from typing import Any, Callable, Sequence

import numpy as np
import opt_einsum

from ._subscripts import Spec

__all__ = ["evaluate", "plan", "contraction_path", "flop_count"]

Plan = Callable[..., np.ndarray]


def evaluate(spec: Spec, *arrays: Any) -> np.ndarray:
    """Evaluate the generalised einsum ``spec`` on ``arrays``.

    >>> from einsumad._subscripts import parse, resolve
    >>> a = np.arange(6.0).reshape(2, 3)
    >>> evaluate(resolve(parse("ij->ji"), [(2, 3)]), a).shape
    (3, 2)
    >>> evaluate(resolve(parse("i->ii"), [(2,)]), np.array([1.0, 2.0]))
    array([[1., 0.],
           [0., 2.]])
    """
    return plan(spec, tuple(np.shape(a) for a in arrays))(*arrays)


def _letters(spec_terms: Sequence[str]) -> dict[str, str]:
    """Map the symbols of one contraction onto ASCII letters for numpy.einsum."""
    symbols = dict.fromkeys("".join(spec_terms))
    if len(symbols) > 52:
        return {s: s for s in symbols}  # opt_einsum handles its own symbols
    return {s: string.ascii_letters[i] for i, s in enumerate(symbols)}


@functools.lru_cache(maxsize=8192)
def plan(spec: Spec, shapes: tuple[tuple[int, ...], ...]) -> Plan:
    """A callable that evaluates ``spec`` on arrays of ``shapes`` (cached)."""
    sizes = dict(spec.sizes)
    for term, shape in zip(spec.inputs, shapes):
        for s, n in zip(term, shape):
            if n != 1 or sizes.get(s, -1) == -1:
                sizes[s] = n
    present = set("".join(spec.inputs))
    unique_out = "".join(dict.fromkeys(spec.output))
    core = "".join(s for s in unique_out if s in present)
    contract = _plan_core(spec.inputs, core, shapes)
    if core == spec.output:
        return contract
    expand = _plan_expand(core, spec.output, sizes)
    return lambda *arrays: expand(contract(*arrays))


def _plan_core(inputs: tuple[str, ...], core: str, shapes: tuple[tuple[int, ...], ...]) -> Plan:
    """Contract ``inputs`` to ``core`` (unique symbols, all present in inputs)."""
    if len(inputs) == 1:
        (term,) = inputs
        if term == core:
            return lambda x: np.asarray(x)
        if len(set(term)) == len(term) and sorted(term) == sorted(core):
            perm = tuple(term.index(s) for s in core)
            return lambda x: np.asarray(x).transpose(perm)
        if len(set(term)) == len(term):
            summed = tuple(i for i, s in enumerate(term) if s not in core)
            kept = "".join(s for s in term if s in core)
            perm = tuple(kept.index(s) for s in core)
            identity = perm == tuple(range(len(perm)))
            def reduce(x: Any) -> np.ndarray:
                y = np.sum(x, axis=summed)
                return y if identity else y.transpose(perm)
            return reduce
    if _is_product(inputs, core):
        return _plan_product(inputs, core)
    letters = _letters((*inputs, core))
    equation = ",".join("".join(letters[s] for s in t) for t in inputs) + "->" + "".join(
        letters[s] for s in core
    )
    if len(inputs) == 1:
        return functools.partial(np.einsum, equation)
    expression = opt_einsum.contract_expression(equation, *shapes)
    return expression


def _is_product(inputs: tuple[str, ...], core: str) -> bool:
    """Every operand's symbols are distinct and all survive into the output."""
    return len(inputs) == 2 and all(
        len(set(t)) == len(t) and set(t) <= set(core) for t in inputs
    )


def _plan_product(inputs: tuple[str, ...], core: str) -> Plan:
    """Hadamard / outer / broadcast products as ``numpy.multiply`` on aligned views."""
    aligners = []
    for term in inputs:
        order = sorted(term, key=core.index)
        perm = tuple(term.index(s) for s in order)
        shape_index = tuple(slice(None) if s in term else None for s in core)
        needs_perm = perm != tuple(range(len(perm)))

        def align(x: Any, perm=perm, needs_perm=needs_perm, index=shape_index) -> Any:
            x = np.asarray(x) if not np.isscalar(x) else x
            if np.isscalar(x):
                return x
            if needs_perm:
                x = x.transpose(perm)
            return x[index]

        aligners.append(align)
    first, second = aligners
    return lambda a, b: np.multiply(first(a), second(b))


def _plan_expand(core: str, output: str, sizes: dict[str, int]) -> Callable[[np.ndarray], np.ndarray]:
    """Broadcast symbols absent from ``core``; write repeated symbols on a diagonal."""
    unique_out = "".join(dict.fromkeys(output))
    index = tuple(slice(None) if s in core else None for s in unique_out)
    unique_shape = tuple(sizes[s] for s in unique_out)
    out_shape = tuple(sizes[s] for s in output)
    repeated = len(unique_out) != len(output)

    def expand(y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim:
            y = y[index]
        else:
            y = y.reshape((1,) * len(unique_out))
        if not repeated:
            return np.broadcast_to(y, unique_shape)
        out = np.zeros(out_shape, dtype=y.dtype)
        strides = tuple(
            sum(out.strides[p] for p, t in enumerate(output) if t == s) for s in unique_out
        )
        diagonal = np.lib.stride_tricks.as_strided(out, unique_shape, strides, writeable=True)
        diagonal[...] = y
        return out

    return expand


@functools.lru_cache(maxsize=4096)
def contraction_path(
    spec: Spec, shapes: tuple[tuple[int, ...], ...]
) -> tuple[tuple[int, ...], ...]:
    """opt_einsum's optimised pairwise path for ``spec`` on these shapes (cached)."""
    present = set("".join(spec.inputs))
    core = "".join(s for s in dict.fromkeys(spec.output) if s in present)
    letters = _letters((*spec.inputs, core))
    equation = ",".join("".join(letters[s] for s in t) for t in spec.inputs) + "->" + "".join(
        letters[s] for s in core
    )
    path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="auto")
    return tuple(tuple(step) for step in path)


def flop_count(spec: Spec, shapes: Sequence[tuple[int, ...]]) -> int:
    """opt_einsum's floating-point operation count for ``spec`` on these shapes."""
    present = set("".join(spec.inputs))
    core = "".join(s for s in dict.fromkeys(spec.output) if s in present)
    letters = _letters((*spec.inputs, core))
    equation = ",".join("".join(letters[s] for s in t) for t in spec.inputs) + "->" + "".join(
        letters[s] for s in core
    )
    _, info = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="auto")
    return int(info.opt_cost)
