"""Parse and resolve einops-style rearrange patterns. Pure strings and shapes.

A pattern such as ``"b s (h d) -> b h s d"`` names every *elementary* axis
once on each side; parentheses group adjacent elementary axes into one array
axis (their sizes multiply). ``...`` stands for any number of axes (it may be
grouped on the right, ``"b ... -> b (...)"``); ``()`` and ``1`` are axes of
size 1. Rearranging is then three steps, each a linear map whose transpose is
the step read backwards:

1. ungroup the input axes (a reshape to the elementary shape),
2. permute the elementary axes (a transpose),
3. group them as the right side says (a reshape).

:func:`plan` returns the three. The VJP applies their transposes in reverse
order (reshape, inverse transpose, reshape), which is the pattern read from right
to left.

Every error is a :class:`~einsumad.EinsumError` (a ``ValueError``) quoting the
pattern, and the shape when one is involved.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .errors import EinsumError

__all__ = ["Plan", "parse", "plan"]

ELLIPSIS = "..."
_TOKEN = re.compile(r"\.\.\.|[()]|[A-Za-z_][A-Za-z0-9_]*|\d+|\S")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Side = tuple  # of groups
"""One side of a pattern: per array axis, the tuple of its elementary names; an
ungrouped ``...`` (any number of array axes) is the string ``"..."`` itself."""


@dataclass(frozen=True)
class Plan:
    """How to rearrange an array of a given shape: reshape, transpose, reshape."""

    elementary_shape: tuple[int, ...]
    permutation: tuple[int, ...]
    output_shape: tuple[int, ...]


def _error(pattern: str, message: str, shape: tuple[int, ...] | None = None) -> EinsumError:
    where = f"rearrange pattern {pattern!r}" + (f" with input shape {shape}" if shape is not None else "")
    return EinsumError(f"{where}: {message}")


def _parse_side(pattern: str, text: str, side: str) -> tuple[Side, bool]:
    """The groups of one side, and whether ``...`` sits inside parentheses."""
    groups: list = []
    current: list[str] | None = None
    grouped_ellipsis = False
    seen: set[str] = set()
    for token in _TOKEN.findall(text):
        if token == "(":
            if current is not None:
                raise _error(pattern, f"nested parentheses on the {side} side")
            current = []
            continue
        if token == ")":
            if current is None:
                raise _error(pattern, f"unmatched ')' on the {side} side")
            groups.append(tuple(current))
            current = None
            continue
        if token.isdigit():
            if token != "1":
                raise _error(
                    pattern,
                    f"numeric axis {token!r} on the {side} side; only 1 (an axis of size 1) "
                    f"is allowed, give sizes as keywords instead ({side} side names with n={token})",
                )
            if current is None:
                groups.append(())
            continue
        if token != ELLIPSIS and not _NAME.fullmatch(token):
            raise _error(pattern, f"unexpected character {token!r} on the {side} side")
        if token in seen:
            what = "'...' appears" if token == ELLIPSIS else f"axis {token!r} appears"
            raise _error(pattern, f"{what} twice on the {side} side")
        seen.add(token)
        if current is None:
            groups.append(token if token == ELLIPSIS else (token,))
        else:
            grouped_ellipsis = grouped_ellipsis or token == ELLIPSIS
            current.append(token)
    if current is not None:
        raise _error(pattern, f"unmatched '(' on the {side} side")
    return tuple(groups), grouped_ellipsis


@functools.lru_cache(maxsize=1024)
def parse(pattern: str) -> tuple[Side, Side]:
    """The left and right sides of ``pattern`` as groups of elementary names.

    >>> parse("b s (h d) -> b h s d")
    ((('b',), ('s',), ('h', 'd')), (('b',), ('h',), ('s',), ('d',)))
    >>> parse("b ... -> b (...)")
    ((('b',), '...'), (('b',), ('...',)))
    """
    if not isinstance(pattern, str):
        raise TypeError(f"a rearrange pattern must be a string, got {pattern!r}")
    if pattern.count("->") != 1:
        raise _error(pattern, "expected exactly one '->' between the input and output axes")
    left_text, right_text = pattern.split("->")
    left, left_grouped = _parse_side(pattern, left_text, "left")
    right, _ = _parse_side(pattern, right_text, "right")
    if left_grouped:
        raise _error(pattern, "'...' cannot be inside parentheses on the left side")
    names_left, names_right = set(_names(left)), set(_names(right))
    for names, here, there in ((names_left - names_right, "left", "right"), (names_right - names_left, "right", "left")):
        if names:
            listed = ", ".join(repr(n) for n in sorted(names))
            raise _error(
                pattern,
                f"{listed} appear(s) on the {here} side but not on the {there}; rearrange "
                "only regroups and permutes axes, so both sides must name the same axes "
                "(sum or broadcast to drop or add one)",
            )
    return left, right


def _names(side: Side) -> list[str]:
    """The elementary names of one side, in order (``...`` counted as one name)."""
    return [n for g in side for n in ((g,) if g == ELLIPSIS else g)]


def _expand(side: Side, ellipsis_names: tuple[str, ...]) -> Side:
    out: list[tuple[str, ...]] = []
    for group in side:
        if group == ELLIPSIS:  # ungrouped: one array axis per ellipsis axis
            out.extend((n,) for n in ellipsis_names)
        elif ELLIPSIS in group:
            i = group.index(ELLIPSIS)
            out.append(group[:i] + ellipsis_names + group[i + 1 :])
        else:
            out.append(group)
    return tuple(out)


def _render(group: tuple[str, ...]) -> str:
    return group[0] if len(group) == 1 else "(" + " ".join(group) + ")"


@functools.lru_cache(maxsize=4096)
def plan(pattern: str, shape: tuple[int, ...], sizes: tuple[tuple[str, int], ...] = ()) -> Plan:
    """Resolve ``pattern`` against an input ``shape`` and the given axis ``sizes``.

    >>> plan("b s (h d) -> b h s d", (2, 3, 8), (("h", 4),))
    Plan(elementary_shape=(2, 3, 4, 2), permutation=(0, 2, 1, 3), output_shape=(2, 4, 3, 2))
    """
    left, right = parse(pattern)
    given = dict(sizes)
    names = set(_names(left))
    for name, size in given.items():
        if name not in names or name == ELLIPSIS:
            raise _error(pattern, f"a size was given for axis {name!r}, which is not in the pattern")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _error(pattern, f"the size of axis {name!r} must be a non-negative int, got {size!r}")

    has_ellipsis = ELLIPSIS in names
    fixed = len(left) - has_ellipsis
    if len(shape) < fixed or (not has_ellipsis and len(shape) != fixed):
        raise _error(
            pattern,
            f"the left side has {fixed}{' or more' if has_ellipsis else ''} axes but the "
            f"input has {len(shape)}",
            shape,
        )
    ellipsis_names = tuple(f"...{k}" for k in range(len(shape) - fixed)) if has_ellipsis else ()
    left = _expand(left, ellipsis_names)
    right = _expand(right, ellipsis_names)

    known = dict(given)
    for axis, (group, length) in enumerate(zip(left, shape)):
        unknown = [n for n in group if n not in known]
        product = 1
        for n in group:
            if n in known:
                product *= known[n]
        if len(unknown) > 1:
            raise _error(
                pattern,
                f"cannot infer the sizes of {', '.join(unknown)} in {_render(group)} "
                f"(axis {axis}, length {length}); give all but one as keywords, "
                f"e.g. {unknown[0]}=...",
                shape,
            )
        if unknown:
            if product == 0 or length % product:
                given_text = ", ".join(f"{n}={known[n]}" for n in group if n in known)
                raise _error(
                    pattern,
                    f"the group {_render(group)} does not divide axis {axis} of length "
                    f"{length}: {length} is not a multiple of {product} ({given_text})",
                    shape,
                )
            known[unknown[0]] = length // product
        elif product != length:
            detail = " * ".join(f"{n}={known[n]}" for n in group) or "()"
            raise _error(
                pattern,
                f"axis {axis} has length {length} but {_render(group) if group else '()'} "
                f"has size {detail} = {product}",
                shape,
            )

    elementary = tuple(n for g in left for n in g)
    permutation = tuple(elementary.index(n) for g in right for n in g)
    output_shape = []
    for group in right:
        size = 1
        for n in group:
            size *= known[n]
        output_shape.append(size)
    return Plan(tuple(known[n] for n in elementary), permutation, tuple(output_shape))
