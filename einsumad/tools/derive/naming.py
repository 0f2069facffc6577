"""Names in a derivation: values, cotangents, constants and index names.

Values take, in this order of preference: a name given with :func:`name`; the
name of the argument (or of ``names=``); the local variable of ``fun`` that
holds them; for a layer's pre-activation and activation that the user left
unnamed, ``z`` and ``a`` with the layer's number (read from the weight's name,
``W3`` gives ``z3``); an automatic ``v1, v2, ...``; the output is ``L``.
Constants (arrays the function closes over, reads from its globals, or
arguments that are not differentiated) take their variable's name where Python
exposes it, else ``c1, c2, ...``; an anonymous constant that is an affine image
of a named one (``-y``, ``1 - y``, as NumPy computes them eagerly) is written so.

Index names: one name per axis for the whole derivation. Axes that an einsum
labels with one index, or that an elementwise op lines up, are one axis; each
takes the user's index name (a named index such as ``batch``, or a letter the
user wrote), chosen from the loss backwards so that the output layer gets ``i``,
the layer before it ``j`` and so on, as in Nielsen's book.
"""

from __future__ import annotations

import re
import weakref
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ...algebra.swap import broadcast_spec
from ...core.einsum import Einsum
from ...core.elementwise import Elementwise
from ...core.names import parameter_names
from ...core.tape import Node, Tensor, unbox

__all__ = ["name", "label_of", "arg_names", "cotangent_name", "ConstantNames", "AxisNames", "closure_constants"]

_labels: weakref.WeakKeyDictionary[Node, tuple[str, str | None]] = weakref.WeakKeyDictionary()

#: The order in which index names are handed out when the user gave none.
_TEXTBOOK = "ijklmnpqrstuvwxyzabcdefgh"


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


def label_of(node: Node) -> tuple[str, str | None] | None:
    return _labels.get(node)


def arg_names(fun: Callable, nargs: int, names: Sequence[str] | Mapping[Any, str] | None) -> list[str]:
    default = parameter_names(fun, nargs, lambda i: f"x{i}")
    if names is None:
        return default
    if isinstance(names, Mapping):
        return [names.get(n, names.get(i, n)) for i, n in enumerate(default)]  # type: ignore[call-overload]
    names = list(names)
    if len(names) != nargs:
        raise ValueError(f"derive: {nargs} argument(s) but {len(names)} name(s)")
    return names


def cotangent_name(value_name: str) -> str:
    """``delta3`` for ``z3``; ``dW`` for ``W``.

    >>> cotangent_name("z3"), cotangent_name("z_out"), cotangent_name("W2")
    ('delta3', 'delta_out', 'dW2')
    """
    m = re.fullmatch(r"z(\d*|_\w+)", value_name)
    if m:
        return "delta" + m.group(1)
    return "d" + value_name


def closure_constants(fun: Callable, arrays: dict[str, Any] | None = None) -> dict[int, str]:
    """``id(array) -> variable name`` for arrays ``fun`` closes over or reads as globals.

    ``arrays`` (if given) receives ``name -> array`` for each of them.
    """
    found: dict[int, str] = {}
    code = getattr(fun, "__code__", None)
    if code is None:
        return found
    arrays = arrays if arrays is not None else {}
    cells = getattr(fun, "__closure__", None) or ()
    for var, cell in zip(code.co_freevars, cells):
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, np.ndarray) and id(value) not in found:
            found[id(value)] = var
            arrays.setdefault(var, value)
    globals_ = getattr(fun, "__globals__", {})
    for var in code.co_names:
        value = globals_.get(var)
        if isinstance(value, np.ndarray) and id(value) not in found:
            found[id(value)] = var
            arrays.setdefault(var, value)
    return found


def _format_number(x: float) -> str:
    return f"{x:g}"


class ConstantNames:
    """Names of the constants a traced function uses (arrays that carry no derivative)."""

    def __init__(self, known: Mapping[int, str], arrays: Mapping[str, Any]):
        self.by_id: dict[int, str] = dict(known)
        self.user_ids: set[int] = set(known)
        self.arrays: dict[str, np.ndarray] = {n: np.asarray(a) for n, a in arrays.items()}
        self.keep: list[Any] = []  # keep named arrays alive so ids stay unique
        self.auto = 0
        #: names that stand for ``alpha + beta * base`` (``-y``, ``1 - y``): name -> (alpha, beta, base)
        self.affine: dict[str, tuple[float, float, str]] = {}

    def __call__(self, x: Any) -> str:
        v = np.asarray(unbox(x))
        if v.ndim == 0:
            return _format_number(float(v.item())) if v.dtype.kind in "fiub" else str(v.item())
        key = id(x)
        if key in self.by_id:
            name = self.by_id[key]
            self.arrays.setdefault(name, v)
            return name
        affine = self._affine(v)
        if affine is not None:
            self.by_id[key] = affine
            self.arrays[affine] = v
            self.keep.append(x)
            return affine
        self.auto += 1
        name = f"c{self.auto}"
        while name in self.arrays:
            self.auto += 1
            name = f"c{self.auto}"
        self.by_id[key] = name
        self.arrays[name] = v
        self.keep.append(x)
        return name

    def _affine(self, v: np.ndarray) -> str | None:
        """``alpha + beta k`` for a named constant ``k`` of the same shape, if exact."""
        if v.dtype.kind != "f" or v.size < 2:
            return None
        for name, k in list(self.arrays.items()):
            if k.shape != v.shape or k.dtype.kind != "f" or not re.fullmatch(r"[A-Za-z_]\w*", name):
                continue
            kf, vf = k.ravel(), v.ravel()
            spread = np.ptp(kf)
            if spread == 0:
                continue
            a, b = int(np.argmin(kf)), int(np.argmax(kf))
            beta = (vf[b] - vf[a]) / (kf[b] - kf[a])
            alpha = vf[a] - beta * kf[a]
            beta, alpha = float(np.round(beta, 12)), float(np.round(alpha, 12))
            if beta == 0 or not np.array_equal(alpha + beta * k, v):
                continue
            scaled = name if beta == 1 else f"-{name}" if beta == -1 else f"{beta:g} {name}"
            if alpha == 0:
                text = scaled
            elif scaled.startswith("-"):
                text = f"{alpha:g} - {scaled[1:]}"
            else:
                text = f"{alpha:g} + {scaled}"
            self.affine[text] = (alpha, beta, name)
            return text
        return None


class AxisNames:
    """One index name per axis of every value, shared by the axes an op lines up.

    ``names[node]`` is a tuple with one name per axis of the node's value,
    None for an axis of size 1 (a size-1 axis has one value; it is left out of
    index forms).
    """

    def __init__(self, order: Sequence[Node], declaration: Callable[[Node], Any]):
        self.parent: dict[tuple[Node, int], tuple[Node, int]] = {}
        self.votes: dict[tuple[Node, int], dict[str, list[int]]] = {}
        self._order = list(order)
        self._declaration = declaration
        n_votes = 0
        for node in order:
            for axis, size in enumerate(np.shape(node.ans)):
                if size != 1:
                    self.parent[(node, axis)] = (node, axis)
        for node in order:
            if node.prim is None:
                continue
            decl = declaration(node)
            groups = self._groups(node, decl)
            for _symbol, keys, candidate, weight in groups:
                keys = [k for k in keys if k in self.parent]
                for a, b in zip(keys, keys[1:]):
                    self._union(a, b)
                if candidate is not None and keys:
                    root = self._find(keys[0])
                    n_votes += 1
                    self.votes.setdefault(root, {}).setdefault(candidate, []).append(weight)
        self.names: dict[Node, tuple[str | None, ...]] = {}
        self._assign()

    # union-find
    def _find(self, k: tuple[Node, int]) -> tuple[Node, int]:
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def _union(self, a: tuple[Node, int], b: tuple[Node, int]) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        if rb in self.votes:
            mine = self.votes.setdefault(ra, {})
            for cand, weights in self.votes.pop(rb).items():
                mine.setdefault(cand, []).extend(weights)

    def _groups(self, node: Node, decl: Any) -> list[tuple[str, list, str | None, int]]:
        """(symbol, axes carrying it, candidate name, weight) for one recorded op."""
        traced = {k: p for k, p in node.parents}
        out: list[tuple[str, list, str | None, int]] = []
        if isinstance(decl, Einsum):
            spec = decl.spec(node.args, node.params)
            symbols = set("".join(spec.inputs) + spec.output)
            library = _library_style(symbols)
            names = dict(spec.names)
            for s in dict.fromkeys("".join(spec.inputs) + spec.output):
                keys = [(traced[k], ax) for k, term in enumerate(spec.inputs) if k in traced
                        for ax, t in enumerate(term) if t == s]
                keys += [(node, ax) for ax, t in enumerate(spec.output) if t == s]
                if s in names:
                    cand, weight = names[s], 3
                elif s.isascii() and s.isalpha():
                    cand, weight = s, 1 if library else 2
                else:
                    cand, weight = None, 0
                out.append((s, keys, cand, weight))
            return out
        if isinstance(decl, Elementwise):
            shapes = [tuple(np.shape(unbox(a))) for a in node.args] + [tuple(np.shape(node.ans))]
            try:
                spec = broadcast_spec(*shapes)
            except Exception:
                return out
            terms = list(spec.inputs)
            for s in dict.fromkeys("".join(terms)):
                keys = [(traced[k], ax) for k, term in enumerate(terms[:-1]) if k in traced
                        for ax, t in enumerate(term) if t == s]
                keys += [(node, ax) for ax, t in enumerate(terms[-1]) if t == s]
                out.append((s, keys, None, 0))
            return out
        if getattr(decl, "describe", None) == "negate" and 0 in traced:
            for ax in range(np.ndim(node.ans)):
                out.append((str(ax), [(traced[0], ax), (node, ax)], None, 0))
        return out

    def _assign(self) -> None:
        taken: set[str] = set()
        chosen: dict[tuple[Node, int], str] = {}
        for node in reversed(self._order):
            for axis in range(np.ndim(node.ans)):
                key = (node, axis)
                if key not in self.parent:
                    continue
                root = self._find(key)
                if root in chosen:
                    continue
                votes = self.votes.get(root, {})
                ranked = sorted(votes.items(), key=lambda cv: (-max(cv[1]), -len(cv[1])))
                pick = next((c for c, _ in ranked if c not in taken), None)
                if pick is None:
                    pick = next((c for c in _TEXTBOOK if c not in taken), f"n{len(taken)}")
                chosen[root] = pick
                taken.add(pick)
        for node in self._order:
            names: list[str | None] = []
            for ax in range(np.ndim(node.ans)):
                if (node, ax) not in self.parent:
                    names.append(None)
                    continue
                n = chosen[self._find((node, ax))]
                while n in names:
                    n += "'"  # two axes of one value on the same axis (A in x^T A x)
                names.append(n)
            self.names[node] = tuple(names)
        self.taken = taken

    def of(self, node: Node) -> tuple[str | None, ...]:
        return self.names[node]

    def indices(self, node: Node) -> tuple[str, ...]:
        """The names of the node's axes of size > 1."""
        return tuple(n for n in self.names[node] if n is not None)

    def all_names(self) -> set[str]:
        return set(self.taken)


def _library_style(symbols: Iterable[str]) -> bool:
    """Letters the library chooses itself: a run ``i, j, k, ...`` from ``i``."""
    s = sorted(symbols, key=_TEXTBOOK.index) if all(c in _TEXTBOOK for c in symbols) else None
    return s is not None and "".join(s) == _TEXTBOOK[: len(s)]
