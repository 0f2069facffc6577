"""``ea.compile`` and ``ea.codegen``: trace once, replay a straight-line program.

Tracing runs the function (which may be ``ea.grad(f)``, ``ea.hessian(f)``, ...)
once on boxes of a *staging* trace, the lowest level of all. Every primitive
call that depends on an input, forward pass and backward pass alike, is
recorded as an instruction ``slot = call(*slots)``; anything that depends on no
input (a delta seed, ``ones`` for the cotangent of a sum) is computed once and
kept as a constant. Einsum instructions hold their cached contraction plan, so
replaying is a loop of NumPy calls with no tape, no parsing and no planning.

A program is keyed by the input signature: pytree structure, shapes and dtypes
of the array leaves, and the values of Python scalars and keyword arguments
(which are constants of the program). A new signature re-traces; new *values*
never do. Python control flow on traced values is therefore frozen at trace
time: converting a traced value to ``bool`` (``if x > 0:``) raises a clear
error instead of silently baking in one branch. Use ``ea.where`` instead.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from ._algebra import pairwise_steps, substitute
from ._backend import contraction_path, plan
from ._names import parameter_names
from ._pytree import TreeDef, tree_flatten, tree_unflatten
from ._tape import STAGE, Tensor, new_trace

__all__ = ["compile", "codegen", "Program"]


class Instruction:
    """One recorded primitive call: ``slots[out] = call(*slots[args])``."""

    __slots__ = ("prim", "args", "params", "out", "call", "shapes", "frees")

    def __init__(self, prim: Any, args: tuple[int, ...], params: dict, out: int, shapes: tuple) -> None:
        self.prim = prim
        self.args = args
        self.params = params
        self.out = out
        self.shapes = shapes
        self.frees: tuple[int, ...] = ()
        if prim.name == "einsum":
            self.call = plan(params["spec"], shapes)
        elif params:
            self.call = functools.partial(prim.impl, **params)
        else:
            self.call = prim.impl


class Program:
    """A straight-line program: inputs, constants, instructions, outputs."""

    def __init__(self) -> None:
        self.values: list[Any] = []  # constants (None for variable slots)
        self.is_constant: list[bool] = []
        self.inputs: list[int] = []
        self.instructions: list[Instruction] = []
        self.outputs: list[int] = []
        self.in_def: TreeDef | None = None
        self.out_def: TreeDef | None = None
        self.trace: Any = None

    # -- recording ------------------------------------------------------------------

    def _slot(self, value: Any, constant: bool) -> int:
        self.values.append(value if constant else None)
        self.is_constant.append(constant)
        return len(self.values) - 1

    def _ref(self, x: Any) -> int:
        if isinstance(x, Tensor) and x.trace is self.trace:
            return x.node  # type: ignore[return-value]
        return self._slot(x, True)

    def record(self, prim: Any, args: tuple, ans: Any, params: dict) -> Tensor:
        if prim.name == "einsum" and len(args) == 2:
            unchanged = self._times_ones(args, ans, params["spec"])
            if unchanged is not None:
                return unchanged
        refs = tuple(self._ref(a) for a in args)
        shapes = tuple(np.shape(a.value if isinstance(a, Tensor) else a) for a in args)
        out = self._slot(None, False)
        self.instructions.append(Instruction(prim, refs, params, out, shapes))
        return Tensor(ans, self.trace, node=out)  # type: ignore[arg-type]

    def _times_ones(self, args: tuple, ans: Any, spec: Any) -> Tensor | None:
        """``t * 1`` where the ones are a constant (the broadcast cotangent of a sum):
        the product is ``t`` itself, so record nothing."""
        for k in (0, 1):
            t, c = args[k], args[1 - k]
            if (
                isinstance(t, Tensor) and t.trace is self.trace
                and not (isinstance(c, Tensor) and c.trace is self.trace)
                and spec.inputs[k] == spec.output
                and set(spec.inputs[1 - k]) <= set(spec.output)
                and np.shape(t.value) == np.shape(ans)
                and np.result_type(t.value) == np.result_type(ans)
                and np.all(np.asarray(c) == 1)
            ):
                return t
        return None

    def fuse(self, max_operands: int = 6) -> None:
        """Merge each einsum whose result feeds exactly one other einsum into it.

        The merged einsum (:func:`~einsumad._algebra.substitute`) is planned as a
        whole, so its optimised path can reassociate: a big tensor scaled by
        several vectors is scaled once by their product, and a product followed
        by a sum becomes one dot product.
        """
        uses: dict[int, int] = {}
        for ins in self.instructions:
            for a in ins.args:
                uses[a] = uses.get(a, 0) + 1
        for a in self.outputs:
            uses[a] = uses.get(a, 0) + 2
        producer_of = {ins.out: ins for ins in self.instructions if ins.prim.name == "einsum"}
        for ins in self.instructions:
            if ins.prim.name != "einsum":
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
                    fused = substitute(ins.params["spec"], k, producer.params["spec"])
                    if fused is None:
                        continue
                    shapes = ins.shapes[:k] + producer.shapes + ins.shapes[k + 1 :]
                    fused = _sized(fused, shapes)
                    separate = _loop_cost(ins.params["spec"], ins.shapes) + _loop_cost(
                        producer.params["spec"], producer.shapes
                    )
                    if _loop_cost(fused, shapes) >= separate:
                        continue  # nothing to reassociate: keep the two readable steps
                    ins.args = ins.args[:k] + producer.args + ins.args[k + 1 :]
                    ins.shapes = shapes
                    ins.params = {"spec": fused}
                    ins.call = plan(fused, shapes)
                    for a in producer.args:
                        uses[a] = uses.get(a, 0) + 1
                    uses[slot] = 0  # the producer is now dead code
                    changed = True
                    break

    def finish(self) -> None:
        """Drop instructions no output needs; free each slot after its last use."""
        self.fuse()
        needed = set(self.outputs)
        kept = []
        for ins in reversed(self.instructions):
            if ins.out in needed:
                kept.append(ins)
                needed.update(ins.args)
        kept.reverse()
        self.instructions = kept
        last_use: dict[int, int] = {}
        for i, ins in enumerate(kept):
            for a in ins.args:
                if not self.is_constant[a]:
                    last_use[a] = i
        protected = set(self.outputs) | set(self.inputs)
        frees: dict[int, list[int]] = {}
        for slot, i in last_use.items():
            if slot not in protected:
                frees.setdefault(i, []).append(slot)
        for i, ins in enumerate(kept):
            ins.frees = tuple(frees.get(i, ()))

    # -- replaying ------------------------------------------------------------------

    def build_replay(self, traced_inputs: Sequence[Any], traced_outputs: Sequence[Any]) -> None:
        """Turn the instruction list into one straight-line Python function.

        Each instruction becomes ``s7 = f3(s2, a0)`` calling its cached plan, with
        ``del`` after a slot's last use, so replaying costs a function call per
        instruction and nothing else. Outputs that are, or view, an input are
        copied; outputs that depend on no input are constants, handed out as
        read-only views (a pure function's constant result is shared, as in JAX).
        """
        namespace: dict[str, Any] = {"np": np}
        names: dict[int, str] = {slot: f"a{i}" for i, slot in enumerate(self.inputs)}

        def name(slot: int) -> str:
            if slot not in names:
                names[slot] = f"k{slot}"
                namespace[names[slot]] = self.values[slot]
            return names[slot]

        lines = [f"def replay({', '.join(f'a{i}' for i in range(len(self.inputs)))}):"]
        for i, ins in enumerate(self.instructions):
            namespace[f"f{i}"] = ins.call
            args = ", ".join(name(a) for a in ins.args)
            lines.append(f"    s{ins.out} = f{i}({args})")
            names[ins.out] = f"s{ins.out}"
            if ins.frees:
                lines.append(f"    del {', '.join(f's{slot}' for slot in ins.frees)}")
        input_roots = {id(_root(x)) for x in traced_inputs}
        results = []
        returned: set[int] = set()
        for j, (slot, value) in enumerate(zip(self.outputs, traced_outputs)):
            repeated = slot in returned
            returned.add(slot)
            if self.is_constant[slot]:
                frozen = np.array(self.values[slot], copy=True)
                frozen.flags.writeable = False
                namespace[f"out{j}"] = frozen
                results.append(f"out{j}")
            elif repeated or id(_root(value)) in input_roots or id(_root(value)) in self._constant_roots or not (
                isinstance(value, np.ndarray) and value.flags.writeable
            ):
                results.append(f"np.array({name(slot)}, copy=True)")
            else:
                results.append(name(slot))
        lines.append(f"    return {_structure_source(self.out_def, iter(results))}")
        exec("\n".join(lines), namespace)  # noqa: S102 (our own generated code)
        self.replay = namespace["replay"]
        self.replay_source = "\n".join(lines)

    def run(self, leaves: Sequence[Any]) -> Any:
        """Replay on the array leaves of the arguments; returns the output pytree."""
        return self.replay(*leaves)

    @functools.cached_property
    def _constant_roots(self) -> set[int]:
        return {id(_root(v)) for v, c in zip(self.values, self.is_constant) if c and isinstance(v, np.ndarray)}

    def __len__(self) -> int:
        return len(self.instructions)


def _loop_cost(spec: Any, shapes: tuple) -> int:
    """Multiply-adds of an einsum: the loop size of each pairwise step of its path."""
    sizes = dict(_sized(spec, shapes).sizes)
    if len(spec.inputs) <= 2:
        steps = [spec]
    else:
        steps = [step for _, step in pairwise_steps(spec, contraction_path(spec, shapes))]
    return sum(int(np.prod([sizes[x] for x in set("".join(step.inputs) + step.output)], dtype=np.int64)) for step in steps)


def _sized(spec: Any, shapes: tuple) -> Any:
    """``spec`` with every symbol's size read from the operand shapes."""
    sizes = dict(spec.sizes)
    for term, shape in zip(spec.inputs, shapes):
        sizes.update(zip(term, shape))
    return type(spec)(spec.inputs, spec.output, tuple(sorted(sizes.items())))


def _root(value: Any) -> Any:
    """The array that owns ``value``'s memory."""
    while isinstance(getattr(value, "base", None), np.ndarray):
        value = value.base
    return value


def _split_leaves(leaves: list[Any]) -> tuple[list[int], tuple]:
    """Positions of array leaves (traced), and the static key of the rest."""
    arrays, static = [], []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, (bool, int, float, complex, str, type(None))):
            static.append((i, type(leaf).__name__, leaf))
        else:
            arrays.append(i)
    return arrays, tuple(static)


def _trace(fun: Callable, args: tuple, kwargs: dict) -> Program:
    program = Program()
    leaves, in_def = tree_flatten(args)
    array_positions, _ = _split_leaves(leaves)
    with new_trace(STAGE, program.record) as trace:
        program.trace = trace
        boxed = list(leaves)
        for i in array_positions:
            value = np.asarray(leaves[i])
            slot = program._slot(None, False)
            program.inputs.append(slot)
            boxed[i] = Tensor(value, trace, node=slot)  # type: ignore[arg-type]
        out = fun(*tree_unflatten(in_def, boxed), **kwargs)
    out_leaves, program.out_def = tree_flatten(out)
    program.in_def = in_def
    program.outputs = [program._ref(o) for o in out_leaves]
    program.trace = None
    program.finish()
    traced_outputs = [o.value if isinstance(o, Tensor) and o.trace is trace else o for o in out_leaves]
    program.build_replay([np.asarray(leaves[i]) for i in array_positions], traced_outputs)
    return program


_STATIC = (bool, int, float, complex, str, type(None))


class _TracedArgument(Exception):
    """An argument is already traced: ``compile`` is inside a transformation."""


def _signature(args: tuple) -> tuple[Any, list[Any]]:
    """One walk over the arguments: the signature key and the array leaves.

    The key holds the pytree structure, the shape and dtype of every array leaf
    and the value of every Python scalar; the leaves come in ``tree_flatten``
    order, so they line up with the program's inputs.
    """
    arrays: list[Any] = []
    append = arrays.append

    def walk(node: Any) -> Any:
        kind = type(node)
        if kind is np.ndarray:
            append(node)
            return (node.shape, node.dtype)
        if kind is tuple or kind is list:
            return (kind, tuple([walk(c) for c in node]))
        if isinstance(node, dict):
            keys = tuple(sorted(node))
            return (dict, keys, tuple([walk(node[k]) for k in keys]))
        if isinstance(node, (list, tuple)) and not hasattr(node, "_fields"):
            return (kind, tuple([walk(c) for c in node]))
        if isinstance(node, _STATIC):
            return (kind, node)
        if isinstance(node, Tensor):
            raise _TracedArgument
        array = np.asarray(node)
        append(array)
        return (array.shape, array.dtype)

    return walk(args), arrays


def compile(fun: Callable) -> Callable:  # noqa: A001 (the name users expect)
    """Trace ``fun`` once per input signature and replay it without a tape.

    ``fun`` may be any function of arrays, including a transformed one:
    ``ea.compile(ea.grad(loss))``, ``ea.compile(ea.value_and_grad(loss))``,
    ``ea.compile(ea.hessian(f))``. The first call with a new signature (pytree
    structure, shapes, dtypes; values of Python scalars and keyword arguments)
    records every primitive call into a straight-line program of cached
    contractions and elementwise calls; later calls replay it.

    Python control flow on traced values is frozen at trace time; converting
    a traced value to ``bool`` raises ``TypeError`` (use ``ea.where``).

    >>> import numpy as np, einsumad as ea
    >>> loss = lambda W, x: ea.sum(ea.tanh(ea.einsum("ij,j->i", W, x)))
    >>> fast = ea.compile(ea.grad(loss))
    >>> W, x = np.ones((2, 3)), np.zeros(3)
    >>> np.allclose(fast(W, x), ea.grad(loss)(W, x))
    True
    >>> fast.cache_size()
    1
    """
    cache: dict[Any, Program] = {}

    @functools.wraps(fun)
    def compiled(*args: Any, **kwargs: Any) -> Any:
        try:
            structure, arrays = _signature(args)
        except _TracedArgument:
            return fun(*args, **kwargs)  # inside a transformation: nothing to replay
        key = (structure, tuple(sorted(kwargs.items()))) if kwargs else structure
        try:
            program = cache.get(key)
        except TypeError:  # an unhashable keyword argument: trace every call
            return _trace(fun, args, kwargs).replay(*arrays)
        if program is None:
            program = cache[key] = _trace(fun, args, kwargs)
        return program.replay(*arrays)

    compiled.cache_size = lambda: len(cache)  # type: ignore[attr-defined]
    compiled.programs = cache  # type: ignore[attr-defined]
    return compiled


# ================================================================= code generation


class Source(str):
    """Generated Python source; ``.function()`` executes it and returns the function.

    ``.namespace`` holds what the source refers to besides NumPy: large constant
    arrays and primitives with no NumPy spelling.
    """

    namespace: dict[str, Any]
    name: str

    def function(self) -> Callable:
        scope = dict(self.namespace)
        exec(str(self), scope)  # noqa: S102 (our own generated code)
        return scope[self.name]


def codegen(fun: Callable, *args: Any, **kwargs: Any) -> Source:
    """The straight-line NumPy program that :func:`compile` replays, as source code.

    For ``ea.grad(loss)`` this is the backward pass a person would write by
    hand: the transposes appear as swapped einsum subscripts.

    >>> import numpy as np, einsumad as ea
    >>> def loss(W, x):
    ...     return ea.sum(ea.einsum("ij,j->i", W, x) ** 2)
    >>> print(ea.codegen(ea.grad(loss, argnums=1), np.ones((2, 3)), np.ones(3)))
    def grad_loss(W, x):
        v0 = np.einsum("ij,j->i", W, x)
        v1 = v0 * 2
        v2 = np.einsum("i,ij->j", v1, W)
        return v2
    """
    program = _trace(fun, args, kwargs)
    return _render(program, fun, args)


def _param_names(fun: Callable, count: int) -> list[str]:
    names = parameter_names(fun, count, lambda i: f"arg{i}")
    return [n if n.isidentifier() else f"arg{i}" for i, n in enumerate(names)]


def _render(program: Program, fun: Callable, args: tuple) -> Source:
    import einsumad

    namespace: dict[str, Any] = {"np": np, "ea": einsumad}
    base = getattr(fun, "__name__", "program")
    name = base if base.isidentifier() else "program"
    transform = getattr(fun, "_einsumad_transform", None)
    if transform:
        name = f"{transform}_{name}" if name != "program" else transform
    arg_names = _param_names(fun, len(args))
    lines = [f"def {name}({', '.join(arg_names)}):"]

    # Names for the input leaves, unpacking pytrees.
    names: dict[int, str] = {}
    leaf_exprs: list[str] = []
    for arg_name, arg in zip(arg_names, args):
        leaf_exprs.extend(_leaf_paths(arg, arg_name))
    leaves, _ = tree_flatten(args)
    array_positions, _ = _split_leaves(leaves)
    for slot, position in zip(program.inputs, array_positions):
        expr = leaf_exprs[position]
        if expr.isidentifier():
            names[slot] = expr
        else:
            local = "_".join(filter(None, "".join(c if c.isalnum() else " " for c in expr).split()))
            lines.append(f"    {local} = {expr}")
            names[slot] = local

    counter = {"const": 0}

    def ref(slot: int) -> str:
        if slot in names:
            return names[slot]
        value = program.values[slot]
        literal = _literal(value)
        if literal is not None:
            return literal
        counter["const"] += 1
        const_name = f"c{counter['const'] - 1}"
        namespace[const_name] = value
        names[slot] = const_name
        return const_name

    for i, ins in enumerate(program.instructions):
        var = f"v{i}"
        expr = _expression(ins, [ref(a) for a in ins.args], namespace)
        lines.append(f"    {var} = {expr}")
        names[ins.out] = var
    outputs = [ref(s) for s in program.outputs]
    lines.append(f"    return {_structure_source(program.out_def, iter(outputs))}")
    source = Source("\n".join(lines))
    source.namespace = namespace
    source.name = name
    return source


def _leaf_paths(tree: Any, prefix: str) -> list[str]:
    if isinstance(tree, dict):
        return [p for k in sorted(tree) for p in _leaf_paths(tree[k], f"{prefix}[{k!r}]")]
    if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
        return [p for i, c in enumerate(tree) for p in _leaf_paths(c, f"{prefix}[{i}]")]
    if tree is None:
        return []
    return [prefix]


def _structure_source(treedef: TreeDef | None, outputs: Any) -> str:
    if treedef is None or treedef.kind == "leaf":
        return next(outputs)
    if treedef.kind == "none":
        return "None"
    if treedef.kind == "dict":
        items = ", ".join(f"{k!r}: {_structure_source(c, outputs)}" for k, c in zip(treedef.keys, treedef.children))
        return "{" + items + "}"
    parts = [_structure_source(c, outputs) for c in treedef.children]
    if treedef.kind == "list":
        return "[" + ", ".join(parts) + "]"
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _literal(value: Any) -> str | None:
    """Source for a small constant, or None when it belongs in the namespace."""
    if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
        return repr(value)
    if isinstance(value, (np.floating, np.integer)):
        return repr(value.item())
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fi":
        if value.dtype == np.float64 or value.dtype.kind == "i":
            return repr(value.item())
        return f"np.{value.dtype.name}({value.item()!r})"
    return None


_INFIX = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "power": "**",
          "less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=",
          "equal": "==", "not_equal": "!="}
_NUMPY_UNARY = {"exp", "log", "tanh", "sin", "cos", "sqrt", "square", "abs", "sign", "negative"}


def _expression(ins: Instruction, args: list[str], namespace: dict[str, Any]) -> str:
    name = ins.prim.name
    params = ins.params
    if name == "einsum":
        return _einsum_source(params["spec"], args, ins.shapes)
    if name in _INFIX and len(args) == 2 and not params:
        return f"{args[0]} {_INFIX[name]} {args[1]}"
    if name == "negative":
        return f"-{args[0]}"
    if name in _NUMPY_UNARY and len(args) == 1 and not params:
        return f"np.{name}({args[0]})"
    if name == "reciprocal":
        return f"1 / {args[0]}"
    if name == "relu":
        return f"np.maximum({args[0]}, 0)"
    if name == "where":
        return f"np.where({', '.join(args)})"
    if name == "reshape":
        return f"{args[0]}.reshape({tuple(params['shape'])!r})"
    if name == "astype":
        return f"{args[0]}.astype(np.{np.dtype(params['dtype']).name})"
    if name == "getitem" and not params.get("nbatch") and _index_source(params["index"]) is not None:
        return f"{args[0]}[{_index_source(params['index'])}]"
    # Anything else: call the primitive's own implementation by name.
    ident = "".join(c if c.isalnum() else "_" for c in name) or "primitive"
    namespace.setdefault(ident, ins.prim.impl)
    rendered = list(args)
    for key, value in params.items():
        literal = _literal(value)
        if literal is None and isinstance(value, (tuple, str, type(None))):
            try:
                if eval(repr(value), {"np": np}) == value:  # noqa: S307 (simple literals only)
                    literal = repr(value)
            except Exception:  # noqa: BLE001
                literal = None
        if literal is None:
            const = f"{ident}_{key}"
            namespace[const] = value
            literal = const
        rendered.append(f"{key}={literal}")
    return f"{ident}({', '.join(rendered)})"


def _index_source(index: tuple) -> str | None:
    parts = []
    for item in index:
        if isinstance(item, slice):
            text = ":".join("" if v is None else str(v) for v in (item.start, item.stop, item.step))
            parts.append(text[:-1] if text.endswith(":") and item.step is None else text)
        elif item is None:
            parts.append("None")
        elif isinstance(item, (int, np.integer)):
            parts.append(str(int(item)))
        else:
            return None
    return ", ".join(parts) if parts else "()"


def _einsum_source(spec: Any, args: list[str], shapes: tuple) -> str:
    from ._algebra import broadcast_spec
    from ._subscripts import Spec

    symbols = dict.fromkeys("".join(spec.inputs) + spec.output)
    letters = {s: chr(ord("i") + k) if k < 18 else "abcdefgh"[k - 18] if k < 26 else s for k, s in enumerate(symbols)}
    if len(symbols) <= 52 and not all(s.isalpha() and s.isascii() for s in letters.values()):
        letters = {s: "ijklmnopqrstuvwxyzabcdefghIJKLMNOPQRSTUVWXYZABCDEFGH"[k] for k, s in enumerate(symbols)}
    inputs = [
        "".join(letters[s] for s in t) for t in spec.inputs
    ]
    output = "".join(letters[s] for s in spec.output)
    present = set("".join(spec.inputs))
    numpy_valid = len(set(spec.output)) == len(spec.output) and set(spec.output) <= present
    if len(args) == 1 and spec.inputs[0] == spec.output:
        return args[0]
    if len(args) == 2 and numpy_valid:
        try:
            product = broadcast_spec(*shapes)
        except ValueError:
            product = None
        if product is not None and _same_einsum(product, Spec(spec.inputs, spec.output, spec.sizes)):
            return f"{args[0]} * {args[1]}"
    if len(args) == 1 and numpy_valid and len(spec.output) == len(spec.inputs[0]) and len(set(spec.inputs[0])) == len(spec.inputs[0]):
        perm = tuple(spec.inputs[0].index(s) for s in spec.output)
        if perm == tuple(reversed(range(len(perm)))) and len(perm) == 2:
            return f"{args[0]}.T"
        return f"{args[0]}.transpose({perm})"
    equation = ",".join(inputs) + "->" + output
    if numpy_valid:
        return f"np.einsum({equation!r}, {', '.join(args)})".replace("'", '"')
    sizes = {letters[s]: spec.size(s) for s in spec.output if s not in present}
    sizes_text = f", sizes={sizes!r}" if sizes else ""
    return f"ea.einsum({equation!r}, {', '.join(args)}{sizes_text})".replace("'", '"')


def _same_einsum(a: Any, b: Any) -> bool:
    """Equal up to a consistent renaming of symbols."""
    if len(a.inputs) != len(b.inputs):
        return False
    mapping: dict[str, str] = {}
    for ta, tb in zip((*a.inputs, a.output), (*b.inputs, b.output)):
        if len(ta) != len(tb):
            return False
        for x, y in zip(ta, tb):
            if mapping.setdefault(x, y) != y:
                return False
    return len(set(mapping.values())) == len(mapping)
