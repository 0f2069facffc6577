"""The tape: traced values, recording, and the backward pass.

The mechanism follows HIPS/autograd. A transformation (``grad``, ``jvp``, ...)
opens a :class:`Trace` one level above any trace already open and wraps its
inputs in :class:`Tensor` boxes of that trace. Every primitive call goes through
:func:`bind`, which peels off the boxes of the highest trace among its
arguments, evaluates the primitive on what is inside (which may still be boxes
of lower traces, so nesting works), and boxes the result:

* in a reverse trace, the box holds a :class:`Node` recording the primitive, its
  unboxed arguments and its result; :func:`backward` later walks the nodes in
  reverse topological order and calls each primitive's VJP rules;
* in a forward trace, the box holds the tangent, computed at once from the
  primitive's JVP rules.

VJP and JVP rules are written with the library's own primitives, so derivatives
of derivatives are recorded by the outer traces with no extra machinery.

Tangents and cotangents may carry *leading batch axes*: a stack of directions
(the rows of a Jacobian, seeded with a Kronecker delta) rides through one pass.
Every built-in rule accepts them.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

import numpy as np

__all__ = ["Trace", "Node", "Tensor", "bind", "new_trace", "backward", "unbox", "strip_differentiation"]

REVERSE = "rev"
FORWARD = "fwd"
STAGE = "stage"  # ea.compile: record primitive calls into a straight-line program


class Trace:
    """One level of differentiation: a reverse (tape) or forward (tangent) trace."""

    __slots__ = ("level", "mode", "recorder")

    def __init__(self, level: int, mode: str, recorder: Any = None) -> None:
        self.level = level
        self.mode = mode
        self.recorder = recorder  # for STAGE traces: called as recorder(prim, args, ans, params)

    def __repr__(self) -> str:
        return f"Trace(level={self.level}, mode={self.mode!r})"


_depth = 0


@contextlib.contextmanager
def new_trace(mode: str, recorder: Any = None) -> Iterator[Trace]:
    """Open a trace one level above every trace currently open."""
    global _depth
    _depth += 1
    try:
        yield Trace(_depth, mode, recorder)
    finally:
        _depth -= 1


class Node:
    """A recorded primitive call: ``ans = prim(*args, **params)``.

    ``parents`` pairs each traced argument position with the node that produced
    it; a leaf (an input of the transformation) has ``prim is None``.
    """

    __slots__ = ("prim", "args", "params", "ans", "parents", "__weakref__")

    def __init__(self, prim: Any, args: tuple, params: dict, ans: Any, parents: tuple) -> None:
        self.prim = prim
        self.args = args
        self.params = params
        self.ans = ans
        self.parents = parents

    @classmethod
    def leaf(cls) -> Node:
        return cls(None, (), {}, None, ())


class Tensor:
    """A value being traced by a transformation.

    Behaves like a read-only NumPy array in arithmetic: ``+ - * / ** @``,
    unary ``-``, ``.T``, ``.shape``, ``.ndim``, ``.dtype``; mixes with arrays
    and Python scalars on either side. Comparisons return plain NumPy boolean
    arrays (they carry no gradient).

    >>> import einsumad as ea
    >>> def f(x):
    ...     print(type(x).__name__, x.shape)
    ...     return ea.sum(x * x)
    >>> ea.grad(f)(np.ones(3))
    Tensor (3,)
    array([2., 2., 2.])
    """

    __slots__ = ("value", "trace", "node", "tangent")
    __array_ufunc__ = None  # make ``ndarray <op> Tensor`` defer to Tensor's reflected op
    __array_priority__ = 1000

    def __init__(self, value: Any, trace: Trace, node: Node | None = None, tangent: Any = None):
        self.value = value
        self.trace = trace
        self.node = node
        self.tangent = tangent

    # Shape and type queries see through every level of boxing.
    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self.value) if not isinstance(self.value, Tensor) else self.value.shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype if isinstance(self.value, Tensor) else np.asarray(self.value).dtype

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d Tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Tensor({np.array2string(unbox(self), separator=', ')}, level={self.trace.level})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(
            "a traced einsumad.Tensor cannot be turned into a NumPy array inside a "
            "function being differentiated (the derivative would be lost); use the "
            "einsumad functions (ea.exp, ea.sum, ea.einsum, ...) instead of numpy ones"
        )

    def __bool__(self) -> bool:
        return bool(_concrete(self, "bool"))

    def __float__(self) -> float:
        return float(_concrete(self, "float"))

    def __int__(self) -> int:
        return int(_concrete(self, "int"))

    def __index__(self) -> int:
        return int(_concrete(self, "int"))

    __hash__ = object.__hash__


def unbox(x: Any) -> Any:
    """The plain NumPy value inside every level of boxing."""
    while isinstance(x, Tensor):
        x = x.value
    return x


def strip_differentiation(x: Any) -> Any:
    """The value inside every differentiation box, keeping a staging box if any.

    Used for constants derived from traced values (conditions, index arrays):
    they carry no derivative, but a compiled program must still recompute them.
    """
    while isinstance(x, Tensor) and x.trace.mode != STAGE:
        x = x.value
    return x


def _concrete(x: Tensor, kind: str) -> Any:
    """The value of ``x`` for Python control flow; refused while compiling."""
    if isinstance(strip_differentiation(x), Tensor):
        raise TypeError(
            f"a traced value was converted to {kind} inside ea.compile: Python control "
            "flow on values is frozen when the function is traced, so the compiled "
            "program would silently take the same branch for every input. Use "
            "ea.where(cond, a, b) for value-dependent choices, or call the function "
            "without ea.compile."
        )
    return unbox(x)


def bind(prim: Any, args: tuple, params: dict) -> Any:
    """Apply primitive ``prim`` to ``args``, recording it on the highest trace."""
    top: Trace | None = None
    for a in args:
        if isinstance(a, Tensor) and (top is None or a.trace.level > top.level):
            top = a.trace
    if top is None:
        return prim.impl(*args, **params)
    inner_list = []
    traced = []  # positions of the arguments boxed by ``top``
    nested = False  # does a lower trace still box some argument?
    for i, a in enumerate(args):
        if isinstance(a, Tensor) and a.trace is top:
            traced.append(i)
            a = a.value
        if isinstance(a, Tensor):
            nested = True
        inner_list.append(a)
    inner = tuple(inner_list)
    if not prim.differentiable and top.mode != STAGE:
        # No derivative flows through (comparisons, masks): evaluate on the values.
        return bind(prim, inner, params)
    ans = bind(prim, inner, params) if nested else prim.impl(*inner, **params)
    if top.mode == STAGE:
        return top.recorder(prim, args, ans, params)
    if top.mode == REVERSE:
        parents = tuple((i, args[i].node) for i in traced)
        return Tensor(ans, top, Node(prim, inner, params, ans, parents))
    tangent = None
    for i in traced:
        t = prim.jvp(i, args[i].tangent, ans, inner, params)
        tangent = t if tangent is None else _accumulate(tangent, t)
    return Tensor(ans, top, tangent=tangent)


def _accumulate(total: Any, more: Any) -> Any:
    """``total + more`` for (co)tangents reaching one value along several paths."""
    return _add_op()(total, more)


@functools.lru_cache(maxsize=1)
def _add_op() -> Any:
    from ._ops_math import add  # the ops import the tape: resolve the cycle lazily

    return add


def _toposort(ends: list[Node]) -> list[Node]:
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


def backward(seeds: list[tuple[Node, Any]]) -> dict[Node, Any]:
    """Propagate cotangents from the seed nodes to the leaves; return leaf -> cotangent.

    Cotangents reaching a node along several paths are summed (the ``+=`` of
    micrograd), so a value used twice needs no special case.
    """
    pending: dict[Node, Any] = {}
    for node, g in seeds:
        pending[node] = _accumulate(pending[node], g) if node in pending else g
    leaves: dict[Node, Any] = {}
    for node in _toposort([node for node, _ in seeds]):
        g = pending.pop(node, None)
        if g is None:
            continue
        if node.prim is None:
            leaves[node] = g
            continue
        for argnum, parent in node.parents:
            contribution = node.prim.vjp(argnum, g, node.ans, node.args, node.params)
            if parent in pending:
                pending[parent] = _accumulate(pending[parent], contribution)
            else:
                pending[parent] = contribution
    return leaves
