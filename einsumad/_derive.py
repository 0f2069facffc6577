"""Derivations a learner can read: the forward and backward pass, step by step.

:func:`derive` runs a function once on a reverse trace and lists what the tape
recorded. Every backward step is one vector-Jacobian product, shown four ways:
the forward subscripts, the swapped subscripts of its VJP (the swap rule), the
index form with the summation written out, and the matrix form when every term
has at most two indices (:func:`~einsumad._matrix.matrix_form`).

Naming. Arguments take the parameter names of ``fun`` (or ``names``).
Intermediates take, in this order of preference: a name given with
:func:`name`; the name of the local variable of ``fun`` that holds them; an
automatic ``v1, v2, ...``; the output is ``L`` unless named. The cotangent of
a value ``v`` is called ``dv``, except that of a pre-activation ``z<suffix>``,
which is the ``delta<suffix>`` of backpropagation. An unnamed value whose only
use passes its cotangent through unchanged (``v + b``) shares its consumer's
cotangent name, so ``z2 = W2 a1 + b2`` gives ``da1 = W2^T delta2``.

The delta rule. When an elementwise function's cotangent comes from a single
einsum VJP, a composed step joins the two, e.g.
``delta1 = (W2^T delta2) ⊙ tanh'(z1)`` and
``delta1_j = sum_i W2_ij delta2_i tanh'(z1_j)``: the transpose comes from the
swap ``ij,j->i => i,ij->j``, the Hadamard product from the diagonal einsum of
the elementwise function.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ._algebra import vjp_subscripts
from ._matrix import latex_name, matrix_form
from ._names import parameter_names
from ._ops_math import _broadcast_term_spec
from ._tape import REVERSE, Node, Tensor, _toposort, new_trace, unbox

__all__ = ["derive", "Derivation", "Step", "JacobianRow", "JacobianView", "name"]

_ELEMENTWISE = {"exp", "log", "tanh", "sigmoid", "sin", "cos", "sqrt", "relu", "reciprocal", "square"}
_PASS = {"add", "subtract", "negative"}
_LETTERS = "ijklmnpqrstuvwxyzabcdefgh"
_INSTALL_HINT = (
    "rendering SVG needs Graphviz: install the Python package with "
    "`pip install einsumad[graph]` (or `pip install graphviz`) and the Graphviz system "
    "package that provides the `dot` program (`apt install graphviz`, `brew install "
    "graphviz`, `conda install graphviz`); Derivation.to_dot() works without it"
)

_labels: weakref.WeakKeyDictionary[Node, tuple[str, str | None]] = weakref.WeakKeyDictionary()


def name(x: Any, label: str, cotangent: str | None = None) -> Any:
    """Name a traced value in a derivation; returns ``x`` unchanged.

    Args:
        x: a value inside a function given to :func:`derive` (or any value:
            outside a trace, nothing happens).
        label: the name shown for the value.
        cotangent: the name shown for its cotangent (default ``d<label>``, or
            ``delta<suffix>`` for ``z<suffix>``).

    >>> import numpy as np, einsumad as ea
    >>> d = ea.derive(lambda x: ea.sum(ea.name(x * x, "s")), np.ones(2))
    >>> print(d.steps[0].text)
    s = x ⊙ x
    """
    if isinstance(x, Tensor) and x.node is not None:
        _labels[x.node] = (label, cotangent)
    return x


# ----------------------------------------------------------------- index forms


@dataclass(frozen=True)
class Factor:
    """One factor of an index form: ``name_letters``, or ``f(name_letters)``."""

    name: str
    letters: str = ""
    fn: str | None = None  # "tanh'" for tanh'(z1_j)
    scale: str | None = None  # "2" for 2 d_j
    power: str | None = None  # "2" for d_j^2

    def plain(self) -> str:
        core = f"{self.name}_{self.letters}" if self.letters else self.name
        if self.fn:
            core = f"{self.fn}({core})"
        if self.power:
            core = f"{core}^{self.power}"
        return f"{self.scale} {core}" if self.scale else core

    def latex(self) -> str:
        core = _latex_indexed(self.name, self.letters)
        if self.fn:
            head = latex_name(self.fn.rstrip("'") + "(x)").split("(")[0]
            core = f"{head}{chr(39) * (len(self.fn) - len(self.fn.rstrip(chr(39))))}({core})"
        if self.power:
            core = f"{core}^{{{self.power}}}"
        return f"{self.scale} {core}" if self.scale else core


def _latex_indexed(name: str, letters: str) -> str:
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
            if n == 0:
                parts.append(("-" if t.sign == "-" else "") + body)
            else:
                parts.append(f" {t.sign} {body}")
        return f"{lhs} {'+=' if self.accumulate else '='} " + "".join(parts)

    def latex(self) -> str:
        lhs = _latex_indexed(self.target, self.letters)
        parts = []
        for n, t in enumerate(self.terms):
            body = " ".join(f.latex() for f in t.factors)
            if t.summed:
                body = f"\\sum_{{{t.summed}}} " + body
            if n == 0:
                parts.append(("-" if t.sign == "-" else "") + body)
            else:
                parts.append(f" {t.sign} {body}")
        eq = "\\mathrel{+}=" if self.accumulate else "="
        return f"{lhs} {eq} " + "".join(parts)


# ----------------------------------------------------------------- steps


@dataclass
class Step:
    """One line of a derivation.

    Attributes:
        kind: ``"forward"``, ``"backward"`` (one VJP), or ``"delta"`` (an einsum
            VJP composed with the elementwise step that follows it).
        name: the value defined (forward) or the cotangent defined (backward).
        op: the primitive's name (``"einsum"``, ``"tanh"``, ``"add"``, ...).
        subscripts: the forward subscripts, in readable letters (or None).
        vjp_subscripts: the swapped subscripts of the VJP (backward steps).
        operands: operand names, in the order of ``vjp_subscripts`` for a
            backward step, of ``subscripts`` for a forward one.
        index_form: the index form, summation written out.
        matrix_form: the matrix form, or None where none exists.
        shape: the shape of the value.
        value: the value itself (a NumPy array).
        wrt: for a backward step, the forward value whose cotangent it is.
        accumulate: True when this contribution is added (``+=``) to a
            cotangent that already has one (a value used more than once).
        note: e.g. ``transpose from the swap ij,j->i => i,ij->j``.
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
    jacobian: JacobianRow | None = field(default=None, repr=False)

    @property
    def index_form(self) -> str:
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
        eq = "\\mathrel{+}=" if self.accumulate else "="
        lines = []
        if self.latex_matrix is not None:
            lines.append(f"{latex_name(self.name)} {eq} {self.latex_matrix}")
        if self.index is not None:
            lines.append(self.index.latex())
        return " \\quad ".join(lines)


@dataclass
class JacobianRow:
    """The full Jacobian behind one backward step, beside its VJP.

    Attributes:
        label: ``∂a1/∂z1``.
        matrix_form: ``Diag(tanh'(z1))``, ``W2``, ... or None (more than two indices).
        subscripts: the Jacobian as a generalised einsum of the VJP's other
            operands: the cotangent removed, its letters moved to the output.
        shape: ``out.shape + arg.shape``.
        size: number of elements of the Jacobian.
        vjp_size: elements the VJP reads besides the cotangent.
        value: the Jacobian (from ``ea.jacobian``).
        error: ``max |J^T g - VJP(g)|`` on the derivation's own cotangent.
    """

    label: str
    matrix_form: str | None
    subscripts: str | None
    shape: tuple[int, ...]
    size: int
    vjp_size: int
    value: Any = field(repr=False)
    error: float = 0.0


class JacobianView:
    """The derivation with a full Jacobian per backward step (see :meth:`Derivation.jacobian_view`)."""

    def __init__(self, rows: list[tuple[Step, JacobianRow]]):
        self.rows = [row for _, row in rows]
        self._pairs = rows

    def __str__(self) -> str:
        lines = ["Jacobians (what a VJP avoids materialising)"]
        for _step, row in self._pairs:
            form = row.matrix_form or (f"einsum '{row.subscripts}'" if row.subscripts else "(no closed form)")
            lines.append(
                f"  {row.label} = {form}    shape {row.shape}, {row.size} elements; "
                f"VJP reads {row.vjp_size}; |J^T g - VJP| = {row.error:.1e}"
            )
        total = sum(r.size for r in self.rows)
        lines.append(f"  total: {total} Jacobian elements vs {sum(r.vjp_size for r in self.rows)} read by the VJPs")
        return "\n".join(lines)

    __repr__ = __str__


# ----------------------------------------------------------------- the derivation


class Derivation:
    """A traced forward pass and its backward pass, step by step.

    Attributes:
        steps: the forward steps, then the backward steps (see :class:`Step`).
        gradients: the cotangent of every differentiated argument, by name.
        value: the function's value.
    """

    def __init__(self, steps: list[Step], gradients: dict[str, Any], value: Any, graph: list[tuple]):
        self.steps = steps
        self.gradients = gradients
        self.value = value
        self._graph = graph

    @property
    def forward(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "forward"]

    @property
    def backward(self) -> list[Step]:
        return [s for s in self.steps if s.kind != "forward"]

    def __str__(self) -> str:
        lines = ["Forward pass"]
        for s in self.forward:
            extra = f"    [{s.subscripts}]" if s.subscripts else ""
            lines.append(f"  {s.text}{extra}")
            if s.matrix_form is not None and s.index is not None:
                lines.append(f"      {s.index_form}")
        lines.append("Backward pass (one vector-Jacobian product per line)")
        for s in self.backward:
            head = s.text
            if s.kind == "delta":
                head += "    <- the delta rule"
            lines.append(f"  {head}")
            if s.matrix_form is not None and s.index is not None:
                lines.append(f"      {s.index_form}")
            if s.note and s.index is not None:
                lines.append(f"      {s.note}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Derivation: {len(self.forward)} forward, {len(self.backward)} backward steps>"

    @property
    def latex(self) -> str:
        """The derivation as a LaTeX ``aligned`` block (two columns: matrix, index)."""
        rows = ["\\text{forward pass} & \\\\"]
        rows += [self._latex_row(s) for s in self.forward]
        rows.append("\\text{backward pass} & \\\\")
        rows += [self._latex_row(s) for s in self.backward]
        return "\\begin{aligned}\n" + "\n".join(rows) + "\n\\end{aligned}"

    @staticmethod
    def _latex_row(s: Step) -> str:
        eq = "\\mathrel{+}=" if s.accumulate else "="
        left = f"{latex_name(s.name)} &{eq} {s.latex_matrix}" if s.latex_matrix else ""
        right = s.index.latex() if s.index else ""
        if not left and not right:
            return f"& \\text{{({_latex_text(s.note)})}} \\\\"
        if not left:
            return f"& {right} \\\\"
        return f"{left} & {right} \\\\" if right else f"{left} \\\\"

    def _repr_latex_(self) -> str:
        return "$$" + self.latex + "$$"

    def jacobian_view(self) -> JacobianView:
        """Per backward step, the full Jacobian, its shape and size beside the VJP's.

        Each Jacobian is computed with ``ea.jacobian`` on the step's primitive,
        and ``J^T g`` is compared with the VJP's value (``error``).
        """
        return JacobianView([(s, s.jacobian) for s in self.backward if s.jacobian is not None])

    def to_dot(self) -> str:
        """Graphviz DOT text: one node per value, edges labelled with subscripts."""
        lines = ["digraph derivation {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
        for node_id, label, shape, leaf in self._graph[0]:
            style = "ellipse" if leaf else "box"
            lines.append(f'  {node_id} [label="{_dot_escape(label)}\\n{shape}", shape={style}];')
        for src, dst, label in self._graph[1]:
            lines.append(f'  {src} -> {dst} [label="{_dot_escape(label)}"];')
        lines.append("}")
        return "\n".join(lines)

    def to_svg(self) -> str:
        """Render :meth:`to_dot` to SVG with Graphviz (an optional extra).

        Raises:
            RuntimeError: Graphviz is not installed; the message says how to install it.
        """
        dot = self.to_dot()
        try:
            import graphviz  # type: ignore[import-not-found]
        except ImportError:
            graphviz = None
        if graphviz is not None:
            try:
                return graphviz.Source(dot).pipe(format="svg").decode("utf-8")
            except Exception as exc:  # graphviz.ExecutableNotFound and friends
                raise RuntimeError(f"{_INSTALL_HINT} ({exc})") from None
        exe = shutil.which("dot")
        if exe is None:
            raise RuntimeError(_INSTALL_HINT)
        done = subprocess.run([exe, "-Tsvg"], input=dot.encode(), capture_output=True, check=True)
        return done.stdout.decode("utf-8")


def _latex_text(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("{", "\\{"), ("}", "\\}"), ("_", "\\_"), ("^", "\\^{}"), ("&", "\\&"), ("%", "\\%"), ("#", "\\#"), ("$", "\\$")):
        text = text.replace(a, b)
    return text


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# ----------------------------------------------------------------- tracing


def _call_capturing_locals(fun: Callable, args: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
    """Call ``fun`` and collect its local variables as it returns (sys.setprofile)."""
    code = getattr(fun, "__code__", None)
    captured: dict[str, Any] = {}
    if code is None:
        return fun(*args), captured

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is code:
            captured.update(frame.f_locals)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        out = fun(*args)
    finally:
        sys.setprofile(previous)
    return out, captured


def _arg_names(fun: Callable, nargs: int, names: Sequence[str] | Mapping[str, str] | None) -> list[str]:
    default = parameter_names(fun, nargs, lambda i: f"x{i}")
    if names is None:
        return default
    if isinstance(names, Mapping):
        return [names.get(n, names.get(i, n)) for i, n in enumerate(default)]  # type: ignore[call-overload]
    names = list(names)
    if len(names) != nargs:
        raise ValueError(f"derive: {nargs} argument(s) but {len(names)} name(s)")
    return names


def _cotangent_name(value_name: str) -> str:
    m = re.fullmatch(r"z(\d*|_\w+)", value_name)
    if m:
        return "delta" + m.group(1)
    return "d" + value_name


def _constant_name(x: Any, constants: dict[int, str]) -> str:
    v = np.asarray(x)
    if v.ndim == 0:
        return f"{v.item():g}"
    key = id(x)
    if key not in constants:
        constants[key] = f"c{len(constants) + 1}"
    return constants[key]


def _relabel(spec: Any) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for term in (*spec.inputs, spec.output):
        for s in term:
            if s not in mapping:
                mapping[s] = _LETTERS[len(mapping)]
    return mapping



def _readable_terms(spec: Any) -> tuple[list[str], str]:
    """A recorded einsum's terms and output in the readable letters i, j, k, ..."""
    rel = _relabel(spec)
    return ["".join(rel[s] for s in t) for t in spec.inputs], "".join(rel[s] for s in spec.output)

def _fprime_factor(node: Node, arg_name: str, letters: str) -> Factor:
    if node.prim.name == "power":
        p = np.asarray(node.args[1]).item()
        q = p - 1
        if q == 1:
            return Factor(arg_name, letters, scale=f"{p:g}")
        return Factor(f"{arg_name}^{q:g}", "", scale=f"{p:g}") if not letters else Factor(
            arg_name, letters, fn=None, scale=f"{p:g}"
        )
    return Factor(arg_name, letters, fn=f"{node.prim.name}'")


def _fprime_name(node: Node, arg_name: str) -> str:
    if node.prim.name == "power":
        p = np.asarray(node.args[1]).item()
        return f"{p:g} {arg_name}" if p == 2 else f"{p:g} {arg_name}^{p - 1:g}"
    return f"{node.prim.name}'({arg_name})"


def _is_elementwise(node: Node) -> bool:
    if node.prim.name in _ELEMENTWISE:
        return True
    return node.prim.name == "power" and len(node.parents) == 1 and node.parents[0][0] == 0 and np.ndim(
        unbox(node.args[1])
    ) == 0


def _is_pass_through(node: Node, argnum: int) -> bool:
    if node.prim.name not in _PASS:
        return False
    return np.shape(unbox(node.args[argnum])) == np.shape(unbox(node.ans))


def _size(x: Any) -> int:
    return int(np.size(unbox(x)))


def derive(
    fun: Callable,
    *args: Any,
    names: Sequence[str] | Mapping[str, str] | None = None,
) -> Derivation:
    """Trace ``fun(*args)`` and return its forward and backward pass, step by step.

    Every floating-point argument is differentiated; the function must return
    a scalar. See the module docstring for how values and cotangents are named.

    Args:
        fun: the function (written with einsumad ops).
        *args: its positional arguments.
        names: display names for the arguments (a sequence, one per argument,
            or a mapping from parameter name to display name); default: the
            parameter names of ``fun``.

    Returns:
        A :class:`Derivation`; ``print(d)`` shows it, ``d.latex`` typesets it.

    >>> import numpy as np, einsumad as ea
    >>> def f(W, a):
    ...     z = W @ a
    ...     return ea.sum(ea.tanh(z))
    >>> d = ea.derive(f, np.eye(2), np.zeros(2))
    >>> [s.text for s in d.backward if s.name == "da"]
    ['da = W^T delta']
    >>> d.gradients["a"]
    array([1., 1.])
    """
    arg_names = _arg_names(fun, len(args), names)
    leaf_of: dict[Node, str] = {}
    with new_trace(REVERSE) as trace:
        boxed = []
        for a, label in zip(args, arg_names):
            array = np.asarray(a) if not isinstance(a, Tensor) else None
            if array is not None and np.issubdtype(array.dtype, np.floating):
                node = Node.leaf()
                node.ans = array
                leaf_of[node] = label
                boxed.append(Tensor(array, trace, node))
            else:
                boxed.append(a)
        out, local_vars = _call_capturing_locals(fun, boxed)
    if not (isinstance(out, Tensor) and out.trace is trace):
        raise TypeError("derive: the function's output does not depend on any floating-point argument")
    if np.shape(out.value) != ():
        raise TypeError(
            f"derive: the function must return a scalar (a loss), but it returned shape "
            f"{np.shape(out.value)}"
        )

    order = list(reversed(_toposort([out.node])))  # forward order, leaves included
    local_names: dict[Node, str] = {}
    for var, v in local_vars.items():
        if isinstance(v, Tensor) and v.trace is trace and v.node not in local_names:
            local_names[v.node] = var
    value_name: dict[Node, str] = {}
    cot_name_given: dict[Node, str] = {}
    auto = 0
    for node in order:
        if node in leaf_of:
            value_name[node] = leaf_of[node]
        elif node in _labels:
            label, cot = _labels[node]
            value_name[node] = label
            if cot:
                cot_name_given[node] = cot
        elif node in local_names:
            value_name[node] = local_names[node]
        elif node is out.node:
            value_name[node] = "L"
        else:
            auto += 1
            value_name[node] = f"v{auto}"
    named = {n for n in order if n in leaf_of or n in _labels or n in local_names or n is out.node}

    consumers: dict[Node, list[tuple[Node, int]]] = {n: [] for n in order}
    for node in order:
        for argnum, parent in node.parents:
            consumers[parent].append((node, argnum))

    constants: dict[int, str] = {}

    def operand_name(node: Node, k: int) -> str:
        for argnum, parent in node.parents:
            if argnum == k:
                return value_name[parent]
        return _constant_name(node.args[k], constants)

    steps: list[Step] = []
    graph_nodes: list[tuple] = []
    graph_edges: list[tuple] = []
    ids = {node: f"n{i}" for i, node in enumerate(order)}
    for node in order:
        nm = value_name[node]
        if node.prim is None:
            graph_nodes.append((ids[node], nm, np.shape(node.ans), True))
            continue
        step = _forward_step(node, nm, operand_name)
        steps.append(step)
        label = f"{nm} = {step.matrix_form}" if step.matrix_form else step.index_form
        graph_nodes.append((ids[node], label or f"{nm} = {node.prim.name}", step.shape, False))
        for argnum, parent in node.parents:
            label = step.subscripts or node.prim.name
            if step.subscripts and node.prim.name == "einsum":
                fwd = step.subscripts
                term = fwd.split("->")[0].split(",")[argnum] or "(scalar)"
                label = f"{term} in {fwd}\nVJP {vjp_subscripts(fwd, argnum)}"
            graph_edges.append((ids[parent], ids[node], label))

    # ---- backward
    cot_name: dict[Node, str] = {}

    def cotangent_of(node: Node) -> str:
        if node in cot_name:
            return cot_name[node]
        if node in cot_name_given:
            name_ = cot_name_given[node]
        else:
            uses = consumers[node]
            if node not in named and len(uses) == 1 and _is_pass_through(*uses[0]) and uses[0][0].prim.name != "negative" and not (uses[0][0].prim.name == "subtract" and uses[0][1] == 1):
                name_ = cotangent_of(uses[0][0])
            else:
                name_ = _cotangent_name(value_name[node])
        cot_name[node] = name_
        return name_

    seed = np.ones((), dtype=np.result_type(out.value))
    pending: dict[Node, Any] = {out.node: seed}
    seen_contribution: dict[Node, int] = {}
    steps.append(
        Step("backward", cotangent_of(out.node), "seed", None, None, (), None, "1", (), seed,
             wrt=value_name[out.node], latex_matrix="1")
    )
    last_einsum_step: dict[Node, tuple[Step, Node, int]] = {}
    gradients: dict[str, Any] = {}
    for node in _toposort([out.node]):
        g = pending.pop(node, None)
        if g is None:
            continue
        if node.prim is None:
            gradients[value_name[node]] = g
            continue
        g_name = cotangent_of(node)
        for argnum, parent in node.parents:
            value = node.prim.vjp(argnum, g, node.ans, node.args, node.params)
            value = np.asarray(unbox(value))
            target = cotangent_of(parent)
            accumulate = seen_contribution.get(parent, 0) > 0
            seen_contribution[parent] = seen_contribution.get(parent, 0) + 1
            step = _backward_step(node, argnum, g, g_name, target, value, accumulate, operand_name, value_name[parent])
            step.jacobian = _jacobian_row(node, argnum, g, value, value_name[node], value_name[parent], step)
            steps.append(step)
            pending[parent] = pending[parent] + value if parent in pending else value
            if node.prim.name == "einsum":
                last_einsum_step[parent] = (step, node, argnum)
        if _is_elementwise(node) and len(consumers[node]) == 1 and node in last_einsum_step:
            composed = _delta_step(node, steps[-1], *last_einsum_step[node], operand_name)
            if composed is not None:
                steps.append(composed)
    graph = (graph_nodes, graph_edges)
    return Derivation(steps, gradients, np.asarray(out.value), graph)  # type: ignore[arg-type]


# ----------------------------------------------------------------- step builders


def _forward_step(node: Node, nm: str, operand_name: Callable[[Node, int], str]) -> Step:
    prim = node.prim
    shape = np.shape(node.ans)
    nargs = len(node.args)
    ops = tuple(operand_name(node, k) for k in range(nargs))
    if prim.name == "einsum":
        terms, out = _readable_terms(node.params["spec"])
        subs = ",".join(terms) + "->" + out
        summed = "".join(dict.fromkeys(c for t in terms for c in t if c not in out))
        index = IndexForm(nm, out, (Term(tuple(Factor(o, t) for o, t in zip(ops, terms)), summed),))
        mf = matrix_form(subs, ops)
        lmf = matrix_form(subs, ops, latex=True)
        return Step("forward", nm, "einsum", subs, None, ops, index, mf, shape, node.ans, latex_matrix=lmf)
    letters = _LETTERS[: len(shape)]
    if prim.name in _PASS:
        factors = []
        for k in range(nargs):
            nd = np.ndim(unbox(node.args[k]))
            factors.append(Factor(ops[k], letters[len(letters) - nd :]))
        if prim.name == "negative":
            index = IndexForm(nm, letters, (Term((factors[0],), sign="-"),))
            mf = f"-{ops[0]}"
        else:
            sign = "+" if prim.name == "add" else "-"
            index = IndexForm(nm, letters, (Term((factors[0],)), Term((factors[1],), sign=sign)))
            mf = f"{ops[0]} {sign} {ops[1]}"
        lmf = mf
        for o in ops:
            lmf = re.sub(rf"(?<![\w\\]){re.escape(o)}(?![\w])", lambda _m, o=o: latex_name(o), lmf)
        return Step("forward", nm, prim.name, None, None, ops, index, mf, shape, node.ans, latex_matrix=lmf)
    if _is_elementwise(node):
        if prim.name == "power":
            p = f"{np.asarray(node.args[1]).item():g}"
            index = IndexForm(nm, letters, (Term((Factor(ops[0], letters, power=p),)),))
            return Step("forward", nm, "power", letters + "->" + letters, None, ops[:1], index, None, shape, node.ans)
        index = IndexForm(nm, letters, (Term((Factor(ops[0], letters, fn=prim.name),)),))
        mf = f"{prim.name}({ops[0]})"
        return Step("forward", nm, prim.name, letters + "->" + letters, None, ops, index, mf, shape,
                    node.ans, latex_matrix=latex_name(mf))
    index = IndexForm(nm, "", (Term((Factor(f"{prim.name}({', '.join(ops)})"),)),))
    return Step("forward", nm, prim.name, None, None, ops, index, None, shape, node.ans)


def _backward_step(
    node: Node, k: int, g: Any, g_name: str, target: str, value: Any, accumulate: bool,
    operand_name: Callable[[Node, int], str], wrt: str,
) -> Step:
    prim = node.prim
    shape = np.shape(value)
    ops = [operand_name(node, j) for j in range(len(node.args))]
    if prim.name == "einsum":
        terms, out = _readable_terms(node.params["spec"])
        fwd = ",".join(terms) + "->" + out
        vjp = vjp_subscripts(fwd, k)
        vjp_ops = (g_name, *[o for j, o in enumerate(ops) if j != k])
        factors = [Factor(g_name, out) if j == k else Factor(ops[j], terms[j]) for j in range(len(terms))]
        letters_in = "".join(dict.fromkeys(c for t in (out, *[t for j, t in enumerate(terms) if j != k]) for c in t))
        summed = "".join(c for c in letters_in if c not in terms[k])
        index = IndexForm(target, terms[k], (Term(tuple(factors), summed),), accumulate)
        mf = matrix_form(vjp, vjp_ops)
        lmf = matrix_form(vjp, vjp_ops, latex=True)
        swap = f"{fwd} => {vjp}"
        note = f"transpose from the swap {swap}" if mf and "^T" in mf else f"swap {swap}"
        return Step("backward", target, "einsum", fwd, vjp, vjp_ops, index, mf, shape, value, wrt,
                    accumulate, note, lmf)
    letters = _LETTERS[: len(shape)]
    if _is_elementwise(node):
        fp = _fprime_name(node, ops[0])
        vjp = f"{letters},{letters}->{letters}"
        index = IndexForm(target, letters, (Term((Factor(g_name, letters), _fprime_factor(node, ops[0], letters))),), accumulate)
        mf = matrix_form(vjp, [g_name, fp])
        lmf = matrix_form(vjp, [g_name, fp], latex=True)
        note = f"elementwise {prim.name}: the diagonal einsum {vjp} with the local derivative"
        return Step("backward", target, prim.name, f"{letters}->{letters}", vjp, (g_name, fp), index, mf,
                    shape, value, wrt, accumulate, note, lmf)
    if prim.name in _PASS:
        negate = prim.name == "negative" or (prim.name == "subtract" and k == 1)
        arg_shape = np.shape(unbox(node.args[k]))
        ans_shape = np.shape(node.ans)
        if arg_shape == ans_shape and target == g_name:
            note = f"{wrt} receives {g_name} unchanged: {prim.name} passes the cotangent through"
            return Step("backward", target, prim.name, None, None, (g_name,), None, None, shape, value,
                        wrt, accumulate, note)
        if arg_shape == ans_shape:
            index = IndexForm(target, letters, (Term((Factor(g_name, letters),), sign="-" if negate else "+"),), accumulate)
            mf = ("-" if negate else "") + g_name
            note = f"{prim.name}: the cotangent passes through" + (" negated" if negate else "")
            return Step("backward", target, prim.name, None, None, (g_name,), index, mf, shape, value, wrt,
                        accumulate, note, ("-" if negate else "") + latex_name(g_name))
        spec = _broadcast_term_spec(tuple(arg_shape), tuple(ans_shape))
        rel = _relabel(spec)
        fwd = "".join(rel[s] for s in spec.inputs[0]) + "->" + "".join(rel[s] for s in spec.output)
        vjp = vjp_subscripts(fwd, 0)
        t_in, t_out = fwd.split("->")
        summed = "".join(c for c in dict.fromkeys(t_out) if c not in t_in)
        index = IndexForm(target, t_in, (Term((Factor(g_name, t_out),), summed, "-" if negate else "+"),), accumulate)
        mf = matrix_form(vjp, [g_name])
        lmf = matrix_form(vjp, [g_name], latex=True)
        if negate and mf is not None:
            mf, lmf = f"-({mf})", f"-\\left({lmf}\\right)"
        note = f"{prim.name} broadcast: unbroadcasting is the swap {fwd} => {vjp}"
        return Step("backward", target, prim.name, fwd, vjp, (g_name,), index, mf, shape, value, wrt,
                    accumulate, note, lmf)
    index = IndexForm(target, "", (Term((Factor(f"vjp_{prim.name}[{k}]({g_name})"),)),), accumulate)
    return Step("backward", target, prim.name, None, None, (g_name,), index, None, shape, value, wrt,
                accumulate, f"{prim.name}: its own VJP rule (not an einsum)")


def _delta_step(
    node: Node, elementwise: Step, einsum_step: Step, consumer: Node, k: int,
    operand_name: Callable[[Node, int], str],
) -> Step | None:
    """``delta = (W^T delta') ⊙ f'(z)``: an einsum VJP followed by an elementwise VJP."""
    if einsum_step.index is None or elementwise.index is None or einsum_step.accumulate:
        return None
    if len(einsum_step.operands) < 2 or node.prim.name not in _ELEMENTWISE:
        return None
    letters = einsum_step.index.letters
    (term,) = einsum_step.index.terms
    fp_factor = _fprime_factor(node, operand_name(node, 0), letters)
    index = IndexForm(elementwise.name, letters, (Term((*term.factors, fp_factor), term.summed),), elementwise.accumulate)
    fp = elementwise.operands[1]
    mf = lmf = None
    if einsum_step.matrix_form is not None and elementwise.matrix_form is not None and len(letters) <= 2:
        inner = einsum_step.matrix_form
        inner_l = einsum_step.latex_matrix
        if " " in inner:
            inner, inner_l = f"({inner})", f"\\left({inner_l}\\right)"
        mf = f"{inner} ⊙ {fp}"
        lmf = f"{inner_l} \\odot {latex_name(fp)}"
    vjp = einsum_step.vjp_subscripts or ""
    composed = vjp.split("->")[0] + "," + letters + "->" + letters
    note = f"the delta rule: {einsum_step.note}; ⊙ {fp} from the diagonal einsum of {node.prim.name}"
    return Step("delta", elementwise.name, "delta", einsum_step.subscripts, composed,
                (*einsum_step.operands, fp), index, mf, elementwise.shape, elementwise.value,
                elementwise.wrt, elementwise.accumulate, note, lmf)


def _jacobian_row(
    node: Node, k: int, g: Any, value: Any, out_name: str, arg_name: str, step: Step
) -> JacobianRow | None:
    from ._transforms import jacobian

    arg = unbox(node.args[k])
    if not np.issubdtype(np.asarray(arg).dtype, np.floating):
        return None
    args = list(node.args)

    def local(x: Any) -> Any:
        args_k = list(args)
        args_k[k] = x
        return node.prim(*args_k, **node.params)

    try:
        J = np.asarray(jacobian(local)(np.asarray(arg)))
    except Exception:  # a primitive without the rules a Jacobian needs
        return None
    g = np.asarray(g)
    jtg = np.tensordot(g, J, axes=g.ndim) if g.ndim else g * J
    error = float(np.max(np.abs(jtg - value))) if np.size(value) else 0.0
    label = f"∂{out_name}/∂{arg_name}"
    form = subs = None
    vjp_size = 0
    if node.prim.name == "einsum" and step.vjp_subscripts:
        ins, res = step.vjp_subscripts.split("->")
        terms = ins.split(",")
        others = terms[1:]
        subs = ",".join(others) + "->" + terms[0] + res
        if others:
            form = matrix_form(subs, list(step.operands[1:]))
        elif terms[0] == "" and len(res) == 1:
            form = "1^T"
        elif len(set(terms[0])) == len(terms[0]) == 1 and terms[0] == res:
            form = "I"
        vjp_size = sum(_size(a) for j, a in enumerate(node.args) if j != k)
    elif _is_elementwise(node):
        n = len(np.shape(arg))
        letters = _LETTERS[:n]
        subs = f"{letters}->{letters}{letters}"
        form = matrix_form(subs, [step.operands[1]])
        vjp_size = _size(arg)
    elif node.prim.name in _PASS and step.vjp_subscripts is None:
        form = "-I" if step.matrix_form and step.matrix_form.startswith("-") else "I"
    return JacobianRow(label, form, subs, J.shape, int(J.size), vjp_size, J, error)
