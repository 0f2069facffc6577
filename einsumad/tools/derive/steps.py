"""The step-by-step view: one line per recorded op and per VJP of the backward pass.

Every backward step is one vector-Jacobian product, shown four ways: the
forward subscripts, the swapped subscripts of its VJP (the swap rule), the
index form with the summation written out, and the matrix form where one
exists. Einsum subscripts are written with the library's one relabeller
(:func:`~einsumad.algebra.letters.relabel_terms`), so a step reads exactly as
the comment ``ea.codegen`` prints beside the same contraction.

Labels come from the algebra: "transpose" only where the swap turns a matrix
operand around (it is written transposed in the VJP's matrix form and not in
the forward's), "broadcast" where the VJP creates an index (the reverse of a
sum), "sum over the broadcast index" where it removes one; the delta rule
(``delta1 = (W2^T delta2) ⊙ tanh'(z1)``) is the composed step of a contraction
with a weight matrix followed by an elementwise function, and only that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from ...algebra.letters import relabel_terms
from ...algebra.matrix import latex_name, matrix_form, matrix_form_details
from ...algebra.swap import broadcast_spec, vjp_subscripts
from ...core.einsum import Einsum
from ...core.elementwise import Elementwise
from ...core.linear import Linear
from ...core.primitive import Notation
from ...core.tape import Node, unbox
from .record import Event, Recording, declaration, partial_is_one

__all__ = ["Step", "Factor", "Term", "IndexForm", "build_steps", "steps_text", "notation", "swap_label"]

_LETTERS = "ijklmnpqrstuvwxyzabcdefgh"


# ----------------------------------------------------------------- index forms


@dataclass(frozen=True)
class Factor:
    """One factor of an index form: ``name_letters``, or ``f(name_letters)``."""

    name: str
    letters: str = ""
    fn: str | None = None  # "tanh'" for tanh'(z1_j)
    scale: str | None = None
    power: str | None = None

    def plain(self) -> str:
        core = f"{self.name}_{self.letters}" if self.letters else self.name
        if self.fn:
            core = f"{self.fn}({core})"
        if self.power:
            core = f"{core}^{self.power}"
        return f"{self.scale} {core}" if self.scale else core

    def latex(self) -> str:
        core = latex_indexed(self.name, self.letters)
        if self.fn:
            primes = len(self.fn) - len(self.fn.rstrip("'"))
            core = f"{latex_function(self.fn.rstrip(chr(39)))}{chr(39) * primes}({core})"
        if self.power:
            core = f"{core}^{{{self.power}}}"
        return f"{self.scale} {core}" if self.scale else core


def latex_function(symbol: str) -> str:
    if symbol == "σ":
        return "\\sigma"
    return latex_name(symbol + "(x)").split("(")[0]


def latex_indexed(name: str, letters: str) -> str:
    base = latex_name(name)
    if not letters:
        return base
    m = re.fullmatch(r"(.*)_\{([^{}]*)\}", base)
    if m:
        return f"{m.group(1)}_{{{m.group(2)},{letters}}}"
    return f"{base}_{{{letters}}}"


@dataclass(frozen=True)
class Term:
    """``sign sum_{summed} prod factors``."""

    factors: tuple[Factor, ...]
    summed: str = ""
    sign: str = "+"


@dataclass(frozen=True)
class IndexForm:
    """``target_letters (=|+=) term + term ...``."""

    target: str
    letters: str
    terms: tuple[Term, ...]
    accumulate: bool = False

    def plain(self) -> str:
        lhs = f"{self.target}_{self.letters}" if self.letters else self.target
        parts = []
        for n, t in enumerate(self.terms):
            body = " ".join(f.plain() for f in t.factors)
            if t.summed:
                body = "sum_" + t.summed + " " + body
            parts.append((("-" if t.sign == "-" else "") + body) if n == 0 else f" {t.sign} {body}")
        return f"{lhs} {'+=' if self.accumulate else '='} " + "".join(parts)

    def latex(self) -> str:
        lhs = latex_indexed(self.target, self.letters)
        parts = []
        for n, t in enumerate(self.terms):
            body = " \\, ".join(f.latex() for f in t.factors)
            if t.summed:
                body = f"\\sum_{{{t.summed}}} " + body
            parts.append((("-" if t.sign == "-" else "") + body) if n == 0 else f" {t.sign} {body}")
        eq = "\\mathrel{+}=" if self.accumulate else "="
        return f"{lhs} {eq} " + "".join(parts)


# ----------------------------------------------------------------- steps


@dataclass
class Step:
    """One line of the step-by-step view of a derivation.

    Attributes:
        kind: ``"forward"``, ``"backward"`` (one VJP), or ``"delta"`` (the delta
            rule: an einsum VJP with a weight matrix composed with the
            elementwise step that follows it).
        name: the value defined (forward) or the cotangent defined (backward).
        op: the primitive's name (``"einsum"``, ``"tanh"``, ``"add"``, ...).
        declared: the kind the primitive was declared with (``"einsum"``,
            ``"elementwise"``, ``"linear"``, ``"general"``).
        subscripts: the forward subscripts, in the library's readable letters
            (the letters ``ea.codegen`` prints), or None.
        vjp_subscripts: the swapped subscripts of the VJP (backward steps).
        operands: operand names, in the order of ``vjp_subscripts`` for a
            backward step, of ``subscripts`` for a forward one.
        index: the index form (see :attr:`index_form` for its text).
        matrix_form: the matrix form, or None where none exists.
        shape: the shape of the value.
        value: the value itself (a NumPy array).
        wrt: for a backward step, the forward value whose cotangent it is.
        accumulate: True when this contribution is added (``+=``) to a
            cotangent that already has one (a value used more than once).
        note: e.g. ``transpose from the swap ij,j->i => i,ij->j``.
        latex_matrix: the matrix form in LaTeX.
        matrix_reason: why there is no matrix form (when there is none).
    """

    kind: str
    name: str
    op: str
    subscripts: str | None
    vjp_subscripts: str | None
    operands: tuple[str, ...]
    index: IndexForm | None
    matrix_form: str | None
    shape: tuple[int, ...]
    value: Any
    wrt: str | None = None
    accumulate: bool = False
    note: str = ""
    latex_matrix: str | None = None
    declared: str = ""
    matrix_reason: str | None = None
    node: Any = None
    argnum: int | None = None

    @property
    def index_form(self) -> str:
        """The index form as text, summation written out."""
        return self.index.plain() if self.index else ""

    @property
    def text(self) -> str:
        """The step's headline: matrix form if any, else the index form (else the note)."""
        if self.index is None and self.matrix_form is None:
            return f"({self.note})"
        eq = "+=" if self.accumulate else "="
        if self.matrix_form is not None:
            return f"{self.name} {eq} {self.matrix_form}"
        return self.index_form

    def latex(self) -> str:
        """The matrix form and the index form in LaTeX, side by side."""
        eq = "\\mathrel{+}=" if self.accumulate else "="
        lines = []
        if self.latex_matrix is not None:
            lines.append(f"{latex_name(self.name)} {eq} {self.latex_matrix}")
        if self.index is not None:
            lines.append(self.index.latex())
        return " \\quad ".join(lines)


def notation(node: Node) -> Notation:
    return declaration(node).notation or Notation(node.prim.name)


def _format(template: Any, names: Sequence[str], params: dict) -> str:
    if callable(template):
        return str(template(names, params))
    return str(template).format(*names, **params)


def fprime_name(node: Node, ops: Sequence[str], k: int) -> str:
    """``tanh'(z1)``, ``2 v3``, ``1/y``: the declared notation of ``∂f/∂x_k``."""
    templates = notation(node).derivative
    if k < len(templates) and templates[k] is not None:
        return _format(templates[k], ops, node.params)
    return f"{notation(node).symbol}'({ops[k]})"


def _fprime_factor(node: Node, ops: Sequence[str], k: int, letters: str) -> Factor:
    templates = notation(node).derivative
    if k < len(templates) and templates[k] is not None:
        return Factor(fprime_name(node, ops, k), "")
    return Factor(ops[k], letters, fn=f"{notation(node).symbol}'")


def readable_terms(node: Node) -> tuple[list[str], str]:
    """A recorded einsum's terms and output, in the library's one set of readable letters."""
    spec = declaration(node).spec(node.args, node.params)
    return relabel_terms(spec.inputs, spec.output)


def swap_label(fwd: str, k: int) -> str:
    """What the swap of operand ``k`` does: a transpose, a broadcast, a batch sum, or a product.

    >>> swap_label("ij,j->i", 1)
    'transpose from the swap ij,j->i => i,ij->j'
    >>> swap_label("ij->", 0)
    'broadcast over ij (the reverse of the sum): the swap ij-> => ->ij'
    >>> swap_label("bi,i->bi", 1)
    'sum over the broadcast index b: the swap bi,i->bi => bi,bi->i'
    >>> swap_label("ij,j->i", 0)
    'the swap ij,j->i => i,j->ij'
    >>> swap_label("ij->ji", 0)
    'transpose from the swap ij->ji => ji->ij'
    """
    vjp = vjp_subscripts(fwd, k)
    ins, out = fwd.split("->")
    terms = ins.split(",")
    others = [t for j, t in enumerate(terms) if j != k]
    swap = f"{fwd} => {vjp}"
    created = [c for c in dict.fromkeys(terms[k]) if c not in out and not any(c in t for t in others)]
    removed = [c for c in dict.fromkeys(out) if c not in terms[k]]
    def exchanged(term: str, before: str, after: str) -> bool:
        """The two letters of a matrix operand trade roles (kept <-> summed): a transpose."""
        if len(term) != 2 or term[0] == term[1]:
            return False
        roles = lambda result: [c in result for c in term]  # noqa: E731
        return roles(before) == [not r for r in roles(after)]

    flipped = [t for t in others if exchanged(t, out, terms[k])]
    if len(set(out)) == 2 == len(out) and set(out) == set(terms[k]) and out != terms[k]:
        flipped.append(out)
    if flipped:
        return f"transpose from the swap {swap}"
    if created:
        return f"broadcast over {''.join(created)} (the reverse of the sum): the swap {swap}"
    if removed:
        return f"sum over the broadcast index {''.join(removed)}: the swap {swap}"
    return f"the swap {swap}"


def _forward_step(rec: Recording, node: Node) -> Step:
    nm = rec.value_name[node]
    prim = node.prim
    decl = declaration(node)
    shape = np.shape(node.ans)
    nargs = len(node.args)
    ops = tuple(rec.operand_name(node, k) for k in range(nargs))
    kind = decl.kind
    if isinstance(decl, Einsum):
        terms, out = readable_terms(node)
        subs = ",".join(terms) + "->" + out
        summed = "".join(dict.fromkeys(c for t in terms for c in t if c not in out))
        index = IndexForm(nm, out, (Term(tuple(Factor(o, t) for o, t in zip(ops, terms)), summed),))
        details = matrix_form_details(subs, ops)
        lmf = matrix_form(subs, ops, latex=True)
        return Step("forward", nm, prim.name, subs, None, ops, index, details.text, shape, node.ans,
                    latex_matrix=lmf, declared=kind, matrix_reason=details.reason, node=node)
    letters = _LETTERS[: len(shape)]
    if isinstance(decl, Elementwise):
        note = notation(node)
        if note.operator is not None and nargs == 2:
            factors = [Factor(ops[k], letters[len(letters) - np.ndim(unbox(node.args[k])):]) for k in range(2)]
            if note.operator == "+":
                index = IndexForm(nm, letters, (Term((factors[0],)), Term((factors[1],))))
            else:
                index = IndexForm(nm, letters, (Term((Factor(f"{factors[0].plain()} {note.operator} {factors[1].plain()}"),)),))
            mf = f"{ops[0]} {note.operator} {ops[1]}"
            if note.operator == "+" and ops[1].startswith("-") and " " not in ops[1]:
                mf = f"{ops[0]} - {ops[1][1:]}"  # a + (-y), as NumPy computed -y eagerly
                index = IndexForm(nm, letters, (Term((factors[0],)), Term((replace(factors[1], name=ops[1][1:]),), sign="-")))
            return Step("forward", nm, prim.name, None, None, ops, index, mf, shape, node.ans,
                        latex_matrix=_latex_ops(mf, ops), declared=kind, node=node)
        if note.forward is not None:
            text = _format(note.forward, ops, node.params)
            index = IndexForm(nm, letters, (Term((Factor(text.replace(ops[0], f"{ops[0]}_{letters}", 1) if letters else text),)),))
            return Step("forward", nm, prim.name, letters + "->" + letters, None, ops[:1], index, None, shape,
                        node.ans, declared=kind, node=node)
        index = IndexForm(nm, letters, (Term((Factor(ops[0], letters, fn=note.symbol),)),))
        mf = f"{note.symbol}({ops[0]})"
        lm = f"{latex_function(note.symbol)}({latex_name(ops[0])})"
        return Step("forward", nm, prim.name, letters + "->" + letters, None, ops, index, mf, shape,
                    node.ans, latex_matrix=lm, declared=kind, node=node)
    if is_negation(node):
        index = IndexForm(nm, letters, (Term((Factor(ops[0], letters),), sign="-"),))
        mf = f"-{ops[0]}"
        return Step("forward", nm, prim.name, None, None, ops, index, mf, shape, node.ans,
                    latex_matrix=_latex_ops(mf, ops), declared=kind, node=node)
    index = IndexForm(nm, "", (Term((Factor(f"{prim.name}({', '.join(ops)})"),)),))
    return Step("forward", nm, prim.name, None, None, ops, index, None, shape, node.ans, declared=kind,
                note=f"{prim.name}: declared {kind}", node=node)


def _latex_ops(text: str, ops: Sequence[str]) -> str:
    for o in ops:
        replacement = latex_name(o).replace("\\", "\\\\")
        text = re.sub(rf"(?<![\w\\]){re.escape(o)}(?![\w])", replacement, text)
    return text


def is_negation(node: Node) -> bool:
    """A unary linear op whose transpose is itself times -1 (``-x``)."""
    decl = declaration(node)
    return isinstance(decl, Linear) and decl.describe == "negate"


def _backward_step(rec: Recording, ev: Event, accumulate: bool) -> Step:
    node, k, value = ev.node, ev.argnum, np.asarray(unbox(ev.contribution))
    g_name = rec.cotangent_of(node)
    target = rec.cotangent_of(ev.parent)
    wrt = rec.value_name[ev.parent]
    prim = node.prim
    decl = declaration(node)
    kind = decl.kind
    shape = np.shape(value)
    ops = [rec.operand_name(node, j) for j in range(len(node.args))]
    common = dict(declared=kind, node=node, argnum=k)
    if isinstance(decl, Einsum):
        terms, out = readable_terms(node)
        fwd = ",".join(terms) + "->" + out
        vjp = vjp_subscripts(fwd, k)
        vjp_ops = (g_name, *[o for j, o in enumerate(ops) if j != k])
        factors = [Factor(g_name, out) if j == k else Factor(ops[j], terms[j]) for j in range(len(terms))]
        letters_in = "".join(dict.fromkeys(c for t in (out, *[t for j, t in enumerate(terms) if j != k]) for c in t))
        summed = "".join(c for c in letters_in if c not in terms[k])
        index = IndexForm(target, terms[k], (Term(tuple(factors), summed),), accumulate)
        details = matrix_form_details(vjp, vjp_ops)
        lmf = matrix_form(vjp, vjp_ops, latex=True)
        note = "einsum: " + swap_label(fwd, k) if any(c.isalpha() for c in fwd) else ""  # nothing to say about scalars
        return Step("backward", target, prim.name, fwd, vjp, vjp_ops, index, details.text, shape, value, wrt,
                    accumulate, note, lmf, matrix_reason=details.reason, **common)
    letters = _LETTERS[: len(shape)]
    if isinstance(decl, Elementwise) and partial_is_one(node, k):
        arg_shape = np.shape(unbox(node.args[k]))
        ans_shape = np.shape(node.ans)
        if arg_shape == ans_shape and target == g_name:
            note = f"{wrt} receives {g_name} unchanged: elementwise {prim.name} has derivative 1"
            return Step("backward", target, prim.name, None, None, (g_name,), None, None, shape, value,
                        wrt, accumulate, note, **common)
        if arg_shape == ans_shape:
            index = IndexForm(target, letters, (Term((Factor(g_name, letters),)),), accumulate)
            note = f"elementwise {prim.name}: derivative 1, the cotangent passes through"
            return Step("backward", target, prim.name, None, None, (g_name,), index, g_name, shape, value, wrt,
                        accumulate, note, latex_name(g_name), **common)
        spec = broadcast_spec(tuple(arg_shape), tuple(ans_shape))
        terms_, out_ = relabel_terms((spec.inputs[0],), spec.output)
        fwd = terms_[0] + "->" + out_
        vjp = vjp_subscripts(fwd, 0)
        summed = "".join(c for c in dict.fromkeys(out_) if c not in terms_[0])
        index = IndexForm(target, terms_[0], (Term((Factor(g_name, out_),), summed),), accumulate)
        details = matrix_form_details(vjp, [g_name])
        lmf = matrix_form(vjp, [g_name], latex=True)
        note = f"elementwise {prim.name} with broadcasting: sum over the broadcast index, the swap {fwd} => {vjp}"
        return Step("backward", target, prim.name, fwd, vjp, (g_name,), index, details.text, shape, value, wrt,
                    accumulate, note, lmf, matrix_reason=details.reason, **common)
    if isinstance(decl, Elementwise) and np.shape(unbox(node.args[k])) == np.shape(node.ans):
        fp = fprime_name(node, ops, k)
        vjp = f"{letters},{letters}->{letters}"
        index = IndexForm(target, letters, (Term((Factor(g_name, letters), _fprime_factor(node, ops, k, letters))),), accumulate)
        mf = matrix_form(vjp, [g_name, fp])
        lmf = matrix_form(vjp, [g_name, fp], latex=True)
        note = f"elementwise {prim.name}: the diagonal einsum {vjp} with the local derivative"
        return Step("backward", target, prim.name, f"{letters}->{letters}", vjp, (g_name, fp), index, mf,
                    shape, value, wrt, accumulate, note, lmf, **common)
    if is_negation(node):
        index = IndexForm(target, letters, (Term((Factor(g_name, letters),), sign="-"),), accumulate)
        note = "linear negation: its transpose negates the cotangent"
        return Step("backward", target, prim.name, None, None, (g_name,), index, f"-{g_name}", shape, value,
                    wrt, accumulate, note, "-" + latex_name(g_name), **common)
    if isinstance(decl, Linear):
        index = IndexForm(target, "", (Term((Factor(f"{decl.describe}({g_name})"),)),), accumulate)
        note = f"linear {prim.name}: the VJP is its transpose, {decl.describe}"
        return Step("backward", target, prim.name, None, None, (g_name,), index, None, shape, value, wrt,
                    accumulate, note, **common)
    if isinstance(decl, Elementwise):
        fp = fprime_name(node, ops, k)
        index = IndexForm(target, "", (Term((Factor(f"unbroadcast({g_name} ⊙ {fp})"),)),), accumulate)
        note = f"elementwise {prim.name}: the Hadamard product with ∂/∂{ops[k]} = {fp}, summed over broadcast axes"
        return Step("backward", target, prim.name, None, None, (g_name, fp), index, None, shape, value, wrt,
                    accumulate, note, **common)
    index = IndexForm(target, "", (Term((Factor(f"vjp_{prim.name}[{k}]({g_name})"),)),), accumulate)
    return Step("backward", target, prim.name, None, None, (g_name,), index, None, shape, value, wrt,
                accumulate, f"{prim.name}: its own VJP rule (general kind, not an einsum)", **common)


def _is_activation(node: Node) -> bool:
    """An elementwise op of one traced argument with a non-trivial derivative."""
    return (
        isinstance(declaration(node), Elementwise)
        and len(node.parents) == 1
        and not partial_is_one(node, node.parents[0][0])
        and notation(node).operator is None
    )


def _delta_step(rec: Recording, node: Node, elementwise: Step, einsum_step: Step) -> Step | None:
    """``delta = (W^T delta') ⊙ f'(z)``: a weight's einsum VJP followed by an activation's VJP."""
    if einsum_step.index is None or elementwise.index is None or einsum_step.accumulate:
        return None
    (term,) = einsum_step.index.terms
    matrices = [o for o, t in zip(einsum_step.operands[1:], (einsum_step.vjp_subscripts or "").split("->")[0].split(",")[1:])
                if len(set(t)) == 2]
    if not term.summed or not matrices:
        return None  # no contraction with a weight matrix: not the delta rule
    letters = einsum_step.index.letters
    ops = [rec.operand_name(node, j) for j in range(len(node.args))]
    fp_factor = _fprime_factor(node, ops, node.parents[0][0], letters)
    index = IndexForm(elementwise.name, letters, (Term((*term.factors, fp_factor), term.summed),), elementwise.accumulate)
    fp = elementwise.operands[1]
    mf = lmf = None
    if einsum_step.matrix_form is not None and elementwise.matrix_form is not None and len(letters) <= 2:
        inner, inner_l = einsum_step.matrix_form, einsum_step.latex_matrix
        if " " in inner:
            inner, inner_l = f"({inner})", f"\\left({inner_l}\\right)"
        mf = f"{inner} ⊙ {fp}"
        lmf = f"{inner_l} \\odot {latex_name(fp)}"
    vjp = einsum_step.vjp_subscripts or ""
    composed = vjp.split("->")[0] + "," + letters + "->" + letters
    note = f"the delta rule: {einsum_step.note}; ⊙ {fp} from the diagonal einsum of {node.prim.name}"
    return Step("delta", elementwise.name, "delta", einsum_step.subscripts, composed,
                (*einsum_step.operands, fp), index, mf, elementwise.shape, elementwise.value,
                elementwise.wrt, elementwise.accumulate, note, lmf, declared="einsum+elementwise", node=node)


def build_steps(rec: Recording) -> list[Step]:
    """The forward steps, then one backward step per VJP event (plus delta-rule steps)."""
    steps: list[Step] = [_forward_step(rec, n) for n in rec.order if n.prim is not None]
    out_name = rec.cotangent_of(rec.out)
    steps.append(Step("backward", out_name, "seed", None, None, (), None, "1", (), rec.cotangent[rec.out],
                      wrt=rec.value_name[rec.out], latex_matrix="1"))
    contributions: dict[Node, int] = {}
    last_einsum: dict[Node, Step] = {}
    for ev in rec.events:
        if ev.contribution is None:
            continue
        accumulate = contributions.get(ev.parent, 0) > 0
        contributions[ev.parent] = contributions.get(ev.parent, 0) + 1
        step = _backward_step(rec, ev, accumulate)
        steps.append(step)
        if isinstance(declaration(ev.node), Einsum):
            last_einsum[ev.parent] = step
        node = ev.node
        if _is_activation(node) and len(rec.consumers[node]) == 1 and node in last_einsum:
            composed = _delta_step(rec, node, step, last_einsum[node])
            if composed is not None:
                steps.append(composed)
    return steps


def steps_text(steps: Sequence[Step]) -> str:
    """The step-by-step view as text."""
    lines = ["Forward pass"]
    for s in steps:
        if s.kind != "forward":
            continue
        extra = f"    [{s.subscripts}]" if s.subscripts else ""
        lines.append(f"  {s.text}{extra}")
        if s.matrix_form is not None and s.index is not None:
            lines.append(f"      {s.index_form}")
    lines.append("Backward pass (one vector-Jacobian product per line)")
    for s in steps:
        if s.kind == "forward":
            continue
        head = s.text + ("    <- the delta rule" if s.kind == "delta" else "")
        lines.append(f"  {head}")
        if s.matrix_form is not None and s.index is not None:
            lines.append(f"      {s.index_form}")
        if s.note and s.index is not None:
            lines.append(f"      {s.note}")
    return "\n".join(lines)
