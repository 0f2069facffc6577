"""The backward pass: reverse topological order, one VJP per recorded edge.

:func:`backward` walks the nodes that lead to the seeds, each after every node
that consumes it (a micrograd-style topological sort and reversed loop), calls
each primitive's VJP through its declaration, and sums the cotangents that reach
one value along several paths (:func:`~einsumad.core.accumulate.accumulate`).

An *observer* may watch the pass: ``ea.derive`` builds its step-by-step
derivation from these events instead of running a pass of its own.

Complex numbers: every rule is the transpose for the pairing ``<c, v> = Re(sum c v)``
(no conjugation; docs/guide/complex.md). The cotangent of a real value is real: when
a complex contribution reaches a real value (a real weight scaling a complex
tensor), only its real part pairs with the value's real tangents, so the pass keeps
the real part (:data:`~einsumad.core.structural.real_p`).
"""

from __future__ import annotations

from typing import Any, Protocol

from .accumulate import add_any
from .arrays import is_complex
from .structural import real_p
from .tape import Node

__all__ = ["toposort", "backward", "Observer"]


class Observer(Protocol):
    """Receives the events of one backward pass, in order."""

    def seed(self, node: Node, g: Any) -> None:
        """``g`` seeds the cotangent of ``node``."""

    def vjp(self, node: Node, argnum: int, g: Any, contribution: Any) -> None:
        """The VJP of ``node`` for argument ``argnum`` turned ``g`` into ``contribution``."""

    def cotangent(self, node: Node, g: Any) -> None:
        """Every contribution has arrived: ``g`` is the cotangent of ``node``."""


def toposort(ends: list[Node]) -> list[Node]:
    """Nodes reachable from ``ends``, each after every node that consumes it."""
    roots = list(dict.fromkeys(ends))
    consumers: dict[Node, int] = {}
    visited = set(roots)
    stack = list(roots)
    while stack:
        node = stack.pop()
        for _, parent in node.parents:
            consumers[parent] = consumers.get(parent, 0) + 1
            if parent not in visited:
                visited.add(parent)
                stack.append(parent)
    order: list[Node] = []
    ready = [node for node in roots if node not in consumers]
    while ready:
        node = ready.pop()
        order.append(node)
        for _, parent in node.parents:
            consumers[parent] -= 1
            if consumers[parent] == 0:
                ready.append(parent)
    return order


def backward(seeds: list[tuple[Node, Any]], observer: Observer | None = None) -> dict[Node, Any]:
    """Propagate cotangents from the seed nodes to the leaves; return leaf -> cotangent.

    Cotangents reaching a node along several paths are summed (the ``+=`` of
    micrograd), so a value used twice needs no special case. A node's cotangent
    is released as soon as its VJPs have run, so intermediate cotangents do not
    outlive their use.
    """
    pending: dict[Node, Any] = {}
    for node, g in seeds:
        pending[node] = add_any(pending[node], g) if node in pending else g
        if observer is not None:
            observer.seed(node, g)
    leaves: dict[Node, Any] = {}
    for node in toposort([node for node, _ in seeds]):
        g = pending.pop(node, None)
        if g is None:
            continue
        if observer is not None:
            observer.cotangent(node, g)
        if node.prim is None:
            leaves[node] = g
            continue
        for argnum, parent in node.parents:
            contribution = node.prim.vjp(argnum, g, node.ans, node.args, node.params)
            if observer is not None:
                observer.vjp(node, argnum, g, contribution)
            if contribution is None:
                continue
            if is_complex(contribution) and parent.ans is not None and not is_complex(parent.ans):
                contribution = real_p(contribution)
            pending[parent] = add_any(pending[parent], contribution) if parent in pending else contribution
    return leaves
