"""Matrix notation for einsums with at most two indices per term: strings only.

:func:`matrix_form` reads subscripts such as ``"i,ij->j"`` and returns what a
matrix-calculus text would write (``"B^T a"``), or ``None`` when no matrix form
exists; :func:`matrix_form_details` also says why none exists ("operand 2 has
rank 3") and which operands appear transposed. Any number of operands: chains
(``A B C``), bilinear and quadratic forms (``x^T A y``), traces (``tr(A B C)``,
rotated by the cyclic rule so that the first operand leads), Hadamard products
and ``Diag`` forms. No array is touched: the answer depends on the subscripts alone.

Conventions (one for the whole library):

* a term with two indices is a matrix, its first index the row; a term with
  one index is a **column** vector; a term with none is a scalar;
* a result that comes out as a row vector is written as the transpose of a
  column vector: ``a^T B`` is reported as ``B^T a``;
* ``1`` is the all-ones column vector (its length is whatever fits), ``I`` the
  identity matrix, ``⊙`` the Hadamard (elementwise) product;
* ``tr(A)`` is the trace, ``diag(A)`` the vector on A's diagonal, and
  ``Diag(a)`` the diagonal matrix with ``a`` on its diagonal;
* default operand names are ``A, B, C, ...`` by position, in lower case when the
  operand is a vector or a scalar.

* ``convention="row"`` writes vectors as rows instead (``x W`` for ``j,jk->k``),
  as texts that put the batch (or the sample) first do.

How it decides, in four moves that mirror the algebra: (1) each operand sums out
the indices nobody else needs (``A 1``, ``1^T A``, ``tr(A)``) and takes the
diagonal of a repeated index (``diag(A)``); (2) two operands that share an index
the output drops are multiplied (``A B``, ``A^T b``, ``tr(A^T B)``), two that
share an index the output keeps are multiplied elementwise (``A ⊙ B``,
``Diag(a) B``), two that share nothing form an outer product (``a b^T``);
(3) indices still unwanted are summed; (4) the result is oriented, broadcast
(``a 1^T``, ``g I``) or embedded on a diagonal (``Diag(a)``) to match the output.
With more than two operands, every order of pairwise combination is tried
(up to six operands; a greedy order beyond) and the shortest result is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .errors import EinsumError
from .subscripts import ELLIPSIS, parse

__all__ = ["matrix_form", "matrix_form_details", "MatrixForm", "latex_name", "default_names"]


# ----------------------------------------------------------------- expressions


@dataclass(frozen=True)
class _Expr:
    """A matrix expression: ``kind`` is atom, ones, eye, T, prod, had or fn."""

    kind: str
    name: str = ""
    parts: tuple[_Expr, ...] = ()
    scalar: bool = False
    pos: int = -1  # an atom's operand position
    vector: bool = False  # an atom (or diag(...)) that is a column vector


def _atom(name: str, scalar: bool = False, pos: int = -1, vector: bool = False) -> _Expr:
    return _Expr("atom", name, scalar=scalar, pos=pos, vector=vector)


_ONES = _Expr("ones")
_ONES_T = _Expr("T", parts=(_ONES,))
_EYE = _Expr("eye")


def _fn(name: str, arg: _Expr, scalar: bool = False) -> _Expr:
    return _Expr("fn", name, (arg,), scalar=scalar, vector=name == "diag")


def _positions(e: _Expr) -> list[int]:
    """The operand positions of the atoms of ``e``, in reading order."""
    if e.kind == "atom":
        return [e.pos]
    return [p for part in e.parts for p in _positions(part)]


def _count_T(e: _Expr) -> int:
    return (e.kind == "T") + sum(_count_T(p) for p in e.parts)


def _trace(product: _Expr) -> _Expr:
    """``tr(P)``, rotated by the cyclic rule ``tr(A B C) = tr(B C A)`` and
    ``tr(P) = tr(P^T)`` so that the fewest factors are transposed and the
    first operand leads."""
    candidates = []
    for base in (product, _transpose(product)):
        factors = base.parts if base.kind == "prod" else (base,)
        for r in range(len(factors)):
            rotated = factors[r:] + factors[:r]
            cand = _prod(*rotated) if len(rotated) > 1 else rotated[0]
            key = (_count_T(cand), [p if p >= 0 else 99 for p in _positions(cand)])
            candidates.append((key, cand))
    best = min(candidates, key=lambda c: c[0])[1]
    return _fn("tr", best, scalar=True)


def _prod(*factors: _Expr) -> _Expr:
    flat: list[_Expr] = []
    for f in factors:
        flat.extend(f.parts if f.kind == "prod" else (f,))
    return _Expr("prod", parts=tuple(flat), scalar=all(f.scalar for f in flat))


def _had(*factors: _Expr) -> _Expr:
    flat: list[_Expr] = []
    for f in factors:
        flat.extend(f.parts if f.kind == "had" else (f,))
    return _Expr("had", parts=tuple(flat))


def _is_number(e: _Expr) -> bool:
    return e.kind == "atom" and re.fullmatch(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?", e.name) is not None


def _transpose(e: _Expr, push_had: bool = False) -> _Expr:
    """``e^T``, pushed through products (and Hadamard products if ``push_had``)."""
    if e.scalar or e.kind == "eye" or (e.kind == "fn" and e.name == "Diag"):
        return e
    if e.kind == "T":
        return e.parts[0]
    if e.kind == "prod":
        return _prod(*(_transpose(f) for f in reversed(e.parts)))
    if e.kind == "had" and (push_had or all(f.kind == "T" for f in e.parts)):
        return _had(*(_transpose(f, push_had) for f in e.parts))
    return _Expr("T", parts=(e,))


@dataclass(frozen=True)
class _Mat:
    """An expression with the index of its rows and of its columns (None: size 1)."""

    expr: _Expr
    row: str | None
    col: str | None

    @property
    def letters(self) -> set[str]:
        return {s for s in (self.row, self.col) if s is not None}

    @property
    def is_scalar(self) -> bool:
        return self.row is None and self.col is None

    def T(self) -> _Mat:
        return _Mat(_transpose(self.expr), self.col, self.row)

    def column(self) -> _Mat:
        """A row vector turned into a column vector (anything else unchanged)."""
        return self.T() if self.row is None and self.col is not None else self


class _NoForm(Exception):
    """The subscripts have no matrix form (the message says why)."""

    def __init__(self, reason: str = "no product of matrices, transposes, traces, Hadamard and Diag products writes it"):
        super().__init__(reason)
        self.reason = reason


def _sum_out(m: _Mat, letter: str) -> _Mat:
    """Sum index ``letter`` out: ``A 1`` over the columns, ``1^T A`` over the rows."""
    if m.row == letter and m.col == letter:
        raise _NoForm(f"index {letter} would be summed along a diagonal")
    if m.col == letter:
        return _Mat(_prod(m.expr, _ONES), m.row, None)
    if m.row == letter:
        if m.col is None:
            return _Mat(_prod(_ONES_T, m.expr), None, None)
        return _Mat(_prod(_transpose(m.expr, push_had=False), _ONES), m.col, None)
    raise _NoForm(f"index {letter} is not an axis of the operand")


def _reduce(m: _Mat, keep: set[str]) -> _Mat:
    """Sum out every index of ``m`` not in ``keep``; a repeated index: diag or trace."""
    if m.row is not None and m.row == m.col:
        if m.row in keep:
            return _Mat(_fn("diag", m.expr), m.row, None)
        return _Mat(_fn("tr", m.expr, scalar=True), None, None)
    for letter in (m.col, m.row):
        if letter is not None and letter not in keep:
            m = _sum_out(m, letter)
    return m.column()


def _combine(x: _Mat, y: _Mat, out: set[str]) -> _Mat:
    shared = x.letters & y.letters
    kept = shared & out
    contracted = shared - out
    if x.is_scalar or y.is_scalar:
        if y.is_scalar and (not x.is_scalar or _is_number(y.expr)):
            return _Mat(_prod(y.expr, x.expr), x.row, x.col)
        other = y if x.is_scalar else x
        return _Mat(_prod(x.expr, y.expr), other.row, other.col)
    if not shared:  # outer product of two column vectors
        if x.col is not None or y.col is not None:
            raise _NoForm("an outer product with a matrix has more than two indices")
        return _Mat(_prod(x.expr, _transpose(y.expr)), x.row, y.row)
    if not kept:
        if len(contracted) == 1:
            (k,) = contracted
            if x.col != k:
                x = x.T()
            if y.row != k:
                y = y.T()
            return _Mat(_prod(x.expr, y.expr), x.row, y.col)
        # Both matrices on the same two indices, both summed: a trace.
        if y.row == x.row:
            return _Mat(_trace(_prod(_transpose(x.expr), y.expr)), None, None)
        return _Mat(_trace(_prod(x.expr, y.expr)), None, None)
    if x.letters == y.letters:
        if (y.row, y.col) != (x.row, x.col):
            y = y.T()
        return _Mat(_had(x.expr, y.expr), x.row, x.col)
    vector, matrix, vector_first = (x, y, True) if len(x.letters) == 1 else (y, x, False)
    if len(vector.letters) != 1 or len(matrix.letters) != 2:
        (k,) = kept
        raise _NoForm(f"two matrices that share index {k} and keep it make three indices")
    (h,) = vector.letters
    diag = _fn("Diag", vector.expr)
    if h == matrix.row:
        return _Mat(_prod(diag, matrix.expr), matrix.row, matrix.col)
    return _Mat(_prod(matrix.expr, diag), matrix.row, matrix.col)


def _to_output(m: _Mat, out: tuple[str, ...]) -> _Mat:
    """Orient, broadcast or embed ``m`` so that its indices are ``out``."""
    m = _reduce(m, set(out))
    if not out:
        return m
    if len(out) == 1:
        (i,) = out
        if m.row == i:
            return m
        if m.is_scalar:
            return _Mat(_prod(m.expr, _ONES), i, None)
        raise _NoForm("the result's indices do not match the output's")
    i, j = out
    if i == j:
        if m.is_scalar:
            return _Mat(_prod(m.expr, _EYE), i, i)
        if m.row == i and m.col is None:
            return _Mat(_fn("Diag", m.expr), i, i)
        raise _NoForm(f"the output repeats index {i} but the result is a matrix")
    if (m.row, m.col) == (i, j):
        return m
    if (m.row, m.col) == (j, i):
        return m.T()
    if m.is_scalar:
        return _Mat(_prod(m.expr, _ONES, _ONES_T), i, j)
    if m.row == i and m.col is None:
        return _Mat(_prod(m.expr, _ONES_T), i, j)
    if m.row == j and m.col is None:
        return _Mat(_prod(_ONES, _transpose(m.expr)), i, j)
    raise _NoForm("the result's indices do not match the output's")


# ----------------------------------------------------------------- rendering


_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega",
    "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega",
}
_LATEX_FUNCTIONS = {"tanh", "exp", "log", "sin", "cos", "sqrt"}


def latex_name(name: str) -> str:
    """A variable name in LaTeX: trailing digits become a subscript, Greek names commands.

    >>> latex_name("W2"), latex_name("delta1"), latex_name("x")
    ('W_{2}', '\\\\delta_{1}', 'x')
    >>> latex_name("tanh'(z1)"), latex_name("σ'(z3)")
    ("\\\\tanh'(z_{1})", "\\\\sigma'(z_{3})")
    """
    if re.fullmatch(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?", name):
        return name
    name = name.replace("σ", "sigma").replace("δ", "delta")
    if " " in name or (name.startswith("(") and name.endswith(")")):
        inner = name[1:-1] if name.startswith("(") and name.endswith(")") else name
        text = " ".join(latex_name(w) for w in inner.split())
        return f"\\left({text}\\right)" if inner is not name else text
    call = re.fullmatch(r"([A-Za-z_]\w*)('*)\((.*)\)", name)
    if call:
        f, primes, arg = call.groups()
        head = "\\" + f if f in _LATEX_FUNCTIONS or f in _GREEK else "\\operatorname{" + f.replace("_", "\\_") + "}"
        return f"{head}{primes}({latex_name(arg)})"
    plain = re.fullmatch(r"([A-Za-z]+)_?(\d+)?", name)
    if plain:
        base, digits = plain.groups()
        if base in _GREEK:
            base = "\\" + base
        elif len(base) > 1:
            base = "\\mathrm{" + base + "}"
        return base + (f"_{{{digits}}}" if digits else "")
    return "\\mathrm{" + name.replace("_", "\\_") + "}"


_SYMBOLS = {
    "unicode": {"T": "^T", "had": " ⊙ ", "ones": "1", "eye": "I"},
    "ascii": {"T": "^T", "had": " * ", "ones": "1", "eye": "I"},
    "latex": {"T": "^\\top", "had": " \\odot ", "ones": "\\mathbf{1}", "eye": "I"},
}


def _render(e: _Expr, style: str) -> str:
    sym = _SYMBOLS[style]
    if e.kind == "atom":
        return latex_name(e.name) if style == "latex" else e.name
    if e.kind == "ones":
        return sym["ones"]
    if e.kind == "eye":
        return sym["eye"]
    if e.kind == "fn":
        name = e.name if style != "latex" else "\\operatorname{" + e.name + "}"
        inner = _render(e.parts[0], style)
        return f"{name}\\left({inner}\\right)" if style == "latex" else f"{name}({inner})"
    if e.kind == "T":
        (base,) = e.parts
        text = _render(base, style)
        simple = base.kind in ("ones", "fn") or (
            base.kind == "atom" and re.fullmatch(r"\w+", base.name) is not None
        )
        if not simple:
            text = f"\\left({text}\\right)" if style == "latex" else f"({text})"
        return text + sym["T"]
    if e.kind == "prod":
        return " ".join(_wrap(f, style, f.kind == "had" or _spaced(f)) for f in e.parts)
    return sym["had"].join(_wrap(f, style, f.kind in ("had", "prod") or _spaced(f)) for f in e.parts)


def _spaced(e: _Expr) -> bool:
    """An operand name with a space in it (``2 v3``) needs parentheses in a product."""
    return e.kind == "atom" and " " in e.name


def _wrap(e: _Expr, style: str, parens: bool) -> str:
    text = _render(e, style)
    if not parens:
        return text
    return f"\\left({text}\\right)" if style == "latex" else f"({text})"


# ----------------------------------------------------------------- row convention


def _flip_vectors(e: _Expr) -> _Expr:
    """Write every column vector as the transpose of a row vector (and back)."""
    if e.kind == "atom":
        return _Expr("T", parts=(e,)) if e.vector else e
    if e.kind == "ones":
        return _ONES_T
    if e.kind == "T":
        return _transpose(_flip_vectors(e.parts[0]), push_had=True)
    if e.kind == "fn":
        if e.name == "Diag":
            return e
        if e.name == "diag":
            return _Expr("T", parts=(e,))
        return _fn(e.name, _flip_vectors(e.parts[0]), scalar=e.scalar)
    if e.kind == "prod":
        return _prod(*(_flip_vectors(p) for p in e.parts))
    if e.kind == "had":
        return _had(*(_flip_vectors(p) for p in e.parts))
    return e


def _to_row(m: _Mat) -> _Expr:
    expr = m.expr
    if m.row is not None and m.col is None:
        expr = _transpose(expr, push_had=True)
    return _flip_vectors(expr)


# ----------------------------------------------------------------- the public function


def default_names(terms: Sequence[Sequence[str]]) -> list[str]:
    """``A, B, C, ...`` by position; lower case for vectors and scalars."""
    letters = "ABCDEFGHKLMNPQRSUVWXYZ"
    out = []
    for k, term in enumerate(terms):
        letter = letters[k % len(letters)] + ("" if k < len(letters) else str(k // len(letters)))
        out.append(letter if len(term) == 2 else letter.lower())
    return out


@dataclass(frozen=True)
class MatrixForm:
    """The matrix form of an einsum, or the reason there is none.

    Attributes:
        text: the expression (``"W^T g"``), or None.
        reason: why there is no matrix form (None when there is one).
        transposed: the positions of the operands written transposed
            (``W`` in ``W^T g``): a swap that permutes a matrix operand's
            indices shows as a transpose here.
    """

    text: str | None
    reason: str | None = None
    transposed: frozenset[int] = frozenset()

    def __str__(self) -> str:
        return self.text if self.text is not None else f"(none: {self.reason})"


def _transposed_atoms(e: _Expr, under_T: bool = False) -> set[int]:
    if e.kind == "atom":
        return {e.pos} if under_T and not e.vector and not e.scalar else set()
    if e.kind == "T":
        return _transposed_atoms(e.parts[0], True)
    if e.kind == "fn" and e.name == "Diag":
        return set()
    return {p for part in e.parts for p in _transposed_atoms(part, under_T and e.kind != "prod")}


def _combine_all(mats: list[_Mat], out: tuple[str, ...], exhaustive: bool) -> list[_Mat]:
    """Every result of combining ``mats`` pairwise (each order, or one greedy order)."""
    if len(mats) == 1:
        return [_to_output(mats[0], out)]
    results: list[_Mat] = []
    failure: _NoForm | None = None
    pairs = [(a, b) for a in range(len(mats)) for b in range(a + 1, len(mats))]
    # pairs that share an index first: a product before an outer product
    pairs.sort(key=lambda ab: (not (mats[ab[0]].letters & mats[ab[1]].letters), ab))
    for a, b in pairs:
        rest = [m for k, m in enumerate(mats) if k not in (a, b)]
        keep = set(out) | {s for m in rest for s in m.letters}
        try:
            merged = _reduce(_combine(mats[a], mats[b], keep), keep)
            results.extend(_combine_all([merged, *rest], out, exhaustive))
        except _NoForm as error:
            failure = error
            continue
        if results and not exhaustive:
            break
    if not results and failure is not None:
        raise failure
    return results


def matrix_form_details(
    subscripts: str,
    names: Sequence[str] | None = None,
    *,
    latex: bool = False,
    ascii: bool = False,
    convention: str = "column",
) -> MatrixForm:
    """:func:`matrix_form` with the reason when there is none, and the transposed operands.

    >>> matrix_form_details("ij,jk,kl->il").text
    'A B C'
    >>> matrix_form_details("ijk,k->ij").reason
    'operand 0 has rank 3'
    >>> sorted(matrix_form_details("i,ij->j", ["g", "W"]).transposed)
    [1]
    >>> str(matrix_form_details("ij,jk->ijk"))
    '(none: the output has rank 3)'
    """
    sub = parse(subscripts)
    terms = list(sub.inputs)
    out = tuple(sub.output)
    given = names is not None
    if names is None:
        names = default_names(terms)
    elif isinstance(names, str) or not all(isinstance(n, str) and n.strip() for n in names):
        raise TypeError(
            f"matrix_form {subscripts!r}: names must be a list of non-empty strings, one per "
            f"operand, got {names!r}"
        )
    names = list(names)
    if len(names) != len(terms):
        raise EinsumError(
            f"matrix_form {subscripts!r}: {len(terms)} operand(s) but {len(names)} name(s)"
        )
    label = lambda k: f"operand {k} ({names[k]})" if given else f"operand {k}"  # noqa: E731
    if convention not in ("column", "row"):
        raise EinsumError(f"matrix_form: convention must be 'column' or 'row', got {convention!r}")
    for k, term in enumerate(terms):
        if ELLIPSIS in term:
            return MatrixForm(None, f"{label(k)} has '...', which stands for any number of axes")
        if len(term) > 2:
            return MatrixForm(None, f"{label(k)} has rank {len(term)}")
    if ELLIPSIS in out:
        return MatrixForm(None, "the output has '...', which stands for any number of axes")
    if len(out) > 2:
        return MatrixForm(None, f"the output has rank {len(out)}")
    if not terms:
        return MatrixForm(None, "there are no operands")
    try:
        mats = []
        for k, term in enumerate(terms):
            m = _Mat(
                _atom(names[k], scalar=not term, pos=k, vector=len(term) == 1),
                term[0] if term else None,
                term[1] if len(term) == 2 else None,
            )
            needed = set(out) | {s for j, t in enumerate(terms) if j != k for s in t}
            mats.append(_reduce(m, needed))
        results = _combine_all(mats, out, exhaustive=len(mats) <= 6)
    except _NoForm as error:
        return MatrixForm(None, error.reason)
    style = "latex" if latex else "ascii" if ascii else "unicode"
    scored = []
    for result in results:
        expr = _to_row(result) if convention == "row" else result.expr
        text = _render(expr, "unicode")
        scored.append(((_count_T(expr), len(text)), expr))
    expr = min(scored, key=lambda s: s[0])[1]
    return MatrixForm(_render(expr, style), None, frozenset(_transposed_atoms(expr)))


def matrix_form(
    subscripts: str,
    names: Sequence[str] | None = None,
    *,
    latex: bool = False,
    ascii: bool = False,
    convention: str = "column",
) -> str | None:
    """The matrix-notation form of an einsum, or ``None`` when there is none.

    Decided from the subscripts alone: each term and the output with at most
    two indices, any number of operands. Vectors are columns (rows with
    ``convention="row"``); ``1`` is the all-ones vector, ``I`` the identity,
    ``⊙`` the Hadamard product (see the module docstring for the whole
    convention). :func:`matrix_form_details` says why a form does not exist.

    Args:
        subscripts: explicit or implicit einsum subscripts, letters or names.
        names: one display name per operand; default ``A, B, ...`` (lower case
            for vectors and scalars).
        latex: render as LaTeX (``W_{2}^\\top \\delta_{2}``).
        ascii: use ``*`` instead of ``⊙`` for the Hadamard product.
        convention: ``"column"`` (vectors are columns) or ``"row"``.

    Returns:
        The expression as a string, or ``None`` if no matrix form exists.

    >>> matrix_form("ij,jk->ik")
    'A B'
    >>> matrix_form("ij,j->i", ["W2", "a1"])
    'W2 a1'
    >>> matrix_form("i,ij->j", ["delta2", "W2"])      # the swap of ij,j->i
    'W2^T delta2'
    >>> matrix_form("i,j->ij"), matrix_form("ii->"), matrix_form("i->ii")
    ('a b^T', 'tr(A)', 'Diag(a)')
    >>> matrix_form("bi,i->bi"), matrix_form("->ii", ["g"])
    ('A Diag(b)', 'g I')
    >>> matrix_form("i,ij,j->", ["x", "A", "y"]), matrix_form("ij,jk,ki->")
    ('x^T A y', 'tr(A B C)')
    >>> matrix_form("i,ij,j->j", ["delta3", "W3", "s"])
    '(W3^T delta3) ⊙ s'
    >>> matrix_form("j,jk->k", ["x", "W"]), matrix_form("j,jk->k", ["x", "W"], convention="row")
    ('W^T x', 'x W')
    >>> matrix_form("i,ij->j", ["delta2", "W2"], latex=True)
    'W_{2}^\\\\top \\\\delta_{2}'
    >>> print(matrix_form("ijk,k->ij"))
    None
    """
    return matrix_form_details(subscripts, names, latex=latex, ascii=ascii, convention=convention).text
