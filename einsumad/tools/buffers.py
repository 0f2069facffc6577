"""Buffer planning: a compiled program writes its large intermediates into buffers it keeps.

A NumPy temporary of a few hundred kilobytes or more is fresh memory on every
call, and fresh pages cost more than the arithmetic done on them: ``a * b`` into
a new array is several times slower than ``np.multiply(a, b, out=buffer)``.
:func:`plan_buffers` reads the straight-line program the emitter wrote and gives
every large intermediate whose outermost operation can write into an array (a
ufunc or operator, ``matmul``, a sum, ``einsum``, a fused kernel) an ``out=``
buffer, kept from call to call:

* **lifetimes** are those of the values *and of every view of them* (a matmul's
  result reshaped and transposed is still the matmul's buffer); a buffer is
  reused only by a statement that comes after the last use of everything that
  may alias its previous content, so nothing is overwritten while live, and no
  operation writes into one of its own operands;
* **outputs never alias a buffer**: a value that reaches the ``return`` (itself or
  through a view) is computed into fresh memory, so mutating a result never
  changes the next call's;
* **memory**: values with disjoint lifetimes share one buffer (linear scan, best
  fit), so the buffers together take about what the largest set of live
  intermediates took before: the peak stays where it was, and the memory is
  reused instead of returned to the system and faulted in again;
* **threads**: a call takes a set of buffers from a pool and gives it back when it
  returns, so two threads calling one compiled function use different sets (the
  pool grows to the number of concurrent calls; a call that raises drops its set).

Only what the emitter writes is read, with :mod:`ast`; a statement this module
does not understand keeps its fresh allocation and is assumed to alias every
array it reads.
"""

from __future__ import annotations

import ast
import bisect
import io
import math
import tokenize
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["BufferPool", "plan_buffers", "MIN_BYTES", "nbytes"]

#: Intermediates smaller than this stay fresh allocations: small blocks come from
#: the allocator's free lists, without page faults.
MIN_BYTES = 64 * 1024
#: At most this many statements get kept buffers (the largest); the rest allocate
#: as NumPy does. A model has a few hundred candidates, a 3,000-step loop thousands.
MAX_BUFFERS = 512

Shape = tuple[int, ...]


class BufferPool:
    """Sets of buffers for one compiled program: ``take()`` one per call, ``give()`` it back.

    A set is one block of memory (``nbytes``) seen as arrays at fixed offsets.

    >>> pool = BufferPool([(0, (2, 3), np.dtype(np.float64)), (64, (4,), np.dtype(np.float32))], 80)
    >>> b = pool.take(); b[0].shape, b[1].dtype, pool.nbytes
    ((2, 3), dtype('float32'), 80)
    >>> pool.give(b); pool.take() is b
    True
    """

    def __init__(self, views: list[tuple[int, Shape, np.dtype]], nbytes: int):
        self.views = views  # per buffer: (offset in bytes, shape, dtype)
        self.nbytes = nbytes
        self.free: list[list[np.ndarray]] = []

    def make(self) -> list[np.ndarray]:
        memory = np.empty(self.nbytes, dtype=np.uint8)
        return [
            memory[offset : offset + nbytes(shape, dtype)].view(dtype).reshape(shape)
            for offset, shape, dtype in self.views
        ]

    def take(self) -> list[np.ndarray]:
        """A free set of buffers (made on first use); list operations are atomic, so
        concurrent calls never share one."""
        try:
            return self.free.pop()
        except IndexError:
            return self.make()

    def give(self, buffers: list[np.ndarray]) -> None:
        self.free.append(buffers)

    def __repr__(self) -> str:
        return f"<BufferPool: {len(self.views)} buffers, {self.nbytes} bytes per call>"


# ================================================================= reading statements


@dataclass
class _Statement:
    index: int  # position in the body
    target: str
    value: ast.expr
    code: str  # the statement without its comment
    comment: str
    reads: set[str] = field(default_factory=set)
    fresh: bool = False  # the result is new memory (possibly viewed)
    alloc: ast.expr | None = None  # the operation that allocates it, when it can take out=
    alloc_shape: Shape | None = None


#: ndarray methods and attributes that return views (here and in program.py's hoisting),
#: and those of them that transpose (the view's memory order is not C order).
VIEW_METHODS = frozenset({"reshape", "transpose", "swapaxes", "ravel", "diagonal"})
VIEW_ATTRIBUTES = frozenset({"T", "mT"})
TRANSPOSING = frozenset({"T", "mT", "transpose", "swapaxes"})
_POWER_UFUNCS = {2: "square", 0.5: "sqrt", -1: "reciprocal"}  # ndarray.__pow__'s fast paths
#: The NumPy ufunc of each Python operator and comparison (here and in fusion.py).
OPERATOR_UFUNCS = {
    ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide", ast.Pow: "power",
    ast.MatMult: "matmul", ast.Mod: "remainder", ast.FloorDiv: "floor_divide",
}
COMPARISON_UFUNCS = {
    ast.Lt: "less", ast.LtE: "less_equal", ast.Gt: "greater", ast.GtE: "greater_equal",
    ast.Eq: "equal", ast.NotEq: "not_equal",
}
_OPERATORS = {op: name for op, name in OPERATOR_UFUNCS.items() if op is not ast.Pow}  # ** : _POWER_UFUNCS
_COMPARISONS = COMPARISON_UFUNCS


def nbytes(shape: Any, dtype: Any) -> int:
    """Bytes of an array of this shape and NumPy dtype (0 when either is unknown or
    another library's dtype).

    >>> nbytes((128, 128), np.float64), nbytes(None, np.float64)
    (131072, 0)
    """
    if shape is None or dtype is None:
        return 0
    try:
        return math.prod(shape) * np.dtype(dtype).itemsize
    except TypeError:
        return 0


def _split_comment(line: str) -> tuple[str, str]:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(line).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return line, ""
    for token in tokens:
        if token.type == tokenize.COMMENT:
            col = token.start[1]
            return line[:col].rstrip(), line[col:]
    return line, ""


def _is_np(node: ast.expr, name: str | None = None) -> bool:
    return (
        isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np"
        and (name is None or node.attr == name)
    )


def _ufunc_name(node: ast.expr) -> str | None:
    if _is_np(node) and isinstance(getattr(np, node.attr, None), np.ufunc):  # type: ignore[attr-defined]
        return node.attr  # type: ignore[attr-defined,no-any-return]
    return None


def _strip_views(node: ast.expr) -> ast.expr:
    """The expression under a chain of view operations (reshape, transpose, [..])."""
    while True:
        if isinstance(node, ast.Attribute) and node.attr in VIEW_ATTRIBUTES:
            node = node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in VIEW_METHODS and not _is_np(node.func)):
            node = node.func.value
        elif isinstance(node, ast.Subscript) and _is_basic_index(node.slice):
            node = node.value
        else:
            return node


def _is_basic_index(index: ast.expr) -> bool:
    items = index.elts if isinstance(index, ast.Tuple) else [index]
    return all(
        isinstance(i, ast.Slice) and i.lower is None and i.upper is None and i.step is None
        or isinstance(i, ast.Constant) and (i.value is None or i.value is Ellipsis)
        for i in items
    )


def _allocating(node: ast.expr, kernels: set[str]) -> bool:
    """``node`` returns new memory and accepts ``out=`` (in the form it is written)."""
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            return isinstance(node.right, ast.Constant)
        return type(node.op) in _OPERATORS
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.USub)
    if isinstance(node, ast.Compare):
        return len(node.ops) == 1 and type(node.ops[0]) in _COMPARISONS
    if isinstance(node, ast.Call) and not any(isinstance(a, ast.Starred) for a in node.args):
        if any(k.arg == "out" for k in node.keywords):
            return False
        if _ufunc_name(node.func) is not None or _is_np(node.func, "einsum"):
            return True
        if isinstance(node.func, ast.Name) and node.func.id in kernels:
            return True
        if isinstance(node.func, ast.Attribute) and node.func.attr == "sum" and not _is_np(node.func):
            return True
    return False


def _transposes_after(node: ast.expr, inner: ast.expr) -> bool:
    """The chain of views from ``inner`` up to ``node`` includes a transposition."""
    while node is not inner:
        if isinstance(node, ast.Attribute):
            if node.attr in TRANSPOSING:
                return True
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in TRANSPOSING:
                return True
            node = node.func.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return False
    return False


def _is_kernel(node: ast.expr, kernels: set[str]) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in kernels


def _reads_transposed(node: ast.expr, strided: set[str]) -> bool:
    """An operand is a transposed view, or a name in ``strided``. A fresh result then
    takes the operands' memory order, and the loop runs in it; a C-ordered ``out=``
    would make the loop stride across the operands instead (measured: 2.3x slower for
    a broadcast outer product of two transposed matrices), so such a result keeps its
    fresh allocation."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in strided:
            return True
        if isinstance(sub, ast.Attribute) and sub.attr in TRANSPOSING:
            return True
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr in TRANSPOSING:
            return True
    return False


def _elementwise(node: ast.expr | None) -> bool:
    """An operation of NumPy's elementwise kind (a ufunc other than matmul)."""
    if isinstance(node, ast.BinOp):
        return not isinstance(node.op, ast.MatMult)
    if isinstance(node, (ast.UnaryOp, ast.Compare)):
        return True
    return isinstance(node, ast.Call) and _ufunc_name(node.func) not in (None, "matmul")


def _operand_names(node: ast.expr) -> list[str]:
    """The operands of an elementwise operation that are plain variables."""
    if isinstance(node, ast.BinOp):
        operands = [node.left, node.right]
    elif isinstance(node, ast.UnaryOp):
        operands = [node.operand]
    elif isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
    else:
        operands = list(node.args)  # type: ignore[attr-defined]
    return [o.id for o in operands if isinstance(o, ast.Name)]


def _fresh(node: ast.expr, kernels: set[str]) -> bool:
    """The result is new memory or a view of new memory, never of an operand."""
    inner = _strip_views(node)
    if _allocating(inner, kernels):
        return not (isinstance(inner, ast.Call) and _is_np(inner.func, "einsum") and len(inner.args) <= 2)
    return isinstance(inner, ast.Call) and (
        isinstance(inner.func, ast.Attribute) and inner.func.attr == "copy" and not inner.args
        or _is_np(inner.func, "dot")
    )


# ================================================================= shapes


class _Unknown(Exception):
    pass


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _Unknown from None


def _shape_of(node: ast.expr, known: dict[str, Shape]) -> Shape:
    """The shape ``node`` evaluates to, for the forms the emitter writes."""
    if isinstance(node, ast.Name):
        if node.id not in known:
            raise _Unknown
        return known[node.id]
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, complex)):
        return ()
    if isinstance(node, ast.UnaryOp):
        return _shape_of(node.operand, known)
    if isinstance(node, ast.BinOp):
        left, right = _shape_of(node.left, known), _shape_of(node.right, known)
        if isinstance(node.op, ast.MatMult):
            return _matmul_shape(left, right)
        return tuple(np.broadcast_shapes(left, right))
    if isinstance(node, ast.Compare) and len(node.comparators) == 1:
        return tuple(np.broadcast_shapes(_shape_of(node.left, known), _shape_of(node.comparators[0], known)))
    if isinstance(node, ast.Attribute) and node.attr == "T":
        return _shape_of(node.value, known)[::-1]
    if isinstance(node, ast.Subscript) and _is_basic_index(node.slice):
        return _indexed(_shape_of(node.value, known), node.slice)
    if isinstance(node, ast.Call):
        return _call_shape(node, known)
    raise _Unknown


def _matmul_shape(a: Shape, b: Shape) -> Shape:
    if len(a) < 1 or len(b) < 1:
        raise _Unknown
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(b) == 1:
        return a[:-1]
    if len(a) == 1:
        return b[:-2] + b[-1:]
    return tuple(np.broadcast_shapes(a[:-2], b[:-2])) + (a[-2], b[-1])


def _indexed(shape: Shape, index: ast.expr) -> Shape:
    items = index.elts if isinstance(index, ast.Tuple) else [index]
    out: list[int] = []
    rest = list(shape)
    for i in items:
        if isinstance(i, ast.Constant) and i.value is None:
            out.append(1)
        elif isinstance(i, ast.Slice):
            if not rest:
                raise _Unknown
            out.append(rest.pop(0))
        else:  # an ellipsis
            raise _Unknown
    return tuple(out + rest)


def _call_shape(node: ast.Call, known: dict[str, Shape]) -> Shape:
    func = node.func
    kwargs = {k.arg: k.value for k in node.keywords}
    if _ufunc_name(func) is not None and not kwargs:
        shapes = [_shape_of(a, known) for a in node.args]
        if _ufunc_name(func) == "matmul":
            return _matmul_shape(*shapes)
        return tuple(np.broadcast_shapes(*shapes))
    if not isinstance(func, ast.Attribute) or _is_np(func):
        raise _Unknown
    base = _shape_of(func.value, known)
    args = [_literal(a) for a in node.args]
    if func.attr == "reshape":
        shape = tuple(args[0]) if len(args) == 1 and isinstance(args[0], tuple) else tuple(args)
        if int(np.prod(shape, dtype=np.int64)) != int(np.prod(base, dtype=np.int64)) or -1 in shape:
            raise _Unknown
        return shape
    if func.attr == "transpose":
        perm = tuple(args[0]) if len(args) == 1 and isinstance(args[0], tuple) else tuple(args)
        return tuple(base[p] for p in perm) if perm else base[::-1]
    if func.attr == "swapaxes":
        axes = list(base)
        a, b = args
        axes[a], axes[b] = axes[b], axes[a]
        return tuple(axes)
    if func.attr == "ravel":
        return (int(np.prod(base, dtype=np.int64)),)
    if func.attr == "sum" and not args and set(kwargs) <= {"axis"}:
        if "axis" not in kwargs:
            return ()
        axis = _literal(kwargs["axis"])
        summed = {a % len(base) for a in ((axis,) if isinstance(axis, int) else axis)}
        return tuple(n for i, n in enumerate(base) if i not in summed)
    raise _Unknown


# ================================================================= writing out=


def _segment(source: str, node: ast.expr) -> str:
    text = ast.get_source_segment(source, node)
    if text is None:
        raise _Unknown
    return text


def _with_out(source: str, node: ast.expr, out: str) -> str:
    """The source of ``node`` rewritten to write into ``out``."""
    if isinstance(node, ast.BinOp):
        left, right = _segment(source, node.left), _segment(source, node.right)
        if isinstance(node.op, ast.Pow):
            exponent = node.right.value  # type: ignore[attr-defined]
            if exponent in _POWER_UFUNCS:
                return f"np.{_POWER_UFUNCS[exponent]}({left}, out={out})"
            return f"np.power({left}, {right}, out={out})"
        return f"np.{_OPERATORS[type(node.op)]}({left}, {right}, out={out})"
    if isinstance(node, ast.UnaryOp):
        return f"np.negative({_segment(source, node.operand)}, out={out})"
    if isinstance(node, ast.Compare):
        left, right = _segment(source, node.left), _segment(source, node.comparators[0])
        return f"np.{_COMPARISONS[type(node.ops[0])]}({left}, {right}, out={out})"
    text = _segment(source, node)  # a call: one more keyword before its closing parenthesis
    return f"{text[:-1]}, out={out})" if node.args or node.keywords else f"{text[:-1]}out={out})"  # type: ignore[attr-defined]


def _replace(source: str, node: ast.expr, text: str) -> str:
    """``source`` (one line) with ``node``'s segment replaced by ``text``."""
    start, end = node.col_offset, node.end_col_offset
    return source[:start] + text + source[end:]  # type: ignore[index]


# ================================================================= the plan


def plan_buffers(
    body: list[str],
    known: dict[str, tuple[Shape, np.dtype]],
    kernels: set[str],
    returned: set[str],
    name: Callable[[str], str],
    min_bytes: int = MIN_BYTES,
    not_c_ordered: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[str], BufferPool | None, str]:
    """Give large intermediates of ``body`` buffers; see the module docstring.

    Args:
        body: the function's statements (indented, no ``def`` and no ``return`` line).
        known: shape and dtype of the names the body reads or assigns (inputs,
            constants, the results of instructions).
        kernels: names of fused kernels (calls that accept ``out=``).
        returned: names the return statement reads.
        name: hands out a fresh local name.
        min_bytes: smaller intermediates keep fresh allocations.
        not_c_ordered: names (inputs, constants) of arrays not in C order.

    Returns:
        The rewritten body, the pool (None when nothing is buffered), and the name
        of the local that holds a call's buffers.
    """
    shapes = {n: s for n, (s, _) in known.items()}
    strided = set(not_c_ordered)  # names whose arrays are not in C order
    statements: list[_Statement] = []
    for index, line in enumerate(body):
        code, comment = _split_comment(line)
        stripped = code.strip()
        if not stripped or stripped.startswith("del "):
            continue
        try:
            tree = ast.parse(stripped)
        except SyntaxError:
            continue
        if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assign):
            continue
        assign = tree.body[0]
        if len(assign.targets) != 1 or not isinstance(assign.targets[0], ast.Name):
            continue
        st = _Statement(index, assign.targets[0].id, assign.value, stripped, comment)
        st.reads = {n.id for n in ast.walk(assign.value) if isinstance(n, ast.Name) and n.id != "np"}
        st.fresh = _fresh(assign.value, kernels)
        inner = _strip_views(assign.value)
        loops = _elementwise(inner) or _is_kernel(inner, kernels)
        if st.fresh and _allocating(inner, kernels) and not (loops and _reads_transposed(inner, strided)):
            try:
                if inner is assign.value:  # no views: the buffer has the result's (recorded) shape
                    st.alloc_shape = shapes[st.target]
                else:  # views of the allocation: its own shape, checked against the result's
                    st.alloc_shape = _shape_of(inner, shapes)
                    if st.target in shapes and _shape_of(assign.value, shapes) != shapes[st.target]:
                        raise _Unknown
                st.alloc = inner
            except (_Unknown, ValueError, TypeError, IndexError, KeyError):
                st.alloc = None
        if st.target not in shapes:
            try:
                shapes[st.target] = _shape_of(assign.value, shapes)
            except (_Unknown, ValueError, TypeError, IndexError, KeyError):
                pass
        # Not in C order: a transposed view, anything that may view a strided array,
        # and an elementwise result of strided operands (NumPy keeps their order).
        if (_transposes_after(assign.value, inner) or not st.fresh and st.reads & strided
                or (loops and _reads_transposed(inner, strided))):
            strided.add(st.target)
        statements.append(st)

    # Which allocations may each name share memory with (itself, if fresh; else its operands')?
    roots: dict[str, set[str]] = {}
    for st in statements:
        if st.fresh:
            roots[st.target] = {st.target}
        else:
            roots[st.target] = set().union(*[roots.get(r, set()) for r in st.reads])
    last_use: dict[str, int] = {}
    for st in statements:
        for r in st.reads:
            for root in roots.get(r, ()):
                last_use[root] = st.index
    escaped = set().union(*[roots.get(r, set()) for r in returned]) if returned else set()

    dtypes = {n: d for n, (_, d) in known.items()}
    candidates = []
    for st in statements:
        if st.alloc is None or st.target in escaped or st.target not in dtypes:
            continue
        dtype = np.dtype(dtypes[st.target])
        size = nbytes(st.alloc_shape, dtype)
        if size < min_bytes:
            continue
        candidates.append((st, dtype, size))
    if not candidates:
        return body, None, ""
    if len(candidates) > MAX_BUFFERS:  # packing is quadratic in what lives at once: the largest pay most
        largest = sorted(range(len(candidates)), key=lambda i: -candidates[i][2])[:MAX_BUFFERS]
        candidates = [candidates[i] for i in sorted(largest)]

    # An elementwise operation may write over an operand that dies there (the same
    # array, not a view of it): such a chain of values shares one buffer.
    by_target = {st.target: (st, dtype) for st, dtype, _ in candidates}
    chain = {st.target: st.target for st, _, _ in candidates}

    def head(n: str) -> str:
        while chain[n] != n:
            n = chain[n]
        return n

    for st, dtype, _ in candidates:
        if not _elementwise(st.alloc) or st.alloc is not st.value:
            continue
        for operand in _operand_names(st.alloc):
            found = by_target.get(operand)
            if found is None:
                continue
            other, other_dtype = found
            if (other.alloc is other.value and other_dtype == dtype and other.alloc_shape == st.alloc_shape
                    and last_use.get(operand) == st.index and roots.get(operand) == {operand}):
                chain[st.target] = head(operand)
                break

    # Place each chain at the lowest offset of one arena where no chain with an
    # overlapping lifetime lies (largest first): the arena takes about the largest
    # set of intermediates live at once, as fresh allocations did, less what the
    # operations done in place save.
    blocks: dict[str, list[int]] = {}
    for st, _, size in candidates:
        start, end = st.index, max(last_use.get(st.target, st.index), st.index)
        block = blocks.setdefault(head(st.target), [start, end, 0])
        block[0], block[1], block[2] = min(block[0], start), max(block[1], end), max(block[2], size)
    keys = list(blocks)
    sizes = [-(-blocks[k][2] // ALIGN) * ALIGN for k in keys]
    offsets = dict(zip(keys, _packed([(blocks[k][0], blocks[k][1]) for k in keys], sizes)))
    views = [(offsets[head(st.target)], st.alloc_shape or (), dtype) for st, dtype, _ in candidates]
    assignment = {st.index: i for i, (st, _, _) in enumerate(candidates)}
    arena = max(offsets[k] + n for k, n in zip(keys, sizes))

    local = name("b")
    out = list(body)
    for st, _, _ in candidates:
        buffer = f"{local}[{assignment[st.index]}]"
        try:
            rewritten = _replace(st.code, st.alloc, _with_out(st.code, st.alloc, buffer))  # type: ignore[arg-type]
        except _Unknown:
            continue
        out[st.index] = f"    {rewritten}" + (f"  {st.comment}" if st.comment else "")
    return out, BufferPool(views, arena), local


#: Offsets in the arena are multiples of this (a cache line: aligned loads for SIMD loops).
ALIGN = 64


def _packed(spans: list[tuple[int, int]], sizes: list[int]) -> list[int]:
    """Offsets for blocks of ``sizes`` live over ``spans`` (inclusive statement ranges)
    such that blocks live at the same time never overlap: greedy by size, each at
    the lowest offset that fits between the blocks already placed that it meets."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], spans[i]))
    by_end: list[tuple[int, int]] = []  # (end, block) of the blocks placed, sorted
    offsets = [0] * len(sizes)
    for i in order:
        start, end = spans[i]
        alive = by_end[bisect.bisect_left(by_end, (start, -1)):]  # placed blocks not dead before start
        taken = sorted((offsets[j], offsets[j] + sizes[j]) for _, j in alive if spans[j][0] <= end)
        offset = 0
        for low, high in taken:
            if offset + sizes[i] <= low:
                break
            offset = max(offset, high)
        offsets[i] = offset
        bisect.insort(by_end, (end, i))
    return offsets
