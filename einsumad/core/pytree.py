"""Pytrees: nested dicts, lists and tuples of arrays, flattened to leaves and back.

Transformations take and return parameters in the structure the user wrote
(``{"W1": ..., "b1": ...}``), as JAX and optax do. Dict keys are visited in
sorted order; ``None`` is an empty subtree; named tuples are leaves.

This is the one pytree walker of the library: the transformations, ``compile``
(its cache key), ``codegen`` (the names of input leaves and the structure of
the return value) and the gradient checkers all use it. Walks are iterative, so
a tree thousands of levels deep flattens without recursion, and they create no
reference cycles (a finished transformation is freed by reference counting).
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["TreeDef", "tree_flatten", "tree_unflatten", "tree_map", "LEAF"]

_KINDS = ("leaf", "none", "dict", "list", "tuple")


class TreeDef:
    """The structure of a pytree: a kind, keys (for dicts) and child structures.

    Hashable and comparable, so it can key a cache; ``paths()`` lists the key
    path of every leaf.
    """

    __slots__ = ("kind", "keys", "children", "num_leaves", "_hash")

    def __init__(self, kind: str, keys: tuple = (), children: tuple[TreeDef, ...] = ()):
        self.kind = kind
        self.keys = keys
        self.children = children
        self.num_leaves = 1 if kind == "leaf" else sum(c.num_leaves for c in children)
        self._hash = hash((kind, keys, tuple(c._hash for c in children)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, TreeDef) or self._hash != other._hash:
            return False
        pairs = [(self, other)]
        while pairs:
            a, b = pairs.pop()
            if a is b:
                continue
            if a.kind != b.kind or a.keys != b.keys or len(a.children) != len(b.children):
                return False
            pairs.extend(zip(a.children, b.children))
        return True

    def paths(self) -> list[tuple[Any, ...]]:
        """The key path of each leaf, in leaf order: dict keys and sequence indices.

        >>> tree_flatten({"b": 2, "a": [1, (3,)]})[1].paths()
        [('a', 0), ('a', 1, 0), ('b',)]
        """
        out: list[tuple[Any, ...]] = []
        stack: list[tuple[TreeDef, tuple[Any, ...]]] = [(self, ())]
        while stack:
            node, path = stack.pop()
            if node.kind == "leaf":
                out.append(path)
                continue
            labels = node.keys if node.kind == "dict" else range(len(node.children))
            for label, child in reversed(list(zip(labels, node.children))):
                stack.append((child, path + (label,)))
        return out

    def render(self, leaves: list[str]) -> str:
        """Python source that builds this structure around the leaf sources.

        >>> tree_flatten({"a": 1, "b": (2,)})[1].render(["x", "y"])
        "{'a': x, 'b': (y,)}"
        """
        return self._render(lambda i: leaves[i])

    def __str__(self) -> str:
        return self._render(lambda i: "*")

    def __repr__(self) -> str:
        return f"TreeDef({self})"

    def _render(self, leaf: Callable[[int], str]) -> str:
        parts: list[str] = []
        count = 0
        stack: list[tuple[str, Any]] = [("node", self)]
        while stack:
            event, item = stack.pop()
            if event == "text":
                parts.append(item)
                continue
            node: TreeDef = item
            if node.kind == "leaf":
                parts.append(leaf(count))
                count += 1
                continue
            if node.kind == "none":
                parts.append("None")
                continue
            opening, closing = {"dict": ("{", "}"), "list": ("[", "]"), "tuple": ("(", ")")}[node.kind]
            if node.kind == "tuple" and len(node.children) == 1:
                closing = ",)"
            stack.append(("text", closing))
            for i in reversed(range(len(node.children))):
                stack.append(("node", node.children[i]))
                if node.kind == "dict":
                    stack.append(("text", f"{node.keys[i]!r}: "))
                if i:
                    stack.append(("text", ", "))
            parts.append(opening)
        return "".join(parts)


LEAF = TreeDef("leaf")
_NONE = TreeDef("none")


def _is_sequence(node: Any) -> bool:
    return isinstance(node, (list, tuple)) and not hasattr(node, "_fields")


def tree_flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """Leaves in a fixed order, and the structure to rebuild the tree.

    >>> leaves, treedef = tree_flatten({"b": 2, "a": [1, (3,)]})
    >>> leaves, str(treedef)
    ([1, 3, 2], "{'a': [*, (*,)], 'b': *}")
    """
    leaves: list[Any] = []
    built: list[TreeDef] = []
    stack: list[tuple[bool, Any]] = [(False, tree)]
    while stack:
        closing, node = stack.pop()
        if closing:
            kind, keys, count = node
            children = tuple(built[len(built) - count :]) if count else ()
            if count:
                del built[len(built) - count :]
            built.append(TreeDef(kind, keys, children))
        elif node is None:
            built.append(_NONE)
        elif isinstance(node, dict):
            keys = tuple(sorted(node))
            stack.append((True, ("dict", keys, len(keys))))
            stack.extend((False, node[k]) for k in reversed(keys))
        elif _is_sequence(node):
            stack.append((True, ("list" if isinstance(node, list) else "tuple", (), len(node))))
            stack.extend((False, c) for c in reversed(node))
        else:
            leaves.append(node)
            built.append(LEAF)
    return leaves, built[0]


def tree_unflatten(treedef: TreeDef, leaves: list[Any]) -> Any:
    """Rebuild a tree of ``treedef``'s structure from ``leaves``."""
    it = iter(leaves)
    built: list[Any] = []
    stack: list[tuple[bool, TreeDef]] = [(False, treedef)]
    while stack:
        closing, node = stack.pop()
        if node.kind == "leaf":
            built.append(next(it))
        elif node.kind == "none":
            built.append(None)
        elif not closing:
            stack.append((True, node))
            stack.extend((False, c) for c in reversed(node.children))
        else:
            count = len(node.children)
            children = built[len(built) - count :] if count else []
            if count:
                del built[len(built) - count :]
            if node.kind == "dict":
                built.append(dict(zip(node.keys, children)))
            else:
                built.append(children if node.kind == "list" else tuple(children))
    return built[0]


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
            raise ValueError(f"pytree structures differ: {treedef} versus {other_def}")
        others.append(other_leaves)
    return tree_unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])
