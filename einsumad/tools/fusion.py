"""Fusion: chains of elementwise work in a compiled program, written as one expression.

Half of a model's compiled replay can be elementwise NumPy work on large arrays:
a GELU and its derivative, the Hadamard products of the backward pass, layer
norms. :func:`plan_groups` finds the maximal groups of such instructions that
:func:`render` can write as one expression over the group's inputs:

* **what joins a group** is read from declarations, never from names: an op
  whose declaration spells it for numexpr (``Declaration.numexpr``:
  ``"tanh({0})"``, ``"{0} + {1}"``, ``"where({0}, {1}, {2})"``; sums and negations
  are ``add`` and ``negative``), and a core einsum that is a pure broadcasting
  product ``a * b`` (a Hadamard product of the backward pass, a scale by a
  number). Members have the shape of the group's result and at least
  :data:`MIN_BYTES`; a member's value is used only inside the group, so the
  group has one result;
* **how a group is written**: the expression is a DAG (shared subexpressions
  once). Operations numexpr evaluates faster than NumPy on the machine's threads
  (arithmetic and comparisons given enough threads; ``where``; the
  transcendental functions only with Intel's VML) are fused into numexpr
  kernels, ``evaluate("x * (1 - t * t)", x, t)``, when the kernel's estimated
  cost (:data:`NUMEXPR_NS`, :data:`NUMPY_NS`) is below NumPy's; everything else
  is written as NumPy statements, one ufunc each, which the buffer planner then
  gives ``out=`` buffers. A composite op such as the tanh-GELU is thus written
  as the ufuncs its implementation calls, without the implementation's
  temporaries;
* numexpr is optional (``pip install "einsumad[fast]"``): without it every group
  is NumPy statements. Kernels run on numexpr's threads (``numexpr.set_num_threads``,
  ``NUMEXPR_NUM_THREADS``), and once this module is imported, threadpoolctl's
  ``threadpool_limits`` limits them too.

Results equal the unfused program's to rounding: the same operations in the same
order, numexpr's elementary functions differing from NumPy's by an ulp or so.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..core.einsum import Einsum
from ..core.source import literal
from .buffers import COMPARISON_UFUNCS, MIN_BYTES, OPERATOR_UFUNCS, nbytes

__all__ = ["available", "numexpr_threads", "Group", "plan_groups", "render", "Kernels", "MIN_BYTES"]

# Groups whose result is smaller than MIN_BYTES (buffers.py) are left as they are:
# NumPy's own loops are fastest on small arrays, and small blocks are allocated cheaply.
# At most this many instructions in a group: a long chain (a loop of 100,000
# elementwise steps) is written as several expressions, each one shallow enough
# for Python's parser and numexpr's compiler.
MAX_MEMBERS = 64


# ================================================================= numexpr, optional


def _load_numexpr() -> Any:
    try:
        import numexpr  # type: ignore[import-untyped]
    except ImportError:
        return None
    if not hasattr(numexpr, "NumExpr"):
        return None
    _register_with_threadpoolctl(numexpr)
    return numexpr


def _numexpr() -> Any:
    return _NUMEXPR


def available() -> bool:
    """Whether numexpr is installed (the ``fast`` extra), so groups may become kernels."""
    return _numexpr() is not None


def numexpr_threads() -> int:
    """numexpr's current thread count (1 without numexpr), at most the CPU count."""
    ne = _numexpr()
    if ne is None:
        return 1
    return max(1, min(int(ne.get_num_threads()), os.cpu_count() or 1))


def _register_with_threadpoolctl(numexpr: Any) -> None:
    """Make ``threadpoolctl.threadpool_limits`` (and ``threadpool_info``) see numexpr's pool."""
    try:
        import threadpoolctl  # type: ignore[import-untyped]
    except ImportError:
        return
    if not hasattr(threadpoolctl, "register") or not hasattr(threadpoolctl, "LibController"):
        return

    class NumexprController(threadpoolctl.LibController):  # type: ignore[misc,name-defined]
        user_api = "numexpr"
        internal_api = "numexpr"
        filename_prefixes = ("interpreter",)  # numexpr's extension module
        check_symbols = ("PyInit_interpreter",)

        def get_num_threads(self) -> int:
            return int(numexpr.get_num_threads())

        def set_num_threads(self, num_threads: int) -> None:
            numexpr.set_num_threads(num_threads)

        def get_version(self) -> str:
            return str(numexpr.__version__)

    threadpoolctl.register(NumexprController)


#: numexpr, imported with einsumad when installed (about 15 ms), so that its pool is
#: known to threadpoolctl before any ``threadpool_limits`` block a program is made in.
_NUMEXPR = _load_numexpr()


# ================================================================= costs
#   Nanoseconds per element on one thread, measured with ``out=`` (no allocation)
#   on 2**18-element arrays (Xeon, AVX-512 NumPy 2.4, numexpr 2.14 without VML).
#   NumPy's loops are SIMD and memory bound; numexpr's virtual machine is cheap per
#   operation once its operands are in cache, and splits the work across threads,
#   but its elementary functions are scalar unless it was built with VML.

#: NumPy: one ufunc pass over the arrays, per element (float64, float32).
NUMPY_NS: dict[str, tuple[float, float]] = {
    "arith": (0.25, 0.15), "compare": (0.2, 0.11), "where": (4.0, 4.5), "abs": (0.18, 0.09),
    "maximum": (0.3, 0.14), "minimum": (0.3, 0.14), "sqrt": (1.24, 0.36), "tanh": (1.84, 0.37),
    "exp": (0.85, 0.46), "log": (0.86, 0.38), "log1p": (1.07, 0.52), "expm1": (1.1, 0.55),
    "sin": (8.85, 0.52), "cos": (8.85, 0.52), "power": (2.3, 0.67),
}
#: numexpr: one operation of its virtual machine, per element on one thread.
NUMEXPR_NS: dict[str, tuple[float, float]] = {
    "arith": (0.3, 0.3), "compare": (0.3, 0.3), "where": (3.8, 3.4), "abs": (1.44, 0.91),
    "maximum": (2.2, 3.5), "minimum": (2.2, 3.5), "sqrt": (2.1, 0.83), "tanh": (12.9, 13.1),
    "exp": (4.1, 1.4), "log": (4.0, 1.7), "log1p": (9.9, 9.9), "expm1": (10.0, 10.0),
    "sin": (8.65, 4.4), "cos": (8.65, 4.4), "power": (10.2, 3.7),
}
#: numexpr, per input or output array of a kernel, per element.
NUMEXPR_ARRAY_NS = (0.18, 0.29)
#: Fixed costs of one call, nanoseconds.
NUMPY_CALL_NS, NUMEXPR_CALL_NS = 1_000.0, 6_000.0
#: A kernel is written only where its estimate is below this fraction of NumPy's:
#: near break-even the estimate's error (a busy core, another cache) decides.
MARGIN = 0.8
#: What each thread beyond the first adds to numexpr's speed. On the shared 2-core
#: development machine the second thread gave 0.7x-1.3x (a busy core stalls numexpr's
#: threads at every block), so two threads count as 1.5: kernels there are rare, and
#: common with four threads or more.
PARALLEL_EFFICIENCY = 0.5
_UNKNOWN_NS = (10.0, 10.0)

_BINARY = {op: name for op, name in OPERATOR_UFUNCS.items() if name in ("add", "subtract", "multiply", "divide", "power")}
_COMPARE = COMPARISON_UFUNCS
_SYMBOL = {
    "add": "+", "subtract": "-", "multiply": "*", "divide": "/", "power": "**",
    "less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=", "equal": "==", "not_equal": "!=",
}
#: Functions a spelling may call, with their arity: numexpr's names, which are NumPy's.
FUNCTIONS = {
    "where": 3, "maximum": 2, "minimum": 2, "arctan2": 2,
    **{f: 1 for f in (
        "sqrt", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh",
        "arccosh", "arctanh", "log", "log1p", "log10", "log2", "exp", "expm1", "abs", "floor", "ceil", "sign",
    )},
}
_NUMEXPR_DTYPES = {np.dtype(t) for t in (np.bool_, np.int32, np.int64, np.float32, np.float64, np.complex128)}


def _cost_class(op: str) -> str:
    if op in ("add", "subtract", "multiply", "divide", "negative", "square"):
        return "arith"
    if op in _COMPARE.values():
        return "compare"
    return op


def _ns(table: dict[str, tuple[float, float]], op: str, single: bool) -> float:
    return table.get(_cost_class(op), _UNKNOWN_NS)[1 if single else 0]


# ================================================================= expressions
#   A group's expression is a DAG of nodes (op, args, value), interned so that a
#   subexpression used twice is one node. Leaves are the group's inputs.

Node = tuple[str, tuple[int, ...], Any]


class _Dag:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.index: dict[Node, int] = {}

    def add(self, op: str, args: tuple[int, ...] = (), value: Any = None) -> int:
        node = (op, args, value)
        found = self.index.get(node)
        if found is None:
            found = self.index[node] = len(self.nodes)
            self.nodes.append(node)
        return found

    def const(self, value: Any) -> int:
        return self.add("const", (), (type(value).__name__, value))

    def op(self, op: str, *args: int) -> int:
        """``op(args)``, with signs folded as the emitter folds them (``x + -y`` is ``x - y``)."""
        nodes = self.nodes
        if op == "negative" and nodes[args[0]][0] == "negative":
            return nodes[args[0]][1][0]
        if op == "add":
            a, b = args
            if nodes[b][0] == "negative":
                return self.op("subtract", a, nodes[b][1][0])
            if nodes[a][0] == "negative":
                return self.op("subtract", b, nodes[a][1][0])
        if op == "subtract" and nodes[args[1]][0] == "negative":
            return self.op("add", args[0], nodes[args[1]][1][0])
        if op == "multiply":
            for k in (0, 1):
                kind, _, value = nodes[args[k]]
                if kind == "const" and value[0] in ("int", "float") and value[1] in (1, -1):
                    other = args[1 - k]
                    return other if value[1] == 1 else self.op("negative", other)
        return self.add(op, tuple(args))


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> ast.expr | None:
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError:
        return None


def _from_ast(node: ast.expr, dag: _Dag, operands: list[int]) -> int:
    """The DAG node of a spelling's syntax tree (``_0``, ``_1``, ... are the operands)."""
    if isinstance(node, ast.Name) and node.id.startswith("_") and node.id[1:].isdigit():
        return operands[int(node.id[1:])]
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return dag.const(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        if isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
            return dag.const(-node.operand.value)  # type: ignore[operator]
        return dag.op("negative", _from_ast(node.operand, dag, operands))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        return _from_ast(node.operand, dag, operands)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return dag.op(_BINARY[type(node.op)], _from_ast(node.left, dag, operands), _from_ast(node.right, dag, operands))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        return dag.op(_COMPARE[type(node.ops[0])], _from_ast(node.left, dag, operands),
                      _from_ast(node.comparators[0], dag, operands))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords
            and FUNCTIONS.get(node.func.id) == len(node.args)):
        return dag.op(node.func.id, *[_from_ast(a, dag, operands) for a in node.args])
    raise ValueError(f"not a fusable spelling: {ast.dump(node)}")


def _spelling(ins: Any) -> ast.expr | None:
    """The syntax tree of an instruction's declared numexpr spelling, if it has one."""
    spelling = getattr(ins.prim.declaration, "numexpr", None)
    combination = getattr(ins.prim.declaration, "combination", None)
    if spelling is None and combination and all(c in (1, -1) for c in combination) and not ins.params:
        # A sum the emitter folds (``add_any`` of two cotangents): ``{0} + {1}``, ``-{0}``.
        spelling = "".join(
            (" + " if c > 0 else " - ") + f"{{{k}}}" if k else ("" if c > 0 else "-") + "{0}"
            for k, c in enumerate(combination)
        )
    if spelling is None:
        return None
    names = [f"_{k}" for k in range(len(ins.args))]
    params = {}
    for key, value in ins.params.items():
        text = literal(value)
        if text is None:
            return None
        params[key] = text
    try:
        text = spelling.format(*names, **params) if isinstance(spelling, str) else spelling(names, ins.params)
    except (KeyError, IndexError, ValueError):
        return None
    if text is None:
        return None
    tree = _parsed(text)
    if tree is None or not _checks(tree, len(names)):
        return None
    return tree


def _checks(tree: ast.expr, arity: int) -> bool:
    dag = _Dag()
    try:
        _from_ast(tree, dag, [dag.add("leaf", (), k) for k in range(arity)])
    except (ValueError, IndexError):
        return False
    return True


# ================================================================= which instructions fuse


def _product_views(ins: Any) -> list[str] | None:
    """For a core einsum that is a pure broadcasting product of two operands: per
    operand, the view that lines it up with the output for NumPy broadcasting
    (``""``: none needed). None for any other einsum."""
    spec = ins.spec
    if spec is None or len(spec.inputs) != 2 or len(set(spec.output)) != len(spec.output):
        return None
    if not set(spec.output) <= set("".join(spec.inputs)):
        return None  # a letter broadcast into the output: not a product of the operands
    views = []
    for term, shape in zip(spec.inputs, ins.shapes):
        if len(set(term)) != len(term):
            return None
        tail = spec.output[len(spec.output) - len(term):] if len(term) <= len(spec.output) else None
        if tail is not None and all(s == t or (n == 1 and s not in spec.output) for s, t, n in zip(term, tail, shape)):
            views.append("")
            continue
        if not set(term) <= set(spec.output):
            return None
        order = sorted(range(len(term)), key=lambda a: spec.output.index(term[a]))
        view = "" if order == list(range(len(term))) else (
            ".T" if len(term) == 2 else f".transpose({', '.join(map(str, order))})"
        )
        present = [s for s in spec.output if s in term]
        first = spec.output.index(present[0]) if present else len(spec.output)
        rest = spec.output[first:]
        if len(rest) != len(term):
            view += "[" + ", ".join(":" if s in term else "None" for s in rest) + "]"
        views.append(view)
    return views


def _fusable(ins: Any) -> bool:
    if ins.out_shape is None or ins.out_dtype is None or np.dtype(ins.out_dtype).kind not in "f":
        return False
    if nbytes(ins.out_shape, ins.out_dtype) < MIN_BYTES:
        return False
    for dtype in ins.dtypes:
        if not isinstance(dtype, type) and np.dtype(dtype).kind not in "bf":
            return False
    if ins.spec is not None:
        return _product_views(ins) is not None
    if isinstance(ins.prim.declaration, Einsum):
        return False
    return _spelling(ins) is not None


def _takes_subexpression(ins: Any, k: int) -> bool:
    """Operand ``k`` of ``ins`` may be an expression (not only a variable with a view)."""
    if ins.spec is None:
        return True
    views = _product_views(ins)
    return views is not None and views[k] == ""


@dataclass
class Group:
    """Instructions written as one expression: ``members`` (indices, in order), the
    last of which is the group's result; ``leaves`` are the slots it reads."""

    members: list[int]
    leaves: list[int] = field(default_factory=list)

    @property
    def root(self) -> int:
        return self.members[-1]


def plan_groups(program: Any) -> list[Group]:
    """The maximal groups of ``program`` (see the module docstring), in program order.

    A group of one instruction whose expression is a single operation is left out:
    its usual spelling is the same thing.
    """
    instructions = program.instructions
    fusable = [_fusable(ins) for ins in instructions]
    if not any(fusable):
        return []
    producer = {ins.out: i for i, ins in enumerate(instructions)}
    consumers: dict[int, list[tuple[int, int]]] = {}
    for i, ins in enumerate(instructions):
        for k, slot in enumerate(ins.args):
            consumers.setdefault(slot, []).append((i, k))
    outputs = set(program.outputs)
    assigned: set[int] = set()
    groups = []
    for r in reversed(range(len(instructions))):
        if r in assigned or not fusable[r]:
            continue
        root = instructions[r]
        members = {r}
        frontier = [r]  # members whose producers are still to be looked at
        while frontier and len(members) < MAX_MEMBERS:
            m = max(frontier)
            frontier.remove(m)
            for slot in instructions[m].args:
                p = producer.get(slot)
                if p is None or p in members or p in assigned or not fusable[p] or slot in outputs:
                    continue
                candidate = instructions[p]
                if candidate.out_shape != root.out_shape or candidate.out_dtype != root.out_dtype:
                    continue
                uses = consumers.get(slot, [])
                if all(c in members and _takes_subexpression(instructions[c], k) for c, k in uses):
                    members.add(p)
                    frontier.append(p)
                    if len(members) == MAX_MEMBERS:
                        break
        ordered = sorted(members)
        if len(ordered) == 1 and _single_operation(root):
            continue
        assigned |= members
        inside = {instructions[m].out for m in ordered}
        leaves = list(dict.fromkeys(a for m in ordered for a in instructions[m].args if a not in inside))
        groups.append(Group(ordered, leaves))
    groups.reverse()
    return groups


def _single_operation(ins: Any) -> bool:
    if ins.spec is not None:
        return True
    tree = _spelling(ins)
    return tree is None or sum(
        isinstance(n, (ast.BinOp, ast.Call, ast.Compare, ast.UnaryOp)) for n in ast.walk(tree)
    ) <= 1


# ================================================================= writing a group


def _canonical(expression: str, names: list[str]) -> str:
    """``expression`` with its operands renamed ``_0, _1, ...`` in the order of ``names``:
    the same kernel written over other variables has the same canonical text."""
    index = {name: k for k, name in enumerate(names)}
    return re.sub(r"\b\w+\b", lambda m: f"_{index[m[0]]}" if m[0] in index else m[0], expression)


@functools.lru_cache(maxsize=1024)
def _compiled_kernel(expression: str, types: tuple[type, ...]) -> Any:
    """numexpr's compiled kernel for the canonical ``expression`` on operands of these
    types (None when this numexpr cannot compile it). A loop writes the same kernel
    many times over, and numexpr's compiler takes about a millisecond for each."""
    try:
        return _numexpr().NumExpr(expression, [(f"_{k}", t) for k, t in enumerate(types)])  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001
        return None


class Kernels:
    """The fused kernels of one program, called by their expression:
    ``evaluate("x * (1 - t * t)", x, t)`` runs numexpr's compiled kernel for it and
    returns a new array (or fills ``out``) of the dtype NumPy would give."""

    def __init__(self) -> None:
        self.kernels: dict[str, tuple[Any, tuple[int, ...], np.dtype, bool]] = {}

    def add(self, expression: str, names: list[str], dtypes: list[np.dtype], shape: tuple[int, ...],
            dtype: np.dtype) -> bool:
        ne = _numexpr()
        types = tuple(ne.necompiler.getType(np.empty(0, d)) for d in dtypes)  # type: ignore[union-attr]
        kernel = _compiled_kernel(_canonical(expression, names), types)
        if kernel is None:  # a function this numexpr lacks: stay with NumPy
            return False
        uses_vml = bool(getattr(ne, "use_vml", False)) and any(
            f in expression for f in getattr(ne.necompiler, "vml_functions", ())  # type: ignore[union-attr]
        )
        self.kernels[expression] = (kernel, shape, np.dtype(dtype), uses_vml)
        return True

    def __call__(self, expression: str, *args: Any, out: np.ndarray | None = None) -> np.ndarray:
        kernel, shape, dtype, uses_vml = self.kernels[expression]
        if out is None:
            out = np.empty(shape, dtype)
        kernel(*args, out=out, order="K", casting="same_kind", ex_uses_vml=uses_vml)
        return out

    def __repr__(self) -> str:
        return f"<{len(self.kernels)} numexpr kernels>"


@dataclass
class _Leaf:
    text: str  # Python source of the value (a name, or a view of one)
    shape: tuple[int, ...]
    dtype: Any  # a dtype, or a Python number type


def render(
    group: Group,
    program: Any,
    operand: Callable[[int], tuple[str, bool]],
    result: str,
    fresh: Callable[[str], str],
    namespace: dict[str, Any],
    kernel_name: Callable[[], str],
    kernels: bool = True,
) -> tuple[list[str], dict[str, tuple[tuple[int, ...], np.dtype]]] | None:
    """The statements computing ``group`` into the variable ``result``.

    Args:
        operand: a leaf slot's source and whether it holds the negated value.
        fresh: new local names; ``namespace``: where constants and kernels go;
        kernel_name: the name of the program's :class:`Kernels` (made on first use).
        kernels: whether numexpr kernels may be used (else NumPy statements only).

    Returns:
        The statements (with ``del`` of the group's own temporaries) and the shape
        and dtype of every variable they assign; None when the group cannot be
        written (its dtypes are not NumPy's), so the caller writes it unfused.
    """
    instructions = program.instructions
    dag = _Dag()
    leaves: list[_Leaf] = []
    leaf_node: dict[tuple[str, Any], int] = {}
    trees: dict[int, int] = {}

    def leaf(slot: int, view: str, shape: tuple[int, ...], dtype: Any) -> int:
        if program.is_constant[slot]:
            value = program.values[slot]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return dag.const(value)
            if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "if":
                return dag.const(value[()])  # a NumPy scalar: it keeps its dtype, as the 0-d array did
        text, negated = operand(slot)
        key = (text + view, negated)
        if key not in leaf_node:
            index = len(leaves)
            leaves.append(_Leaf(text + view, _viewed_shape(shape, view), dtype))
            node = dag.add("leaf", (), index)
            leaf_node[key] = dag.op("negative", node) if negated else node
        return leaf_node[key]

    for m in group.members:
        ins = instructions[m]
        views = _product_views(ins) if ins.spec is not None else [""] * len(ins.args)
        args = []
        for k, slot in enumerate(ins.args):
            if slot in trees:
                args.append(trees[slot])
            else:
                args.append(leaf(slot, views[k], ins.shapes[k], ins.dtypes[k]))  # type: ignore[index]
        if ins.spec is not None:
            trees[ins.out] = dag.op("multiply", *args)
        else:
            trees[ins.out] = _from_ast(_spelling(ins), dag, args)  # type: ignore[arg-type]
    root = trees[instructions[group.root].out]
    if dag.nodes[root][0] in ("leaf", "const"):
        return None

    shapes, dtypes = _infer(dag, leaves)
    out_ins = instructions[group.root]
    if dtypes[root] != np.dtype(out_ins.out_dtype) or shapes[root] != tuple(out_ins.out_shape):
        return None
    return _write(dag, root, leaves, shapes, dtypes, result, fresh, namespace, kernel_name, kernels)


def _viewed_shape(shape: tuple[int, ...], view: str) -> tuple[int, ...]:
    if not view:
        return tuple(shape)
    dummy = np.broadcast_to(np.empty((), np.uint8), shape)
    return tuple(eval(f"x{view}", {"x": dummy}).shape)  # noqa: S307 (a view written by _product_views)


def _infer(dag: _Dag, leaves: list[_Leaf]) -> tuple[list[tuple[int, ...]], list[np.dtype]]:
    """Shape and dtype of every node, by NumPy's own rules (on one-element stand-ins)."""
    values: list[Any] = []
    shapes: list[tuple[int, ...]] = []
    with np.errstate(all="ignore"):
        for op, args, value in dag.nodes:
            if op == "leaf":
                lf = leaves[value]
                values.append(np.ones((), lf.dtype) if not isinstance(lf.dtype, type) else lf.dtype(1))
                shapes.append(lf.shape)
            elif op == "const":
                values.append(value[1])
                shapes.append(())
            else:
                values.append(_numpy_function(op)(*[values[a] for a in args]))
                shapes.append(tuple(np.broadcast_shapes(*[shapes[a] for a in args])))
    return shapes, [np.result_type(v) for v in values]


def _numpy_function(op: str) -> Callable[..., Any]:
    return getattr(np, "absolute" if op == "abs" else op)  # type: ignore[no-any-return]


def _numpy_text(op: str, args: list[str]) -> str:
    if op in _SYMBOL:
        return f"{args[0]} {_SYMBOL[op]} {args[1]}"
    if op == "negative":
        return f"-{args[0]}"
    return f"np.{op}({', '.join(args)})"


def _numexpr_text(dag: _Dag, node: int, name_of: Callable[[int], str | None]) -> str:
    """The numexpr source of ``node``, fully parenthesised; materialised nodes by name."""
    name = name_of(node)
    if name is not None:
        return name
    op, args, value = dag.nodes[node]
    if op == "const":
        number = value[1].item() if isinstance(value[1], np.generic) else value[1]
        text = repr(number)
        return f"({text})" if text.startswith("-") else text
    parts = [_numexpr_text(dag, a, name_of) for a in args]
    if op in _SYMBOL:
        return f"({parts[0]} {_SYMBOL[op]} {parts[1]})"
    if op == "negative":
        return f"(-{parts[0]})"
    return f"{op}({', '.join(parts)})"


def _write(
    dag: _Dag, root: int, leaves: list[_Leaf], shapes: list[tuple[int, ...]], dtypes: list[np.dtype],
    result: str, fresh: Callable[[str], str], namespace: dict[str, Any], kernel_name: Callable[[], str],
    kernels: bool,
) -> tuple[list[str], dict[str, tuple[tuple[int, ...], np.dtype]]]:
    nodes = dag.nodes
    users: list[list[int]] = [[] for _ in nodes]
    for i, (_, args, _) in enumerate(nodes):
        for a in set(args):
            users[a].append(i)
    size = int(np.prod(shapes[root], dtype=np.int64))
    single = dtypes[root] == np.float32
    threads = 1.0 + PARALLEL_EFFICIENCY * (numexpr_threads() - 1)
    kernels_ok = kernels and available() and all(
        not isinstance(lf.dtype, type) and np.dtype(lf.dtype) in _NUMEXPR_DTYPES for lf in leaves
    ) and all(d in _NUMEXPR_DTYPES for d in dtypes)

    def kind(i: int) -> str:
        """The cost class of node ``i``: a power by 2 is a product in both libraries."""
        op, args, _ = nodes[i]
        if op == "power" and nodes[args[1]][0] == "const" and nodes[args[1]][2][1] in (1, 2, -1):
            return "square"
        return op

    def fused(i: int) -> bool:
        """numexpr evaluates this operation faster than NumPy on the threads it has."""
        op = kind(i)
        return kernels_ok and op not in ("leaf", "const") and (
            _ns(NUMEXPR_NS, op, single) / threads < _ns(NUMPY_NS, op, single)
        )

    def operations(i: int) -> int:
        return 0 if nodes[i][0] in ("leaf", "const") else 1

    reachable = {root}
    for i in reversed(range(root + 1)):
        if i in reachable:
            reachable.update(nodes[i][1])
    for i in range(len(nodes)):
        users[i] = [u for u in users[i] if u in reachable]

    # A node is materialised (a variable) if it is the result, NumPy's, or feeds NumPy;
    # a fused node feeding several fused nodes is materialised unless it is one
    # operation on variables (numexpr then computes it once per kernel that reads it).
    materialised = [False] * len(nodes)
    for i in sorted(reachable):
        if operations(i) and (i == root or not fused(i) or any(not fused(u) for u in users[i])):
            materialised[i] = True
    for i in sorted(reachable):
        if operations(i) and not materialised[i] and len(users[i]) > 1 and any(
            operations(a) and not materialised[a] for a in nodes[i][1]
        ):
            materialised[i] = True

    def segment(i: int) -> list[int]:
        """The fused operations computed by materialised node ``i``'s kernel."""
        out, stack = {i}, [i]
        while stack:
            j = stack.pop()
            for a in nodes[j][1]:
                if operations(a) and not materialised[a] and a not in out:
                    out.add(a)
                    stack.append(a)
        return sorted(out)

    kernel_of: dict[int, list[int]] = {}
    for i in sorted(reachable):
        if not materialised[i] or not fused(i):
            continue
        members = segment(i)
        sources = {a for j in members for a in nodes[j][1] if a not in members and nodes[a][0] != "const"}
        element = 1 if single else 0
        numexpr_ns = NUMEXPR_CALL_NS + size * (
            sum(_ns(NUMEXPR_NS, kind(j), single) for j in members) + NUMEXPR_ARRAY_NS[element] * (len(sources) + 1)
        ) / threads
        numpy_ns = sum(NUMPY_CALL_NS + size * _ns(NUMPY_NS, kind(j), single) for j in members)
        if len(members) > 1 and numexpr_ns < MARGIN * numpy_ns:
            kernel_of[i] = members
        else:  # not worth a kernel: every operation of it is a NumPy statement
            for j in members:
                materialised[j] = True

    names: dict[int, str] = {}
    for i, lf in enumerate(leaves):
        names[dag.index[("leaf", (), i)]] = lf.text
    known: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    statements: list[tuple[str, list[str]]] = []  # (assigned variable, statement) in order
    order = [i for i in range(len(nodes)) if materialised[i]]
    for i in order:
        var = result if i == root else fresh("v")
        op, args, _ = nodes[i]
        if i in kernel_of:
            expression, inputs = _kernel_source(dag, i, kernel_of[i], names, leaves)
            registry = namespace.get(kernel_name())
            if registry is None:
                registry = namespace[kernel_name()] = Kernels()
            arg_dtypes = [dtypes[n] for n, _ in inputs]
            if registry.add(expression, [p for _, p in inputs], arg_dtypes, shapes[i], dtypes[i]):
                call = ", ".join([f'"{expression}"'] + [names[n] for n, _ in inputs])
                text = f"{var} = {kernel_name()}({call})"
                statements.append((var, [text] + [names[n] for n, _ in inputs]))
                names[i] = var
                known[var] = (shapes[i], dtypes[i])
                continue
            for j in sorted(kernel_of[i]):  # numexpr could not compile it: NumPy statements
                if j != i and not materialised[j]:
                    materialised[j] = True
                    inner = fresh("v")
                    statements.append(_numpy_statement(dag, j, inner, names))
                    names[j] = inner
                    known[inner] = (shapes[j], dtypes[j])
        statements.append(_numpy_statement(dag, i, var, names))
        names[i] = var
        known[var] = (shapes[i], dtypes[i])
    return _with_deletions(statements, result), known


def _numpy_statement(dag: _Dag, i: int, var: str, names: dict[int, str]) -> tuple[str, list[str]]:
    op, args, _ = dag.nodes[i]
    texts = [names[a] if a in names else _const_text(dag, a) for a in args]
    return var, [f"{var} = {_numpy_text(op, texts)}"] + [names[a] for a in args if a in names]


def _const_text(dag: _Dag, node: int) -> str:
    op, _, value = dag.nodes[node]
    if op != "const":
        raise ValueError("operand is neither named nor a constant")
    text = literal(value[1])
    return text if text is not None else repr(value[1])


def _kernel_source(
    dag: _Dag, i: int, members: list[int], names: dict[int, str], leaves: list[_Leaf]
) -> tuple[str, list[tuple[int, str]]]:
    """numexpr source of kernel ``i`` and its inputs (node, parameter name), in order."""
    inputs: dict[int, str] = {}
    inside = set(members)

    def name_of(node: int) -> str | None:
        if node in inside:
            return None
        if dag.nodes[node][0] == "const":
            return None
        if node not in inputs:
            text = names[node]
            inputs[node] = text if text.isidentifier() and text not in FUNCTIONS and text not in (
                "True", "False", "None") else f"a{len(inputs)}"
        return inputs[node]

    text = _numexpr_text(dag, i, lambda n: None if n == i else name_of(n))
    if text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1]
    return text, list(inputs.items())


def _balanced(text: str) -> bool:
    depth = 0
    for c in text:
        depth += c == "("
        depth -= c == ")"
        if depth < 0:
            return False
    return depth == 0


def _with_deletions(statements: list[tuple[str, list[str]]], result: str) -> list[str]:
    """The statements, each temporary deleted after its last use."""
    last: dict[str, int] = {}
    for k, (_, parts) in enumerate(statements):
        for name in parts[1:]:
            last[name] = k
    assigned = {var for var, _ in statements}
    lines = []
    for k, (_, parts) in enumerate(statements):
        lines.append(parts[0])
        dead = sorted(n for n in set(parts[1:]) if last.get(n) == k and n in assigned and n != result)
        if dead:
            lines.append(f"del {', '.join(dead)}")
    return lines
