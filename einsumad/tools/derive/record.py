"""Recording a function for a derivation: one traced call, one observed backward pass.

:func:`record` runs ``fun`` once on a reverse trace (only the arguments in
``wrt`` are traced; the rest are constants) and then subscribes to the core's
one backward pass (:func:`~einsumad.core.backward.backward`) through an
:class:`~einsumad.core.backward.Observer`: every VJP the pass computes is kept
as an event ``(node, argnum, g, contribution)``. Nothing is recomputed, so a
derivation costs about what ``ea.grad`` costs; the views (step by step,
textbook, Jacobian) are built from the recording when asked for.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...core.arrays import dtype, is_complex
from ...core.backward import backward, toposort
from ...core.einsum import Einsum
from ...core.elementwise import Elementwise
from ...core.tape import REVERSE, Node, Tensor, new_trace, unbox
from .naming import AxisNames, ConstantNames, arg_names, closure_constants, cotangent_name, label_of

__all__ = ["Recording", "Event", "record"]


@dataclass
class Event:
    """One VJP of the backward pass: ``contribution = VJP_argnum(node)(g)``."""

    node: Node
    argnum: int
    parent: Node
    g: Any
    contribution: Any


@dataclass
class Recording:
    """What :func:`record` saw: the forward tape, names, and the backward pass's events."""

    order: list[Node]
    out: Node
    wrt: dict[Node, str]
    value_name: dict[Node, str]
    named: set[Node]
    cot_given: dict[Node, str]
    consumers: dict[Node, list[tuple[Node, int]]]
    constants: ConstantNames
    events: list[Event] = field(default_factory=list)
    cotangent: dict[Node, Any] = field(default_factory=dict)
    _axes: AxisNames | None = None
    _cot_name: dict[Node, str] = field(default_factory=dict)

    @property
    def axes(self) -> AxisNames:
        if self._axes is None:
            self._axes = AxisNames(self.order, lambda n: n.prim.declaration)
        return self._axes

    def operand_name(self, node: Node, k: int) -> str:
        for argnum, parent in node.parents:
            if argnum == k:
                return self.value_name[parent]
        return self.constants(node.args[k])

    def cotangent_of(self, node: Node) -> str:
        """The cotangent's name; a value whose only use passes it through shares it."""
        if node in self._cot_name:
            return self._cot_name[node]
        if node in self.cot_given:
            name_ = self.cot_given[node]
        else:
            uses = self.consumers.get(node, [])
            if node not in self.named and len(uses) == 1 and is_pass_through(*uses[0]):
                name_ = self.cotangent_of(uses[0][0])
            else:
                name_ = cotangent_name(self.value_name[node])
        self._cot_name[node] = name_
        return name_

    @property
    def layers(self) -> dict[Node, Node]:
        """Each layer's pre-activation -> its weight."""
        return pre_activations(self.order, self.wrt, self.consumers, self.constants.user_ids)

    @property
    def gradients(self) -> dict[str, Any]:
        return {name: np.asarray(unbox(self.cotangent[node])) if node in self.cotangent
                else np.zeros_like(node.ans) for node, name in self.wrt.items()}


class _Observer:
    """Keeps every event of the backward pass (the core's :class:`Observer` protocol)."""

    def __init__(self, rec: Recording):
        self.rec = rec
        self.parents = {node: dict(node.parents) for node in rec.order}

    def seed(self, node: Node, g: Any) -> None:
        pass

    def cotangent(self, node: Node, g: Any) -> None:
        self.rec.cotangent[node] = g

    def vjp(self, node: Node, argnum: int, g: Any, contribution: Any) -> None:
        self.rec.events.append(Event(node, argnum, self.parents[node][argnum], g, contribution))


# ----------------------------------------------------------------- declarations


def declaration(node: Node) -> Any:
    return node.prim.declaration


def partial_is_one(node: Node, k: int) -> bool:
    """Elementwise with the constant partial 1 in argument k: the cotangent passes through."""
    decl = declaration(node)
    if not isinstance(decl, Elementwise) or k >= len(decl.partials):
        return False
    partial = decl.partials[k]
    return isinstance(partial, (int, float)) and not isinstance(partial, bool) and partial == 1


def is_pass_through(node: Node, argnum: int) -> bool:
    """The cotangent of ``argnum`` is the output's, unchanged (and of equal shape)."""
    if not partial_is_one(node, argnum):
        return False
    return np.shape(unbox(node.args[argnum])) == np.shape(unbox(node.ans))


def is_add(node: Node) -> bool:
    decl = declaration(node)
    return isinstance(decl, Elementwise) and all(
        isinstance(p, (int, float)) and not isinstance(p, bool) and p == 1 for p in decl.partials
    )


# ----------------------------------------------------------------- tracing


def _call_capturing_locals(fun: Callable, args: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
    """Call ``fun`` and collect its local variables as it returns (sys.setprofile).

    Under a profiler that already holds the hook (cProfile, yappi), the hook is
    left to it and the locals go uncaptured: steps are then named ``v1, v2, ...``.
    """
    code = getattr(fun, "__code__", None)
    captured: dict[str, Any] = {}
    if code is None or sys.getprofile() is not None:
        return fun(*args), captured

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is code:
            captured.update(frame.f_locals)

    sys.setprofile(profile)
    try:
        out = fun(*args)
    finally:
        sys.setprofile(None)
    return out, captured


def _reject_complex(names: list[str], args: Sequence[Any]) -> None:
    """derive writes real derivations: a complex argument (differentiated or not) is refused."""
    for name, a in zip(names, args):
        if is_complex(a) or (isinstance(a, (list, tuple)) and any(is_complex(v) for v in a)):
            raise TypeError(
                f"derive: argument {name!r} is complex ({dtype(a) if is_complex(a) else 'complex'}); "
                "derive shows real derivations and "
                "does not support complex arguments. For complex numbers use ea.grad (or ea.vjp) for the "
                "gradient and ea.check_grads to check it."
            )


def _wrt_positions(wrt: Any, names: list[str], args: Sequence[Any]) -> set[int]:
    _reject_complex(names, args)
    floating = {i for i, a in enumerate(args)
                if isinstance(a, Tensor) or np.issubdtype(np.asarray(a).dtype, np.floating)}
    if wrt is None:
        return floating
    items = [wrt] if isinstance(wrt, (int, str)) else list(wrt)
    chosen: set[int] = set()
    for item in items:
        if isinstance(item, str):
            if item not in names:
                raise ValueError(f"derive: wrt={item!r} names no argument; the arguments are {names}")
            chosen.add(names.index(item))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -len(args) <= item < len(args):
                raise ValueError(f"derive: wrt={item} but there are {len(args)} argument(s)")
            chosen.add(int(item) % len(args))
        else:
            raise TypeError(f"derive: wrt takes argument positions or names, got {item!r}")
    bad = sorted(chosen - floating)
    if bad:
        raise TypeError(f"derive: argument {names[bad[0]]!r} is not floating point and cannot be differentiated")
    return chosen


def record(fun: Callable, args: Sequence[Any], names: Any = None, wrt: Any = None) -> Recording:
    """Trace ``fun(*args)`` (only ``wrt`` differentiated) and observe its backward pass."""
    all_names = arg_names(fun, len(args), names)
    positions = _wrt_positions(wrt, all_names, args)
    arrays: dict[str, Any] = {}
    known = closure_constants(fun, arrays)
    for i, a in enumerate(args):
        if i not in positions and isinstance(a, np.ndarray):
            known[id(a)] = all_names[i]
            arrays[all_names[i]] = a
    leaf_of: dict[Node, str] = {}
    with new_trace(REVERSE) as trace:
        boxed = []
        for i, (a, label) in enumerate(zip(args, all_names)):
            if i in positions:
                array = np.asarray(a)
                node = Node.leaf()
                node.ans = array
                leaf_of[node] = label
                boxed.append(Tensor(array, trace, node))
            else:
                boxed.append(a)
        out, local_vars = _call_capturing_locals(fun, boxed)
    if not (isinstance(out, Tensor) and out.trace is trace):
        raise TypeError("derive: the function's output does not depend on any differentiated argument")
    if np.shape(out.value) != ():
        raise TypeError(
            f"derive: the function must return a scalar (a loss), but it returned shape "
            f"{np.shape(out.value)}"
        )
    for var, v in local_vars.items():
        if isinstance(v, np.ndarray) and id(v) not in known:
            known[id(v)] = var
            arrays.setdefault(var, v)
    order = list(reversed(toposort([out.node])))
    consumers: dict[Node, list[tuple[Node, int]]] = {n: [] for n in order}
    for node in order:
        for argnum, parent in node.parents:
            consumers[parent].append((node, argnum))
    value_name, named, cot_given = _value_names(order, out.node, leaf_of, local_vars, trace, consumers, set(known))
    constants = ConstantNames(known, arrays)
    rec = Recording(order, out.node, {n: leaf_of[n] for n in order if n in leaf_of}, value_name, named,
                    cot_given, consumers, constants)
    for node in order:  # name the constants in the order they are used
        for k in range(len(node.args)):
            if k not in dict(node.parents):
                rec.constants(node.args[k])
    seed = np.ones((), dtype=np.result_type(out.value))
    rec.cotangent[out.node] = seed
    backward([(out.node, seed)], _Observer(rec))
    return rec


def _value_names(
    order: list[Node], out: Node, leaf_of: Mapping[Node, str], local_vars: Mapping[str, Any], trace: Any,
    consumers: Mapping[Node, list[tuple[Node, int]]], user_ids: set[int],
) -> tuple[dict[Node, str], set[Node], dict[Node, str]]:
    local_names: dict[Node, str] = {}
    for var, v in local_vars.items():
        if isinstance(v, Tensor) and v.trace is trace and v.node not in local_names and v.node not in leaf_of:
            local_names[v.node] = var
    value_name: dict[Node, str] = {}
    cot_given: dict[Node, str] = {}
    named: set[Node] = set()
    for node in order:
        given = label_of(node)
        if node in leaf_of:
            value_name[node] = leaf_of[node]
        elif given is not None:
            value_name[node] = given[0]
            if given[1]:
                cot_given[node] = given[1]
        elif node in local_names:
            value_name[node] = local_names[node]
        elif node is out:
            value_name[node] = "L"
        else:
            continue
        named.add(node)
    _layer_names(order, leaf_of, value_name, consumers, user_ids, named)
    auto = 0
    used = set(value_name.values())
    for node in order:
        if node not in value_name:
            auto += 1
            while f"v{auto}" in used:
                auto += 1
            value_name[node] = f"v{auto}"
    return value_name, named, cot_given


def weight_of(node: Node, leaves: Mapping[Node, str]) -> Node | None:
    """The weight of ``W a`` (an einsum of a matrix argument and one other value)."""
    if node.prim is None or not isinstance(declaration(node), Einsum) or len(node.args) != 2:
        return None
    for _, parent in node.parents:
        if parent in leaves and np.ndim(parent.ans) >= 2:
            return parent
    return None


def affine_weight(node: Node, leaves: Mapping[Node, str], user_ids: set[int] | None = None) -> Node | None:
    """The weight of an affine layer ``W a + b`` whose result is ``node``, if it is one.

    The bias is a differentiated argument or a constant the user named (not a
    shift the library computed, as softmax subtracts the maximum).
    """
    w = weight_of(node, leaves)
    if w is not None:
        return w
    if node.prim is None or not is_add(node):
        return None
    traced = dict(node.parents)
    for k, a in enumerate(node.args):
        if k not in traced and (user_ids is None or id(a) not in user_ids):
            return None
    found = None
    for _, parent in node.parents:
        if parent in leaves and np.ndim(parent.ans) <= 1 + (np.ndim(node.ans) > 1):
            continue  # a bias
        w = affine_weight(parent, leaves, user_ids)
        if w is None or found is not None:
            return None
        found = w
    return found


def pre_activations(order: Sequence[Node], leaves: Mapping[Node, str], consumers: Mapping,
                    user_ids: set[int] | None = None) -> dict[Node, Node]:
    """Each layer's pre-activation ``z = W a + b`` (maximal: not extended by another add) -> W."""
    out: dict[Node, Node] = {}
    for node in order:
        w = affine_weight(node, leaves, user_ids)
        if w is None:
            continue
        uses = consumers.get(node, [])
        if uses and all(affine_weight(c, leaves, user_ids) is w for c, _ in uses):
            continue
        if not any(isinstance(declaration(c), Elementwise) for c, _ in uses):
            continue  # a layer feeds an activation (or a loss); x^T A x is no layer
        out[node] = w
    return out


def _layer_names(order: list[Node], leaves: Mapping[Node, str], value_name: dict[Node, str],
                 consumers: Mapping[Node, list[tuple[Node, int]]], user_ids: set[int], named: set[Node]) -> None:
    """``z<l>``, ``a<l>`` for a layer's unnamed pre-activation and activation."""
    used = set(value_name.values())
    layers = pre_activations(order, leaves, consumers, user_ids)
    for count, (z, w) in enumerate(layers.items(), start=1):
        m = re.search(r"(\d+|_\w+)$", leaves[w])
        suffix = m.group(1) if m else str(count)
        if z not in value_name and f"z{suffix}" not in used:
            value_name[z] = f"z{suffix}"
            used.add(value_name[z])
            named.add(z)
        uses = consumers.get(z, [])
        if len(uses) == 1:
            act = uses[0][0]
            decl = declaration(act)
            if (act not in value_name and isinstance(decl, Elementwise) and len(act.args) == 1
                    and f"a{suffix}" not in used):
                value_name[act] = f"a{suffix}"
                used.add(value_name[act])
                named.add(act)
