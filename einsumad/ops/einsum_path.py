"""``ea.einsum_path``: the pairwise path of an einsum, and what its gradient costs.

For users who come from ``opt_einsum.contract_path`` (or ``numpy.einsum_path``):
the same path that ``ea.einsum`` takes, the flops of every pairwise step, and,
which those tools cannot show, the flops of the gradient. The gradient runs
backward along the same steps: a step ``s_1,s_2->out`` hands each operand that
needs a cotangent the swapped einsum ``out,s_2->s_1`` (the swap rule), a
pairwise einsum of the same size as the step. So the gradient costs a small
multiple of the forward pass, whatever the number of operands.

Flops are counted as opt_einsum counts them: one step over the indices ``I`` of
its operands and output costs ``prod(size(I)) * max(1, operands - 1)``, plus
``prod(size(I))`` more when it sums an index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..algebra.errors import EinsumError
from ..algebra.letters import readable_letters
from ..algebra.subscripts import Spec
from ..algebra.swap import pairwise_steps, swap
from ..core.backend import contraction_path
from ..core.tape import Tensor, unbox
from .einsum import _resolved, checked_path, parse_call

__all__ = ["einsum_path", "EinsumPath", "PathStep"]


@dataclass(frozen=True)
class PathStep:
    """One pairwise step of a path and the VJPs the gradient runs for it.

    Attributes:
        positions: the operands contracted, as positions in the current list
            (opt_einsum's convention: the result joins the end of the list).
        subscripts: the step as an einsum.
        flops: its cost.
        vjps: for each operand of the step that needs a cotangent, its position
            in ``positions``, the swapped subscripts and their flops.
    """

    positions: tuple[int, ...]
    subscripts: str
    flops: int
    vjps: tuple[tuple[int, str, int], ...]


@dataclass(frozen=True)
class EinsumPath:
    """What :func:`einsum_path` found: the path, its steps and their costs.

    Attributes:
        subscripts: the einsum, explicit.
        shapes: the operands' shapes.
        path: the pairwise path (opt_einsum's convention).
        steps: one :class:`PathStep` per step.
        naive_flops: the cost of one loop over every index (no path).
        forward_flops: the cost of the forward pass along the path.
        backward_flops: the cost of the VJPs of the steps, for the operands in ``wrt``.
        largest_intermediate: the number of elements of the largest step result.
    """

    subscripts: str
    shapes: tuple[tuple[int, ...], ...]
    optimize: Any
    path: tuple[tuple[int, ...], ...]
    steps: tuple[PathStep, ...]
    naive_flops: int
    forward_flops: int
    backward_flops: int
    largest_intermediate: int
    wrt: tuple[int, ...]

    @property
    def gradient_flops(self) -> int:
        """The cost of a gradient: the forward pass plus the VJPs."""
        return self.forward_flops + self.backward_flops

    def __str__(self) -> str:
        shapes = ", ".join(str(s) for s in self.shapes)
        ratio = self.gradient_flops / self.forward_flops if self.forward_flops else float("nan")
        wrt = "every operand" if len(self.wrt) == len(self.shapes) else (
            "operand" + ("s " if len(self.wrt) > 1 else " ") + ", ".join(map(str, self.wrt))
        )
        lines = [
            f"einsum {self.subscripts} on shapes {shapes} (optimize={self.optimize!r})",
            f"  one loop over every index:  {self.naive_flops} flops",
            f"  forward along the path:     {self.forward_flops} flops "
            f"(largest intermediate: {self.largest_intermediate} elements)",
            f"  gradient (forward + VJPs):  {self.gradient_flops} flops = {ratio:.3g} x the forward "
            f"pass (with respect to {wrt})",
        ]
        rows = [["step", "operands", "einsum", "flops", "VJP subscripts (flops)"]]
        for number, step in enumerate(self.steps, 1):
            vjps = "; ".join(f"{s} ({f})" for _, s, f in step.vjps) or "-"
            rows.append([str(number), str(step.positions), step.subscripts, str(step.flops), vjps])
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines)


def einsum_path(
    subscripts: Any,
    *operands: Any,
    optimize: Any = None,
    sizes: Mapping[str, int] | None = None,
    wrt: Sequence[int] | None = None,
) -> tuple[list[tuple[int, ...]], EinsumPath]:
    """The contraction path :func:`einsum` takes, with the flops of the forward
    pass and of the gradient, as ``opt_einsum.contract_path`` reports the first.

    The gradient runs backward along the same pairwise steps: each operand of a
    step that needs a cotangent gets the swapped einsum of the step (a pairwise
    einsum of the same size), so ``gradient_flops`` is a small multiple of
    ``forward_flops`` however many operands there are.

    Args:
        subscripts: the einsum subscripts (or the sublist form, as :func:`einsum`).
        *operands: the operands, or their shapes (a tuple of ints is a shape).
        optimize: the path strategy, as in :func:`einsum`.
        sizes: sizes of output indices found in no operand, as in :func:`einsum`.
        wrt: the operands the gradient is taken with respect to (default: all).

    Returns:
        ``(path, info)``: the path as a list of tuples (opt_einsum's convention),
        and an :class:`EinsumPath` whose ``str`` is a table of the steps.

    >>> import einsumad as ea
    >>> path, info = ea.einsum_path("ab,bc,cd->ad", (5, 2), (2, 3), (3, 4))
    >>> path
    [(1, 2), (0, 1)]
    >>> info.forward_flops, info.gradient_flops
    (128, 384)
    >>> print(info)
    einsum ab,bc,cd->ad on shapes (5, 2), (2, 3), (3, 4) (optimize=None)
      one loop over every index:  360 flops
      forward along the path:     128 flops (largest intermediate: 20 elements)
      gradient (forward + VJPs):  384 flops = 3 x the forward pass (with respect to every operand)
    step  operands  einsum     flops  VJP subscripts (flops)
    1     (1, 2)    bc,cd->bd  48     bd,cd->bc (48); bd,bc->cd (48)
    2     (0, 1)    ab,bd->ad  80     ad,bd->ab (80); ad,ab->bd (80)
    """
    text, items, given, note = parse_call(subscripts, operands, sizes)
    shapes = tuple(_shape_of(item) for item in items)
    try:
        spec = _resolved(text, shapes, tuple(sorted(given.items())))
    except EinsumError as error:
        if note is None:
            raise
        raise EinsumError(f"{error}\n{note}") from None
    n = len(shapes)
    wanted = _checked_wrt(wrt, n)
    explicit = checked_path(optimize, n, text)
    if explicit is not None:
        path = explicit
    elif n >= 3:
        path = contraction_path(spec, shapes, optimize)
    else:
        path = ((0, 1),) if n == 2 else ((0,),)
    show = _renderer(spec, text)
    needs = [k in wanted for k in range(n)]
    steps: list[PathStep] = []
    largest = 0
    for positions, step in pairwise_steps(spec, path):
        chosen_needs = [needs[p] for p in positions]
        needs = [x for i, x in enumerate(needs) if i not in positions] + [any(chosen_needs)]
        vjps = tuple(
            (j, show(swapped), _flops(swapped))
            for j, need in enumerate(chosen_needs)
            if need
            for swapped in [swap(step, j)]
        )
        steps.append(PathStep(tuple(positions), show(step), _flops(step), vjps))
        largest = max(largest, math.prod(step.shape(step.output)))
    info = EinsumPath(
        subscripts=show(spec),
        shapes=shapes,
        optimize=optimize,
        path=tuple(tuple(p) for p in path),
        steps=tuple(steps),
        naive_flops=_loop_flops(spec),
        forward_flops=sum(s.flops for s in steps),
        backward_flops=sum(f for s in steps for _, _, f in s.vjps),
        largest_intermediate=largest,
        wrt=tuple(sorted(wanted)),
    )
    return [tuple(p) for p in path], info


def _shape_of(item: Any) -> tuple[int, ...]:
    """A shape given as a tuple of ints, or the shape of an operand."""
    if isinstance(item, tuple) and all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in item
    ):
        if any(n < 0 for n in item):
            raise ValueError(f"einsum_path: shape {item} has a negative size")
        return tuple(int(n) for n in item)
    if isinstance(item, Tensor):
        return tuple(np.shape(unbox(item)))
    return tuple(np.shape(item))


def _checked_wrt(wrt: Sequence[int] | None, n: int) -> set[int]:
    if wrt is None:
        return set(range(n))
    if isinstance(wrt, (int, np.integer)) and not isinstance(wrt, bool):
        wrt = (int(wrt),)
    out = set()
    for k in wrt:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -n <= k < n:
            raise ValueError(f"einsum_path: wrt={wrt!r} must name operands 0..{n - 1}")
        out.add(int(k) % n)
    return out


def _loop_flops(spec: Spec) -> int:
    """opt_einsum's count for one loop over the indices of ``spec`` (a broadcast
    output index counts too: its entries are written)."""
    indices = set("".join(spec.inputs)) | set(spec.output)
    size = math.prod(spec.size(s) for s in indices)
    inner = any(s not in spec.output for s in indices)
    return size * max(1, len(spec.inputs) - 1) + (size if inner else 0)


def _flops(spec: Spec) -> int:
    """The cost of evaluating ``spec``: one loop for one or two operands, else the
    sum along the backend's own pairwise path."""
    if len(spec.inputs) <= 2:
        return _loop_flops(spec)
    shapes = tuple(spec.shape(t) for t in spec.inputs)
    return sum(_loop_flops(step) for _, step in pairwise_steps(spec, contraction_path(spec, shapes)))


def _renderer(spec: Spec, text: str) -> Any:
    """Render specs over ``spec``'s symbols in the user's letters (or names)."""
    letters = readable_letters([*spec.inputs, spec.output])
    names = dict(spec.names)
    if not names:
        return lambda s: ",".join("".join(letters[c] for c in t) for t in s.inputs) + "->" + "".join(
            letters[c] for c in s.output
        )

    def token(c: str) -> str:
        return names.get(c, letters[c])

    return lambda s: ", ".join(" ".join(token(c) for c in t) for t in s.inputs) + " -> " + " ".join(
        token(c) for c in s.output
    )
