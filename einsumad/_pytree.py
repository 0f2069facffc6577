"""Pytrees: nested dicts, lists and tuples of arrays, flattened to leaves and back.

Transformations take and return parameters in the structure the user wrote
(``{"W1": ..., "b1": ...}``), as JAX and optax do. Dict keys are visited in
sorted order; ``None`` is an empty subtree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["TreeDef", "tree_flatten", "tree_unflatten", "tree_map", "tree_structure"]


@dataclass(frozen=True)
class TreeDef:
    """The structure of a pytree: a kind, keys (for dicts) and child structures."""

    kind: str  # "leaf", "none", "dict", "list" or "tuple"
    keys: tuple = ()
    children: tuple[TreeDef, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.kind, self.keys, self.children)))

    def __hash__(self) -> int:  # cached: tree definitions key compiled programs
        return self._hash  # type: ignore[attr-defined,no-any-return]

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def __str__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        if self.kind == "dict":
            inner = ", ".join(f"{k!r}: {c}" for k, c in zip(self.keys, self.children))
            return "{" + inner + "}"
        inner = ", ".join(str(c) for c in self.children)
        return f"[{inner}]" if self.kind == "list" else f"({inner}{',' if len(self.children) == 1 else ''})"


_LEAF = TreeDef("leaf")


def tree_flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """Leaves in a fixed order, and the structure to rebuild the tree.

    >>> leaves, treedef = tree_flatten({"b": 2, "a": [1, (3,)]})
    >>> leaves, str(treedef)
    ([1, 3, 2], "{'a': [*, (*,)], 'b': *}")
    """
    leaves: list[Any] = []

    def walk(node: Any) -> TreeDef:
        if node is None:
            return TreeDef("none")
        if isinstance(node, dict):
            keys = tuple(sorted(node))
            return TreeDef("dict", keys, tuple(walk(node[k]) for k in keys))
        if isinstance(node, (list, tuple)) and not _is_namedtuple(node):
            return TreeDef("list" if isinstance(node, list) else "tuple", (), tuple(walk(c) for c in node))
        leaves.append(node)
        return _LEAF

    return leaves, walk(tree)


def _is_namedtuple(node: Any) -> bool:
    return isinstance(node, tuple) and hasattr(node, "_fields")


def tree_unflatten(treedef: TreeDef, leaves: list[Any]) -> Any:
    """Rebuild a tree of ``treedef``'s structure from ``leaves``."""
    it = iter(leaves)

    def build(td: TreeDef) -> Any:
        if td.kind == "leaf":
            return next(it)
        if td.kind == "none":
            return None
        if td.kind == "dict":
            return {k: build(c) for k, c in zip(td.keys, td.children)}
        children = [build(c) for c in td.children]
        return children if td.kind == "list" else tuple(children)

    return build(treedef)


def tree_structure(tree: Any) -> TreeDef:
    return tree_flatten(tree)[1]


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply ``fn`` leaf by leaf to trees of one structure.

    >>> tree_map(lambda a, b: a + b, {"x": 1, "y": [2]}, {"x": 10, "y": [20]})
    {'x': 11, 'y': [22]}
    """
    leaves, treedef = tree_flatten(tree)
    others = []
    for other in rest:
        other_leaves, other_def = tree_flatten(other)
        if other_def != treedef:
            raise ValueError(
                f"pytree structures differ: {treedef} versus {other_def}"
            )
        others.append(other_leaves)
    return tree_unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])
