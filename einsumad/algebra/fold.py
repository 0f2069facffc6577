"""Folding a backward pass: sums of einsum terms over named factors, as strings.

Every step of a backward pass is a generalised einsum (the swap) or a Hadamard
product with a local derivative (a diagonal einsum). Composing steps is
substituting one einsum into another; adding the contributions that reach one
cotangent is adding einsums. This module does that algebra on names and index
strings only, so that a derivation can show ``delta3 = (a3 - y) ⊙ σ'(z3)``
instead of four one-VJP lines, and ``(A + A^T) x`` instead of two.

The objects:

* a :class:`Factor` is a named value with its indices and an integer power
  (``W_ij``, ``a_i^-1``), or a function applied to one (``σ'(z_i)``);
* a :class:`Term` is a number times a product of factors;
* a :class:`Poly` is a sum of terms with free indices: every index of a term
  that is not free is summed (Einstein's convention, term by term), and a free
  index that no factor of a term carries is broadcast.

The Kronecker delta is the factor named :data:`DELTA`; contracting it is a
relabelling (:func:`contract_deltas`), as in :func:`~einsumad.algebra.swap.contract_delta`.
The vector of ones is the factor named :data:`ONES`: when a summed index is
left on no factor of a term (substituting ``g_j = 2 x_j - 0.5 sum_k x_k`` into
``sum_j g_j``), the sum is not lost: ``1_j`` keeps it, and ``sum_j 1_j`` is the
size of ``j`` (:func:`resolve_sizes` writes it as that number once the sizes
are known).
Index names are any strings (letters, or the user's names such as ``batch``);
fresh indices are primed (``i'``), so an index keeps the axis it stands for.

>>> z = Poly.parse("z_i = W_ij a_j + b_i")
>>> g = Poly.parse("g_i = delta_i")
>>> str(substitute(Poly.parse("L = 0.5 z_i z_i"), "z", z))
"L = 0.5 sum_ijj' W_ij a_j W_ij' a_j' + sum_ij W_ij a_j b_i + 0.5 sum_i b_i^2"
>>> str(simplify(Poly.parse("s_i = x_i x_i x_i^-1 + 2 x_i - x_i")))
's_i = 2 x_i'
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Callable, Iterable, Mapping, Sequence

__all__ = [
    "DELTA", "Factor", "Term", "Poly", "number", "fresh_index",
    "substitute", "multiply", "add", "scale", "simplify", "contract_deltas",
    "fold", "common_factors", "canonical_key", "divide", "cancel", "ONES", "resolve_sizes",
]

#: The name of the Kronecker delta factor (``δ_ij``: 1 where i = j, else 0).
DELTA = "δ"

#: The name of the vector of ones (``1_j``): ``sum_j 1_j`` is the size of ``j``.
ONES = "1"


def fill(template: str, inner: str, grouped: str) -> str:
    """``template`` with ``{0}`` as ``inner`` where it is a whole argument of a call, else ``grouped``.

    >>> fill("{0} Φ({0})", "x + 1", "(x + 1)")
    '(x + 1) Φ(x + 1)'
    """
    parts = re.split(r"(\{0\})", template)
    out = []
    for n, part in enumerate(parts):
        if part != "{0}":
            out.append(part.replace("{{", "{").replace("}}", "}"))
            continue
        before, after = parts[n - 1] if n else "", parts[n + 1] if n + 1 < len(parts) else ""
        whole = bool(re.search(r"[(,] ?$", before)) and bool(re.match(r"[,)]", after))
        out.append(inner if whole else grouped)
    return "".join(out)


def compound(text: str) -> bool:
    """Whether ``text`` is a sum or a product at its top level (outside brackets).

    >>> compound("x Φ(x)"), compound("Φ(x + 1)"), compound("-x")
    (True, False, True)
    """
    return _needs_parentheses(text, False, 2)


def _needs_parentheses(text: str, alone: bool, power: int | Fraction) -> bool:
    """Whether a function's formula needs parentheses as a factor: a sum unless it stands
    alone, a product under a power.

    >>> _needs_parentheses("Φ(x) + x φ(x)", False, 1), _needs_parentheses("x Φ(x)", False, 1)
    (True, False)
    >>> _needs_parentheses("x Φ(x)", True, 2), _needs_parentheses("tanh(x + 1)", False, 2)
    (True, False)
    """
    top, depth = [], 0
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            top.append(ch)
    outer = "".join(top)
    if re.search(r" [+\-] |^-", outer):
        return not alone or power != 1
    return " " in outer and power != 1


def parenthesised(text: str, latex: bool) -> str:
    """``(text)``, or ``\\left(text\\right)`` in LaTeX."""
    return f"\\left({text}\\right)" if latex else f"({text})"


def as_argument(text: str, latex: bool) -> str:
    """``text`` where a formula writes it bare (a power's base, a product's factor):
    bracketed when compound, ``(x^2 + 1)``; as it is when one symbol or one call.

    >>> as_argument("x^2 + 1", False), as_argument("max(x, -1)", False), as_argument("x", True)
    ('(x^2 + 1)', 'max(x, -1)', 'x')
    """
    return parenthesised(text, latex) if " " in text and not _is_call(text) else text


def _is_call(text: str) -> bool:
    """Whether ``text`` is one function call, ``max(x, -1)``: an atom inside another formula.

    >>> _is_call("max(x, -1)"), _is_call("f(x) + g(x)"), _is_call("x + 1")
    (True, False, False)
    """
    m = re.match(r"[^\W\d][\w']*\(", text)
    if m is None or not text.endswith(")"):
        return False
    depth = 0
    for pos in range(m.end() - 1, len(text)):
        depth += {"(": 1, ")": -1}.get(text[pos], 0)
        if depth == 0:
            return pos == len(text) - 1
    return False


def number(x: float | int | Fraction) -> Fraction:
    """``x`` as a fraction, rounding a float to the simplest fraction within 1e-12.

    >>> number(0.5), number(0.1), number(1 / 3), number(2)
    (Fraction(1, 2), Fraction(1, 10), Fraction(1, 3), Fraction(2, 1))
    """
    if isinstance(x, Fraction):
        return x
    exact = Fraction(x)
    simple = exact.limit_denominator(1_000_000)
    if simple == exact or abs(float(simple) - float(x)) <= 1e-12 * max(1.0, abs(float(x))):
        return simple
    return exact


def fresh_index(base: str, taken: Iterable[str]) -> str:
    """``base`` primed until it is not in ``taken`` (``i`` -> ``i'`` -> ``i''``).

    >>> fresh_index("i", {"i", "i'"})
    "i''"
    """
    used = set(taken)
    name = base.rstrip("'")
    while name in used:
        name += "'"
    return name


@dataclass(frozen=True, order=True)
class Factor:
    """``name_indices ^ power``, or ``fn`` applied elementwise: ``fn.format(name_indices)``.

    ``fn`` is a template with ``{0}`` (``"σ'({0})"``): the factor is a function
    of the value ``name`` at the factor's indices.
    """

    name: str
    indices: tuple[str, ...] = ()
    power: int = 1
    fn: str | None = None

    @property
    def atom(self) -> tuple[str, str | None]:
        """What is multiplied: the name and the function, without indices or power."""
        return (self.name, self.fn)

    def renamed(self, mapping: Mapping[str, str]) -> Factor:
        return replace(self, indices=tuple(mapping.get(i, i) for i in self.indices))


@dataclass(frozen=True)
class Term:
    """``coef * prod factors``."""

    coef: Fraction
    factors: tuple[Factor, ...] = ()

    @property
    def indices(self) -> list[str]:
        """Every index of the term, in order of first appearance."""
        return list(dict.fromkeys(i for f in self.factors for i in f.indices))

    def renamed(self, mapping: Mapping[str, str]) -> Term:
        return Term(self.coef, tuple(f.renamed(mapping) for f in self.factors))


@dataclass(frozen=True)
class Poly:
    """``target_indices = sum of terms``; indices of a term that are not free are summed."""

    indices: tuple[str, ...]
    terms: tuple[Term, ...]
    target: str = ""

    @staticmethod
    def of(name: str, indices: Sequence[str] = (), power: int = 1, fn: str | None = None) -> Poly:
        """The value ``name`` itself, indexed by ``indices``."""
        return Poly(tuple(indices), (Term(Fraction(1), (Factor(name, tuple(indices), power, fn),)),))

    @staticmethod
    def constant(c: float | Fraction, indices: Sequence[str] = ()) -> Poly:
        """A number, broadcast along ``indices``."""
        c = number(c)
        return Poly(tuple(indices), (Term(c),) if c else ())

    @staticmethod
    def parse(text: str) -> Poly:
        """Read the plain notation that ``str()`` writes: ``"y_i = 2 sum_j W_ij x_j - b_i"``.

        Names are letters and digits; single-letter indices follow ``_`` (primes
        allowed); ``^2``, ``^-1`` are powers; ``/ 4`` divides; a ``sum_j`` is
        optional (every index not on the left is summed). For tests and examples.

        >>> str(Poly.parse("y_ik = A_ij B_jk - C_ki / 2"))
        'y_ik = sum_j A_ij B_jk - 0.5 C_ki'
        """
        lhs, rhs = (s.strip() for s in text.split("=", 1))
        target, _, free = lhs.partition("_")
        terms = []
        rhs = re.sub(r"\s+([+-])\s+", r" \1", " " + rhs)
        for piece in re.split(r" (?=[+-])", rhs.strip()):
            sign = piece[0] if piece[0] in "+-" else "+"
            body = piece.lstrip("+-").strip()
            coef = Fraction(-1 if sign == "-" else 1)
            factors = []
            tokens = body.split()
            n = 0
            while n < len(tokens):
                tok = tokens[n]
                n += 1
                if tok.startswith("sum_"):
                    continue
                if tok == "/":
                    coef /= Fraction(tokens[n])
                    n += 1
                    continue
                if re.fullmatch(r"\d+(\.\d+)?(/\d+)?", tok):
                    coef *= Fraction(tok)
                    continue
                m = re.fullmatch(r"([A-Za-zδ]+\d*)(?:_((?:[a-zA-Z]'*)+))?(?:\^(-?\d+))?", tok)
                if m is None:
                    raise ValueError(f"cannot read factor {tok!r} in {text!r}")
                name, idx, power = m.groups()
                factors.append(Factor(name, tuple(re.findall(r"[a-zA-Z]'*", idx or "")), int(power or 1)))
            terms.append(Term(coef, tuple(factors)))
        return Poly(tuple(re.findall(r"[a-zA-Z]'*", free)), tuple(terms), target)

    def named(self, target: str) -> Poly:
        return replace(self, target=target)

    def renamed(self, mapping: Mapping[str, str]) -> Poly:
        """Rename free indices (and any index in ``mapping``) everywhere."""
        return Poly(
            tuple(mapping.get(i, i) for i in self.indices),
            tuple(t.renamed(mapping) for t in self.terms),
            self.target,
        )

    def with_indices(self, indices: Sequence[str], avoid: Iterable[str] = ()) -> Poly:
        """The same poly with its free indices renamed to ``indices``, summed ones freshened."""
        indices = tuple(indices)
        if len(indices) != len(self.indices):
            raise ValueError(f"{self} has {len(self.indices)} free indices, not {len(indices)}")
        taken = set(indices) | set(avoid)
        terms = []
        for t in self.terms:
            mapping = dict(zip(self.indices, indices))
            used = set(taken)
            for i in t.indices:
                if i in mapping:
                    continue
                mapping[i] = fresh_index(i, used | set(mapping.values()))
                used.add(mapping[i])
            terms.append(t.renamed(mapping))
        return Poly(indices, tuple(terms), self.target)

    @property
    def is_zero(self) -> bool:
        return not self.terms

    def names(self) -> set[str]:
        return {f.name for t in self.terms for f in t.factors}

    def __str__(self) -> str:
        return render(self)


# ----------------------------------------------------------------- arithmetic


def _freshen(term: Term, free: Sequence[str], taken: set[str]) -> Term:
    """Rename the summed indices of ``term`` away from ``taken`` (and record them)."""
    mapping: dict[str, str] = {}
    for i in term.indices:
        if i in free:
            continue
        if i in taken:
            mapping[i] = fresh_index(i, taken | set(mapping.values()))
        taken.add(mapping.get(i, i))
    return term.renamed(mapping) if mapping else term


def multiply(p: Poly, q: Poly, indices: Sequence[str] | None = None) -> Poly:
    """The einsum of two polys: indices shared by name are one index; ``indices`` stay free.

    By default the free indices are those of ``p`` then the new ones of ``q``.

    >>> str(multiply(Poly.parse("g_i = delta_i"), Poly.parse("w_ij = W_ij"), "j"))
    '_j = sum_i delta_i W_ij'
    """
    if indices is None:
        indices = tuple(dict.fromkeys((*p.indices, *q.indices)))
    indices = tuple(indices)
    visible = set(p.indices) | set(q.indices) | set(indices)
    terms = []
    for s in p.terms:
        for t in q.terms:
            taken = set(visible)
            s2 = _freshen(s, p.indices, taken)
            t2 = _freshen(t, q.indices, taken)
            terms.append(Term(s2.coef * t2.coef, s2.factors + t2.factors))
    return simplify(Poly(indices, tuple(terms)))


def add(*polys: Poly) -> Poly:
    """The sum of polys with the same free indices (matched by position).

    >>> str(add(Poly.parse("y_i = A_ij x_j"), Poly.parse("y_k = A_jk x_j")))
    'y_i = sum_j A_ij x_j + sum_j A_ji x_j'
    """
    first = polys[0]
    terms: list[Term] = []
    for p in polys:
        terms.extend(p.with_indices(first.indices).terms)
    return simplify(Poly(first.indices, tuple(terms), first.target))


def scale(p: Poly, c: float | Fraction) -> Poly:
    c = number(c)
    return simplify(Poly(p.indices, tuple(Term(t.coef * c, t.factors) for t in p.terms), p.target))


def substitute(p: Poly, name: str, definition: Poly, powers: Callable[[int], bool] = lambda n: n > 0) -> Poly:
    """Replace each factor ``name`` (plain, with a power ``powers`` accepts) by ``definition``.

    A power ``n > 1`` is ``n`` copies; a negative power is substituted only if the
    definition is a single term with no summed index (its factors' powers negate).
    """
    out: list[Term] = []
    for t in p.terms:
        pieces: list[list[Term]] = [[Term(t.coef)]]
        taken = set(p.indices) | set(t.indices)
        for f in t.factors:
            if f.name != name or f.fn is not None or not powers(f.power):
                pieces.append([Term(Fraction(1), (f,))])
                continue
            if f.power < 0:
                if len(definition.terms) != 1:  # 1/(a + b) stays a factor of its own
                    pieces.append([Term(Fraction(1), (f,))])
                    continue
                (d,) = definition.terms
                if set(d.indices) - set(definition.indices) or d.coef == 0:
                    pieces.append([Term(Fraction(1), (f,))])
                    continue
                inv = Term(1 / d.coef, tuple(replace(g, power=-g.power) for g in d.factors))
                local = Poly(definition.indices, (inv,))
                copies = -f.power
            else:
                local = definition
                copies = f.power
            for _ in range(copies):
                renamed = local.with_indices(f.indices, taken)
                taken |= {i for s in renamed.terms for i in s.indices}
                pieces.append(list(renamed.terms))
        for combo in itertools.product(*pieces):
            coef = Fraction(1)
            factors: list[Factor] = []
            for s in combo:
                coef *= s.coef
                factors.extend(s.factors)
            out.append(_keep_sums(t, Term(coef, tuple(factors)), p.indices))
    return simplify(Poly(p.indices, tuple(out), p.target))


def _keep_sums(before: Term, after: Term, free: Sequence[str]) -> Term:
    """``after`` with a ones factor for each summed index of ``before`` that no factor carries any more."""
    lost = [i for i in before.indices if i not in free and i not in after.indices]
    if not lost:
        return after
    return Term(after.coef, after.factors + tuple(Factor(ONES, (i,)) for i in lost))


# ----------------------------------------------------------------- normal form


def contract_deltas(term: Term, free: Sequence[str]) -> Term:
    """Sum out each Kronecker delta with a summed index by relabelling.

    >>> str(Poly((("i",)), (contract_deltas(Poly.parse("y_i = δ_ij x_j").terms[0], "i"),)))
    '_i = x_i'
    """
    factors = list(term.factors)
    changed = True
    while changed:
        changed = False
        for n, f in enumerate(factors):
            if f.name != DELTA or f.fn is not None or len(f.indices) != 2:
                continue
            a, b = f.indices
            if a == b:
                factors[n] = Factor(ONES, (a,))  # δ_ii = 1 at every i; summed, its sum is the size
                changed = True
                break
            if b not in free:
                drop, keep = b, a
            elif a not in free:
                drop, keep = a, b
            else:
                continue
            factors.pop(n)
            factors = [g.renamed({drop: keep}) for g in factors]
            if not any(keep in g.indices for g in factors):
                factors.append(Factor(ONES, (keep,)))  # sum_ab δ_ab = the size of a
            changed = True
            break
    return _ones_normal(Term(term.coef, tuple(factors)), free)


def _ones_normal(term: Term, free: Sequence[str]) -> Term:
    """Ones factors only where they count a sum: one per summed index that nothing else carries.

    >>> t = Term(Fraction(1), (Factor("x", ("i",)), Factor(ONES, ("i",)), Factor(ONES, ("j",)), Factor(ONES, ("j",))))
    >>> [(f.name, f.indices, f.power) for f in _ones_normal(t, ()).factors]
    [('x', ('i',), 1), ('1', ('j',), 1)]
    """
    if not any(f.name == ONES for f in term.factors):
        return term
    carried = {i for f in term.factors if f.name != ONES for i in f.indices}
    factors: list[Factor] = []
    counted: set[str] = set()
    for f in term.factors:
        if f.name != ONES:
            factors.append(f)
            continue
        for i in f.indices:
            if i in free or i in carried or i in counted:
                continue
            counted.add(i)
            factors.append(Factor(ONES, (i,)))
    return Term(term.coef, tuple(factors))


def resolve_sizes(p: Poly, size: Callable[[str], int | None]) -> Poly:
    """Each ``sum_j 1_j`` (a sum over an index that no other factor carries) as the size of ``j``.

    >>> g = Poly.parse("g_j = 2 x_j - 0.5 x_k")
    >>> total = substitute(Poly.parse("s = g_j"), "g", g)
    >>> str(total)
    's = 2 sum_j x_j - 0.5 sum_kj x_k 1_j'
    >>> str(resolve_sizes(total, {"j": 4, "k": 4}.get))
    's = 0'
    """
    terms = []
    for t in p.terms:
        t = _ones_normal(t, p.indices)
        coef = t.coef
        factors = []
        for f in t.factors:
            n = size(f.indices[0]) if f.name == ONES and f.fn is None and len(f.indices) == 1 else None
            if n is None:
                factors.append(f)
            else:
                coef *= n
        terms.append(Term(coef, tuple(factors)))
    return simplify(Poly(p.indices, tuple(terms), p.target))


def _merge_powers(term: Term) -> Term:
    powers: dict[tuple, int] = {}
    for f in term.factors:
        key = (f.name, f.fn, f.indices)
        powers[key] = powers.get(key, 0) + f.power
    factors = tuple(Factor(n, idx, p, fn) for (n, fn, idx), p in powers.items() if p != 0)
    return Term(term.coef, factors)


def canonical_key(term: Term, free: Sequence[str]) -> tuple:
    """A key equal for two terms that differ only in the names of summed indices
    and the order of factors (so that like terms can be added).

    >>> a = Poly.parse("y_i = A_ij x_j").terms[0]
    >>> b = Poly.parse("y_i = x_k A_ik").terms[0]
    >>> canonical_key(a, "i") == canonical_key(b, "i")
    True
    """
    free = tuple(free)
    summed = [i for i in term.indices if i not in free]

    def key_with(mapping: dict[str, str]) -> tuple:
        return tuple(sorted((f.name, f.fn or "", f.power, tuple(mapping.get(i, i) for i in f.indices)) for f in term.factors))

    if len(summed) <= 5:
        best = None
        for perm in itertools.permutations(range(len(summed))):
            k = key_with({s: f"\0{p}" for s, p in zip(summed, perm)})
            if best is None or k < best:
                best = k
        return best  # type: ignore[return-value]
    mapping: dict[str, str] = {}
    for f in sorted(term.factors, key=lambda f: (f.name, f.fn or "", f.power)):
        for i in f.indices:
            if i in summed and i not in mapping:
                mapping[i] = f"\0{len(mapping)}"
    return key_with(mapping)


def _tidy_summed(term: Term, free: Sequence[str]) -> Term:
    """Rename summed indices to the plainest free name of their base (``j'`` -> ``j``)."""
    mapping: dict[str, str] = {}
    taken = set(free)
    for i in term.indices:
        if i in free:
            continue
        new = fresh_index(i.rstrip("'"), taken)
        mapping[i] = new
        taken.add(new)
    return term.renamed(mapping)


def simplify(p: Poly) -> Poly:
    """Contract deltas, merge equal factors (adding powers), add like terms, drop zeros.

    >>> str(simplify(Poly.parse("y_i = A_ij x_j + x_k A_ik - 2 A_ij x_j")))
    'y_i = 0'
    >>> str(simplify(Poly.parse("y_i = A_ij' x_j' + A_ji x_j")))
    'y_i = sum_j A_ij x_j + sum_j A_ji x_j'
    """
    order: list[tuple] = []
    merged: dict[tuple, Term] = {}
    for t in p.terms:
        t = contract_deltas(t, p.indices)
        t = _ones_normal(_keep_sums(t, _merge_powers(t), p.indices), p.indices)
        if t.coef == 0:
            continue
        key = canonical_key(t, p.indices)
        if key in merged:
            merged[key] = Term(merged[key].coef + t.coef, merged[key].factors)
        else:
            merged[key] = t
            order.append(key)
    terms = tuple(_tidy_summed(merged[k], p.indices) for k in order if merged[k].coef != 0)
    return Poly(p.indices, terms, p.target)


# ----------------------------------------------------------------- folding back


def fold(p: Poly, name: str, definition: Poly) -> Poly:
    """Replace the factors of a one-term, elementwise ``definition`` by ``name``.

    The inverse of :func:`substitute` for a definition such as
    ``a_i = v_i s^-1``: wherever a term holds ``v_k s^-1`` (at any index ``k``),
    it becomes ``a_k``. Powers fold too (``v_k^-1 s`` becomes ``a_k^-1``).

    >>> a = Poly.parse("a_i = v_i s^-1")
    >>> str(fold(Poly.parse("d_i = v_i s^-1 y_k - y_i"), "a", a))
    'd_i = sum_k y_k a_i - y_i'
    """
    if len(definition.terms) != 1:
        return p
    # Equal factors merged (``x x`` is ``x^2``, as a size-1 axis dropped from
    # ``x_ij x_ij`` leaves it): a match then takes whole powers, never half of one.
    d = _merge_powers(definition.terms[0])
    if set(d.indices) - set(definition.indices) or not d.factors:
        return p
    out: list[Term] = []
    for t in p.terms:
        out.append(_fold_term(t, name, definition.indices, d))
    return simplify(Poly(p.indices, tuple(out), p.target))


FOLD_STEPS = 64
"""The most rewrites :func:`_fold_term` makes in one term before it gives up folding it."""


def _fold_term(t: Term, name: str, free: tuple[str, ...], d: Term) -> Term:
    """``t`` with each ``d^k`` it holds replaced by ``name^k``.

    Each rewrite removes whole powers of ``d``'s factors, so the term's degree
    in them falls and the loop ends; should it not within :data:`FOLD_STEPS`
    rewrites, the term comes back unfolded (the same value, written longer).
    """
    start = t = _merge_powers(t)
    for _ in range(FOLD_STEPS):
        match = _find(t, free, d)
        if match is None:
            return t
        mapping, k = match
        remaining = {(f.name, f.fn, f.indices): f.power for f in t.factors}
        for f in d.factors:
            key = (f.name, f.fn, tuple(mapping[i] for i in f.indices))
            remaining[key] -= k * f.power
        factors = [Factor(n, idx, pw, fn) for (n, fn, idx), pw in remaining.items() if pw]
        factors.append(Factor(name, tuple(mapping[i] for i in free), k))
        t = _merge_powers(Term(t.coef / (d.coef ** k), tuple(factors)))
    return start


def _find(t: Term, free: tuple[str, ...], d: Term) -> tuple[dict[str, str], int] | None:
    """An index mapping and a power k with ``d^k`` dividing ``t`` (k = 1 or -1)."""
    first = d.factors[0]
    for f in t.factors:
        if f.atom != first.atom or len(f.indices) != len(first.indices):
            continue
        k = f.power // first.power if first.power and f.power % first.power == 0 else 0
        if k not in (1, -1):
            k = 1 if f.power * first.power > 0 else -1
        mapping = dict(zip(first.indices, f.indices))
        if len(set(mapping.values())) != len(mapping):
            continue
        ok = True
        for g in d.factors:
            idx = tuple(mapping.get(i, "\0") for i in g.indices)
            have = [h for h in t.factors if h.atom == g.atom and h.indices == idx]
            if not have or have[0].power * k * g.power <= 0 or abs(have[0].power) < abs(k * g.power):
                ok = False
                break
        if ok and all(i in mapping for i in free):
            return mapping, k
    return None


def common_factors(p: Poly) -> tuple[Fraction, tuple[Factor, ...], Poly]:
    """Split ``p`` as ``coef * factors * rest``: the factors every term shares.

    A factor is shared when every term holds it with the same indices (after
    the summed indices are aligned) and a power of the same sign.

    >>> c, f, rest = common_factors(Poly.parse("d_i = a_i s_i - y_i s_i"))
    >>> c, [x.name for x in f], str(rest)
    (Fraction(1, 1), ['s'], 'd_i = a_i - y_i')
    >>> c, f, rest = common_factors(Poly.parse("g_ij = 1/4 a_ij - 1/4 y_ij"))
    >>> c, f, str(rest)
    (Fraction(1, 4), (), 'g_ij = a_ij - y_ij')
    """
    if not p.terms:
        return Fraction(1), (), p
    coefs = [abs(t.coef) for t in p.terms]
    coef = coefs[0] if all(c == coefs[0] for c in coefs) else Fraction(1)
    if all(t.coef < 0 for t in p.terms):
        coef = -coef
    shared: list[Factor] = []
    first = p.terms[0]
    for f in first.factors:
        if any(i not in p.indices for i in f.indices):
            # a factor with a summed index is shared only if every term sums that same index
            if not all(f in t.factors for t in p.terms):
                continue
        powers = []
        for t in p.terms:
            match = [g for g in t.factors if g.atom == f.atom and g.indices == f.indices and g.power * f.power > 0]
            if not match:
                break
            powers.append(match[0].power)
        else:
            power = min(powers, key=abs)
            shared.append(replace(f, power=power))
    if len(p.terms) == 1:
        shared = []
        coef = Fraction(1)
    rest_terms = []
    opened = tuple(i for s in shared for i in s.indices if i not in p.indices)
    for t in p.terms:
        remaining = list(t.factors)
        for s in shared:
            n = next(k for k, g in enumerate(remaining) if g.atom == s.atom and g.indices == s.indices)
            left = remaining[n].power - s.power
            if left:
                remaining[n] = replace(remaining[n], power=left)
            else:
                remaining.pop(n)
        rest_terms.append(Term(t.coef / coef, tuple(remaining)))
    used = {i for t in rest_terms for i in t.indices}
    free = tuple(i for i in dict.fromkeys(p.indices + opened) if i in used)
    return coef, tuple(shared), Poly(free, tuple(rest_terms), p.target)


# ----------------------------------------------------------------- division


def _degree(t: Term) -> tuple:
    return (sum(abs(f.power) for f in t.factors), sorted((f.name, f.fn or "", f.indices, f.power) for f in t.factors))


def _divide_term(t: Term, d: Term) -> Term | None:
    """``t / d`` for one-term polys whose factors line up (same indices), or None."""
    have = {(f.name, f.fn, f.indices): f.power for f in t.factors}
    for f in d.factors:
        key = (f.name, f.fn, f.indices)
        p = have.get(key, 0)
        if f.power > 0 and p < f.power or f.power < 0 and p > f.power:
            return None
        have[key] = p - f.power
    factors = tuple(Factor(n, idx, pw, fn) for (n, fn, idx), pw in have.items() if pw)
    return Term(t.coef / d.coef, factors)


def divide(p: Poly, d: Poly) -> Poly | None:
    """``q`` with ``p = q d`` exactly (polynomial division, elementwise polys), or None.

    >>> str(divide(Poly.parse("r_i = a_i - a_i^2 - y_i a_i + y_i a_i^2"), Poly.parse("u_i = 1 - a_i")))
    'r_i = a_i - y_i a_i'
    """
    if any(set(t.indices) - set(p.indices) for t in (*p.terms, *d.terms)) or not d.terms:
        return None
    lead = max(d.terms, key=_degree)
    remainder = simplify(p)
    quotient: list[Term] = []
    for _ in range(64):
        if not remainder.terms:
            return simplify(Poly(p.indices, tuple(quotient), p.target))
        t = max(remainder.terms, key=_degree)
        q = _divide_term(t, lead)
        if q is None:
            return None
        quotient.append(q)
        product = tuple(Term(-q.coef * s.coef, q.factors + s.factors) for s in d.with_indices(p.indices).terms)
        remainder = simplify(Poly(p.indices, remainder.terms + product))
    return None


def cancel(p: Poly, name: str, definition: Poly) -> Poly:
    """Cancel ``name^-1`` against a multiple of its (several-term) ``definition``.

    The terms that hold ``name_k^-1`` add up to ``name_k^-1 R``; when ``R`` is
    ``Q`` times the definition (at the same indices), they become ``Q``.

    >>> u = Poly.parse("u_i = 1 - a_i")
    >>> str(cancel(Poly.parse("d_i = a_i u_i^-1 - a_i^2 u_i^-1 - y_i"), "u", u))
    'd_i = a_i - y_i'
    """
    groups: dict[tuple[str, ...], list[Term]] = {}
    for t in p.terms:
        for f in t.factors:
            if f.name == name and f.fn is None and f.power == -1:
                groups.setdefault(f.indices, []).append(t)
                break
    for idx, terms in groups.items():
        if set(idx) - set(p.indices):
            continue
        rest = [Term(t.coef, tuple(f for f in t.factors if not (f.name == name and f.indices == idx and f.power == -1)))
                for t in terms]
        local = definition.with_indices(idx)
        q = divide(Poly(p.indices, tuple(rest)), Poly(p.indices, local.terms))
        if q is None:
            continue
        kept = tuple(t for t in p.terms if t not in terms)
        p = simplify(Poly(p.indices, kept + q.terms, p.target))
    return p


# ----------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Style:
    """How :func:`render` writes names, indices and functions.

    Attributes:
        latex: LaTeX instead of plain text.
        name: a value's name as written (default: as is, or
            :func:`~einsumad.algebra.matrix.latex_name` in LaTeX).
        index: one index as written (default: as is; ``\\mathrm{batch}`` in LaTeX).
        function: a function template as written (default: as is, or
            :func:`latex_template` in LaTeX).
        inline: values written by their definition, in parentheses where needed.
        glue: write single-letter indices together (``W_ij``); default: when
            every index is a single letter (primes allowed).
    """

    latex: bool = False
    name: Callable[[str], str] | None = None
    index: Callable[[str], str] | None = None
    function: Callable[[str], str] | None = None
    inline: Mapping[str, Poly] | None = None
    glue: bool | None = None


_LATEX_WORDS = {"tanh", "exp", "log", "sin", "cos", "sqrt", "sinh", "cosh", "arctan", "max", "min"}


def latex_template(template: str) -> str:
    """A function template (``"σ'({0})"``, ``"sign({0})"``) in LaTeX, still a format string.

    >>> latex_template("σ'({0})").format("z"), latex_template("sign({0})").format("x")
    ("\\\\sigma'(z)", '\\\\operatorname{sign}(x)')
    """
    def piece(text: str) -> str:
        out = text.replace("σ", "\\sigma ").replace("\\sigma '", "\\sigma'").replace("\\sigma (", "\\sigma(")
        out = out.replace("⊙", "\\odot ").replace("∂", "\\partial ")

        def word(m: re.Match[str]) -> str:
            w = m.group(0)
            return "\\" + w if w in _LATEX_WORDS else "\\operatorname{" + w + "}"

        out = re.sub(r"(?<![\\{\w])[A-Za-z]{2,}(?![\w}])", word, out)
        out = re.sub(r"\^(-?[\d.]+)", r"^{\1}", out)
        return out.replace("{", "{{").replace("}", "}}")

    return "{0}".join(piece(p) for p in template.split("{0}"))


def _single(i: str) -> bool:
    return len(i.rstrip("'")) == 1


class _Renderer:
    def __init__(self, p: Poly, style: Style):
        from .matrix import latex_name

        self.style = style
        self.latex = style.latex
        self.name = style.name or (latex_name if style.latex else (lambda n: n))
        default_index = (lambda i: i if _single(i) else "\\mathrm{" + i.replace("_", "\\_") + "}") if style.latex else (lambda i: i)
        self.index = style.index or default_index
        self.function = style.function or (latex_template if style.latex else (lambda f: f))
        self.inline = dict(style.inline or {})
        if style.glue is None:
            everything = [i for t in p.terms for i in t.indices] + list(p.indices)
            for d in self.inline.values():
                everything += [i for t in d.terms for i in t.indices]
            self.glue = all(_single(i) for i in everything)
        else:
            self.glue = style.glue

    def indices(self, idx: Sequence[str]) -> str:
        shown = [self.index(i) for i in idx]
        if self.latex:
            shown = [s.replace("'", "'") for s in shown]
            return "".join(shown) if self.glue else ",".join(shown)
        return "".join(shown) if self.glue else ",".join(shown)

    def indexed(self, name: str, idx: Sequence[str]) -> str:
        base = self.name(name)
        if not idx:
            return base
        text = self.indices(idx)
        if self.latex:
            m = re.fullmatch(r"(.*)_\{([^{}]*)\}", base)
            if m:
                return f"{m.group(1)}_{{{m.group(2)},{text}}}"
            return f"{base}_{{{text}}}"
        return f"{base}_{text}" if self.glue else f"{base}[{text}]"

    def number(self, c: Fraction) -> str:
        if c.denominator == 1:
            return str(c.numerator)
        decimal = repr(float(c))
        if len(decimal) <= 5 or c.denominator > 10_000:
            return decimal if len(decimal) <= 8 else f"{float(c):.4g}"
        return f"\\frac{{{c.numerator}}}{{{c.denominator}}}" if self.latex else f"{c.numerator}/{c.denominator}"

    def factor(self, f: Factor, alone: bool, avoid: set[str]) -> str:
        power = abs(f.power)
        if f.name in self.inline and f.fn is None:
            d = self.inline[f.name].with_indices(f.indices, avoid)
            text = self.rhs(d)
            compound = len(d.terms) > 1 or any(set(t.indices) - set(d.indices) for t in d.terms) or (
                d.terms and d.terms[0].coef != 1
            )
            if compound and (not alone or power != 1):
                text = parenthesised(text, self.latex)
        elif f.name in self.inline:
            d = self.inline[f.name].with_indices(f.indices, avoid)
            inner = self.rhs(d)
            template = self.function(f.fn or "{0}")
            text = fill(template, inner, as_argument(inner, self.latex))  # (x^2 + 1)^1.5
        else:
            text = self.indexed(f.name, f.indices)
            if f.fn is not None:
                text = self.function(f.fn).format(text)
        if (f.fn is not None or f.name in self.inline) and _needs_parentheses(text, alone, power):
            text = parenthesised(text, self.latex)  # (Φ(x) + x φ(x)), (x Φ(x))^2
        if power != 1:
            text = f"{text}^{{{power}}}" if self.latex else f"{text}^{power}"
        return text

    def product(self, factors: Sequence[Factor], avoid: set[str], scaled: bool = False) -> str:
        sep = " " if not self.latex else " \\, " if len(factors) > 1 and any(
            f.fn is not None or f.name in self.inline for f in factors) else " "
        return sep.join(self.factor(f, len(factors) == 1 and not scaled, avoid) for f in factors)

    def term(self, t: Term, free: Sequence[str]) -> tuple[str, str]:
        """(sign, text) of one term."""
        summed = [i for i in t.indices if i not in free]
        avoid = set(t.indices) | set(free)
        sign = "-" if t.coef < 0 else "+"
        c = abs(t.coef)
        num = [f for f in t.factors if f.power > 0]
        den = [f for f in t.factors if f.power < 0]
        decimal = c.denominator <= 2 or c.denominator > 10_000 or (c.numerator != 1 and len(repr(float(c))) <= 5)
        head = ""
        if c != 1 and (decimal or c.denominator == 1):
            head = self.number(c)
        elif c.numerator != 1:
            head = str(c.numerator)
        body = self.product(num, avoid, scaled=bool(head) or c.denominator != 1 or bool(den)) if num else ""
        denominators = []
        if c.denominator != 1 and not decimal:
            denominators.append(str(c.denominator))
        if den:
            below_text = self.product(den, avoid)
            if _needs_parentheses(below_text, False, 1):
                below_text = parenthesised(below_text, self.latex)  # 1 / (16 + b^2)
            denominators.append(below_text)
        if denominators:
            below = " ".join(denominators)
            if self.latex:
                body = f"\\frac{{{body or '1'}}}{{{below}}}"
            else:
                if len(denominators) > 1 or (den and len(den) > 1):
                    below = f"({below})"
                body = f"{body or '1'} / {below}"
        if not body:
            body = "1" if not head else ""
        if summed:
            prefix = f"\\sum_{{{self.indices(summed)}}} " if self.latex else f"sum_{self.indices(summed)} "
            body = prefix + body
        if head:
            body = f"{head} {body}".strip()
        return sign, body

    def rhs(self, p: Poly) -> str:
        if not p.terms:
            return "0"
        parts = []
        terms = sorted(p.terms, key=lambda t: t.coef < 0)  # a positive term first: a - y, not -y + a
        for n, t in enumerate(terms):
            sign, text = self.term(t, p.indices)
            if n == 0:
                parts.append(("-" if sign == "-" else "") + text)
            else:
                parts.append(f" {sign} {text}")
        return "".join(parts)

    def equation(self, p: Poly, op: str = "=") -> str:
        lhs = self.indexed(p.target, p.indices) if p.target else ("_" + self.indices(p.indices) if p.indices else "")
        rhs = self.rhs(p)
        return f"{lhs} {op} {rhs}" if lhs else rhs


def render(p: Poly, style: Style | None = None, rhs_only: bool = False) -> str:
    """``p`` in index notation (plain text or LaTeX); sums written out.

    >>> render(Poly.parse("d_j = W_ij g_i s_j"))
    'd_j = sum_i W_ij g_i s_j'
    >>> render(Poly.parse("d_j = W2_ij g_i"), Style(latex=True))
    'd_{j} = \\\\sum_{i} W_{2,ij} g_{i}'
    >>> render(Poly.parse("y_i = x_i / 128"))
    'y_i = x_i / 128'
    """
    r = _Renderer(p, style or Style())
    return r.rhs(p) if rhs_only else r.equation(p)
