"""The recorded program as index polynomials (:mod:`einsumad.algebra.fold`).

Each recorded op is read through its declaration, never its name:

* einsum kind: one term, ``Einsum.spec`` with the derivation's index names;
* elementwise kind: ``+`` (partials 1) is a sum, ``/`` a product with a power
  -1, a ``{0}^{exponent}`` notation a power, any other function a function
  factor ``f(x_i)``; its VJP is the cotangent times the partial derivative,
  which is itself traced through the ops that ``Elementwise.partials`` uses
  (``σ' = a (1 - a)``, ``exp' = exp``, ``log' = 1/x``), or kept as ``f'(x_i)``;
* linear kind: the negation is a sign; other transposes stay opaque;
* general kind: opaque.

VJPs are the swap (einsum) or the Hadamard product with the partial
(elementwise): each contribution is a poly in the cotangent of the consuming op.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Mapping

import numpy as np

from ...algebra.fold import (
    DELTA,
    Factor,
    Poly,
    Term,
    fresh_index,
    multiply,
    number,
    scale,
    simplify,
    substitute,
)
from ...algebra.swap import broadcast_spec
from ...core.backward import toposort
from ...core.delta import KroneckerDelta
from ...core.einsum import Einsum
from ...core.elementwise import Elementwise
from ...core.tape import REVERSE, Node, Tensor, new_trace, unbox
from .record import Recording, declaration, partial_is_one
from .steps import is_negation, notation

__all__ = ["Symbolic"]


def _squeeze(a: Any) -> np.ndarray:
    a = np.asarray(unbox(a))
    return a.reshape(tuple(n for n in a.shape if n != 1))


class Symbolic:
    """Definitions, partials and VJPs of a recording as polys over named atoms."""

    def __init__(self, rec: Recording):
        self.rec = rec
        self.axes = rec.axes
        self.atom: dict[Node, str] = {}
        self.node_of: dict[str, Node] = {}
        seen: set[str] = set()
        for node in rec.order:
            name = rec.value_name[node]
            while name in seen:
                name += "'"
            seen.add(name)
            self.atom[node] = name
            self.node_of[name] = node
        self.cot_atom: dict[Node, str] = {}
        self.cot_node: dict[str, Node] = {}
        layers = rec.layers
        first = [n for n in rec.order if n in rec.wrt or n in layers or n in rec.cot_given]
        for node in first + [n for n in reversed(rec.order) if n not in first]:
            name = rec.cotangent_of(node)
            while name in seen:
                name += "'"
            seen.add(name)
            self.cot_atom[node] = name
            self.cot_node[name] = node
        self.values: dict[str, np.ndarray] = {}
        self.fn_values: dict[tuple[str, str], np.ndarray] = {}
        self.constant_names: set[str] = set()
        self._axis_override: dict[Node, tuple[str | None, ...]] = {}
        self._defs: dict[Node, Poly | None] = {}
        self.named: set[str] = {self.atom[n] for n in rec.named}
        for node in rec.order:
            self.values[self.atom[node]] = _squeeze(node.ans)
            self._defs[node] = self._definition(node)
        self.defs: dict[str, Poly | None] = {self.atom[n]: self._defs[n] for n in rec.order}
        self.leaves = {self.atom[n] for n in rec.order if n.prim is None}
        self._partials: dict[tuple[Node, int], tuple[Poly, Poly | None]] = {}

    # ----------------------------------------------------------------- indices

    def axis_names(self, node: Node) -> tuple[str | None, ...]:
        if node in self._axis_override:
            return self._axis_override[node]
        return self.axes.of(node)

    def indices(self, node: Node) -> tuple[str, ...]:
        return tuple(n for n in self.axis_names(node) if n is not None)

    def _operand(self, node: Node, k: int, idx: tuple[str, ...], atoms: dict[Node, str]) -> Poly | None:
        """Operand k of ``node`` as a poly indexed by ``idx``."""
        parents = dict(node.parents)
        if k in parents:
            return Poly.of(atoms[parents[k]], idx)
        arg = node.args[k]
        if isinstance(arg, KroneckerDelta):
            return None
        value = np.asarray(unbox(arg))
        if value.ndim == 0:
            if value.dtype.kind not in "fiu":
                return None
            return Poly.constant(number(float(value.reshape(()).item())) if np.isfinite(value).all() else 0)
        name = self.rec.constants(arg)
        affine = self.rec.constants.affine.get(name)
        if affine is not None:
            alpha, beta, base = affine
            self.constant_names.add(base)
            self.values.setdefault(base, _squeeze(self.rec.constants.arrays[base]))
            parts = [Term(number(beta), (Factor(base, idx),))]
            if alpha:
                parts.append(Term(number(alpha)))
            return simplify(Poly(idx, tuple(parts)))
        self.constant_names.add(name)
        self.values.setdefault(name, _squeeze(value))
        return Poly.of(name, idx)

    def _einsum_symbols(self, node: Node, spec: Any) -> dict[str, str | None]:
        parents = dict(node.parents)
        mapping: dict[str, str | None] = {}
        used: set[str] = set()
        out_names = self.axis_names(node)
        for s in dict.fromkeys(spec.output + "".join(spec.inputs)):
            if spec.size(s) == 1:
                mapping[s] = None
                continue
            found = None
            for ax, t in enumerate(spec.output):
                if t == s and ax < len(out_names):
                    found = out_names[ax]
                    break
            if found is None:
                for k, term in enumerate(spec.inputs):
                    if k in parents:
                        names = self.axis_names(parents[k])
                        found = next((names[ax] for ax, t in enumerate(term) if t == s and ax < len(names)), None)
                        if found is not None:
                            break
            if found is None:
                found = spec.name_of(s) if spec.name_of(s).isidentifier() and spec.name_of(s).isascii() else "i"
            if found in used:
                found = fresh_index(found, used | self.axes.all_names())
            mapping[s] = found
            used.add(found)
        return mapping

    # ----------------------------------------------------------------- definitions

    def definition(self, node: Node) -> Poly | None:
        return self._defs.get(node) if node in self._defs else self._definition(node)

    def _definition(self, node: Node, atoms: dict[Node, str] | None = None) -> Poly | None:
        """``node``'s value in terms of its operands (None: opaque)."""
        if node.prim is None:
            return None
        atoms = atoms or self.atom
        decl = declaration(node)
        if isinstance(decl, Einsum):
            spec = decl.spec(node.args, node.params)
            names = self._einsum_symbols(node, spec)
            coef = Fraction(1)
            factors: list[Factor] = []
            sums: list[Poly] = []
            for k, term in enumerate(spec.inputs):
                idx = tuple(_named(names, term))
                op = self._operand(node, k, idx, atoms)
                if op is None:
                    return None
                if not op.terms:
                    return Poly.constant(0, self.indices(node))
                if len(op.terms) > 1:
                    sums.append(op)
                    continue
                (t,) = op.terms
                coef *= t.coef
                factors.extend(t.factors)
            out = _named(names, spec.output)
            result = Poly(*_distinct(out, factors, coef))
            for extra in sums:
                result = _times(result, extra)
            return result
        if isinstance(decl, Elementwise):
            return self._elementwise(node, decl, atoms)
        if is_negation(node):
            op = self._operand(node, 0, self.indices(node), atoms)
            return None if op is None else scale(op, -1)
        return None

    def _broadcast_indices(self, node: Node) -> list[tuple[str, ...]]:
        """Each argument's index names, lined up with the output's by NumPy broadcasting."""
        shapes = [tuple(np.shape(unbox(a))) for a in node.args] + [tuple(np.shape(node.ans))]
        spec = broadcast_spec(*shapes)
        out_names = self.axis_names(node)
        name_of = {s: out_names[ax] for ax, s in enumerate(spec.inputs[-1]) if ax < len(out_names)}
        return [tuple(_named(name_of, term)) for term in spec.inputs[:-1]]

    def _elementwise(self, node: Node, decl: Elementwise, atoms: dict[Node, str]) -> Poly | None:
        note = notation(node)
        try:
            arg_idx = self._broadcast_indices(node)
        except Exception:
            return None
        maybe = [self._operand(node, k, arg_idx[k], atoms) for k in range(len(node.args))]
        ops = [o for o in maybe if o is not None]
        if len(ops) != len(maybe):
            return None
        out = self.indices(node)
        if all(isinstance(p, (int, float)) and not isinstance(p, bool) and p == 1 for p in decl.partials):
            total = ops[0]
            for o in ops[1:]:
                total = _add_broadcast(total, o, out)
            return Poly(out, total.terms)
        if note.operator == "/" and len(ops) == 2:
            inverse = _power(ops[1], -1)
            return None if inverse is None else multiply(ops[0], inverse, out)
        if len(node.args) != 1:
            return self._bound_elementwise(node, note, atoms, arg_idx, out)
        (op,) = ops
        power = _declared_power(note, node.params)
        if power is not None:
            return _power(op, power)
        parents = dict(node.parents)
        if 0 not in parents:
            return None
        template = _forward_template(note, node.params) or f"{note.symbol}({{0}})"
        if arg_idx[0] != out:
            return None
        self.fn_values.setdefault((atoms[parents[0]], template), _squeeze(node.ans))
        return Poly.of(atoms[parents[0]], out, fn=template)

    def _bound_elementwise(self, node: Node, note: Any, atoms: dict[Node, str], arg_idx: list[tuple[str, ...]],
                           out: tuple[str, ...]) -> Poly | None:
        """An op of several arguments all numbers but one: a function of that one (``max(x, 0)``)."""
        parents = dict(node.parents)
        if len(parents) != 1:
            return None
        ((k, parent),) = parents.items()
        template = _bound_template(note.forward, node, k)
        if template is None or arg_idx[k] != out:
            return None
        self.fn_values.setdefault((atoms[parent], template), _squeeze(node.ans))
        return Poly.of(atoms[parent], out, fn=template)

    # ----------------------------------------------------------------- partials

    def partial(self, node: Node, k: int) -> tuple[Poly, Poly | None]:
        """(``f'(x)`` as a function factor, the partial traced through its ops or None)."""
        key = (node, k)
        if key not in self._partials:
            self._partials[key] = (self._atomic_partial(node, k), self._traced_partial(node, k))
        return self._partials[key]

    def _atomic_partial(self, node: Node, k: int) -> Poly:
        decl = declaration(node)
        out = self.indices(node)
        arg_idx = self._broadcast_indices(node)[k]
        parents = dict(node.parents)
        note = notation(node)
        declared = note.derivative[k] if k < len(note.derivative) else None
        template: str | None = None
        if isinstance(declared, str) and "{0}" in declared and not any(f"{{{j}}}" in declared for j in range(1, 9)):
            template = declared
        elif len(node.args) > 1 and set(parents) == {k}:
            template = _bound_template(declared, node, k)  # [x > 0]: the other arguments are numbers
        if template is None:
            template = f"{note.symbol}'({{0}})" if len(node.args) == 1 else f"∂{note.symbol}/∂x{k}({{0}})"
        arg_atom = self.atom[parents[k]] if k in parents else self.rec.constants(node.args[k])
        value = decl.partial(k, node.ans, node.args, node.params)
        self.fn_values[(arg_atom, template)] = _squeeze(np.broadcast_to(np.asarray(unbox(value)), np.shape(node.ans)))
        if arg_idx != out:
            # a broadcast argument: its partial is a function of it only where the shapes agree
            return Poly.of(arg_atom, out, fn=template)
        return Poly.of(arg_atom, out, fn=template)

    def _traced_partial(self, node: Node, k: int) -> Poly | None:
        decl = declaration(node)
        partial = decl.partials[k] if k < len(decl.partials) else None
        out = self.indices(node)
        if isinstance(partial, (int, float)) and not isinstance(partial, bool):
            return Poly.constant(partial, out)
        if not callable(partial):
            return None
        parents = dict(node.parents)
        leaf_atoms: dict[Node, str] = {}
        with new_trace(REVERSE) as trace:
            ans_leaf = Node.leaf(node.ans)
            leaf_atoms[ans_leaf] = self.atom[node]
            self._axis_override[ans_leaf] = self.axis_names(node)
            args = []
            for j, a in enumerate(node.args):
                if j in parents:
                    leaf = Node.leaf(unbox(a))
                    leaf_atoms[leaf] = self.atom[parents[j]]
                    self._axis_override[leaf] = self.axis_names(parents[j])
                    args.append(Tensor(unbox(a), trace, leaf))
                else:
                    args.append(a)
            try:
                result = partial(Tensor(node.ans, trace, ans_leaf), *args, **node.params)
            except Exception:
                return None
        if not isinstance(result, Tensor) or result.trace is not trace:
            value = np.asarray(unbox(result))
            if value.size == 1 and value.dtype.kind in "fiu":
                return Poly.constant(float(value.reshape(-1)[0]), out)
            return None
        order = list(reversed(toposort([result.node])))
        atoms = dict(leaf_atoms)
        temps: list[tuple[str, Poly]] = []
        out_names = self.axis_names(node)
        for n, tmp in enumerate(order):
            if tmp in atoms:
                continue
            shape = np.shape(tmp.ans)
            names = out_names[len(out_names) - len(shape):] if len(shape) <= len(out_names) else None
            if names is None:
                return None
            self._axis_override[tmp] = tuple(nm if size != 1 else None for nm, size in zip(names, shape))
            atoms[tmp] = f"\0t{n}"
            d = self._definition(tmp, atoms)
            if d is None:
                return None
            temps.append((atoms[tmp], d))
        if result.node not in atoms:
            return None
        poly = Poly.of(atoms[result.node], self.indices(result.node))
        for name_, d in reversed(temps):
            poly = substitute(poly, name_, d, lambda p: True)
        if any(n.startswith("\0") for n in poly.names()) or not set(poly.indices) <= set(out):
            return None
        return Poly(out, poly.terms)

    # ----------------------------------------------------------------- VJPs

    def vjp(self, node: Node, k: int, traced: bool) -> Poly | None:
        """The contribution of ``node``'s VJP to the cotangent of argument ``k``."""
        decl = declaration(node)
        g_idx = self.indices(node)
        g = Poly.of(self.cot_atom[node], g_idx)
        parents = dict(node.parents)
        if isinstance(decl, Einsum):
            spec = decl.spec(node.args, node.params)
            names = self._einsum_symbols(node, spec)
            out = _named(names, spec.output)
            if len(set(out)) != len(out):
                return None
            coef = Fraction(1)
            factors = [Factor(self.cot_atom[node], tuple(out))]
            sums: list[Poly] = []
            for j, term in enumerate(spec.inputs):
                if j == k:
                    continue
                op = self._operand(node, j, tuple(_named(names, term)), self.atom)
                if op is None:
                    return None
                if not op.terms:
                    return Poly.constant(0, self.indices(parents[k]))
                if len(op.terms) > 1:
                    sums.append(op)
                    continue
                (t,) = op.terms
                coef *= t.coef
                factors.extend(t.factors)
            result_idx = _named(names, spec.inputs[k])
            result = Poly(*_distinct(result_idx, factors, coef))
            for extra in sums:
                result = _times(result, extra)
            return simplify(result)
        if isinstance(decl, Elementwise):
            arg_idx = self._broadcast_indices(node)[k]
            if partial_is_one(node, k):
                return simplify(Poly(arg_idx, g.terms))
            atomic, exact = self.partial(node, k)
            p = exact if exact is not None and (traced or len(exact.terms) == 1) else atomic
            return multiply(g, p, arg_idx)
        if is_negation(node):
            return scale(g.with_indices(self.indices(parents[k])), -1)
        return None


def _named(names: Mapping[str, str | None], term: str) -> list[str]:
    """The index names of a term's symbols, size-1 symbols left out."""
    return [n for n in (names.get(s) for s in term) if n is not None]


def _distinct(out: list[str], factors: list[Factor], coef: Fraction) -> tuple[tuple[str, ...], tuple[Term, ...]]:
    """Free indices made distinct: a repeated output index is a Kronecker delta."""
    free: list[str] = []
    extra: list[Factor] = []
    taken = set(out) | {i for f in factors for i in f.indices}
    for i in out:
        if i in free:
            j = fresh_index(i, taken)
            taken.add(j)
            extra.append(Factor(DELTA, (i, j)))
            free.append(j)
        else:
            free.append(i)
    return tuple(free), (Term(coef, tuple(factors) + tuple(extra)),)


def _times(p: Poly, q: Poly) -> Poly:
    """``p * q`` where ``q``'s indices are already named as in ``p`` (no renaming)."""
    terms = [Term(s.coef * t.coef, s.factors + t.factors) for s in p.terms for t in q.terms]
    return simplify(Poly(p.indices, tuple(terms)))


def _add_broadcast(p: Poly, q: Poly, out: tuple[str, ...]) -> Poly:
    return simplify(Poly(out, p.terms + q.with_indices(q.indices).terms))


def _power(p: Poly, n: int) -> Poly | None:
    """``p`` to an integer power, elementwise (a one-term poly without summed indices)."""
    if len(p.terms) != 1:
        if n > 0 and len(p.indices) == len(set(p.indices)):
            result = p
            for _ in range(n - 1):
                result = multiply(result, p, p.indices)
            return result
        return None
    (t,) = p.terms
    if set(t.indices) - set(p.indices):
        return None
    if t.coef == 0 and n < 0:
        return None
    return Poly(p.indices, (Term(t.coef ** n, tuple(Factor(f.name, f.indices, f.power * n, f.fn) for f in t.factors)),))


def _forward_template(note: Any, params: dict) -> str | None:
    """The declared forward formula of a unary op, parameters filled in: ``{0}^1.5``."""
    forward = note.forward
    if not isinstance(forward, str) or "{0}" not in forward or "{1}" in forward:
        return None
    shown = {k: f"{v:g}" if isinstance(v, float) else v for k, v in params.items()}
    try:
        return forward.replace("{0}", "{{0}}").format(**shown)
    except (KeyError, ValueError, IndexError):
        return None


def _bound_template(template: Any, node: Node, k: int) -> str | None:
    """A formula over ``node``'s arguments as a function of argument ``k`` alone: the
    others are scalar numbers, written in (``max({0}, {1})`` -> ``max({0}, 0)``)."""
    if not isinstance(template, str) or f"{{{k}}}" not in template:
        return None
    names = []
    for j, arg in enumerate(node.args):
        if j == k:
            names.append("{0}")
            continue
        value = np.asarray(unbox(arg))
        if value.size != 1 or value.dtype.kind not in "fiu" or not np.isfinite(value).all():
            return None
        v = float(value.reshape(-1)[0])
        names.append(str(int(v)) if v == int(v) else f"{v:g}")
    shown = {key: f"{v:g}" if isinstance(v, float) else v for key, v in node.params.items()}
    try:
        return template.format(*names, **shown)
    except (KeyError, ValueError, IndexError):
        return None


def _declared_power(note: Any, params: dict) -> int | None:
    """The integer power a notation declares: ``{0}^{exponent}``, ``{0}^2``, ``1/{0}``."""
    forward = note.forward
    if not isinstance(forward, str):
        return None
    if forward == "1/{0}":
        return -1
    if forward.startswith("{0}^"):
        rest = forward[4:]
        try:
            value = float(rest.format(**params)) if "{" in rest else float(rest)
        except (KeyError, ValueError, IndexError):
            return None
        if value == int(value) and value != 0:
            return int(value)
    return None
