"""A staged program: the straight-line record of every primitive call, and its source.

Tracing runs a function (which may be ``ea.grad(f)``, ``ea.hessian(f)``, ...)
once on boxes of a *staging* trace, the lowest level of all. Every primitive
call that depends on an input, forward and backward pass alike, is recorded as
an :class:`Instruction`; anything that depends on no input (a delta seed, the
ones that seed a sum's cotangent) is computed once and kept as a constant.

:func:`emit` is the one code emitter: it writes the program as Python source,
reading each primitive's declaration (an einsum is written by its backend plan,
any other op by its declared ``source``, or a call of its implementation).
``ea.codegen`` prints that source and ``ea.compile`` executes it, so what is
printed is what runs.
"""

from __future__ import annotations

import collections
import functools
import itertools
import keyword
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..algebra.letters import relabel_terms
from ..algebra.subscripts import Spec
from ..algebra.swap import factor_out, pairwise_steps, substitute
from ..core import arrays
from ..core.backend import HELPERS, contraction_path, plan
from ..core.einsum import Einsum, einsum_p
from ..core.pytree import TreeDef, leaf_expression, tree_flatten, tree_unflatten
from ..core.source import literal
from ..core.tape import STAGE, Tensor, new_trace, weak
from .buffers import MIN_BYTES, VIEW_ATTRIBUTES, VIEW_METHODS, nbytes, plan_buffers
from .fusion import Group, plan_groups, render

__all__ = ["Instruction", "Program", "trace", "emit", "Source"]


class Instruction:
    """One recorded primitive call: ``slots[out] = prim(*slots[args], **params)``.

    ``spec`` is the resolved spec of a core einsum (None for any other op);
    ``out_shape`` and ``out_dtype`` describe the result.
    """

    __slots__ = ("prim", "args", "params", "out", "shapes", "dtypes", "spec", "out_shape", "out_dtype")

    def __init__(
        self, prim: Any, args: tuple[int, ...], params: dict, out: int, shapes: tuple, dtypes: tuple,
        out_shape: tuple[int, ...] | None = None, out_dtype: Any = None,
    ):
        self.prim = prim
        self.args = args
        self.params = params
        self.out = out
        self.shapes = shapes
        self.dtypes = dtypes
        self.spec: Spec | None = params["spec"] if _is_core_einsum(prim) else None
        self.out_shape = out_shape
        self.out_dtype = out_dtype

    def __repr__(self) -> str:
        return f"<s{self.out} = {self.prim.name}{self.args}>"


_NO_PARAMS: dict[str, Any] = {}  # shared by the instructions of ops without parameters (never changed)


def _is_core_einsum(prim: Any) -> bool:
    declaration = prim.declaration
    return isinstance(declaration, Einsum) and declaration.subscripts is None


@dataclass
class Program:
    """A straight-line program: inputs, constants, instructions, outputs."""

    values: list[Any] = field(default_factory=list)  # constants (None for variable slots)
    is_constant: list[bool] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    instructions: list[Instruction] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    out_def: TreeDef | None = None
    aliased_outputs: set[int] = field(default_factory=set)  # outputs that view an input, or are read-only: copied
    # 0-d NumPy outputs: the traced value's type (a 0-d ndarray or a NumPy scalar type), which
    # the program returns too (a written program may skip an identity step that made an array).
    scalar_kinds: dict[int, type] = field(default_factory=dict)
    stage: Any = None
    source: Any = None  # the emitted Source, once emitted
    function: Any = None  # the function compiled from it
    guard: Any = None  # ea.compile's check that arguments have this program's signature
    shared: dict[Any, Any] = field(default_factory=dict, repr=False)  # one copy of equal shapes, dtypes, params

    # -- recording ------------------------------------------------------------------

    def slot(self, value: Any, constant: bool) -> int:
        self.values.append(value if constant else None)
        self.is_constant.append(constant)
        return len(self.values) - 1

    def ref(self, x: Any) -> int:
        if isinstance(x, Tensor) and x.trace is self.stage:
            return x.node  # type: ignore[no-any-return]
        return self.slot(x, True)

    def record(self, prim: Any, args: tuple, ans: Any, params: dict) -> Tensor:
        if _is_core_einsum(prim) and len(args) == 2:
            unchanged = self._times_ones(args, ans, params["spec"])
            if unchanged is not None:
                return unchanged
        refs = []
        shapes = []
        dtypes = []
        for a in args:
            refs.append(self.ref(a))
            v = a.value if isinstance(a, Tensor) else a
            if type(v) is np.ndarray:
                shapes.append(v.shape)
                dtypes.append(v.dtype)
            elif type(v) in (int, float, complex):
                shapes.append(())
                dtypes.append(type(v))
            else:
                shapes.append(arrays.shape(v))
                dtypes.append(arrays.dtype(v))
        out = self.slot(None, False)
        # A long program repeats a few shapes, dtypes and parameters many times: each
        # instruction keeps the first equal copy (a third of its memory).
        shared = self.shared.setdefault
        if params:
            if len(params) == 1 and "spec" in params:
                params = shared(("spec", params["spec"]), params)
        else:
            params = _NO_PARAMS
        shapes_, dtypes_, out_shape = tuple(shapes), tuple(dtypes), arrays.shape(ans)
        # A Python number's dtype is its type, as for arguments: it stays weak when the
        # program is planned (a float32 array times it is float32, not float64).
        out_dtype = type(ans) if type(ans) in (int, float, complex) else arrays.dtype(ans)
        self.instructions.append(Instruction(
            prim, tuple(refs), params, out, shared(shapes_, shapes_), shared(dtypes_, dtypes_),
            shared(out_shape, out_shape), out_dtype,
        ))
        return Tensor(ans, self.stage, node=out)

    def _times_ones(self, args: tuple, ans: Any, spec: Spec) -> Tensor | None:
        """``t * 1`` where the ones are a constant (the broadcast cotangent of a sum):
        the product is ``t`` itself, so record nothing."""
        for k in (0, 1):
            t, c = args[k], args[1 - k]
            if (
                isinstance(t, Tensor) and t.trace is self.stage
                and not isinstance(c, Tensor)
                and spec.inputs[k] == spec.output
                and set(spec.inputs[1 - k]) <= set(spec.output)
                and arrays.shape(t.value) == arrays.shape(ans)
                and arrays.dtype(t.value) == arrays.dtype(ans)
                and (c == 1 if isinstance(c, (int, float)) else _all_ones(c))
            ):
                return t
        return None

    # -- simplifying ----------------------------------------------------------------

    def _uses(self) -> dict[int, int]:
        """How often each slot is read (an output counts twice: it must stay)."""
        uses = collections.Counter(itertools.chain.from_iterable(ins.args for ins in self.instructions))
        for a in self.outputs:
            uses[a] += 2
        return uses

    def fuse(self, max_operands: int = 6) -> None:
        """Merge each einsum whose result feeds exactly one other einsum into it.

        The merged einsum (:func:`~einsumad.algebra.swap.substitute`) is planned as
        a whole, so its optimised path can reassociate: a big tensor scaled by
        several vectors is scaled once by their product, and a product followed
        by a sum becomes one dot product. Steps that would save nothing stay apart.
        """
        uses = self._uses()
        producer_of = {ins.out: ins for ins in self.instructions if ins.spec is not None}
        for ins in self.instructions:
            if ins.spec is None:
                continue
            changed = True
            while changed:
                changed = False
                for k, slot in enumerate(ins.args):
                    producer = producer_of.get(slot)
                    if producer is None or uses.get(slot) != 1:
                        continue
                    if len(ins.args) - 1 + len(producer.args) > max_operands:
                        continue
                    fused = _substituted(ins.spec, k, producer.spec)
                    if fused is None:
                        continue
                    shapes = ins.shapes[:k] + producer.shapes + ins.shapes[k + 1 :]
                    fused = _sized(fused, shapes)
                    separate = _loop_cost(ins.spec, ins.shapes) + _loop_cost(producer.spec, producer.shapes)
                    if _loop_cost(fused, shapes) >= separate:
                        continue  # nothing to reassociate: keep the two readable steps
                    ins.args = ins.args[:k] + producer.args + ins.args[k + 1 :]
                    ins.shapes = shapes
                    ins.dtypes = ins.dtypes[:k] + producer.dtypes + ins.dtypes[k + 1 :]
                    ins.params = {"spec": fused}
                    ins.spec = fused
                    for a in producer.args:
                        uses[a] = uses.get(a, 0) + 1
                    uses[slot] = 0  # the producer is now dead code
                    changed = True
                    break

    def distribute(self) -> bool:
        """Pull a common factor out of a sum: ``X p ± X q = X (p ± q)``.

        A sum (an op declared as the combination ``a + b``) of two einsums, each
        used only there (possibly through a negation), that share an operand X in
        the same role (:func:`~einsumad.algebra.swap.factor_out`) becomes one einsum
        of X with the sum of two smaller einsums, when that costs fewer
        multiply-adds. Reverse over reverse makes such sums (the Hessian of a
        logistic loss adds two products with X), and a person factors them by hand.
        Says whether it factored any.
        """
        uses = self._uses()
        producer_of = {ins.out: ins for ins in self.instructions}
        rewritten: list[Instruction] = []
        changed = False
        for ins in self.instructions:
            replacement = self._factored(ins, producer_of, uses)
            if replacement is None:
                rewritten.append(ins)
            else:
                rewritten.extend(replacement)
                changed = True
        self.instructions = rewritten
        return changed

    def _through_negations(self, slot: int, producer_of: dict, uses: dict) -> tuple[Instruction | None, int, Any]:
        """The single-use core einsum behind ``slot``, the sign of the negations on the
        way, and a negation primitive met there (or None)."""
        sign, negation = 1, None
        producer = producer_of.get(slot)
        while producer is not None and uses.get(producer.out) == 1:
            if getattr(producer.prim.declaration, "combination", None) == (-1,):
                sign, negation = -sign, producer.prim
                producer = producer_of.get(producer.args[0])
                continue
            return (producer if producer.spec is not None else None), sign, negation
        return None, sign, negation

    def _factored(self, ins: Instruction, producer_of: dict, uses: dict) -> list[Instruction] | None:
        if getattr(ins.prim.declaration, "combination", None) != (1, 1) or ins.params:
            return None
        if ins.args[0] == ins.args[1] or ins.shapes[0] != ins.shapes[1]:
            return None
        a, sign_a, neg_a = self._through_negations(ins.args[0], producer_of, uses)
        b, sign_b, neg_b = self._through_negations(ins.args[1], producer_of, uses)
        if a is None or b is None or a is b:
            return None
        for k_a, x in enumerate(a.args):
            for k_b, y in enumerate(b.args):
                if x != y or self.is_constant[x]:
                    continue
                factored = factor_out(a.spec, k_a, b.spec, k_b)  # type: ignore[arg-type]
                if factored is None:
                    continue
                p, q, outer = factored
                rest_a = [j for j in range(len(a.args)) if j != k_a]
                rest_b = [j for j in range(len(b.args)) if j != k_b]
                p_shapes = tuple(a.shapes[j] for j in rest_a)
                q_shapes = tuple(b.shapes[j] for j in rest_b)
                p, q = _sized(p, p_shapes), _sized(q, q_shapes)
                shared_shape = p.shape(p.output)
                before = _loop_cost(a.spec, a.shapes) + _loop_cost(b.spec, b.shapes) + math.prod(ins.shapes[0])  # type: ignore[arg-type]
                after = (
                    _loop_cost(p, p_shapes) + _loop_cost(q, q_shapes) + math.prod(shared_shape)
                    + _loop_cost(outer, (a.shapes[k_a], shared_shape))
                )
                if after >= before:
                    continue
                dtype = _numpy_result_type(a.dtypes + b.dtypes)
                if dtype is None:  # another library's dtypes: leave the sum as it is
                    return None
                new: list[Instruction] = []
                terms = []
                for spec, args, shapes, dtypes, sign, negation in (
                    (p, [a.args[j] for j in rest_a], p_shapes, [a.dtypes[j] for j in rest_a], sign_a, neg_a or neg_b),
                    (q, [b.args[j] for j in rest_b], q_shapes, [b.dtypes[j] for j in rest_b], sign_b, neg_b or neg_a),
                ):
                    slot = self._einsum_slot(spec, args, shapes, dtypes, new)
                    if sign < 0:
                        negated = self.slot(None, False)
                        new.append(Instruction(
                            negation, (slot,), {}, negated, (shared_shape,), (dtype,), shared_shape, dtype
                        ))
                        slot = negated
                    terms.append(slot)
                total = self.slot(None, False)
                new.append(Instruction(
                    ins.prim, tuple(terms), {}, total, (shared_shape, shared_shape), (dtype, dtype), shared_shape, dtype
                ))
                new.append(Instruction(
                    einsum_p, (x, total), {"spec": outer}, ins.out, (a.shapes[k_a], shared_shape),
                    (a.dtypes[k_a], dtype), ins.out_shape, ins.out_dtype,
                ))
                return new
        return None

    def _einsum_slot(self, spec: Spec, args: list[int], shapes: tuple, dtypes: list[Any], new: list[Instruction]) -> int:
        """The slot of ``einsum(spec)(args)``: an operand itself when the einsum is one."""
        if len(args) == 1 and spec.inputs[0] == spec.output:
            return args[0]
        out = self.slot(None, False)
        dtype = _numpy_result_type(dtypes)
        new.append(Instruction(einsum_p, tuple(args), {"spec": spec}, out, shapes, tuple(dtypes), spec.shape(spec.output), dtype))
        return out

    def finish(self) -> None:
        """Fuse einsums, factor sums, fuse again, and drop instructions no output needs."""
        self.fuse()
        if self.distribute():
            self.fuse()
        needed = set(self.outputs)
        kept = []
        for ins in reversed(self.instructions):
            if ins.out in needed:
                kept.append(ins)
                needed.update(ins.args)
        kept.reverse()
        self.instructions = kept

    def __len__(self) -> int:
        return len(self.instructions)


@functools.lru_cache(maxsize=4096)
def _substituted(consumer: Spec, k: int, producer: Spec) -> Spec | None:
    return substitute(consumer, k, producer)


def _numpy_result_type(dtypes: Sequence[Any]) -> np.dtype | None:
    """NumPy's result dtype of operands of these dtypes (Python number types count as
    weak scalars), or None when some dtype is another library's."""
    try:
        return np.result_type(*[d(0) if isinstance(d, type) else np.dtype(d) for d in dtypes])
    except TypeError:
        return None


@functools.lru_cache(maxsize=4096)
def _loop_cost(spec: Spec, shapes: tuple) -> int:
    """Multiply-adds of an einsum: the loop size of each pairwise step of its path."""
    sizes = dict(_sized(spec, shapes).sizes)
    if len(spec.inputs) <= 2:
        steps = [spec]
    else:
        steps = [step for _, step in pairwise_steps(spec, contraction_path(spec, shapes))]
    return sum(
        int(np.prod([sizes[x] for x in set("".join(step.inputs) + step.output)], dtype=np.int64))
        for step in steps
    )


@functools.lru_cache(maxsize=4096)
def _sized(spec: Spec, shapes: tuple) -> Spec:
    """``spec`` with every symbol's size read from the operand shapes."""
    sizes = dict(spec.sizes)
    for term, shape in zip(spec.inputs, shapes):
        sizes.update(zip(term, shape))
    return spec.with_terms(spec.inputs, spec.output, sizes.items())


def _root(value: Any) -> Any:
    """The array that owns ``value``'s memory."""
    while isinstance(getattr(value, "base", None), np.ndarray):
        value = value.base
    return value


def _all_ones(c: Any) -> bool:
    """A constant array of ones (read on the host; a lazy Dask constant is not computed)."""
    if isinstance(c, np.ndarray):
        return bool((c == 1).all())
    if arrays.is_numpy(c) or arrays.library_name(arrays.array_namespace(c)) == "dask":
        return False
    return bool(arrays.array_namespace(c).all(c == 1))


# ================================================================= tracing

_STATIC = (bool, str, type(None))


def is_traced_leaf(leaf: Any) -> bool:
    """Array leaves and Python numbers are inputs of a program; bools, strings and
    None are static (part of its signature)."""
    return not isinstance(leaf, _STATIC)


def trace(fun: Callable, args: tuple, kwargs: dict, static: frozenset[int] = frozenset()) -> Program:
    """Stage ``fun(*args, **kwargs)`` into a :class:`Program`.

    Arguments in ``static`` and keyword arguments are constants of the program.
    """
    program = Program()
    dynamic = [a for i, a in enumerate(args) if i not in static]
    leaves, _ = tree_flatten(dynamic)
    with new_trace(STAGE, program.record) as stage:
        program.stage = stage
        boxed_leaves = []
        for leaf in leaves:
            if not is_traced_leaf(leaf):
                boxed_leaves.append(leaf)
                continue
            value = leaf if isinstance(leaf, (int, float, complex)) else arrays.asarray(leaf)
            slot = program.slot(None, False)
            program.inputs.append(slot)
            boxed_leaves.append(Tensor(value, stage, node=slot))
        boxed_args = _with_leaves(args, static, boxed_leaves)
        out = fun(*boxed_args, **kwargs)
    out_leaves, program.out_def = tree_flatten(out)
    for leaf in out_leaves:
        if isinstance(leaf, tuple) and hasattr(leaf, "_fields"):  # a named tuple is one leaf
            raise TypeError(
                f"the compiled function returned a {type(leaf).__name__} (a named tuple); "
                "ea.compile returns dicts, lists and tuples of arrays: return "
                f"tuple(result) or its fields ({', '.join(leaf._fields)})"
            )
    program.outputs = [program.ref(o) for o in out_leaves]
    input_roots = {id(_root(leaf)) for leaf in leaves if isinstance(leaf, np.ndarray)}
    inputs = set(program.inputs)
    for slot, o in zip(program.outputs, out_leaves):
        if not (isinstance(o, Tensor) and o.trace is stage):
            continue
        value = o.value
        if id(_root(value)) in input_roots or (isinstance(value, np.ndarray) and not value.flags.writeable):
            program.aliased_outputs.add(slot)  # a view of an input, or a read-only (broadcast) view
        if (type(value) is np.ndarray and value.ndim == 0 or isinstance(value, np.generic)) and slot not in inputs:
            program.scalar_kinds[slot] = type(value)  # (an argument is returned as it was given)
    program.stage = None
    program.finish()
    return program


def _with_leaves(args: tuple, static: frozenset[int], leaves: list[Any]) -> list[Any]:
    """``args`` with the leaves of its non-static entries replaced, in order."""
    dynamic_positions = [i for i in range(len(args)) if i not in static]
    _, treedef = tree_flatten([args[i] for i in dynamic_positions])
    rebuilt = tree_unflatten(treedef, leaves)
    out = list(args)
    for i, value in zip(dynamic_positions, rebuilt):
        out[i] = value
    return out


# ================================================================= the emitter


class Source(str):
    """Generated Python source; ``.function()`` executes it and returns the function.

    ``.namespace`` holds what the source refers to besides NumPy: large constant
    arrays and primitives with no NumPy spelling.
    """

    namespace: dict[str, Any]
    name: str
    bounds: list[tuple[int, int]]  # where each function (part functions, then the main one) is

    @property
    def parts(self) -> list[str]:
        """The source of each function, in order (a long program has part functions)."""
        return [self[start:stop] for start, stop in getattr(self, "bounds", [(0, len(self))])]

    def function(self) -> Callable:
        """Execute the source (one function at a time: bounded compile memory). No function
        is left in its own globals (the parts' globals hold neither the parts nor the main
        function), so a dropped program is freed by reference counting alone."""
        scope = dict(self.namespace)
        *parts, main = getattr(self, "bounds", [(0, len(self))])
        called: dict[str, Any] = {}
        for start, stop in parts:
            text = self[start:stop]
            exec(text, scope)  # noqa: S102 (source written by emit from a traced program)
            name = text[len("def "):text.index("(")]
            called[name] = scope.pop(name)
        main_scope = {**scope, **called}
        exec(self[main[0]:main[1]], main_scope)  # noqa: S102
        return main_scope.pop(self.name)  # type: ignore[no-any-return]


def _identifier(text: str, fallback: str) -> str:
    cleaned = "_".join(filter(None, "".join(c if c.isalnum() else " " for c in text).split()))
    if not cleaned or not cleaned.isidentifier() or keyword.iskeyword(cleaned):
        return fallback
    return cleaned


def emit(
    program: Program,
    name: str,
    arg_names: Sequence[str],
    args: Sequence[Any],
    static: frozenset[int] = frozenset(),
    *,
    fuse: bool = True,
    buffers: bool = True,
) -> Source:
    """Write ``program`` as a Python function ``name(*arg_names)``.

    Every instruction becomes one assignment (several for an n-ary einsum);
    a variable is deleted after its last use, so memory is freed as early as in
    a hand-written function. A long program (over PART_LINES lines) is written
    as part functions called in turn; there, values of at most SMALL_BYTES die
    with their part instead. Outputs that view an input are copied; outputs that
    depend on no input are read-only constants. Groups of elementwise
    instructions are written as one expression (:mod:`.fusion`), evaluated by
    numexpr kernels where that pays and ``fuse`` allows it. With ``buffers``,
    large intermediates are written into buffers kept from call to call
    (:func:`~.buffers.plan_buffers`).
    """
    namespace: dict[str, Any] = {**HELPERS, "weak": weak}
    lines = [f"def {name}({', '.join(arg_names)}):"]
    xp = _namespace_of(args, static)
    if xp is not np:  # another array library: its namespace is ``xp``, and the program says which
        fuse = buffers = False  # numexpr kernels and out= buffers are NumPy's
        namespace["xp"] = xp
        lines.append(f"    # xp = {getattr(xp, '__name__', xp)}")
    names: dict[int, str] = {}
    taken = set(namespace) | set(arg_names)

    counters: dict[str, int] = {}

    def fresh(prefix: str) -> str:
        i = counters.get(prefix, 0)
        while f"{prefix}{i}" in taken:
            i += 1
        counters[prefix] = i + 1
        name_ = f"{prefix}{i}"
        taken.add(name_)
        return name_

    # Input leaves: the parameter itself, or a local unpacked from a pytree.
    paths: list[tuple[str, tuple[Any, ...]]] = []
    leaf_values: list[Any] = []
    for i, (arg_name, arg) in enumerate(zip(arg_names, args)):
        if i in static:
            continue
        leaves, treedef = tree_flatten(arg)
        for leaf, path in zip(leaves, treedef.paths()):
            if is_traced_leaf(leaf):
                paths.append((arg_name, path))
                leaf_values.append(leaf)
    known: dict[str, tuple[tuple[int, ...], Any]] = {}  # shape and dtype of a local, for buffers
    input_arrays: dict[str, np.ndarray] = {}  # the arrays traced, by local name (their memory order)
    numbers = {slot for slot, leaf in zip(program.inputs, leaf_values) if type(leaf) in (int, float, complex)}
    for slot, (arg_name, path), leaf in zip(program.inputs, paths, leaf_values):
        if not path:
            names[slot] = arg_name
            if isinstance(leaf, np.ndarray):
                known[arg_name] = (leaf.shape, leaf.dtype)
                input_arrays[arg_name] = leaf
            continue
        local = _identifier(leaf_expression(arg_name, path), "leaf")
        local = local if local not in taken else fresh(local + "_")
        taken.add(local)
        lines.append(f"    {local} = {leaf_expression(arg_name, path)}")
        names[slot] = local
        if isinstance(leaf, np.ndarray):
            known[local] = (leaf.shape, leaf.dtype)
            input_arrays[local] = leaf

    def ref(slot: int) -> str:
        if slot in names:
            return names[slot]
        value = program.values[slot]
        # Python numbers (and NumPy scalars) are written in place; arrays, 0-d ones
        # included, are bound by name, so their dtype acts as it did when traced.
        text = literal(value) if not isinstance(value, np.ndarray) else None
        if text is not None:
            return text
        const = fresh("c")
        namespace[const] = value
        names[slot] = const
        return const

    # Negations are folded (the declaration says the op is a linear combination
    # ``sum_k c_k x_k``): ``names[slot]`` may hold minus the slot's value
    # (``negated``); einsums absorb the sign and sums turn it into a subtraction, so
    # ``add(x, negative(y))`` is written ``x - y``. Anything else gets the value.
    negated: set[int] = set()
    # Groups of elementwise instructions are written as one expression where their
    # result is made (fusion.py): a group stands in the list for its members.
    groups = {group.root: group for group in plan_groups(program)} if xp is np else {}
    members = {m for group in groups.values() for m in group.members}
    steps: list[Any] = [
        groups.get(i, ins) for i, ins in enumerate(program.instructions) if i not in members or i in groups
    ]
    kernel_names: set[str] = set()
    last_use: dict[int, int] = {}
    for i, ins in enumerate(steps):
        for a in (ins.leaves if isinstance(ins, Group) else ins.args):
            if not program.is_constant[a]:
                last_use[a] = i
    protected = set(program.inputs) | set(program.outputs)
    # A long program runs as part functions (_in_parts) whose locals die when each
    # part returns: there, small values are not deleted one by one, which keeps
    # the source (and CPython's compile of it) about half as long.
    small: set[int] = set()
    if len(program.instructions) > PART_LINES:
        small = {ins.out for ins in program.instructions if 0 < nbytes(ins.out_shape, ins.out_dtype) <= SMALL_BYTES}
    holders: dict[str, set[int]] = {}  # local variable -> live slots it holds
    assigned: set[str] = set()  # locals the instructions assign (the only ones deleted)

    def hold(slot: int, var: str) -> None:
        names[slot] = var
        holders.setdefault(var, set()).add(slot)

    def value_of(slot: int) -> str:
        """The slot's value itself, negating it into a new variable once if needed."""
        if slot not in negated:
            return ref(slot)
        var = fresh("v")
        old = names[slot]
        lines.append(f"    {var} = -{old}")
        holders.get(old, set()).discard(slot)
        if old in assigned and old in holders and not holders[old]:
            lines.append(f"    del {old}")
            del holders[old]
        negated.discard(slot)
        assigned.add(var)
        hold(slot, var)
        return var

    def kernels() -> str:
        """The name of the program's numexpr kernels (fusion.Kernels), chosen on first use."""
        if not kernel_names:
            name_ = "evaluate" if "evaluate" not in taken else fresh("evaluate")
            taken.add(name_)
            kernel_names.add(name_)
        return next(iter(kernel_names))

    def _emit_instruction(ins: Instruction) -> None:
        if ins.args and all(isinstance(d, type) for d in ins.dtypes):
            # Python numbers only: the implementation, as the trace and eager calls ran it
            # (NumPy's arithmetic, a weak Python number back), not Python's operators.
            var = fresh("v")
            lines.append(f"    {var} = weak({_call(ins, [value_of(a) for a in ins.args], namespace, fresh)})")
            assigned.add(var)
            hold(ins.out, var)
            return
        if ins.spec is not None:
            folded = _fold_signs(ins, program, negated)
            if folded is not None:
                kept, sign = folded
                if len(kept) == 1 and ins.spec.inputs[kept[0]] == ins.spec.output:  # a pure sign change
                    hold(ins.out, ref(ins.args[kept[0]]))
                    (negated.add if sign < 0 else negated.discard)(ins.out)
                else:
                    spec = ins.spec.with_terms([ins.spec.inputs[k] for k in kept], ins.spec.output)
                    reduced = Instruction(
                        ins.prim, tuple(ins.args[k] for k in kept), {"spec": spec}, ins.out,
                        tuple(ins.shapes[k] for k in kept), tuple(ins.dtypes[k] for k in kept),
                        ins.out_shape, ins.out_dtype,
                    )
                    operands = _scalars_as_arrays(reduced, [ref(a) for a in reduced.args], program, namespace, fresh)
                    if sign < 0 and ins.out in program.outputs:
                        operands = _negate_cheapest(reduced, operands, program, namespace, fresh)
                        sign = 1.0
                    var = fresh("v")
                    for statement in _statements(reduced, operands, var, lambda: fresh("t"), namespace, fresh):
                        lines.append(f"    {statement}")
                    assigned.add(var)
                    hold(ins.out, var)
                    if sign < 0:
                        negated.add(ins.out)
            else:
                operands = _scalars_as_arrays(ins, [value_of(a) for a in ins.args], program, namespace, fresh)
                var = fresh("v")
                for statement in _statements(ins, operands, var, lambda: fresh("t"), namespace, fresh):
                    lines.append(f"    {statement}")
                assigned.add(var)
                hold(ins.out, var)
        elif _signed_sum(ins) is not None:
            coefficients = _signed_sum(ins)
            signs = [c * (-1 if a in negated else 1) for c, a in zip(coefficients, ins.args)]  # type: ignore[arg-type]
            operands = [ref(a) for a in ins.args]
            if len(operands) == 1:  # negation: no instruction, the sign is remembered
                hold(ins.out, operands[0])
                (negated.add if signs[0] < 0 else negated.discard)(ins.out)
            else:
                var = fresh("v")
                lines.append(f"    {var} = {_signed_expression(operands, signs)}")
                assigned.add(var)
                hold(ins.out, var)
                if all(sg < 0 for sg in signs):
                    negated.add(ins.out)
        else:
            operands = [value_of(a) for a in ins.args]
            var = fresh("v")
            for statement in _statements(ins, operands, var, lambda: fresh("t"), namespace, fresh):
                lines.append(f"    {statement}")
            assigned.add(var)
            hold(ins.out, var)
    for i, ins in enumerate(steps):
        if isinstance(ins, Group):
            root = program.instructions[ins.root]
            var = fresh("v")
            written = render(
                ins, program, lambda slot: (ref(slot), slot in negated), var, fresh, namespace, kernels,
                kernels=fuse,
            )
            if written is not None:
                statements, shapes = written
                lines.extend(f"    {statement}" for statement in statements)
                known.update(shapes)
                assigned.add(var)
                hold(root.out, var)
            else:  # not writable as one expression: its members one by one
                before = set(assigned)
                for m in ins.members:
                    _emit_instruction(program.instructions[m])
                inner = sorted(assigned - before - {names[root.out]})  # the members' own variables
                for name_ in inner:
                    holders.pop(name_, None)
                if inner:
                    lines.append(f"    del {', '.join(inner)}")
            read: Sequence[int] = ins.leaves
        else:
            read = ins.args
            _emit_instruction(ins)
        if i < len(steps) - 1:
            dead = []
            for slot in read:
                if last_use.get(slot) == i and slot not in protected and slot in names:
                    var = names[slot]
                    holders.get(var, set()).discard(slot)
                    if var in assigned and var in holders and not holders[var]:
                        if slot not in small:
                            dead.append(var)
                        del holders[var]
            if dead:
                lines.append(f"    del {', '.join(sorted(dead))}")

    for slot in program.outputs:
        if slot in negated:
            value_of(slot)

    results = []
    returned: set[int] = set()
    returned_names: set[str] = set()
    for slot in program.outputs:
        if program.is_constant[slot]:
            const = fresh("out")
            namespace[const] = returned_constant(program.values[slot])
            results.append(const)
        elif slot in numbers and slot not in negated:  # a Python number input: immutable, returned as is
            results.append(ref(slot))
        elif (
            slot in returned or slot in program.aliased_outputs or names[slot] not in assigned
            or names[slot] in returned_names
        ):
            copy = f"{ref(slot)}.copy()" if xp is np else f"xp.asarray({ref(slot)}, copy=True)"
            results.append(_of_kind(copy, program.scalar_kinds.get(slot)))  # an input, a constant, or returned twice
        else:
            results.append(_of_kind(ref(slot), program.scalar_kinds.get(slot)))
        returned.add(slot)
        returned_names.add(names.get(slot, ""))
    structure = program.out_def.render(results) if program.out_def is not None else "None"
    lines = _constant_views_hoisted(lines, namespace, fresh)
    if buffers:
        lines = _with_buffers(
            lines, structure, program, names, assigned, known, namespace, taken, fresh, kernel_names, input_arrays
        )
    lines.append(f"    return {structure}")
    if name in namespace or name in taken or name in arg_names:  # ``def inv(a): v0 = inv(a)`` would call itself
        name = fresh(name + "_")
        lines[0] = f"def {name}({', '.join(arg_names)}):"
    texts = ["\n".join(part) for part in _in_parts(lines, taken - set(namespace), fresh)]
    source = Source("\n\n\n".join(texts))
    source.namespace = namespace
    source.name = name
    source.bounds = []
    start = 0
    for text in texts:
        source.bounds.append((start, start + len(text)))
        start += len(text) + 3
    return source




def _is_constant_view(node: Any, namespace: dict[str, Any]) -> bool:
    """The name of a constant array of the program, or a view of one (``c0.T.reshape(...)``)."""
    import ast

    if isinstance(node, ast.Name):
        return isinstance(namespace.get(node.id), np.ndarray)
    if isinstance(node, ast.Attribute) and node.attr in VIEW_ATTRIBUTES:
        return _is_constant_view(node.value, namespace)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in VIEW_METHODS
            and not node.keywords and all(isinstance(a, (ast.Constant, ast.Tuple)) for a in node.args)):
        return _is_constant_view(node.func.value, namespace)
    return False


def returned_constant(value: Any) -> Any:
    """What a program returns for a result that depends on no input: a read-only copy of a
    NumPy value (each call returns the same one), anything else (a string, another
    library's array) as it is."""
    if not arrays.is_numpy(value):
        return value
    frozen = np.array(value, copy=True)
    frozen.flags.writeable = False
    return frozen


def _of_kind(text: str, kind: type | None) -> str:
    """``text`` as a value of ``kind``: a 0-d ndarray (``np.asarray``) or a NumPy scalar type."""
    if kind is None:
        return text
    if kind is np.ndarray:
        return f"np.asarray({text})"
    return f"np.{np.dtype(kind).name}({text})"


def as_kind(value: Any, kind: type | None) -> Any:
    """``value`` as a value of ``kind`` (see :func:`_of_kind`), for a stepped program."""
    if kind is None or type(value) is kind:
        return value
    return np.asarray(value) if kind is np.ndarray else kind(value)


def _constant_views_hoisted(lines: list[str], namespace: dict[str, Any], fresh: Callable[[str], str]) -> list[str]:
    """Views (transposes, reshapes) of constant arrays, evaluated once when the program is
    written: a plan's ``c0.transpose(1, 0, 2).reshape((6, 4))`` then costs nothing per call."""
    import ast

    constants = {name for name, value in namespace.items() if isinstance(value, np.ndarray)}
    if not constants:
        return lines
    out = []
    for line in lines:
        if "(" not in line or line.lstrip().startswith(("#", "def ", "del ")) or constants.isdisjoint(
            _WORD.findall(line)
        ):
            out.append(line)
            continue
        code, _, comment = line.partition("  # ")
        try:
            tree = ast.parse(code.strip())
        except SyntaxError:
            out.append(line)
            continue
        spans: list[tuple[int, int]] = []
        for node in ast.walk(tree):
            end = node.end_col_offset if isinstance(node, (ast.Attribute, ast.Call)) else None
            if end is not None and _is_constant_view(node, namespace) and not any(  # type: ignore[arg-type]
                low <= node.col_offset and end <= high for low, high in spans  # type: ignore[attr-defined]
            ):
                spans.append((node.col_offset, end))  # type: ignore[attr-defined]
        if not spans:
            out.append(line)
            continue
        text = code.strip()
        for start, stop in sorted(spans, reverse=True):
            value = eval(text[start:stop], {"np": np}, namespace)  # noqa: S307 (views of our own constants)
            name = fresh("c")
            namespace[name] = value
            text = text[:start] + name + text[stop:]
        out.append(f"    {text}" + (f"  # {comment}" if comment else ""))
    return out


def _with_buffers(
    lines: list[str], returned: str, program: Program, names: dict[int, str], assigned: set[str],
    known: dict[str, Any], namespace: dict[str, Any], taken: set[str], fresh: Callable[[str], str],
    kernels: set[str], inputs: dict[str, Any],
) -> list[str]:
    """``lines`` (header and body) with large intermediates written into kept buffers:
    a call takes a set from the pool named ``buffers`` and gives it back before returning."""
    if not any(nbytes(ins.out_shape, ins.out_dtype) >= MIN_BYTES for ins in program.instructions):
        return lines  # nothing large enough to keep: no analysis to pay for
    known = dict(known)
    for ins in program.instructions:
        var = names.get(ins.out)
        if var in assigned and ins.out_shape is not None:
            known[var] = (ins.out_shape, ins.out_dtype)
    for const, value in namespace.items():
        if isinstance(value, np.ndarray):
            known[const] = (value.shape, value.dtype)

    def local(prefix: str) -> str:
        if prefix in taken:
            return fresh(prefix)
        taken.add(prefix)
        return prefix

    reads = set(_WORD.findall(returned))
    strided = {n for n, v in {**namespace, **inputs}.items() if isinstance(v, np.ndarray) and not v.flags.c_contiguous}
    body, pool, b = plan_buffers(lines[1:], known, kernels, reads, local, not_c_ordered=strided)
    if pool is None:
        return lines
    pool_name = local("buffers")
    namespace[pool_name] = pool
    return [lines[0], f"    {b} = {pool_name}.take()", *body, f"    {pool_name}.give({b})"]


#: A function body longer than this is split into part functions (CPython compiles
#: one giant function slowly and with much memory; parts compile one at a time).
PART_LINES = 2000
SMALL_BYTES = 4096  # at most PART_LINES of these live at once in a part: 8 MiB
_WORD = re.compile(r"(?!\d)\w+")  # any identifier, non-ASCII ones included (and words in strings)


def _in_parts(lines: list[str], local_names: set[str], fresh: Callable[[str], str]) -> list[list[str]]:
    """Split ``def f(...):`` + body into part functions of at most PART_LINES lines.

    Each part takes the variables it reads that earlier parts made, and returns
    those that later parts or the return statement read; the main function calls
    the parts in order and deletes what no later part needs.
    """
    header, body = lines[0], lines[1:]
    if len(body) <= PART_LINES:
        return [lines]

    def found(code: str) -> tuple[str, ...]:  # sorted; tuples, as a long program has many lines
        return tuple(sorted(local_names.intersection(_WORD.findall(code))))

    def names_in(line: str) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
        code = line.split("#", 1)[0] if "#" in line else line
        stripped = code.strip()
        if not stripped:
            return None, (), ()
        if stripped.startswith("del "):
            return None, (), found(stripped[4:])
        defined = None
        if " = " in stripped:
            target, code = stripped.split(" = ", 1)
            defined = target if target.isidentifier() else None
        return defined, found(code), ()

    analysed = [names_in(line) for line in body]
    chunks = [list(range(i, min(i + PART_LINES, len(body) - 1))) for i in range(0, len(body) - 1, PART_LINES)]
    chunks.append([len(body) - 1])  # the return statement stays in the main function
    last_chunk: dict[str, int] = {}  # the last chunk that reads each name
    for c, chunk in enumerate(chunks):
        for i in chunk:
            for n in analysed[i][1]:
                last_chunk[n] = c
    dying: dict[int, list[str]] = {}  # chunk -> names read for the last time there
    for n, c in last_chunk.items():
        dying.setdefault(c, []).append(n)
    parts: list[list[str]] = []
    main = [header]
    held: set[str] = set()  # what the main function holds besides its parameters
    for c, chunk in enumerate(chunks[:-1]):
        defined_here: set[str] = set()
        needed: dict[str, None] = {}  # in order of first read
        part_lines: list[str] = []
        for i in chunk:
            defined, used, deleted = analysed[i]
            for n in used:
                if n not in defined_here:
                    needed.setdefault(n)
            if deleted:  # only what this part itself holds is deleted here
                mine = [n for n in deleted if n in defined_here or n in needed]
                defined_here.difference_update(deleted)
                if mine:
                    part_lines.append(f"    del {', '.join(mine)}")
                continue
            part_lines.append(body[i])
            if defined:
                defined_here.add(defined)
        produced = sorted(n for n in defined_here if last_chunk.get(n, -1) > c)
        part = fresh("_part")
        parts.append([f"def {part}({', '.join(needed)}):", *part_lines,
                      f"    return ({''.join(n + ', ' for n in produced)})"])
        call = f"{part}({', '.join(needed)})"
        main.append(f"    {', '.join(produced)}, = {call}" if produced else f"    {call}")
        held |= set(produced)
        dead = sorted({n for n in dying.get(c, ()) if n in held} | {n for n in produced if n not in last_chunk})
        if dead:
            main.append(f"    del {', '.join(dead)}")
            held -= set(dead)
    main.append(body[-1])
    return [*parts, main]


def _signed_sum(ins: Instruction) -> tuple[float, ...] | None:
    """The coefficients of an op declared as the linear combination ``sum_k c_k x_k``
    (``add``: (1, 1); ``negative``: (-1,)), when all are ±1 and NumPy's ``+`` and
    ``-`` give the op's broadcasting; else None."""
    coefficients = getattr(ins.prim.declaration, "combination", None)
    if coefficients is None or any(c not in (1, -1) for c in coefficients) or ins.params:
        return None
    return tuple(coefficients)


def _signed_expression(operands: list[str], signs: list[float]) -> str:
    """``a + b - c``: a positive term first when there is one (``-a - b`` otherwise
    is written ``a + b`` and the caller remembers the sign)."""
    if all(sg < 0 for sg in signs):
        signs = [1.0] * len(signs)
    order = sorted(range(len(operands)), key=lambda k: signs[k] < 0)
    text = operands[order[0]]
    for k in order[1:]:
        text += f" {'-' if signs[k] < 0 else '+'} {operands[k]}"
    return text


def _fold_signs(ins: Instruction, program: Program, negated: set[int]) -> tuple[list[int], float] | None:
    """For a core einsum: the operands left after dropping constant factors of ±1,
    and the sign of the product (including operands held negated). None when
    nothing is to fold."""
    spec = ins.spec
    assert spec is not None
    kept: list[int] = []
    sign = 1.0
    for k, a in enumerate(ins.args):
        value = program.values[a] if program.is_constant[a] else None
        if (
            program.is_constant[a] and spec.inputs[k] == "" and _is_unit(value)
            and _same_dtype_without(ins, k)
        ):
            sign *= float(np.sign(np.asarray(value).real))
            continue
        if a in negated:
            sign = -sign
        kept.append(k)
    if len(kept) == len(ins.args) and not any(a in negated for a in ins.args):
        return None
    if not kept:
        return None
    return kept, sign


def _negate_cheapest(
    ins: Instruction, operands: list[str], program: Program, namespace: dict[str, Any], fresh: Callable[[str], str]
) -> list[str]:
    """Operands of an einsum with one negated: a constant array if there is one (negated
    once, at emit time), else the smallest operand."""
    out = list(operands)
    for k, a in enumerate(ins.args):
        value = program.values[a]
        if program.is_constant[a] and isinstance(value, np.ndarray) and value.ndim:
            const = fresh("c")
            namespace[const] = -value
            out[k] = const
            return out
    k = min(range(len(operands)), key=lambda j: int(np.prod(ins.shapes[j], dtype=np.int64)))
    out[k] = f"(-{operands[k]})"
    return out


def _is_unit(value: Any) -> bool:
    try:
        number = np.asarray(value)
    except Exception:  # noqa: BLE001
        return False
    return number.ndim == 0 and number.dtype.kind in "iuf" and abs(float(number)) == 1.0


def _same_dtype_without(ins: Instruction, k: int) -> bool:
    """Dropping operand k leaves the einsum's result dtype unchanged."""
    def dtype(ds: Sequence[Any], values: Sequence[Any]) -> np.dtype:
        return np.result_type(*[d(0) if isinstance(d, type) else np.dtype(d) for d in ds])

    rest = [d for j, d in enumerate(ins.dtypes) if j != k]
    if not rest:
        return False
    try:
        return bool(dtype(ins.dtypes, ()) == dtype(rest, ()))
    except TypeError:  # dtypes of another library: keep the factor
        return False


def _scalars_as_arrays(
    ins: Instruction, operands: list[str], program: Program, namespace: dict[str, Any], fresh: Callable[[str], str]
) -> list[str]:
    """Python-number constants of an einsum whose plan needs arrays, as 0-d arrays of the
    dtype NumPy's weak-scalar rules give them (so float32 stays float32)."""
    if plan(ins.spec, ins.shapes, False, _library(namespace)).accepts_scalars:  # type: ignore[arg-type]
        return operands
    arrays = [np.dtype(d) for d in ins.dtypes if not isinstance(d, type)]
    scalars = [program.values[a] if program.is_constant[a] else d(0) for a, d in zip(ins.args, ins.dtypes) if isinstance(d, type)]
    dtype = np.result_type(*arrays, *scalars)
    out = list(operands)
    for k, (a, d) in enumerate(zip(ins.args, ins.dtypes)):
        if not isinstance(d, type):
            continue
        if program.is_constant[a]:
            const = fresh("c")
            namespace[const] = np.asarray(program.values[a], dtype=dtype)
            out[k] = const
        else:  # a Python number passed as an input
            out[k] = f"np.asarray({operands[k]}, dtype=np.{dtype.name})"
    return out


def _statements(
    ins: Instruction,
    operands: list[str],
    var: str,
    temporary: Callable[[], str],
    namespace: dict[str, Any],
    fresh: Callable[[str], str],
) -> list[str]:
    """The assignment(s) of one instruction, read from its primitive's declaration."""
    spec = ins.spec
    if spec is not None:
        integer = any(arrays.dtype_kind(d) in "iub" for d in ins.dtypes if not isinstance(d, type))
        step = plan(spec, ins.shapes, integer, _library(namespace))
        namespace.update(step.namespace)
        written = step.lines(operands, var, temporary)
        terms, out = relabel_terms(spec.inputs, spec.output)
        subscripts = f"{','.join(terms)}->{out}"
        if len(written) > 1:
            steps = "pairwise steps" if len(spec.inputs) > 2 else "steps"
            return [f"# {subscripts}, in {steps}:", *written]
        if "np.einsum(" not in written[0] and 'contract("' not in written[0] and not _is_plain_product(spec):
            written[0] += f"  # {subscripts}"
        return written
    source = ins.prim.source
    text = None
    xp = "np" if "xp" not in namespace else "xp"
    if isinstance(source, str):
        text = source.format(*operands, xp=xp, **{k: literal(v) for k, v in ins.params.items()})
    elif callable(source):
        text = source(operands, ins.params)
    if text is None or (xp == "xp" and _NUMPY_ONLY.search(text)):
        text = _call(ins, operands, namespace, fresh)  # the implementation works in every library
    return [f"{var} = {text}"]


#: Source that only NumPy understands: ``np.`` calls and ndarray methods (another
#: library's program calls the op's implementation instead).
_NUMPY_ONLY = re.compile(r"\bnp\.|(?<!\bxp)\.[A-Za-z_]\w*\(")


def _namespace_of(args: Sequence[Any], static: frozenset[int]) -> Any:
    """The array namespace of a program's array inputs (NumPy when there are none)."""
    leaves: list[Any] = []
    for i, arg in enumerate(args):
        if i not in static:
            leaves.extend(leaf for leaf in tree_flatten(arg)[0] if is_traced_leaf(leaf))
    return arrays.array_namespace(*leaves)


def _library(namespace: dict[str, Any]) -> str:
    return "numpy" if "xp" not in namespace else arrays.library_name(namespace["xp"])


def _is_plain_product(spec: Spec) -> bool:
    """A product or copy with no summation: the subscripts add nothing to ``*``."""
    present = set("".join(spec.inputs))
    return set(spec.output) == present and len(set(spec.output)) == len(spec.output)


def _call(ins: Instruction, operands: list[str], namespace: dict[str, Any], fresh: Callable[[str], str]) -> str:
    """``name(operands, key=value)``: the primitive's implementation, bound by name."""
    ident = _identifier(ins.prim.name, "primitive")
    if namespace.get(ident, ins.prim.impl) is not ins.prim.impl:
        ident = fresh(ident + "_")
    namespace[ident] = ins.prim.impl
    rendered = list(operands)
    for key, value in ins.params.items():
        text = literal(value)
        if text is None:
            text = fresh(f"{ident}_{key}_")
            namespace[text] = value
        rendered.append(f"{key}={text}")
    return f"{ident}({', '.join(rendered)})"
