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

__all__ = ["evaluate", "plan", "contraction_path"]

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
    try:
        shapes = tuple([a.shape for a in arrays])
    except AttributeError:  # a Python scalar among the operands
        shapes = tuple([np.shape(a) for a in arrays])
    return plan(spec, shapes)(*arrays)


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
    if len(spec.inputs) >= 3:
        return _plan_path(spec, shapes, sizes)
    present = set("".join(spec.inputs))
    unique_out = "".join(dict.fromkeys(spec.output))
    core = "".join(s for s in unique_out if s in present)
    contract = _plan_core(spec.inputs, core, shapes)
    if core == spec.output:
        return contract
    expand = _plan_expand(core, spec.output, sizes)
    return lambda *arrays: expand(contract(*arrays))


def _plan_path(spec: Spec, shapes: tuple[tuple[int, ...], ...], sizes: dict[str, int]) -> Plan:
    """Three or more operands: the pairwise steps of opt_einsum's optimised path."""
    from ._algebra import pairwise_steps

    current = list(shapes)
    steps = []
    for positions, step in pairwise_steps(spec, contraction_path(spec, shapes)):
        step_shapes = tuple(current[p] for p in positions)
        current = [c for i, c in enumerate(current) if i not in positions]
        current.append(tuple(sizes[s] for s in step.output))
        steps.append((positions, plan(step, step_shapes)))

    def run(*arrays: Any) -> np.ndarray:
        operands = list(arrays)
        for positions, step_plan in steps:
            chosen = [operands[p] for p in positions]
            operands = [o for i, o in enumerate(operands) if i not in positions]
            operands.append(step_plan(*chosen))
        return operands[0]

    return run


def _plan_core(inputs: tuple[str, ...], core: str, shapes: tuple[tuple[int, ...], ...]) -> Plan:
    """Contract one or two ``inputs`` to ``core`` (unique symbols present in inputs)."""
    distinct = all(len(set(t)) == len(t) for t in inputs)
    if len(inputs) == 1:
        (term,) = inputs
        if term == core:
            return lambda x: np.asarray(x)
        if distinct and sorted(term) == sorted(core):
            perm = tuple(term.index(s) for s in core)
            return lambda x: np.asarray(x).transpose(perm)
        if distinct and not core:
            return lambda x: np.asarray(x).sum()
        if distinct:
            summed = tuple(i for i, s in enumerate(term) if s not in core)
            kept = "".join(s for s in term if s in core)
            perm = tuple(kept.index(s) for s in core)
            identity = perm == tuple(range(len(perm)))

            def reduce(x: Any) -> np.ndarray:
                y = np.sum(x, axis=summed)
                return y if identity else y.transpose(perm)

            return reduce
    elif _is_broadcast_product(inputs, core, shapes):
        return np.multiply
    elif _is_product(inputs, core):
        return _plan_product(inputs, core)
    elif distinct:
        return _plan_matmul(inputs[0], inputs[1], core, shapes[0], shapes[1])
    # Diagonals (a letter repeated within a term): numpy.einsum's own loops.
    equation = _equation(inputs, core)
    if len(set("".join(inputs))) > 52:
        return opt_einsum.contract_expression(equation, *shapes)
    return functools.partial(np.einsum, equation)


def _plan_matrix_product(a_term: str, b_term: str, core: str) -> Plan | None:
    """Matrix and vector products (at most one letter per role) as ``a @ b``
    with transposed views, exactly as written by hand; None otherwise."""
    shared = [s for s in a_term if s in b_term]
    if len(a_term) > 2 or len(b_term) > 2 or len(shared) != 1 or shared[0] in core:
        return None
    (k,) = shared
    left = [s for s in a_term if s != k]
    right = [s for s in b_term if s != k]
    if sorted(left + right) != sorted(core):
        return None
    transpose_a = len(a_term) == 2 and a_term[0] == k
    transpose_b = len(b_term) == 2 and b_term[1] == k
    transpose_out = len(core) == 2 and core[0] != (left + right)[0]

    def run(a: Any, b: Any) -> np.ndarray:
        a, b = np.asarray(a), np.asarray(b)
        c = np.matmul(a.T if transpose_a else a, b.T if transpose_b else b)
        return c.T if transpose_out else c

    return run


def _plan_matmul(
    a_term: str, b_term: str, core: str, shape_a: tuple[int, ...], shape_b: tuple[int, ...]
) -> Plan:
    """A pairwise contraction as one (batched) ``numpy.matmul``, as a person writes it.

    Symbols sort into batch (both operands and output), left (first operand and
    output), right (second and output) and contracted (both, not output); symbols
    in one operand only and not in the output are summed first. Each operand is
    permuted and reshaped to ``(batch, left, contracted)`` / ``(batch, contracted,
    right)``, multiplied by BLAS, and the result permuted to the output order.
    """
    size = dict(zip(a_term, shape_a)) | dict(zip(b_term, shape_b))
    in_a, in_b = set(a_term), set(b_term)
    simple = _plan_matrix_product(a_term, b_term, core)
    if simple is not None:
        return simple
    batch = [s for s in core if s in in_a and s in in_b]
    left = [s for s in core if s in in_a and s not in in_b]
    right = [s for s in core if s in in_b and s not in in_a]
    contracted = [s for s in a_term if s in in_b and s not in core]
    sum_a = tuple(i for i, s in enumerate(a_term) if s not in in_b and s not in core)
    sum_b = tuple(i for i, s in enumerate(b_term) if s not in in_a and s not in core)
    kept_a = [s for s in a_term if s in in_b or s in core]
    kept_b = [s for s in b_term if s in in_a or s in core]
    perm_a = tuple(kept_a.index(s) for s in batch + left + contracted)
    perm_b = tuple(kept_b.index(s) for s in batch + contracted + right)
    n = lambda letters: int(np.prod([size[s] for s in letters], dtype=np.int64))  # noqa: E731
    nb, nl, nc, nr = n(batch), n(left), n(contracted), n(right)
    if batch and (nl == 1 or nr == 1):
        # A batch of matrix-vector products: numpy.einsum's single strided loop beats
        # a batched matmul, which would first copy each operand into batch-major order.
        return functools.partial(np.einsum, _equation((a_term, b_term), core))
    shape_a3 = (nb, nl, nc) if batch else (nl, nc)
    shape_b3 = (nb, nc, nr) if batch else (nc, nr)
    middle = batch + left + right
    middle_shape = tuple(size[s] for s in middle)
    perm_out = tuple(middle.index(s) for s in core)
    permute_a = perm_a != tuple(range(len(perm_a)))
    permute_b = perm_b != tuple(range(len(perm_b)))
    permute_out = perm_out != tuple(range(len(perm_out)))

    def run(a: Any, b: Any) -> np.ndarray:
        a, b = np.asarray(a), np.asarray(b)
        if sum_a:
            a = a.sum(axis=sum_a)
        if sum_b:
            b = b.sum(axis=sum_b)
        if permute_a:
            a = a.transpose(perm_a)
        if permute_b:
            b = b.transpose(perm_b)
        c = np.matmul(a.reshape(shape_a3), b.reshape(shape_b3)).reshape(middle_shape)
        return c.transpose(perm_out) if permute_out else c

    return run


def _is_broadcast_product(inputs: tuple[str, ...], core: str, shapes: tuple[tuple[int, ...], ...]) -> bool:
    """Exactly NumPy's broadcasting product: each term lines up with the end of the
    output, symbol for symbol, except size-1 axes that broadcasting stretches."""
    if len(inputs) != 2:
        return False
    for term, shape in zip(inputs, shapes):
        if len(term) > len(core):
            return False
        tail = core[len(core) - len(term) :]
        for s, t, n in zip(term, tail, shape):
            if s != t and not (n == 1 and s not in core):
                return False
    return True


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
        # A writable view of the diagonal: the repeated letters share one stride sum.
        np.ndarray(unique_shape, dtype=out.dtype, buffer=out, strides=strides)[...] = y
        return out

    return expand


def _equation(inputs: Sequence[str], output: str) -> str:
    """A NumPy/opt_einsum equation for terms of internal symbols (letters where possible)."""
    letters = _letters((*inputs, output))
    return ",".join("".join(letters[s] for s in t) for t in inputs) + "->" + "".join(
        letters[s] for s in output
    )


def _core_equation(spec: Spec) -> str:
    """The equation of ``spec`` with its output reduced to unique symbols present in inputs."""
    present = set("".join(spec.inputs))
    return _equation(spec.inputs, "".join(s for s in dict.fromkeys(spec.output) if s in present))


@functools.lru_cache(maxsize=4096)
def contraction_path(
    spec: Spec, shapes: tuple[tuple[int, ...], ...]
) -> tuple[tuple[int, ...], ...]:
    """opt_einsum's optimised pairwise path for ``spec`` on these shapes (cached).

    Up to 20 operands the dynamic-programming search (exact for the flop count on
    networks without outer products; tens of milliseconds, paid once per shape
    signature) finds the sweep of a tensor train that greedy search misses; beyond
    that, opt_einsum's "auto" choice.
    """
    strategy = "dp" if len(spec.inputs) <= 20 else "auto"
    path, _ = opt_einsum.contract_path(_core_equation(spec), *shapes, shapes=True, optimize=strategy)
    return tuple(tuple(step) for step in path)
