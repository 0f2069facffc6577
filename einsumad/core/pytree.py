"""Pytrees: nested dicts, lists and tuples of arrays, flattened to leaves and back.

Transformations take and return parameters in the structure the user wrote
(``{"W1": ..., "b1": ...}``), as JAX and optax do. Dict keys are visited in
sorted order; ``None`` is an empty subtree; named tuples are leaves.

This is the one pytree walker of the library: the transformations, ``compile``
(its cache key), ``codegen`` (the names of input leaves and the structure of
the return value) and the gradient checkers all use it.

A structure is recorded as a flat tuple of tokens in pre-order (a container's
kind and size, then its children), so it hashes and compares as one flat tuple:
cheap enough to key ``ea.compile``'s cache on every call, and a tree thousands
of levels deep needs no recursion anywhere. The walks create no reference
cycles, so a finished transformation is freed by reference counting.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from numpy import ndarray

__all__ = ["TreeDef", "tree_flatten", "tree_unflatten", "tree_map", "tree_signature", "LEAF", "leaf_expression"]

# Tokens: a leaf, None, or a container followed by its size (dicts: their keys).
_LEAF, _NONE, _LIST, _TUPLE, _DICT = range(5)


class TreeDef:
    """The structure of a pytree, hashable (it keys ``ea.compile``'s cache).

    >>> leaves, treedef = tree_flatten({"b": 2, "a": [1, (3,)]})
    >>> str(treedef), treedef.num_leaves
    ("{'a': [*, (*,)], 'b': *}", 3)
    """

    __slots__ = ("tokens", "num_leaves")

    def __init__(self, tokens: tuple, num_leaves: int):
        self.tokens = tokens
        self.num_leaves = num_leaves

    def __hash__(self) -> int:
        return hash(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TreeDef) and self.tokens == other.tokens

    @property
    def kind(self) -> str:
        """``"leaf"``, ``"none"``, ``"list"``, ``"tuple"`` or ``"dict"`` (the root's kind)."""
        return ("leaf", "none", "list", "tuple", "dict")[self.tokens[0]]

    def _events(self) -> Iterator[tuple[str, Any]]:
        """Walk the tokens in pre-order: ("leaf", i), ("none", None), ("open", (kind, labels)),
        ("child", label) before each child of a container, and ("close", kind)."""
        tokens = self.tokens
        pos = 0
        leaf = 0
        open_containers: list[list[Any]] = []  # [kind, labels, index of the next child]
        while True:
            token = tokens[pos]
            if token == _LEAF:
                yield "leaf", leaf
                leaf += 1
                pos += 1
            elif token == _NONE:
                yield "none", None
                pos += 1
            else:
                size = tokens[pos + 1]
                labels = size if token == _DICT else tuple(range(size))
                kind = ("list", "tuple", "dict")[token - _LIST]
                yield "open", (kind, labels)
                open_containers.append([kind, labels, 0])
                pos += 2
            while open_containers and open_containers[-1][2] == len(open_containers[-1][1]):
                yield "close", open_containers.pop()[0]
            if not open_containers:
                return
            top = open_containers[-1]
            yield "child", top[1][top[2]]
            top[2] += 1

    def paths(self) -> list[tuple[Any, ...]]:
        """The key path of each leaf, in leaf order: dict keys and sequence indices.

        >>> tree_flatten({"b": 2, "a": [1, (3,)]})[1].paths()
        [('a', 0), ('a', 1, 0), ('b',)]
        """
        out: list[tuple[Any, ...]] = []
        path: list[Any] = []
        depth_of_child: list[int] = []
        for event, value in self._events():
            if event == "open":
                depth_of_child.append(len(path))
            elif event == "child":
                del path[depth_of_child[-1] :]
                path.append(value)
            elif event == "close":
                del path[depth_of_child.pop() :]
            elif event == "leaf":
                out.append(tuple(path))
        return out

    def unflatten(self, leaves: list[Any]) -> Any:
        """Rebuild a tree of this structure from ``leaves``."""
        stack: list[tuple[str, Any, list[Any]]] = []
        result: Any = None
        for event, value in self._events():
            if event == "open":
                stack.append((value[0], value[1], []))
                continue
            if event == "child":
                continue
            if event == "leaf":
                built = leaves[value]
            elif event == "none":
                built = None
            else:
                kind, labels, children = stack.pop()
                if kind == "dict":
                    built = dict(zip(labels, children))
                else:
                    built = children if kind == "list" else tuple(children)
            if stack:
                stack[-1][2].append(built)
            else:
                result = built
        return result

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
        stack: list[tuple[str, int]] = []  # (kind, children seen)
        for event, value in self._events():
            if event == "open":
                parts.append({"dict": "{", "list": "[", "tuple": "("}[value[0]])
                stack.append((value[0], 0))
            elif event == "child":
                kind, seen = stack[-1]
                if seen:
                    parts.append(", ")
                if kind == "dict":
                    parts.append(f"{value!r}: ")
                stack[-1] = (kind, seen + 1)
            elif event == "close":
                _, seen = stack.pop()
                parts.append({"dict": "}", "list": "]", "tuple": ",)" if seen == 1 else ")"}[value])
            elif event == "leaf":
                parts.append(leaf(value))
            else:
                parts.append("None")
        return "".join(parts)


LEAF = TreeDef((_LEAF,), 1)


def tree_flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """Leaves in a fixed order, and the structure to rebuild the tree.

    >>> leaves, treedef = tree_flatten({"b": 2, "a": [1, (3,)]})
    >>> leaves, str(treedef)
    ([1, 3, 2], "{'a': [*, (*,)], 'b': *}")
    """
    leaves, tokens = _walk(tree, None)
    return leaves, TreeDef(tokens, len(leaves))


def tree_signature(tree: Any, leaf_key: Callable[[Any], Any]) -> tuple[list[Any], tuple]:
    """Leaves, and one flat hashable tuple of the structure with ``leaf_key(leaf)``
    in each leaf's place (``ea.compile``'s cache key: structure, shapes, dtypes).

    >>> tree_signature({"a": (1, 2.0)}, lambda leaf: type(leaf).__name__)[1]
    (4, ('a',), 3, 2, 'int', 'float')
    """
    return _walk(tree, leaf_key)


def _walk(tree: Any, leaf_key: Callable[[Any], Any] | None) -> tuple[list[Any], tuple]:
    """The one walk: pre-order tokens of the structure, and the leaves in order."""
    leaves: list[Any] = []
    tokens: list[Any] = []
    stack = [tree]
    pop, push, extend = stack.pop, tokens.append, stack.extend
    while stack:
        node = pop()
        kind = type(node)
        if kind is ndarray:
            push(_LEAF if leaf_key is None else leaf_key(node))
            leaves.append(node)
        elif kind is tuple or kind is list:
            push(_TUPLE if kind is tuple else _LIST)
            push(len(node))
            extend(reversed(node))
        elif node is None:
            push(_NONE)
        elif isinstance(node, dict):
            keys = tuple(sorted(node))
            push(_DICT)
            push(keys)
            extend(node[k] for k in reversed(keys))
        elif isinstance(node, (list, tuple)) and not hasattr(node, "_fields"):
            push(_LIST if isinstance(node, list) else _TUPLE)
            push(len(node))
            extend(reversed(node))
        else:
            push(_LEAF if leaf_key is None else leaf_key(node))
            leaves.append(node)
    return leaves, tuple(tokens)


def leaf_expression(name: str, path: tuple[Any, ...]) -> str:
    """The Python expression of a leaf: ``params['W1']`` for the path ``('W1',)`` of ``params``
    (codegen's locals, the verifier's messages).

    >>> leaf_expression("params", ("layers", 0, "W"))
    "params['layers'][0]['W']"
    """
    return name + "".join(f"[{key!r}]" for key in path)


def tree_unflatten(treedef: TreeDef, leaves: list[Any]) -> Any:
    """Rebuild a tree of ``treedef``'s structure from ``leaves``."""
    return treedef.unflatten(list(leaves))


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
