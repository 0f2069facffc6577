"""Linear ops that move or convert entries: reshape, index, scatter-add, stack, concatenate,
astype, and the real part of a complex value.

Each is declared :class:`~einsumad.core.linear.Linear` by its transpose, next to
its forward rule; forward mode follows from linearity. They live in the core
because the machinery itself needs them (slicing and stacking the directions of
a batched pass for rules that take one direction at a time); the op library's
``ea.reshape``, ``x[i]``, ``ea.stack`` ... are front doors over them.

Batch axes: ``nbatch`` leading axes of an operand are batch axes that the op
does not touch. Indexing moves them to the end first, because NumPy puts the
result axes of non-adjacent advanced indices (``x[i, :, j]``) first, before
every sliced axis; trailing axes always stay trailing.

Implementations call NumPy on NumPy arrays and the operands' array API namespace
on any other library's (``xp.reshape``, ``xp.concat``, ``xp.astype``, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import array_namespace, dense, dtype_kind, is_numpy, ndim, zeros
from .arrays import dtype as _dtype
from .arrays import shape as _shape
from .elementwise import Elementwise
from .linear import Linear
from .primitive import Primitive
from .tape import unbox

__all__ = [
    "reshape_p", "getitem_p", "scatter_add_p", "stack_p", "concatenate_p", "astype_p", "astype_step_p", "real_p",
    "index_source", "block_index",
]


def _extra(g: Any, like: Any) -> int:
    """Leading batch axes of ``g`` beyond the rank of ``like``."""
    return ndim(g) - ndim(like)


def _reshape_impl(x: Any, *, shape: tuple[int, ...]) -> Any:
    x = dense(x)
    if is_numpy(x):
        return np.reshape(x, shape)
    return array_namespace(x).reshape(x, tuple(shape))


# ================================================================= reshape
#   forward: y = x viewed with a new shape      transpose: ḡ viewed with x's shape


def _reshape_transpose(k: int, g: Any, ans: Any, x: Any, *, shape: tuple[int, ...]) -> Any:
    return reshape_p(g, shape=_shape(g)[: _extra(g, ans)] + _shape(x))


reshape_p = Primitive(
    _reshape_impl,
    name="reshape",
    declaration=Linear(
        _reshape_transpose,
        batch_params=lambda params, batch: {"shape": batch + tuple(params["shape"])},
        describe="reshape back",
    ),
    source=lambda a, p: f"{a[0]}.reshape({tuple(p['shape'])!r})",
)


# ================================================================= indexing and scatter-add
#   forward: y = x[idx]                     transpose: x̄ = 0; x̄[idx] += ḡ  (repeats accumulate)
#   scatter_add is indexing's transpose     transpose: ḡ[idx]


def _to_back(a: Any, nbatch: int) -> Any:
    xp = np if type(a) is np.ndarray else array_namespace(a)
    n = ndim(a)
    return xp.moveaxis(a, tuple(range(nbatch)), tuple(range(n - nbatch, n)))


def _to_front(a: Any, nbatch: int) -> Any:
    xp = np if type(a) is np.ndarray else array_namespace(a)
    n = ndim(a)
    return xp.moveaxis(a, tuple(range(n - nbatch, n)), tuple(range(nbatch)))


def gather(x: Any, index: tuple, nbatch: int = 0) -> Any:
    """``x[index]`` past ``nbatch`` leading axes."""
    x = dense(x)
    if is_numpy(x):
        x = np.asarray(x)
    else:
        index = _complete(index, ndim(x))
    if not nbatch:
        return x[index]
    return _to_front(_to_back(x, nbatch)[index], nbatch)


def _complete(index: tuple, rank: int) -> tuple:
    """``index`` with a slice for every axis it leaves out (NumPy's implicit trailing
    ``:``, which the array API standard asks to write)."""
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    if any(i is Ellipsis for i in index) or used >= rank:
        return index
    return tuple(index) + (slice(None),) * (rank - used)


def _is_basic(index: tuple) -> bool:
    return all(isinstance(i, (slice, int, np.integer)) or i is None for i in index)


def scatter_add(g: Any, index: tuple, shape: tuple[int, ...], nbatch: int = 0) -> Any:
    """Zeros of ``shape`` with ``g`` added at ``index`` past ``nbatch`` leading axes."""
    shape = tuple(shape)
    moved = shape[nbatch:] + shape[:nbatch]
    g = dense(g)
    if is_numpy(g):
        g = np.asarray(g)
        out = np.zeros(moved, dtype=g.dtype)
        np.add.at(out, index, _to_back(g, nbatch) if nbatch else g)
        return _to_front(out, nbatch) if nbatch else out
    out = zeros(moved, _dtype(g), like=g)
    values = _to_back(g, nbatch) if nbatch else g
    if _is_basic(index):  # each entry is hit once: an assignment is the sum
        out[_complete(tuple(i for i in index if i is not None), len(moved))] = _without_new_axes(values, index)
    elif hasattr(out, "index_put_"):  # PyTorch: repeated integer indices accumulate
        out = out.index_put_(_torch_index(out, index), values, accumulate=True)
    else:
        raise NotImplementedError(
            f"the transpose of integer-array indexing (a scatter-add) is not available for "
            f"{type(g).__module__} arrays; index with slices and integers, or use NumPy or PyTorch"
        )
    return _to_front(out, nbatch) if nbatch else out


def _without_new_axes(values: Any, index: tuple) -> Any:
    """``values`` without the size-1 axes that ``None`` entries of a basic ``index`` added."""
    if not any(i is None for i in index):
        return values
    kept = []
    axis = 0
    for i in index:
        if isinstance(i, (int, np.integer)):
            continue
        if i is not None:
            kept.append(axis)
        axis += 1
    kept += list(range(axis, ndim(values)))
    return array_namespace(values).reshape(values, tuple(_shape(values)[a] for a in kept))


def _torch_index(out: Any, index: tuple) -> tuple:
    """An index of integers and integer arrays as the tensors of torch's ``index_put_``."""
    import torch  # reached only with torch tensors (an optional library)

    items = list(index)
    while items and isinstance(items[-1], slice) and items[-1] == slice(None):
        items.pop()
    if any(isinstance(i, slice) or i is None for i in items):
        raise NotImplementedError(
            "the transpose of an index that mixes slices and integer arrays is not available "
            "for torch tensors; index in two steps (the slice, then the integer array)"
        )
    return tuple(i if isinstance(i, torch.Tensor) else torch.as_tensor(np.asarray(i), device=out.device) for i in items)


def _getitem_transpose(k: int, g: Any, ans: Any, x: Any, index: tuple, nbatch: int = 0) -> Any:
    extra = _extra(g, ans)
    return scatter_add_p(g, index=index, shape=_shape(g)[:extra] + _shape(x), nbatch=extra + nbatch)


def _scatter_transpose(k: int, g: Any, ans: Any, x: Any, index: tuple, shape: tuple, nbatch: int = 0) -> Any:
    return getitem_p(g, index=index, nbatch=ndim(g) - len(shape) + nbatch)


def index_source(index: tuple) -> str | None:
    """Python source for a basic index (slices, integers, None), or None.

    >>> index_source((slice(None), 2, slice(1, None), None))
    ':, 2, 1:, None'
    """
    parts = []
    for item in index:
        if isinstance(item, slice):
            text = ":".join("" if v is None else str(int(v)) for v in (item.start, item.stop, item.step))
            parts.append(text[:-1] if item.step is None else text)
        elif item is None:
            parts.append("None")
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            parts.append(str(int(item)))
        else:
            return None
    return ", ".join(parts) if parts else "()"


def _getitem_source(a: list[str], p: dict) -> str | None:
    text = index_source(p["index"])
    if p.get("nbatch") or text is None:
        return None
    return f"{a[0]}[{text}]"


getitem_p = Primitive(
    gather,
    name="getitem",
    declaration=Linear(
        _getitem_transpose,
        batch_params=lambda p, batch: {**p, "nbatch": p.get("nbatch", 0) + len(batch)},
        describe="scatter-add",
    ),
    source=_getitem_source,
)
scatter_add_p = Primitive(
    scatter_add,
    name="scatter_add",
    declaration=Linear(
        _scatter_transpose,
        batch_params=lambda p, batch: {
            **p, "shape": batch + tuple(p["shape"]), "nbatch": p.get("nbatch", 0) + len(batch)
        },
        describe="gather",
    ),
)


# ================================================================= stack and concatenate
#   forward: y = [x_0 | x_1 | ...] along axis    transpose_k: the k-th block of ḡ


def block_index(ndim: int, axis: int, start: int, stop: int | None) -> tuple:
    """The index of one block along ``axis``: ``start:stop``, or the integer ``start``."""
    index: list[Any] = [slice(None)] * ndim
    index[axis] = slice(start, stop) if stop is not None else start
    return tuple(index)


def _concatenate_transpose(k: int, g: Any, ans: Any, *xs: Any, axis: int) -> Any:
    nbatch = _extra(g, ans)
    start = int(np.sum([_shape(x)[axis] for x in xs[:k]], dtype=np.int64))
    stop = start + _shape(xs[k])[axis]
    return getitem_p(g, index=block_index(ndim(g), nbatch + axis, start, stop))


def _stack_transpose(k: int, g: Any, ans: Any, *xs: Any, axis: int) -> Any:
    nbatch = _extra(g, ans)
    return getitem_p(g, index=block_index(ndim(g), nbatch + axis, k, None))


def _shift_axis(params: dict, batch: tuple[int, ...]) -> dict:
    return {**params, "axis": params["axis"] + len(batch)}


def _concatenate_impl(*xs: Any, axis: int) -> Any:
    xs = tuple(dense(x) for x in xs)
    xp = array_namespace(*xs)
    return np.concatenate(xs, axis=axis) if xp is np else xp.concat(xs, axis=axis)


def _stack_impl(*xs: Any, axis: int) -> Any:
    xs = tuple(dense(x) for x in xs)
    return array_namespace(*xs).stack(xs, axis=axis)


concatenate_p = Primitive(
    _concatenate_impl,
    name="concatenate",
    declaration=Linear(_concatenate_transpose, batch_params=_shift_axis, describe="slice out its block"),
    source=lambda a, p: f"np.concatenate([{', '.join(a)}], axis={p['axis']})",
)
stack_p = Primitive(
    _stack_impl,
    name="stack",
    declaration=Linear(_stack_transpose, batch_params=_shift_axis, describe="take its slice"),
    source=lambda a, p: f"np.stack([{', '.join(a)}], axis={p['axis']})",
)


# ================================================================= dtype conversion
#   forward: y = x as dtype       transpose: ḡ as x's dtype (its real part for a real x:
#                                 the imaginary part of a cotangent pairs with nothing real)


def _astype_impl(x: Any, dtype: Any) -> Any:
    x = dense(x)
    if is_numpy(x):
        return np.asarray(x).astype(dtype, copy=False)
    xp = array_namespace(x)
    if isinstance(dtype, (str, type, np.dtype)):  # a NumPy dtype: the library's dtype of that name
        dtype = getattr(xp, np.dtype(dtype).name)
    return xp.astype(x, dtype)


def _astype_transpose(k: int, g: Any, ans: Any, x: Any, dtype: Any) -> Any:
    target = _dtype(x)
    if dtype_kind(target) in "iub":  # integers carry no derivative: a zero cotangent, in g's dtype
        value = unbox(g)  # the zeros are a constant, in g's dtype and library
        return zeros(_shape(x), _dtype(value), like=value)
    if dtype_kind(target) != "c" and dtype_kind(_dtype(g)) == "c":
        g = real_p(g)
    return astype_p(g, dtype=target)


def _astype_source(a: list[str], p: dict) -> str | None:
    """``np.array(x, dtype=...)``: ``x.astype`` (a new array, x's memory order) that also
    takes a Python number, as the implementation does (a 0-d array)."""
    d = p["dtype"]
    return f"np.array({a[0]}, dtype=np.{np.dtype(d).name})" if isinstance(d, (np.dtype, type)) else None


astype_p: Primitive = Primitive(
    _astype_impl,
    name="astype",
    declaration=Linear(
        _astype_transpose,
        describe="convert back",
    ),
    source=_astype_source,
)


# A conversion to integers or booleans is a step function (as floor is): declared
# elementwise with derivative 0, so no derivative flows through it in either mode.
astype_step_p: Primitive = Primitive(
    _astype_impl,
    name="astype",
    declaration=Elementwise((lambda ans, x, dtype: 0,)),
    source=_astype_source,
)


# ================================================================= the real part
#   forward: y = Re(x)            transpose: x̄ = ḡ (as x's complex dtype)
#   With the pairing <c, v> = Re(sum c v) (no conjugation, the convention of every
#   rule: see docs/guide/complex.md), Re(ḡ Re(v)) = Re(ḡ v) for a real ḡ. On a real
#   x it is the identity. The backward pass also uses it to keep the cotangent of
#   every real value real.


def _real_impl(x: Any) -> Any:
    x = dense(x)
    if is_numpy(x):
        return np.real(x)
    if dtype_kind(_dtype(x)) != "c":
        return x
    return array_namespace(x).real(x)


def _real_transpose(k: int, g: Any, ans: Any, x: Any) -> Any:
    target = _dtype(x)
    return astype_p(g, dtype=target) if dtype_kind(target) == "c" else g


real_p: Primitive = Primitive(
    _real_impl,
    name="real",
    declaration=Linear(_real_transpose, describe="as a complex number"),
    source="{xp}.real({0})",
)
