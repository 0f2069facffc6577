"""Parse and validate einsum subscripts: strings in, strings out, no arrays.

Two steps, so that nothing downstream ever sees user syntax:

1. :func:`parse` reads the user's text (NumPy letters or space-separated names,
   implicit or explicit output, ``...``) into a :class:`Subscripts` of tokens.
   Every syntax error is raised here.
2. :func:`resolve` binds a :class:`Subscripts` to operand shapes and returns a
   :class:`Spec`: one symbol per axis, ellipses expanded, and every size-1 axis
   that NumPy broadcasting would stretch given a symbol of its own (so that the
   swap rule sums it out). Every shape error is raised here.

A :class:`Spec` is a generalised einsum: an output symbol may repeat (diagonal
embedding) or be absent from every input (broadcast; its size is in ``sizes``).
"""

from __future__ import annotations

import functools
import operator
import string
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from opt_einsum import get_symbol

from .errors import EinsumError, pointer

__all__ = ["ELLIPSIS", "Subscripts", "Spec", "parse", "resolve", "fresh_symbols", "checked_sizes",
           "from_sublists"]

ELLIPSIS = "..."
_LETTERS = frozenset(string.ascii_letters)
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_")

Term = tuple[str, ...]


@dataclass(frozen=True)
class Subscripts:
    """Parsed subscripts: one tuple of tokens (letters, names or ``...``) per term.

    >>> s = parse("ij,jk")
    >>> s.inputs, s.output, s.explicit
    ((('i', 'j'), ('j', 'k')), ('i', 'k'), False)
    >>> str(s)
    'ij,jk->ik'
    >>> str(parse("batch in, in out -> batch out"))
    'batch in, in out -> batch out'
    """

    text: str
    inputs: tuple[Term, ...]
    output: Term
    explicit: bool
    named: bool

    def __str__(self) -> str:
        return format_terms(self.inputs, self.output, self.named)

    def letters(self) -> list[str]:
        """Every index (letter or name) in order of first appearance."""
        seen: dict[str, None] = {}
        for term in (*self.inputs, self.output):
            for token in term:
                if token != ELLIPSIS:
                    seen.setdefault(token)
        return list(seen)


def format_terms(inputs: Iterable[Term], output: Term, named: bool) -> str:
    """Render terms back in the user's style (letters glued, or names spaced)."""
    if named:
        return ", ".join(" ".join(t) for t in inputs) + " -> " + " ".join(output)
    return ",".join("".join(t) for t in inputs) + "->" + "".join(output)


@dataclass(frozen=True)
class Spec:
    """A resolved generalised einsum: one symbol per axis of every operand.

    ``sizes`` holds the size of every symbol, sorted, so a Spec is hashable and
    two equal Specs plan the same contraction.

    >>> spec = Spec(("ij", "j"), "i", (("i", 2), ("j", 3)))
    >>> str(spec), spec.size("j")
    ('ij,j->i', 3)
    """

    inputs: tuple[str, ...]
    output: str
    sizes: tuple[tuple[str, int], ...]
    #: The user's name of each symbol that came from a named index (``"batch"``),
    #: for display only; letters the user wrote are their own symbols.
    names: tuple[tuple[str, str], ...] = ()
    _size_map: dict[str, int] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_size_map", dict(self.sizes))
        object.__setattr__(self, "_hash", hash((self.inputs, self.output, self.sizes, self.names)))

    def __hash__(self) -> int:  # cached: specs key every plan and swap cache
        return self._hash  # type: ignore[attr-defined,no-any-return]

    def __str__(self) -> str:
        return ",".join(self.inputs) + "->" + self.output

    def size(self, symbol: str) -> int:
        return self._size_map[symbol]

    def shape(self, term: str) -> tuple[int, ...]:
        return tuple(self._size_map[s] for s in term)

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._size_map)

    def with_terms(
        self,
        inputs: Sequence[str],
        output: str,
        sizes: Iterable[tuple[str, int]] | None = None,
    ) -> Spec:
        """A spec with new terms (and sizes), keeping the user's index names."""
        return Spec(
            tuple(inputs), output, self.sizes if sizes is None else tuple(sorted(sizes)), self.names
        )

    def name_of(self, symbol: str) -> str:
        """The user's name for ``symbol`` (the symbol itself for a letter)."""
        return dict(self.names).get(symbol, symbol)


#: The order in which fresh symbols are chosen: the letters of textbook indices first.
_FRESH_ORDER = "ijklmnopqrstuvwxyzabcdefghIJKLMNOPQRSTUVWXYZABCDEFGH"


def fresh_symbols(used: Iterable[str], count: int) -> str:
    """``count`` single-character symbols not in ``used``, deterministic.

    Textbook letters come first (``i j k ...``), then the rest of the alphabet,
    then opt_einsum's symbols beyond it.

    >>> fresh_symbols("ijk", 2)
    'lm'
    """
    taken = set(used)
    out: list[str] = []
    for s in _FRESH_ORDER:
        if len(out) == count:
            return "".join(out)
        if s not in taken:
            out.append(s)
    i = 0
    while len(out) < count:
        s = get_symbol(i)
        if s not in taken and s not in _FRESH_ORDER:
            out.append(s)
        i += 1
    return "".join(out)


# --------------------------------------------------------------------------- parse


def _fail(text: str, message: str, position: int | None = None) -> EinsumError:
    where = pointer(text, position)
    return EinsumError(f"einsum {text!r}: {message}" + (f"\n{where}" if where else ""))


def _split_arrow(text: str) -> tuple[str, str | None, int]:
    """Split at the one ``->``; reject a second one and stray ``-`` or ``>``."""
    arrows = [i for i in range(len(text) - 1) if text[i : i + 2] == "->"]
    if len(arrows) > 1:
        raise _fail(text, "'->' appears more than once", arrows[1])
    for i, ch in enumerate(text):
        if ch in "->" and not any(a <= i <= a + 1 for a in arrows):
            raise _fail(text, f"stray {ch!r}: the output is introduced by '->'", i)
    if not arrows:
        return text, None, -1
    a = arrows[0]
    return text[:a], text[a + 2 :], a + 2


def _is_named(text: str, pieces: Sequence[str]) -> bool:
    """The rule between letters and names (``...`` is never a name): named mode when
    some term holds two or more space-separated names, or a name with a digit or ``_``.

    >>> _is_named("", ["batch in", "in out"]), _is_named("", ["... ji"]), _is_named("", ["x_1"])
    (True, False, True)
    """
    for piece in pieces:
        words = [w for w in piece.split() if w != ELLIPSIS]
        if len(words) >= 2:
            return True
        if any(ch in string.digits or ch == "_" for w in words for ch in w):
            return True
    return False


def _letter_term(text: str, piece: str, offset: int, is_output: bool) -> Term:
    tokens: list[str] = []
    i = 0
    while i < len(piece):
        ch = piece[i]
        if ch in _LETTERS:
            tokens.append(ch)
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == ".":
            if piece[i : i + 3] != ELLIPSIS:
                raise _fail(text, "stray '.': an ellipsis is exactly '...'", offset + i)
            if ELLIPSIS in tokens:
                raise _fail(text, "a term may hold only one '...'", offset + i)
            tokens.append(ELLIPSIS)
            i += 3
        else:
            raise _fail(
                text,
                f"{ch!r} is not a letter: indices are single letters a-z, A-Z "
                "(or space-separated names)",
                offset + i,
            )
    return tuple(tokens)


def _named_term(text: str, piece: str, offset: int) -> Term:
    tokens: list[str] = []
    position = offset
    for word in piece.split(" "):
        if word == "":
            position += 1
            continue
        if word == ELLIPSIS:
            if ELLIPSIS in tokens:
                raise _fail(text, "a term may hold only one '...'", position)
            tokens.append(word)
        elif word[0].isdigit() or not set(word) <= _NAME_CHARS:
            bad = next((j for j, c in enumerate(word) if c not in _NAME_CHARS), 0)
            raise _fail(
                text,
                f"{word!r} is not an index name: names are letters, digits and _, "
                "starting with a letter or _",
                position + bad,
            )
        else:
            tokens.append(word)
        position += len(word) + 1
    return tuple(tokens)


def _implicit_output(inputs: Sequence[Term]) -> Term:
    """NumPy's implicit mode: the indices used exactly once, sorted, ``...`` first."""
    counts: dict[str, int] = {}
    for term in inputs:
        for token in term:
            counts[token] = counts.get(token, 0) + 1
    once = sorted(t for t, n in counts.items() if n == 1 and t != ELLIPSIS)
    has_ellipsis = any(ELLIPSIS in term for term in inputs)
    return ((ELLIPSIS,) if has_ellipsis else ()) + tuple(once)


def parse(text: str) -> Subscripts:
    """Parse subscripts in NumPy style or in named style.

    The rule between the two styles, in one sentence: the subscripts are named
    indices when some term holds two or more space-separated names (``...`` is
    never a name) or a name with a digit or underscore, and single letters
    otherwise. Letter mode is NumPy's (``"ij,jk->ik"``, implicit ``"ij,jk"``,
    ``"...ij"``; spaces are ignored, so ``"... ji"`` is the letters ``j`` and
    ``i``); named mode reads ``"batch in, in out -> batch out"``.

    >>> parse("ii").output
    ()
    >>> parse("...ij,...jk").output
    ('...', 'i', 'k')
    >>> parse("ij->jj").output  # generalised: a repeated output letter
    ('j', 'j')
    """
    if not isinstance(text, str):
        raise TypeError(f"einsum subscripts must be a string, got {text!r}")
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Subscripts:
    lhs, rhs, rhs_offset = _split_arrow(text)
    pieces = lhs.split(",")
    named = _is_named(text, pieces + ([rhs] if rhs is not None else []))
    inputs: list[Term] = []
    offset = 0
    for piece in pieces:
        if named:
            inputs.append(_named_term(text, piece, offset))
        else:
            inputs.append(_letter_term(text, piece, offset, False))
        offset += len(piece) + 1
    if rhs is None:
        output = _implicit_output(inputs)
    else:
        if "," in rhs:
            raise _fail(text, "the output is a single term: ',' after '->'", rhs_offset + rhs.index(","))
        output = (
            _named_term(text, rhs, rhs_offset)
            if named
            else _letter_term(text, rhs, rhs_offset, True)
        )
    return Subscripts(text, tuple(inputs), tuple(output), rhs is not None, named)


# --------------------------------------------------------------------------- the sublist form

#: NumPy's letters for the integer labels 0..51 of the sublist form.
_SUBLIST_LETTERS = string.ascii_uppercase + string.ascii_lowercase


def from_sublists(sublists: Sequence[Any], output: Any = None) -> tuple[str, dict[Any, str]]:
    """Subscripts for the sublist form ``einsum(x, [0, 1], y, [1, 2], [0, 2])``.

    Integer labels 0..51 are NumPy's letters (0-25 ``A-Z``, 26-51 ``a-z``), so the
    implicit output lists them in increasing order, as NumPy does; other hashable
    labels (opt_einsum accepts any) take the same letters in sorted order.
    ``Ellipsis`` is ``...``. Returns the subscripts and the letter of each label.

    >>> from_sublists([[0, 1], [1, 2]], [0, 2])
    ('AB,BC->AC', {0: 'A', 1: 'B', 2: 'C'})
    >>> from_sublists([[Ellipsis, "i"], ["i"]])[0]
    '...A,A'
    """
    terms = list(sublists) + ([] if output is None else [output])
    for k, term in enumerate(terms):
        if not isinstance(term, (list, tuple)):
            what = "the output" if output is not None and k == len(terms) - 1 else f"operand {k}"
            raise TypeError(
                f"einsum: the subscripts of {what} must be a list or a tuple of labels "
                f"(the sublist form einsum(x, [0, 1], y, [1, 2], [0, 2])); got {term!r}"
            )
    labels: dict[Any, None] = {}
    for term in terms:
        for label in term:
            if label is Ellipsis:
                continue
            if isinstance(label, bool):
                raise TypeError(f"einsum: a label is an integer, Ellipsis or another hashable, not {label!r}")
            try:
                hash(label)
            except TypeError:
                raise TypeError(f"einsum: label {label!r} is not hashable") from None
            labels.setdefault(_as_int(label))
    if all(isinstance(label, int) and 0 <= label < len(_SUBLIST_LETTERS) for label in labels):
        letter = {label: _SUBLIST_LETTERS[label] for label in labels}
    else:
        if len(labels) > len(_SUBLIST_LETTERS):
            raise ValueError(
                f"einsum: the sublists use {len(labels)} distinct labels; at most "
                f"{len(_SUBLIST_LETTERS)} are supported"
            )
        try:
            order = sorted(labels)
        except TypeError:  # labels of mixed types: their order of first appearance
            order = list(labels)
        letter = dict(zip(order, _SUBLIST_LETTERS))

    def render(term: Sequence[Any]) -> str:
        return "".join(ELLIPSIS if t is Ellipsis else letter[_as_int(t)] for t in term)

    text = ",".join(render(t) for t in sublists)
    if output is not None:
        text += "->" + render(output)
    return text, letter


def _as_int(label: Any) -> Any:
    """An integer label (``np.int64(2)`` included) as a Python int; others unchanged."""
    if isinstance(label, int) or not hasattr(label, "__index__"):
        return label
    return operator.index(label)


# --------------------------------------------------------------------------- resolve


def _describe(k: int, shape: tuple[int, ...]) -> str:
    return f"operand {k} (shape {shape})"


def _position_of(sub: Subscripts, k: int, token: str) -> int | None:
    """Character position of ``token`` in term ``k`` of the user's text (or None)."""
    text = sub.text
    lhs = text.split("->")[0]
    start = 0
    for _ in range(k):
        start = lhs.find(",", start) + 1
        if start == 0:
            return None
    end = lhs.find(",", start)
    piece = lhs[start : (end if end >= 0 else len(lhs))]
    found = piece.find(token)
    return None if found < 0 else start + found


def resolve(
    sub: Subscripts,
    shapes: Sequence[tuple[int, ...]],
    sizes: Mapping[str, int] | None = None,
) -> Spec:
    """Bind parsed subscripts to operand shapes; return the resolved :class:`Spec`.

    Ellipses become symbols of their own, right-aligned as in NumPy. A size-1
    axis that broadcasting stretches is renamed to a fresh symbol of size 1:
    it is then summed out in the forward pass (a no-op) and broadcast back by
    the swapped VJP, which is exactly "unbroadcasting".

    >>> str(resolve(parse("ij,jk->ik"), [(2, 3), (3, 4)]))
    'ij,jk->ik'
    >>> str(resolve(parse("...i,...i->...i"), [(1, 3), (5, 3)]))
    'ki,ji->ji'
    >>> str(resolve(parse("i->ij"), [(3,)], {"j": 2}))
    'i->ij'
    """
    text = sub.text
    if len(shapes) != len(sub.inputs):
        raise EinsumError(
            f"einsum {text!r}: the subscripts name {len(sub.inputs)} operand(s) "
            f"but {len(shapes)} were given"
        )
    # Symbols for the user's indices.
    names = sub.letters()
    symbol_of = _named_symbols(names) if sub.named else {name: name for name in names}
    used = set(symbol_of.values())

    # Ranks and ellipsis widths.
    widths: list[int] = []
    for k, (term, shape) in enumerate(zip(sub.inputs, shapes)):
        explicit = len(term) - (ELLIPSIS in term)
        if ELLIPSIS in term:
            if len(shape) < explicit:
                raise _fail(
                    text,
                    f"term {_show(term, sub.named)!r} of operand {k} needs at least "
                    f"{explicit} dimensions, but the operand has shape {shape}",
                    _position_of(sub, k, term[0] if term else ""),
                )
            widths.append(len(shape) - explicit)
        else:
            if len(shape) != explicit:
                raise _fail(
                    text,
                    f"term {_show(term, sub.named)!r} of operand {k} has {explicit} "
                    f"indices but the operand has {len(shape)} dimensions (shape {shape})",
                    _position_of(sub, k, term[0]) if term else None,
                )
            widths.append(0)
    width = max(widths, default=0)
    if sub.explicit and width and ELLIPSIS not in sub.output:
        kept = format_terms(sub.inputs, (ELLIPSIS, *sub.output), sub.named)
        raise _fail(
            text,
            f"the operands have {width} ax{'i' if width == 1 else 'e'}s under '...' but the "
            "output has no '...'; as in NumPy, an explicit output keeps the ellipsis axes "
            f"(write {kept!r}), or give them letters to sum them",
            _output_position(sub, ""),
        )
    ellipsis_symbols = fresh_symbols(used, width)
    used.update(ellipsis_symbols)

    # Each axis of each operand gets a symbol; record the sizes seen per symbol.
    terms: list[list[str]] = []
    seen: dict[str, list[tuple[int, int]]] = {}  # symbol -> [(operand, size)]
    for k, (term, shape) in enumerate(zip(sub.inputs, shapes)):
        symbols: list[str] = []
        for token in term:
            if token == ELLIPSIS:
                symbols.extend(ellipsis_symbols[width - widths[k] :])
            else:
                symbols.append(symbol_of[token])
        terms.append(symbols)
        within: dict[str, int] = {}
        for s, n in zip(symbols, shape):
            if s in within and within[s] != n:
                token = _token_of(s, symbol_of)
                raise _fail(
                    text,
                    f"index {token!r} repeats in operand {k} (shape {shape}) with "
                    f"different sizes {within[s]} and {n}; a repeated index takes a "
                    "diagonal, which needs equal sizes",
                    _position_of(sub, k, token),
                )
            within[s] = n
            seen.setdefault(s, []).append((k, n))

    given = checked_sizes(sizes)
    for key in given:
        if key not in symbol_of:
            raise _fail(text, f"sizes names {key!r}, which is not an index of the subscripts")
    size_of: dict[str, int] = {}
    for s, occurrences in seen.items():
        distinct = {n for _, n in occurrences if n != 1}
        if len(distinct) > 1:
            token = _token_of(s, symbol_of)
            (k0, n0), (k1, n1) = _first_conflict(occurrences)
            raise _fail(
                text,
                f"index {token!r} has size {n0} in {_describe(k0, tuple(shapes[k0]))} "
                f"but size {n1} in {_describe(k1, tuple(shapes[k1]))}",
                _position_of(sub, k1, token) if token != ELLIPSIS else None,
            )
        size_of[s] = distinct.pop() if distinct else 1
    for key, n in given.items():
        s = symbol_of[key]
        if n < 0:
            raise _fail(text, f"sizes[{key!r}] must be a non-negative int, got {n!r}")
        if s in size_of and size_of[s] != n and size_of[s] != 1:
            raise _fail(
                text, f"sizes[{key!r}] = {n} but the operands give index {key!r} size {size_of[s]}"
            )
        if s not in size_of:
            size_of[s] = n

    # Rename each stretched size-1 axis to a fresh symbol of size 1.
    for k, symbols in enumerate(terms):
        for axis, s in enumerate(symbols):
            if shapes[k][axis] == 1 and size_of[s] != 1:
                fresh = fresh_symbols(used, 1)
                used.add(fresh)
                symbols[axis] = fresh
                size_of[fresh] = 1

    output: list[str] = []
    for token in sub.output:
        if token == ELLIPSIS:
            output.extend(ellipsis_symbols)
            continue
        s = symbol_of[token]
        if s not in size_of:
            raise _fail(
                text,
                f"output index {token!r} appears in no operand, so its size is unknown; "
                f"pass sizes={{{token!r}: n}}",
                _output_position(sub, token),
            )
        output.append(s)
    labels = tuple(sorted((s, name) for name, s in symbol_of.items() if s != name))
    return Spec(
        tuple("".join(t) for t in terms), "".join(output), tuple(sorted(size_of.items())), labels
    )


def checked_sizes(sizes: Mapping[str, int] | None) -> dict[str, int]:
    """``sizes`` as a dict of index name to int; a TypeError names ``sizes`` otherwise.

    >>> checked_sizes({"j": 3})
    {'j': 3}
    >>> checked_sizes([("j", 3)])
    Traceback (most recent call last):
    TypeError: einsum: sizes must be a mapping from index to size, e.g. sizes={'j': 3}; got list [('j', 3)]
    """
    if sizes is None:
        return {}
    if not isinstance(sizes, Mapping):
        raise TypeError(
            "einsum: sizes must be a mapping from index to size, e.g. sizes={'j': 3}; "
            f"got {type(sizes).__name__} {sizes!r}"
        )
    out: dict[str, int] = {}
    for key, n in sizes.items():
        if not isinstance(key, str):
            raise TypeError(f"einsum: the keys of sizes are index names (str); got {key!r}")
        if isinstance(n, bool):
            raise TypeError(f"einsum: sizes[{key!r}] must be an int, got {n!r}")
        try:
            out[key] = operator.index(n)
        except TypeError:
            raise TypeError(f"einsum: sizes[{key!r}] must be an int, got {n!r}") from None
    return out


def _named_symbols(names: Sequence[str]) -> dict[str, str]:
    """A one-character symbol for each named index: its initial where free.

    >>> _named_symbols(["batch", "in", "hidden", "head"])
    {'batch': 'b', 'in': 'i', 'hidden': 'h', 'head': 'j'}
    """
    symbol_of: dict[str, str] = {}
    for name in names:
        initial = name[0]
        if initial in _LETTERS and initial not in symbol_of.values():
            symbol_of[name] = initial
    for name in names:
        if name not in symbol_of:
            symbol_of[name] = fresh_symbols(symbol_of.values(), 1)
    return symbol_of


def _show(term: Term, named: bool) -> str:
    return (" " if named else "").join(term)


def _token_of(symbol: str, symbol_of: Mapping[str, str]) -> str:
    for token, s in symbol_of.items():
        if s == symbol:
            return token
    return ELLIPSIS


def _first_conflict(occurrences: list[tuple[int, int]]) -> tuple[tuple[int, int], tuple[int, int]]:
    first = next(o for o in occurrences if o[1] != 1)
    second = next(o for o in occurrences if o[1] not in (1, first[1]))
    return first, second


def _output_position(sub: Subscripts, token: str) -> int | None:
    arrow = sub.text.find("->")
    if arrow < 0:
        return None
    found = sub.text.find(token, arrow + 2)
    return None if found < 0 else found
