"""The textbook view: the derivation as a teacher writes it on the board.

Folding is index algebra on the recorded steps (:mod:`einsumad.algebra.fold`):

1. every cotangent that is not shown is substituted into the ones that are
   (composing VJPs is substituting one einsum into another), and all the
   contributions that reach one cotangent are added and merged into one
   expression (``x^T A x`` gives ``(A + A^T) x``);
2. values the user did not name are replaced by their definitions, and named
   elementwise products by theirs; equal factors merge (powers add), like
   terms add, Kronecker deltas contract;
3. facts the data make true are used and stated (``sum_k y_k = 1`` for one-hot
   or probability targets, checked on the values);
4. named values are folded back in (``v_i s^-1`` becomes ``a3_i``).

An elementwise derivative is written ``σ'(z)`` unless writing it through its
declared partial (``a (1 - a)``) gives a simpler result: that is how BP1 of a
quadratic cost reads ``(a3 - y) ⊙ σ'(z3)`` while sigmoid or softmax with
cross-entropy reads ``a3 - y``. Each folded line is checked numerically
against the cotangent the backward pass computed.

Shown are the gradients of the differentiated arguments and the deltas of the
layers' pre-activations (``z = W a + b``); in a layered network the lines are
labelled BP1 (the output layer's delta), BP2 (a delta from the next one's),
BP3 (a bias) and BP4 (a weight), as in Nielsen's book.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

from ...algebra.fold import (
    DELTA,
    ONES,
    Factor,
    Poly,
    Style,
    Term,
    add,
    as_argument,
    cancel,
    common_factors,
    compound,
    fill,
    fold,
    latex_template,
    parenthesised,
    render,
    resolve_sizes,
    simplify,
    substitute,
)
from ...algebra.matrix import latex_name, matrix_form_details
from ...algebra.subscripts import format_terms
from ...algebra.swap import vjp_subscripts
from ...core.einsum import Einsum
from ...core.tape import Node
from .record import Recording, declaration, weight_of
from .symbolic import Symbolic

__all__ = ["Line", "Textbook", "Notation"]

#: A folded line with more terms than this is not a line a reader can use.
MAX_TERMS = 64
#: An unnamed value written inline with more factors than this gets a line of its own.
MAX_INLINE = 6


@dataclass(frozen=True)
class Notation:
    """How the textbook view writes names.

    Attributes:
        sigma: ``"logistic"`` writes the logistic function ``σ`` (the default);
            ``"activations"`` writes every activation function ``σ``, as a
            text that states the rule for any ``σ``.
        layers: ``"subscript"`` (``W3``, ``delta3``) or ``"superscript"``
            (``W^3_ij``, ``δ^3``, as Nielsen writes ``w^l_jk``).
        convention: ``"column"`` or ``"row"`` vectors in matrix forms; None
            chooses from the program (``W @ x`` column, ``x @ W`` row).
    """

    sigma: str = "logistic"
    layers: str = "subscript"
    convention: str | None = None


@dataclass
class Line:
    """One line of the textbook view.

    Attributes:
        kind: ``"forward"`` or ``"backward"``.
        name: the value or cotangent defined.
        label: ``"BP1"`` ... ``"BP4"`` in a layered network, else ``""``.
        poly: the folded expression (an index polynomial).
        matrix: the matrix form, or None.
        index: the index form.
        note: what a reader should see in the line (a transpose's swap, a sum
            over the batch, a fact used), or ``""``.
        verified: the folded expression equals the backward pass's cotangent.
        latex_matrix, latex_index, latex_name: the same in LaTeX.
    """

    kind: str
    name: str
    label: str
    poly: Poly
    matrix: str | None
    index: str
    note: str = ""
    verified: bool | None = None
    latex_matrix: str | None = None
    latex_index: str = ""
    latex_name: str = ""
    reason: str | None = None
    latex_note: str = ""
    display: str = ""

    @property
    def text(self) -> str:
        """``name = matrix form``, or the index form where there is no matrix form."""
        return f"{self.display or self.name} = {self.matrix}" if self.matrix is not None else self.index


def _size(p: Poly) -> tuple[int, int]:
    return (len(p.terms), sum(len(t.factors) for t in p.terms))


class Textbook:
    """Folds a recording into textbook lines (see the module docstring)."""

    def __init__(self, rec: Recording, notation: Notation):
        self.rec = rec
        self.notation = notation
        self.sym = Symbolic(rec)
        self.facts: list[str] = []
        self.facts_latex: list[str] = []
        self.layers = rec.layers
        shown = set(rec.wrt) | set(self.layers) | set(rec.cot_given)
        self.opaque: set[Node] = set()
        for ev in rec.events:
            if ev.contribution is not None and self.sym.vjp(ev.node, ev.argnum, False) is None:
                shown |= {ev.node, ev.parent}
                self.opaque.add(ev.node)
        self.shown = {n for n in shown if n in rec.cotangent or n in rec.wrt}
        self.convention = notation.convention or self._convention()
        self._raw: dict[tuple[Node, bool], Poly] = {}
        self.inline = {name: d for name, d in self.sym.defs.items()
                       if d is not None and name not in self.sym.named}
        for name in list(self.inline):
            self.inline[name] = self._sized(self._flatten(self.inline[name]))
        self.spelled = self._spell_out()

    def _spell_out(self) -> set[str]:
        """Unnamed values whose definition, written inline, would outgrow :data:`MAX_INLINE`.

        They get a line of their own in the forward pass and are written by name,
        so a deep chain (``tanh(tanh(...))``) reads in linear, not growing, space.
        """
        size: dict[str, int] = {}
        spelled: set[str] = set()
        for node in self.rec.order:
            name = self.sym.atom[node]
            d = self.inline.get(name)
            if d is None:
                continue
            n = sum(1 + size.get(f.name, 0) for t in d.terms for f in t.factors) or 1
            if n > MAX_INLINE:
                spelled.add(name)
                del self.inline[name]
                n = 0
            size[name] = n
        return spelled

    # ----------------------------------------------------------------- folding

    def _convention(self) -> str:
        votes = 0
        for node in self.rec.order:
            if node.prim is None or not isinstance(declaration(node), Einsum) or len(node.args) != 2:
                continue
            spec = declaration(node).spec(node.args, node.params)
            a, b = spec.inputs
            if len(a) == 1 and len(b) == 2 and a[0] == b[0] and b[1] in spec.output:
                votes += 1  # x @ W
            if len(a) == 2 and len(b) == 1 and a[1] == b[0] and a[0] in spec.output:
                votes -= 1  # W @ x
        return "row" if votes > 0 else "column"

    def raw(self, node: Node, traced: bool) -> Poly:
        """The sum of the contributions to ``node``'s cotangent, in terms of its consumers'."""
        key = (node, traced)
        if key not in self._raw:
            idx = self.sym.indices(node)
            parts = []
            for ev in self.rec.events:
                if ev.parent is node and ev.contribution is not None:
                    p = self.sym.vjp(ev.node, ev.argnum, traced)
                    if p is None:
                        # a transpose the algebra cannot see into: written as the steps view does
                        decl = declaration(ev.node)
                        g = self._name_plain(self.sym.cot_atom[ev.node])
                        label = getattr(decl, "describe", None) or f"vjp_{ev.node.prim.name}[{ev.argnum}]"
                        p = Poly.of(f"{label}({g})", idx, fn=f"{label}({g})")
                    parts.append(p.with_indices(idx))
            if node is self.rec.out:
                parts.append(Poly.constant(1))
            self._raw[key] = add(*parts) if parts else Poly.constant(0, idx)
        return self._raw[key]

    def _inline_cotangents(self, p: Poly, traced: bool) -> Poly | None:
        """``p`` with every hidden cotangent substituted; None once it outgrows :data:`MAX_TERMS`."""
        for _ in range(10_000):
            if len(p.terms) > MAX_TERMS:
                return None  # e.g. a chain of tanh written through 1 - a^2: 2^depth terms
            hidden = [n for n in p.names() if n in self.sym.cot_node and self.sym.cot_node[n] not in self.shown]
            if not hidden:
                return p
            # substitute the cotangent nearest the loss last: later nodes first
            order = {n: i for i, n in enumerate(self.rec.order)}
            name = min(hidden, key=lambda n: order[self.sym.cot_node[n]])
            node = self.sym.cot_node[name]
            p = substitute(p, name, self.raw(node, traced))
        return p

    def _flatten(self, p: Poly) -> Poly:
        """Unnamed values that occur to the first power, replaced by their definitions."""
        for _ in range(200):
            for name in sorted(p.names()):
                if name in self.inline and name not in self.sym.cot_node:
                    q = substitute(p, name, self.inline[name], lambda n: n == 1)
                    if q != p:
                        p = q
                        break
            else:
                return p
        return p

    def _expand(self, p: Poly, sums: bool = True) -> Poly:
        for _ in range(200):
            changed = False
            for name in sorted(p.names()):
                d = self.sym.defs.get(name)
                if d is None or name in self.sym.cot_node:
                    continue
                elementwise = len(d.terms) == 1 and not (set(d.terms[0].indices) - set(d.indices))
                if name in self.sym.named and not elementwise:
                    continue
                if any(f.fn is not None for t in d.terms for f in t.factors):
                    continue  # a function of a value is an atom of its own
                if not sums and not elementwise:
                    continue
                powers: Callable[[int], bool] = (lambda n: True) if elementwise else (lambda n: n > 0)
                q = substitute(p, name, d, powers)
                if q != p:
                    p, changed = q, True
                    break
            if not changed:
                return p
        return p

    def _facts(self, p: Poly) -> Poly:
        """Sums of data that the values make constant (``sum_k y_k = 1``), applied and stated."""
        data = {name for name in self.sym.constant_names} | {
            self.sym.atom[n] for n in self.rec.order if n.prim is None and n not in self.rec.wrt
        }
        terms = []
        for t in p.terms:
            factors = list(t.factors)
            coef = t.coef
            for f in list(factors):
                if f.name not in data or f.fn is not None or f.power != 1 or f.name not in self.sym.values:
                    continue
                others = [i for g in factors if g is not f for i in g.indices]
                alone = [ax for ax, i in enumerate(f.indices) if i not in p.indices and i not in others
                         and f.indices.count(i) == 1]
                if not alone:
                    continue
                value = self.sym.values[f.name]
                if value.ndim != len(f.indices):
                    continue
                sums = value.sum(axis=tuple(alone))
                c = float(np.ravel(sums)[0]) if np.size(sums) else 0.0
                if c != 1.0 or not np.allclose(sums, 1.0, rtol=1e-9, atol=1e-12):
                    continue  # a probability distribution over the summed axes: sum = 1
                factors.remove(f)
                coef *= Fraction(c).limit_denominator(10**6)
                plain = {i: i.rstrip("'") for i in f.indices}
                if len(set(plain.values())) != len(plain):
                    plain = {}
                g = f.renamed(plain)
                summed = Poly(tuple(i for ax, i in enumerate(g.indices) if ax not in alone),
                              (Term(Fraction(1), (g,)),), "")
                fact = f"{render(summed, self._style(False), rhs_only=True)} = {c:g}"
                fact_latex = f"{render(summed, self._style(True), rhs_only=True)} = {c:g}"
                if fact not in self.facts:
                    self.facts.append(fact)
                    self.facts_latex.append(fact_latex)
            terms.append(Term(coef, tuple(factors)))
        return simplify(Poly(p.indices, tuple(terms), p.target))

    def _cancel(self, p: Poly) -> Poly:
        """A sum that divides (``(1 - a)^-1`` against ``a (1 - a)``) cancels."""
        for name in sorted(p.names()):
            d = self.inline.get(name)
            if d is not None and len(d.terms) > 1:
                p = cancel(p, name, self._expand(d))
        return p

    def _refold(self, p: Poly) -> Poly:
        for node in reversed(self.rec.order):
            name = self.sym.atom[node]
            d = self.sym.defs.get(name)
            if name in self.sym.named and d is not None and len(d.terms) == 1:
                p = fold(p, name, d)
        return p

    def folded(self, node: Node) -> Poly:
        """``node``'s cotangent, folded (the simpler of the two ways to write f')."""
        return self.candidates(node)[0]

    def candidates(self, node: Node) -> list[Poly]:
        """Ways to write ``node``'s cotangent, the preferred first (see :meth:`folded`).

        The later ones fold less (no sums written out, no facts, no named values
        folded back): :meth:`lines` falls back on them when a line does not verify.
        """
        preferred: list[Poly] = []
        fallbacks: list[Poly] = []
        for traced in (False, True):
            inlined = self._inline_cotangents(self.raw(node, traced), traced)
            if inlined is None:
                continue
            raw = inlined
            p = self._sized(self._refold(self._cancel(self._facts(self._expand(raw)))))
            kept = self._sized(self._refold(self._facts(self._expand(raw, sums=False))))
            # writing sums out merges and cancels terms; where it only multiplies them, keep them
            preferred.append(p if len(p.terms) <= max(4, 2 * len(kept.terms)) else kept)
            fallbacks += [kept, self._sized(self._expand(raw, sums=False)), self._sized(raw)]
            if not self._has_choice():
                break
        preferred.sort(key=_size)
        name = self.sym.cot_atom[node]
        return [p.named(name) for p in preferred + fallbacks]

    def _sized(self, p: Poly) -> Poly:
        """A sum over an index that no factor of a term carries, written as that index's size."""
        return resolve_sizes(p, self._size_of)

    def _has_choice(self) -> bool:
        return any(exact is not None and len(exact.terms) > 1 for exact in
                   (self.sym._partials.get(k, (None, None))[1] for k in self.sym._partials))

    # ----------------------------------------------------------------- checking

    def evaluate(self, p: Poly) -> np.ndarray | None:
        """The value of ``p`` from the recorded arrays (None if some atom is unknown)."""
        letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        values = dict(self.sym.values)
        for node, g in self.rec.cotangent.items():
            if node in self.sym.cot_atom:
                values[self.sym.cot_atom[node]] = np.asarray(g).reshape(
                    tuple(n for n in np.shape(g) if n != 1))
        index_letter: dict[str, str] = {}
        total = None
        sizes: dict[str, int] = {}
        for t in p.terms:
            operands = []
            subs = []
            for f in t.factors:
                v: np.ndarray | None
                if f.name == DELTA and len(f.indices) == 2:
                    n = self._size_of(f.indices[0])
                    v = None if n is None else np.eye(n)
                elif f.name == ONES and len(f.indices) == 1:
                    n = self._size_of(f.indices[0])
                    v = None if n is None else np.ones(n)
                elif f.fn is not None:
                    v = self.sym.fn_values.get((f.name, f.fn))
                elif f.name in values:
                    v = values[f.name]
                else:
                    return None
                if v is None or np.ndim(v) != len(f.indices):
                    return None
                v = np.asarray(v, dtype=float)
                if f.power != 1:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        v = v ** f.power
                for i, n in zip(f.indices, np.shape(v)):
                    index_letter.setdefault(i, letters[len(index_letter)])
                    sizes[i] = n
                operands.append(v)
                subs.append("".join(index_letter[i] for i in f.indices))
            for i in p.indices:
                index_letter.setdefault(i, letters[len(index_letter)])
            out = "".join(index_letter[i] for i in p.indices)
            if any(i not in sizes for i in p.indices):
                missing = [i for i in p.indices if i not in sizes]
                for i in missing:
                    n = self._size_of(i)
                    if n is None:
                        return None
                    sizes[i] = n
            present = set("".join(subs))
            extra = [index_letter[i] for i in p.indices if index_letter[i] not in present]
            if extra:
                operands.append(np.ones([sizes[i] for i in p.indices if index_letter[i] in extra]))
                subs.append("".join(extra))
            value = float(t.coef) * (_contract(subs, operands, out) if operands else np.ones(()))
            total = value if total is None else total + value
        if total is None:
            return np.zeros([self._size_of(i) or 1 for i in p.indices])
        return total

    def _size_of(self, index: str) -> int | None:
        for node in self.rec.order:
            for name, n in zip(self.sym.axis_names(node), np.shape(node.ans)):
                if name == index.rstrip("'"):
                    return int(n)
        return None

    def verify(self, node: Node, p: Poly) -> bool | None:
        value = self.evaluate(p)
        if value is None:
            return None
        truth = np.asarray(self.rec.cotangent.get(node, 0.0))
        truth = truth.reshape(tuple(n for n in truth.shape if n != 1))
        try:
            return bool(np.allclose(np.broadcast_to(value, truth.shape), truth, rtol=1e-6, atol=1e-9))
        except ValueError:
            return False

    # ----------------------------------------------------------------- lines

    def anonymous_constants(self, lines: Sequence[Line]) -> list[str]:
        """Constants that no variable names (``c1``) and that appear in the lines."""
        used = set()
        for ln in lines:
            used |= ln.poly.names()
            for name in ln.poly.names():
                if name in self.inline:
                    used |= self.inline[name].names()
        for _ in range(3):
            for name in list(used):
                if name in self.inline:
                    used |= self.inline[name].names()
        return [n for n in sorted(used) if re.fullmatch(r"c\d+", n) and n in self.sym.constant_names]

    def lines(self) -> list[Line]:
        out: list[Line] = []
        for node in self.rec.order:
            if node.prim is None or (node not in self.rec.named and node not in self.layers
                                     and self.sym.atom[node] not in self.spelled):
                continue
            d = self.sym.defs[self.sym.atom[node]]
            if d is None:
                continue
            forward = self._sized(self._flatten(d)).named(self.sym.atom[node])
            out.append(self._line("forward", self.sym.atom[node], "", forward, ""))
        order = [ev.parent for ev in self.rec.events]
        seen: set[Node] = set()
        backward_nodes = [n for n in order if n in self.shown and not (n in seen or seen.add(n))]  # type: ignore[func-returns-value]
        for n in self.rec.wrt:
            if n not in seen:
                backward_nodes.append(n)
        polys: dict[Node, Poly] = {}
        verdicts: dict[Node, bool | None] = {}
        for n in backward_nodes:
            # the preferred form, or the first that the backward pass's values confirm
            options = self.candidates(n)
            polys[n], verdicts[n] = options[0], self.verify(n, options[0])
            if verdicts[n] is False:
                for p in options[1:]:
                    if self.verify(n, p):
                        polys[n], verdicts[n] = p, True
                        break
        labels = self._labels(polys)
        for n in backward_nodes:
            p = polys[n]
            note, note_latex = self._note(n, p, labels.get(n, ""))
            if verdicts[n] is False:
                warning = ("NOT VERIFIED: this line disagrees with the backward pass's values; "
                           "the steps view (d.render('steps')) is exact")
                note = "; ".join(filter(None, [warning, note]))
                note_latex = "; ".join(filter(None, [warning, note_latex]))
            line = self._line("backward", self.sym.cot_atom[n], labels.get(n, ""), p, note)
            line.latex_note = note_latex
            line.verified = verdicts[n]
            out.append(line)
        return out

    def _labels(self, polys: dict[Node, Poly]) -> dict[Node, str]:
        if not self.layers:
            return {}
        deltas = {self.sym.cot_atom[z] for z in self.layers}
        labels: dict[Node, str] = {}
        for node, p in polys.items():
            used = p.names() & deltas
            if node in self.layers:
                if not used:
                    labels[node] = "BP1"
                elif len(used) == 1:
                    labels[node] = "BP2"
            elif node in self.rec.wrt and len(p.terms) == 1 and p.terms[0].coef == 1 and len(used) == 1:
                factors = p.terms[0].factors
                weights = set(self.layers.values())
                if len(factors) == 1 and node not in weights:
                    labels[node] = "BP3"
                elif len(factors) == 2 and node in weights and all(f.fn is None and f.power == 1 for f in factors):
                    labels[node] = "BP4"
        if "BP1" not in labels.values():
            return {}
        return labels

    def _note(self, node: Node, p: Poly, label: str) -> tuple[str, str]:
        """What to see in a line, as text and as LaTeX (math in ``$...$`` inside ``\\text``)."""
        plain: list[str] = []
        latex: list[str] = []
        contributions = sum(1 for ev in self.rec.events if ev.parent is node and ev.contribution is not None)
        if contributions > 1:
            v = self.sym.atom[node]
            plain.append(f"{contributions} contributions merged ({self._name_plain(v)} is used {contributions} times)")
            latex.append(f"{contributions} contributions merged (${self._name_latex(v)}$ is used {contributions} times)")
        for t in p.terms[:1]:
            for f in t.factors:
                w = self.sym.node_of.get(f.name)
                if w is None or w not in self.rec.wrt or np.ndim(w.ans) != 2:
                    continue
                for n, k in self.rec.consumers.get(w, []):
                    if weight_of(n, self.rec.wrt) is not w:
                        continue
                    swap = self._swap_text(n, k)
                    if swap:
                        plain.append(swap[0])
                        latex.append(swap[1])
                    break
        summed = list(dict.fromkeys(i for t in p.terms for i in t.indices if i not in p.indices))
        if summed and label in ("BP3", "BP4"):
            idx = ", ".join(summed)
            idx_l = ", ".join(f"${self._index_latex(i)}$" for i in summed)
            if label == "BP3":
                b = self.sym.atom[node]
                plain.append(f"the sum over {idx} undoes the broadcast of {self._name_plain(b)} along it")
                latex.append(f"the sum over {idx_l} undoes the broadcast of ${self._name_latex(b)}$ along it")
            else:
                plain.append(f"summed over {idx}: one outer product per example")
                latex.append(f"summed over {idx_l}: one outer product per example")
        if label == "BP1" and self.facts:
            plain.append("using " + "; ".join(self.facts) + " (checked on the data)")
            latex.append("using " + "; ".join(f"${f}$" for f in self.facts_latex) + " (checked on the data)")
        return "; ".join(plain), "; ".join(latex)

    def _index_latex(self, i: str) -> str:
        return i if len(i.rstrip("'")) == 1 else "\\mathrm{" + i.replace("_", "\\_") + "}"

    def _swap_text(self, node: Node, weight_arg: int) -> tuple[str, str] | None:
        """The weight's transpose in the delta rule: the swap of the layer's einsum."""
        spec = declaration(node).spec(node.args, node.params)
        names = self.sym._einsum_symbols(node, spec)
        parents = dict(node.parents)
        other = next((k for k in range(len(node.args)) if k != weight_arg), None)
        if other is None or any(names[s] is None for s in "".join(spec.inputs) + spec.output):
            return None
        terms = [tuple(names[s] for s in t) for t in spec.inputs]
        out = tuple(names[s] for s in spec.output)
        named = any(len(i.rstrip("'")) > 1 for t in (*terms, out) for i in t)  # type: ignore[union-attr]
        fwd = format_terms(terms, out, named)  # type: ignore[arg-type]
        try:
            vjp = vjp_subscripts(fwd, other)
        except Exception:
            return None
        atom = self.sym.atom[parents[weight_arg]]
        w, wl = self._name_plain(atom), self._name_latex(atom)
        term = terms[weight_arg]
        if len(term) != 2 or (term[0] in out) == (term[1] in out):
            return None
        position, summed = ("first", term[0]) if term[0] in out else ("second", term[1])
        arrow = lambda text: text.replace("->", " \\to ")  # noqa: E731
        return (
            f"{w}^T: the swap {fwd} => {vjp} sums {w} over its {position} index, {summed}",
            f"${wl}^\\top$: the swap ${arrow(fwd)} \\;\\Rightarrow\\; {arrow(vjp)}$ sums ${wl}$ over its "
            f"{position} index, ${self._index_latex(summed)}$",  # type: ignore[arg-type]
        )

    # ----------------------------------------------------------------- rendering

    def _name_plain(self, name: str) -> str:
        if self.notation.layers == "superscript":
            m = re.fullmatch(r"(.*?[A-Za-z_])(\d+)", name)
            if m:
                base = "δ" if m.group(1) == "delta" else m.group(1)
                return base + m.group(2).translate(_SUPERSCRIPTS)
        return name

    def _name_latex(self, name: str) -> str:
        m = re.fullmatch(r"(.*?[A-Za-z_])(\d+)", name)
        if self.notation.layers == "superscript" and m:
            return f"{{{latex_name(m.group(1))}^{{{m.group(2)}}}}}"
        return latex_name(name)

    def _fn_plain(self, template: str) -> str:
        if self.notation.sigma == "activations" and re.fullmatch(r"[^(]+'?\(\{0\}\)", template):
            return "σ'({0})" if "'" in template else "σ({0})"
        if self.notation.sigma == "none":
            return template.replace("σ", "sigmoid")
        return template

    def _glue(self) -> bool:
        return all(len(i.rstrip("'")) == 1 for i in self.sym.axes.all_names())

    def _style(self, latex: bool) -> Style:
        glue = self._glue()
        if latex:
            return Style(latex=True, name=self._name_latex_indexed, function=lambda f: latex_template(self._fn_plain(f)),
                         inline=self.inline, glue=glue)
        return Style(name=self._name_plain, function=self._fn_plain, inline=self.inline, glue=glue)

    def _name_latex_indexed(self, name: str) -> str:
        text = self._name_latex(name)
        if text.startswith("{") and text.endswith("}"):
            return text[1:-1]  # indices go below the layer: w^{3}_{ij}
        return text

    def _relabel(self, p: Poly) -> Poly:
        """Primed indices (``j'``) as fresh letters, when every index is a letter."""
        if not self._glue():
            return p
        taken = set(self.sym.axes.all_names())
        everything = set(p.indices) | {i for t in p.terms for i in t.indices}
        for name in p.names():
            if name in self.inline:
                everything |= {i for t in self.inline[name].terms for i in t.indices}
        mapping = {}
        for i in sorted(everything):
            if i.endswith("'"):
                new = next((c for c in "ijklmnpqrstuvwxyzabcdefgh" if c not in taken and c not in everything), None)
                if new is None:
                    return p
                mapping[i] = new
                taken.add(new)
        return p.renamed(mapping) if mapping else p

    def _ordered(self, p: Poly) -> Poly:
        """Factors in a reading order: parameters, then cotangents, then values, then f'(z)."""
        params = {self.sym.atom[n] for n in self.rec.wrt}

        def key(f: Factor) -> tuple:
            return (f.fn is not None, f.name not in params, f.name not in self.sym.cot_node)

        return Poly(p.indices, tuple(Term(t.coef, tuple(sorted(t.factors, key=key))) for t in p.terms), p.target)

    def _as_read(self, p: Poly, matrix: str | None) -> Poly:
        """Factors in the order the matrix form reads them (``a1^T delta2``: a1 first)."""
        if matrix is None:
            return p

        def key(f: Factor) -> int:
            name = self._name_plain(f.name)
            found = re.search(rf"(?<![\w']){re.escape(name)}(?![\w'])", matrix)
            return found.start() if found else len(matrix)

        return Poly(p.indices, tuple(Term(t.coef, tuple(sorted(t.factors, key=key))) for t in p.terms), p.target)

    def _line(self, kind: str, name: str, label: str, p: Poly, note: str) -> Line:
        matrix, reason = self._matrix(p, latex=False)
        latex_matrix, _ = self._matrix(p, latex=True)
        display = self._factored(self._as_read(self._ordered(self._relabel(p)), matrix))
        index = render(display, self._style(False))
        latex_index = render(display, self._style(True))
        return Line(kind, name, label, p, matrix, index, note, None, latex_matrix, latex_index,
                    self._name_latex(name), reason, display=self._name_plain(name))

    def _factored(self, p: Poly) -> Poly:
        """``coef * shared factors * (rest)``, the rest written inline in parentheses."""
        coef, shared, rest = common_factors(p)
        if not shared and coef == 1 or len(rest.terms) <= 1:
            return p
        self.inline = dict(self.inline)
        key = f"\0rest{len(self.inline)}"
        self.inline[key] = Poly(rest.indices, rest.terms)
        term = Term(coef, (Factor(key, rest.indices), *shared))
        return Poly(p.indices, (term,), p.target)

    def _operand_name(self, f: Factor, latex: bool) -> str | None:
        if f.name in self.inline and f.fn is None:
            d = self.inline[f.name]
            inner, _ = self._matrix(d, latex)
            if inner is None:
                return None
            if len(d.terms) == 1 and d.terms[0].coef == 1 and len(d.terms[0].factors) == 1:
                return inner
            return parenthesised(inner, latex)
        if f.name in self.inline:
            inner, _ = self._matrix(self.inline[f.name], latex)
            if inner is None:
                return None
            template = latex_template(self._fn_plain(f.fn)) if latex else self._fn_plain(f.fn)  # type: ignore[arg-type]
            return _grouped(fill(template, inner, as_argument(inner, latex)), latex)  # (x ⊙ x + 1)^1.5
        base = self._name_latex(f.name) if latex else self._name_plain(f.name)
        if f.fn is not None:
            template = latex_template(self._fn_plain(f.fn)) if latex else self._fn_plain(f.fn)
            return _grouped(template.format(base), latex)
        return base

    def _matrix(self, p: Poly, latex: bool) -> tuple[str | None, str | None]:
        """The matrix form of ``p`` (each term's, joined), or None and the reason."""
        coef, shared, rest = common_factors(p)
        if len(rest.terms) > 1 and (shared or coef != 1):
            best: tuple[str | None, str | None] = (None, None)
            orders = [rest.indices] + ([rest.indices[::-1]] if len(rest.indices) == 2 else [])
            for order in orders:  # the sum as written, or transposed: whichever reads without ^T on it
                inner_poly = Poly(tuple(order), rest.terms)
                inner, reason = self._matrix(inner_poly, latex)
                if inner is None:
                    best = best if best[0] is not None else (None, reason)
                    continue
                key = f"\0m{len(self.inline)}"
                saved = self.inline
                self.inline = {**saved, key: inner_poly}
                try:
                    text, reason = self._matrix(Poly(p.indices, (Term(coef, (Factor(key, tuple(order)), *shared)),)), latex)
                finally:
                    self.inline = saved
                if text is not None and (best[0] is None or _transposes(text) < _transposes(best[0])):
                    best = (text, None)
            return best
        parts = []
        monomials = []
        for t in p.terms:
            text, reason = self._monomial(t, p.indices, latex)
            if text is None:
                return None, reason
            monomials.append((t.coef < 0, _transposes(text), text))
        inner_sum = len(p.indices) == 2 and all(len(t.factors) == 1 for t in p.terms)
        # A + A^T: the plain term first; W x + b: as written
        ranked = sorted(monomials, key=lambda m: (m[0], m[1] if inner_sum else 0))
        for n, (negative, _, text) in enumerate(ranked):
            sign = "-" if negative else "+"
            parts.append((("-" if sign == "-" else "") + text) if n == 0 else f" {sign} {text}")
        if not parts:
            return "0", None
        return "".join(parts), None

    def _monomial(self, t: Term, free: Sequence[str], latex: bool) -> tuple[str | None, str | None]:
        letters = "abcdefghijklmnopqrstuvwxyz"
        letter: dict[str, str] = {}
        terms, names = [], []
        for f in t.factors:
            if f.name == DELTA and len(f.indices) == 2 and all(i in free for i in f.indices):
                a, b = f.indices  # a diagonal embedding: the two output indices are one
                letter[b] = letter.setdefault(a, letters[len(letter) % 26])
        for f in t.factors:
            if f.name == DELTA and len(f.indices) == 2 and letter.get(f.indices[0]) == letter.get(f.indices[1]):
                continue
            if f.power not in (1, 2):
                return None, "an elementwise power has no matrix notation"
            if len(set(f.indices)) != len(f.indices) and len(f.indices) > 2:
                return None, f"{f.name} has rank {len(f.indices)}"
            name = self._operand_name(f, latex)
            if name is None:
                return None, f"{f.name} has no matrix form"
            sub = "".join(letter.setdefault(i, letters[len(letter) % 26]) for i in f.indices)
            for _ in range(f.power):
                terms.append(sub)
                names.append(name)
        out = "".join(letter.setdefault(i, letters[len(letter) % 26]) for i in free)
        c = abs(t.coef)
        if not terms:
            text = _number(c, latex)
            if free:
                details = matrix_form_details("->" + out, ["Zq0"], latex=latex, convention=self.convention)
                if details.text is None:
                    return None, details.reason
                ones = details.text.replace(latex_name("Zq0") if latex else "Zq0", "").strip()
                if c == 1:
                    return ones, None
                # 16 \mathbf{1}; in plain text "16 1" would read as one number: 16·1
                return (f"{text} {ones}" if latex else f"{text}·{ones}"), None
            return text, None
        placeholders = [f"Zq{n}" for n in range(len(names))]
        details = matrix_form_details(",".join(terms) + "->" + out, placeholders, latex=latex,
                                      convention=self.convention)
        if details.text is None:
            return None, details.reason
        text = details.text
        for n in reversed(range(len(names))):
            token = latex_name(placeholders[n]) if latex else placeholders[n]
            text = text.replace(token, names[n])
        if c != 1:
            if c.numerator == 1 and c.denominator > 2:
                if latex:
                    text = f"\\frac{{1}}{{{c.denominator}}} {text}"
                else:
                    text = f"({text}) / {c.denominator}" if _spaced(text) else f"{text} / {c.denominator}"
            else:
                text = f"{_number(c, latex)} {text}"
        return text, None


def _grouped(text: str, latex: bool) -> str:
    """A function's formula as one operand: ``(x Φ(x))``, ``(Φ(x) + x φ(x))``, ``tanh(x)``."""
    return parenthesised(text, latex) if compound(text) else text


def _contract(subs: list[str], operands: list[np.ndarray], out: str) -> np.ndarray:
    """``np.einsum`` of any number of operands (NumPy takes at most 32 at once): pairwise, left to right."""
    sub, value = subs[0], operands[0]
    for n in range(1, len(subs)):
        later = set(out).union(*subs[n + 1:])
        keep = "".join(dict.fromkeys(c for c in sub + subs[n] if c in later))
        value = np.einsum(f"{sub},{subs[n]}->{keep}", value, operands[n])
        sub = keep
    return np.einsum(f"{sub}->{out}", value)


_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _transposes(text: str) -> int:
    return text.count("^T") + text.count("^\\top")


def _spaced(text: str) -> bool:
    """A space outside parentheses: ``A x`` needs them before ``/ 8``, ``tr(A B)`` does not."""
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == " " and depth == 0:
            return True
    return False


def _number(c: Fraction, latex: bool) -> str:
    if c.denominator == 1:
        return str(c.numerator)
    if len(repr(float(c))) <= 5:
        return repr(float(c))
    return f"\\frac{{{c.numerator}}}{{{c.denominator}}}" if latex else f"{c.numerator}/{c.denominator}"


def textbook_text(lines: Sequence[Line], constants: Sequence[str] = ()) -> str:
    """The textbook view as text: the model, then the backward pass."""
    out = ["Forward pass"]
    forward = [ln for ln in lines if ln.kind == "forward"]
    backward = [ln for ln in lines if ln.kind == "backward"]
    # the index forms line up after the matrix forms; a very long one does not push the others
    width = max((len(ln.text) for ln in lines if ln.matrix is not None and len(ln.text) <= 80), default=0)
    for ln in forward:
        out.append(_row("", ln, width))
    for c in constants:
        out.append(f"       ({c}: a constant the function computed; no derivative flows through it)")
    out.append("Backward pass")
    for ln in backward:
        out.append(_row(ln.label, ln, width))
        if ln.note:
            out.append(" " * 7 + "  " + ln.note)
    return "\n".join(out)


def _row(label: str, ln: Line, width: int) -> str:
    head = f"  {label:<5}"
    left = ln.text if ln.matrix is not None else ""
    if left == ln.index:
        return f"{head}{left}".rstrip()
    return f"{head}{left:<{width}}    {ln.index}".rstrip()
