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

from ..algebra.letters import relabel_terms
from ..algebra.matrix import latex_name, matrix_form
from ..algebra.swap import broadcast_spec, vjp_subscripts
from ..core.backward import backward, toposort
from ..core.einsum import Einsum
from ..core.elementwise import Elementwise
from ..core.linear import Linear
from ..core.names import parameter_names
from ..core.primitive import Notation
from ..core.tape import REVERSE, Node, Tensor, new_trace, unbox
from ..transforms.autodiff import jacobian

__all__ = ["derive", "Derivation", "Step", "JacobianRow", "JacobianView", "name"]

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


def _declaration(node: Node) -> Any:
    return node.prim.declaration


def _readable_terms(node: Node) -> tuple[list[str], str]:
    """A recorded einsum's terms and output, in the library's one set of readable letters."""
    spec = _declaration(node).spec(node.args, node.params)
    return relabel_terms(spec.inputs, spec.output)


def _traced_args(node: Node) -> list[int]:
    return [k for k, _ in node.parents]


def _partial_is_one(node: Node, k: int) -> bool:
    """Elementwise with the constant partial 1 in argument k: the cotangent passes through."""
    declaration = _declaration(node)
    if not isinstance(declaration, Elementwise) or k >= len(declaration.partials):
        return False
    partial = declaration.partials[k]
    return isinstance(partial, (int, float)) and partial == 1


def _is_negation(node: Node) -> bool:
    """A unary linear op whose transpose is itself times -1 (``-x``)."""
    declaration = _declaration(node)
    return isinstance(declaration, Linear) and declaration.describe == "negate"


def _is_pass_through(node: Node, argnum: int) -> bool:
    """The cotangent of ``argnum`` is the output's, unchanged (and of equal shape)."""
    if not _partial_is_one(node, argnum):
        return False
    return np.shape(unbox(node.args[argnum])) == np.shape(unbox(node.ans))


def _is_elementwise_function(node: Node) -> bool:
    """An elementwise op of one traced argument with a non-trivial derivative."""
    return (
        isinstance(_declaration(node), Elementwise)
        and len(node.parents) == 1
        and not _partial_is_one(node, node.parents[0][0])
        and _notation(node).operator is None
    )


def _notation(node: Node) -> Notation:
    declaration = _declaration(node)
    return declaration.notation or Notation(node.prim.name)


def _format(template: Any, names: Sequence[str], params: dict) -> str:
    if callable(template):
        return str(template(names, params))
    return str(template).format(*names, **params)


def _fprime_name(node: Node, ops: Sequence[str], k: int) -> str:
    """``tanh'(z1)``, ``2 v3``, ``1/y``: the declared notation of ``∂f/∂x_k``."""
    notation = _notation(node)
    templates = notation.derivative
    if k < len(templates) and templates[k] is not None:
        return _format(templates[k], ops, node.params)
    return f"{notation.symbol}'({ops[k]})"


def _fprime_factor(node: Node, ops: Sequence[str], k: int, letters: str) -> Factor:
    notation = _notation(node)
    templates = notation.derivative
    if k < len(templates) and templates[k] is not None:
        return Factor(_fprime_name(node, ops, k), "")
    return Factor(ops[k], letters, fn=f"{notation.symbol}'")


def _forward_text(node: Node, ops: Sequence[str]) -> str | None:
    notation = _notation(node)
    if notation.forward is not None:
        return _format(notation.forward, ops, node.params)
    return None


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

    order = list(reversed(toposort([out.node])))  # forward order, leaves included
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
            if step.subscripts and isinstance(_declaration(node), Einsum):
                fwd = step.subscripts
                term = fwd.split("->")[0].split(",")[argnum] or "(scalar)"
                label = f"{term} in {fwd}\nVJP {vjp_subscripts(fwd, argnum)}"
            graph_edges.append((ids[parent], ids[node], label))

    # ---- backward: observe the tape's own backward pass
    cot_name: dict[Node, str] = {}

    def cotangent_of(node: Node) -> str:
        if node in cot_name:
            return cot_name[node]
        if node in cot_name_given:
            name_ = cot_name_given[node]
        else:
            uses = consumers[node]
            if node not in named and len(uses) == 1 and _is_pass_through(*uses[0]):
                name_ = cotangent_of(uses[0][0])
            else:
                name_ = _cotangent_name(value_name[node])
        cot_name[node] = name_
        return name_

    observer = _StepRecorder(steps, value_name, consumers, cotangent_of, operand_name)
    seed = np.ones((), dtype=np.result_type(out.value))
    steps.append(
        Step("backward", cotangent_of(out.node), "seed", None, None, (), None, "1", (), seed,
             wrt=value_name[out.node], latex_matrix="1")
    )
    backward([(out.node, seed)], observer)
    graph = (graph_nodes, graph_edges)
    return Derivation(steps, observer.gradients, np.asarray(out.value), graph)  # type: ignore[arg-type]


class _StepRecorder:
    """The backward pass's observer: one :class:`Step` per VJP, in the pass's order."""

    def __init__(self, steps: list[Step], value_name: dict, consumers: dict, cotangent_of: Callable, operand_name: Callable):
        self.steps = steps
        self.value_name = value_name
        self.consumers = consumers
        self.cotangent_of = cotangent_of
        self.operand_name = operand_name
        self.gradients: dict[str, Any] = {}
        self.contributions: dict[Node, int] = {}
        self.last_einsum_step: dict[Node, tuple[Step, Node, int]] = {}

    def seed(self, node: Node, g: Any) -> None:
        pass

    def cotangent(self, node: Node, g: Any) -> None:
        if node.prim is None:
            self.gradients[self.value_name[node]] = np.asarray(unbox(g))

    def vjp(self, node: Node, argnum: int, g: Any, contribution: Any) -> None:
        parent = dict((k, p) for k, p in node.parents)[argnum]
        value = np.asarray(unbox(contribution))
        target = self.cotangent_of(parent)
        accumulate = self.contributions.get(parent, 0) > 0
        self.contributions[parent] = self.contributions.get(parent, 0) + 1
        step = _backward_step(
            node, argnum, g, self.cotangent_of(node), target, value, accumulate, self.operand_name,
            self.value_name[parent],
        )
        step.jacobian = _jacobian_row(node, argnum, g, value, self.value_name[node], self.value_name[parent], step)
        self.steps.append(step)
        if isinstance(_declaration(node), Einsum):
            self.last_einsum_step[parent] = (step, node, argnum)
        if _is_elementwise_function(node) and len(self.consumers[node]) == 1 and node in self.last_einsum_step:
            composed = _delta_step(node, step, *self.last_einsum_step[node], self.operand_name)
            if composed is not None:
                self.steps.append(composed)


# ----------------------------------------------------------------- step builders


def _latex_ops(text: str, ops: Sequence[str]) -> str:
    for o in ops:
        text = re.sub(rf"(?<![\w\\]){re.escape(o)}(?![\w])", lambda _m, o=o: latex_name(o), text)
    return text


def _forward_step(node: Node, nm: str, operand_name: Callable[[Node, int], str]) -> Step:
    prim = node.prim
    declaration = _declaration(node)
    shape = np.shape(node.ans)
    nargs = len(node.args)
    ops = tuple(operand_name(node, k) for k in range(nargs))
    if isinstance(declaration, Einsum):
        terms, out = _readable_terms(node)
        subs = ",".join(terms) + "->" + out
        summed = "".join(dict.fromkeys(c for t in terms for c in t if c not in out))
        index = IndexForm(nm, out, (Term(tuple(Factor(o, t) for o, t in zip(ops, terms)), summed),))
        mf = matrix_form(subs, ops)
        lmf = matrix_form(subs, ops, latex=True)
        return Step("forward", nm, prim.name, subs, None, ops, index, mf, shape, node.ans, latex_matrix=lmf)
    letters = _LETTERS[: len(shape)]
    if isinstance(declaration, Elementwise):
        notation = _notation(node)
        if notation.operator is not None and nargs == 2:
            factors = [Factor(ops[k], letters[len(letters) - np.ndim(unbox(node.args[k])) :]) for k in range(2)]
            if notation.operator == "+":
                index = IndexForm(nm, letters, (Term((factors[0],)), Term((factors[1],))))
            else:
                index = IndexForm(nm, letters, (Term((Factor(f"{factors[0].plain()} {notation.operator} {factors[1].plain()}"),)),))
            mf = f"{ops[0]} {notation.operator} {ops[1]}"
            return Step("forward", nm, prim.name, None, None, ops, index, mf, shape, node.ans,
                        latex_matrix=_latex_ops(mf, ops))
        text = _forward_text(node, ops)
        if text is not None:
            index = IndexForm(nm, letters, (Term((Factor(text.replace(ops[0], f"{ops[0]}_{letters}", 1) if letters else text),)),))
            return Step("forward", nm, prim.name, letters + "->" + letters, None, ops[:1], index, None, shape, node.ans)
        index = IndexForm(nm, letters, (Term((Factor(ops[0], letters, fn=notation.symbol),)),))
        mf = f"{notation.symbol}({ops[0]})"
        return Step("forward", nm, prim.name, letters + "->" + letters, None, ops, index, mf, shape,
                    node.ans, latex_matrix=latex_name(mf))
    if _is_negation(node):
        index = IndexForm(nm, letters, (Term((Factor(ops[0], letters),), sign="-"),))
        mf = f"-{ops[0]}"
        return Step("forward", nm, prim.name, None, None, ops, index, mf, shape, node.ans,
                    latex_matrix=_latex_ops(mf, ops))
    index = IndexForm(nm, "", (Term((Factor(f"{prim.name}({', '.join(ops)})"),)),))
    return Step("forward", nm, prim.name, None, None, ops, index, None, shape, node.ans)


def _backward_step(
    node: Node, k: int, g: Any, g_name: str, target: str, value: Any, accumulate: bool,
    operand_name: Callable[[Node, int], str], wrt: str,
) -> Step:
    prim = node.prim
    declaration = _declaration(node)
    shape = np.shape(value)
    ops = [operand_name(node, j) for j in range(len(node.args))]
    if isinstance(declaration, Einsum):
        terms, out = _readable_terms(node)
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
        note = f"einsum: transpose from the swap {swap}" if mf and "^T" in mf else f"einsum: the swap {swap}"
        return Step("backward", target, prim.name, fwd, vjp, vjp_ops, index, mf, shape, value, wrt,
                    accumulate, note, lmf)
    letters = _LETTERS[: len(shape)]
    if isinstance(declaration, Elementwise) and _partial_is_one(node, k):
        arg_shape = np.shape(unbox(node.args[k]))
        ans_shape = np.shape(node.ans)
        if arg_shape == ans_shape and target == g_name:
            note = f"{wrt} receives {g_name} unchanged: elementwise {prim.name} has derivative 1"
            return Step("backward", target, prim.name, None, None, (g_name,), None, None, shape, value,
                        wrt, accumulate, note)
        if arg_shape == ans_shape:
            index = IndexForm(target, letters, (Term((Factor(g_name, letters),)),), accumulate)
            note = f"elementwise {prim.name}: derivative 1, the cotangent passes through"
            return Step("backward", target, prim.name, None, None, (g_name,), index, g_name, shape, value, wrt,
                        accumulate, note, latex_name(g_name))
        spec = broadcast_spec(tuple(arg_shape), tuple(ans_shape))
        terms, out = relabel_terms((spec.inputs[0],), spec.output)
        fwd = terms[0] + "->" + out
        vjp = vjp_subscripts(fwd, 0)
        summed = "".join(c for c in dict.fromkeys(out) if c not in terms[0])
        index = IndexForm(target, terms[0], (Term((Factor(g_name, out),), summed),), accumulate)
        mf = matrix_form(vjp, [g_name])
        lmf = matrix_form(vjp, [g_name], latex=True)
        note = f"elementwise {prim.name} with broadcasting: unbroadcasting is the swap {fwd} => {vjp}"
        return Step("backward", target, prim.name, fwd, vjp, (g_name,), index, mf, shape, value, wrt,
                    accumulate, note, lmf)
    if isinstance(declaration, Elementwise) and np.shape(unbox(node.args[k])) == np.shape(node.ans):
        fp = _fprime_name(node, ops, k)
        vjp = f"{letters},{letters}->{letters}"
        index = IndexForm(target, letters, (Term((Factor(g_name, letters), _fprime_factor(node, ops, k, letters))),), accumulate)
        mf = matrix_form(vjp, [g_name, fp])
        lmf = matrix_form(vjp, [g_name, fp], latex=True)
        note = f"elementwise {prim.name}: the diagonal einsum {vjp} with the local derivative"
        return Step("backward", target, prim.name, f"{letters}->{letters}", vjp, (g_name, fp), index, mf,
                    shape, value, wrt, accumulate, note, lmf)
    if _is_negation(node):
        index = IndexForm(target, letters, (Term((Factor(g_name, letters),), sign="-"),), accumulate)
        note = "linear negation: its transpose negates the cotangent"
        return Step("backward", target, prim.name, None, None, (g_name,), index, f"-{g_name}", shape, value,
                    wrt, accumulate, note, "-" + latex_name(g_name))
    if isinstance(declaration, Linear):
        index = IndexForm(target, "", (Term((Factor(f"{declaration.describe}({g_name})"),)),), accumulate)
        note = f"linear {prim.name}: the VJP is its transpose, {declaration.describe}"
        return Step("backward", target, prim.name, None, None, (g_name,), index, None, shape, value, wrt,
                    accumulate, note)
    if isinstance(declaration, Elementwise):
        fp = _fprime_name(node, ops, k)
        index = IndexForm(target, "", (Term((Factor(f"unbroadcast({g_name} ⊙ {fp})"),)),), accumulate)
        note = f"elementwise {prim.name}: the Hadamard product with ∂/∂{ops[k]} = {fp}, summed over broadcast axes"
        return Step("backward", target, prim.name, None, None, (g_name, fp), index, None, shape, value, wrt,
                    accumulate, note)
    index = IndexForm(target, "", (Term((Factor(f"vjp_{prim.name}[{k}]({g_name})"),)),), accumulate)
    return Step("backward", target, prim.name, None, None, (g_name,), index, None, shape, value, wrt,
                accumulate, f"{prim.name}: its own VJP rule (general kind, not an einsum)")


def _delta_step(
    node: Node, elementwise: Step, einsum_step: Step, consumer: Node, k: int,
    operand_name: Callable[[Node, int], str],
) -> Step | None:
    """``delta = (W^T delta') ⊙ f'(z)``: an einsum VJP followed by an elementwise VJP."""
    if einsum_step.index is None or elementwise.index is None or einsum_step.accumulate:
        return None
    if len(einsum_step.operands) < 2:
        return None
    letters = einsum_step.index.letters
    (term,) = einsum_step.index.terms
    ops = [operand_name(node, j) for j in range(len(node.args))]
    fp_factor = _fprime_factor(node, ops, node.parents[0][0], letters)
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
    declaration = _declaration(node)
    if isinstance(declaration, Einsum) and step.vjp_subscripts:
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
    elif isinstance(declaration, Elementwise) and _partial_is_one(node, k) and step.vjp_subscripts is None:
        form = "I"
    elif isinstance(declaration, Elementwise) and step.vjp_subscripts and len(step.operands) > 1:
        n = len(np.shape(arg))
        letters = _LETTERS[:n]
        subs = f"{letters}->{letters}{letters}"
        form = matrix_form(subs, [step.operands[1]])
        vjp_size = _size(arg)
    elif _is_negation(node):
        form = "-I"
    return JacobianRow(label, form, subs, J.shape, int(J.size), vjp_size, J, error)
