"""Linear ops that move or convert entries: reshape, index, scatter-add, stack, concatenate, astype.

Each is declared :class:`~einsumad.core.linear.Linear` by its transpose, next to
its forward rule; forward mode follows from linearity. They live in the core
because the machinery itself needs them (slicing and stacking the directions of
a batched pass for rules that take one direction at a time); the op library's
``ea.reshape``, ``x[i]``, ``ea.stack`` ... are front doors over them.

Batch axes: ``nbatch`` leading axes of an operand are batch axes that the op
does not touch. Indexing moves them to the end first, because NumPy puts the
result axes of non-adjacent advanced indices (``x[i, :, j]``) first, before
every sliced axis; trailing axes always stay trailing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .linear import Linear
from .primitive import Primitive
from .tape import unbox

__all__ = [
    "reshape_p", "getitem_p", "scatter_add_p", "stack_p", "concatenate_p", "astype_p",
    "index_source", "block_index",
]


def _shape(x: Any) -> tuple[int, ...]:
    return np.shape(unbox(x))


def _extra(g: Any, like: Any) -> int:
    """Leading batch axes of ``g`` beyond the rank of ``like``."""
    return np.ndim(unbox(g)) - np.ndim(unbox(like))


# ================================================================= reshape
#   forward: y = x viewed with a new shape      transpose: ḡ viewed with x's shape


def _reshape_transpose(k: int, g: Any, ans: Any, x: Any, *, shape: tuple[int, ...]) -> Any:
    return reshape_p(g, shape=_shape(g)[: _extra(g, ans)] + _shape(x))


reshape_p = Primitive(
    lambda x, *, shape: np.reshape(x, shape),
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


def _to_back(a: np.ndarray, nbatch: int) -> np.ndarray:
    return np.moveaxis(a, tuple(range(nbatch)), tuple(range(a.ndim - nbatch, a.ndim)))


def _to_front(a: np.ndarray, nbatch: int) -> np.ndarray:
    return np.moveaxis(a, tuple(range(a.ndim - nbatch, a.ndim)), tuple(range(nbatch)))


def gather(x: Any, index: tuple, nbatch: int = 0) -> np.ndarray:
    """``x[index]`` past ``nbatch`` leading axes."""
    x = np.asarray(x)
    if not nbatch:
        return x[index]
    return _to_front(_to_back(x, nbatch)[index], nbatch)


def scatter_add(g: Any, index: tuple, shape: tuple[int, ...], nbatch: int = 0) -> np.ndarray:
    """Zeros of ``shape`` with ``g`` added at ``index`` past ``nbatch`` leading axes."""
    g = np.asarray(g)
    shape = tuple(shape)
    out = np.zeros(shape[nbatch:] + shape[:nbatch], dtype=g.dtype)
    np.add.at(out, index, _to_back(g, nbatch) if nbatch else g)
    return _to_front(out, nbatch) if nbatch else out


def _getitem_transpose(k: int, g: Any, ans: Any, x: Any, index: tuple, nbatch: int = 0) -> Any:
    extra = _extra(g, ans)
    return scatter_add_p(g, index=index, shape=_shape(g)[:extra] + _shape(x), nbatch=extra + nbatch)


def _scatter_transpose(k: int, g: Any, ans: Any, x: Any, index: tuple, shape: tuple, nbatch: int = 0) -> Any:
    return getitem_p(g, index=index, nbatch=np.ndim(unbox(g)) - len(shape) + nbatch)


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
    return getitem_p(g, index=block_index(np.ndim(unbox(g)), nbatch + axis, start, stop))


def _stack_transpose(k: int, g: Any, ans: Any, *xs: Any, axis: int) -> Any:
    nbatch = _extra(g, ans)
    return getitem_p(g, index=block_index(np.ndim(unbox(g)), nbatch + axis, k, None))


def _shift_axis(params: dict, batch: tuple[int, ...]) -> dict:
    return {**params, "axis": params["axis"] + len(batch)}


concatenate_p = Primitive(
    lambda *xs, axis: np.concatenate(xs, axis=axis),
    name="concatenate",
    declaration=Linear(_concatenate_transpose, batch_params=_shift_axis, describe="slice out its block"),
    source=lambda a, p: f"np.concatenate([{', '.join(a)}], axis={p['axis']})",
)
stack_p = Primitive(
    lambda *xs, axis: np.stack(xs, axis=axis),
    name="stack",
    declaration=Linear(_stack_transpose, batch_params=_shift_axis, describe="take its slice"),
    source=lambda a, p: f"np.stack([{', '.join(a)}], axis={p['axis']})",
)


# ================================================================= dtype conversion
#   forward: y = x as dtype       transpose: ḡ as x's dtype


def _astype_impl(x: Any, dtype: np.dtype) -> np.ndarray:
    return np.asarray(x).astype(dtype, copy=False)


def _astype_transpose(k: int, g: Any, ans: Any, x: Any, dtype: np.dtype) -> Any:
    return astype_p(g, dtype=np.result_type(unbox(x)))


astype_p: Primitive = Primitive(
    _astype_impl,
    name="astype",
    declaration=Linear(
        _astype_transpose,
        describe="convert back",
    ),
    source=lambda a, p: f"{a[0]}.astype(np.{np.dtype(p['dtype']).name})",
)
