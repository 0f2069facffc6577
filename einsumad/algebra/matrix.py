"""Matrix notation for einsums with at most two indices per term: strings only.

:func:`matrix_form` reads subscripts such as ``"i,ij->j"`` and returns what a
matrix-calculus text would write (``"B^T a"``), or ``None`` when no matrix form
exists. No array is touched: the answer depends on the subscripts alone.

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

How it decides, in four moves that mirror the algebra: (1) each operand sums out
the indices nobody else needs (``A 1``, ``1^T A``, ``tr(A)``) and takes the
diagonal of a repeated index (``diag(A)``); (2) two operands that share an index
the output drops are multiplied (``A B``, ``A^T b``, ``tr(A^T B)``), two that
share an index the output keeps are multiplied elementwise (``A ⊙ B``,
``Diag(a) B``), two that share nothing form an outer product (``a b^T``);
(3) indices still unwanted are summed; (4) the result is oriented, broadcast
(``a 1^T``, ``g I``) or embedded on a diagonal (``Diag(a)``) to match the output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .errors import EinsumError
from .subscripts import ELLIPSIS, parse

__all__ = ["matrix_form", "latex_name"]


# ----------------------------------------------------------------- expressions


@dataclass(frozen=True)
class _Expr:
    """A matrix expression: ``kind`` is atom, ones, eye, T, prod, had or fn."""

    kind: str
    name: str = ""
    parts: tuple[_Expr, ...] = ()
    scalar: bool = False


def _atom(name: str, scalar: bool = False) -> _Expr:
    return _Expr("atom", name, scalar=scalar)


_ONES = _Expr("ones")
_ONES_T = _Expr("T", parts=(_ONES,))
_EYE = _Expr("eye")


def _fn(name: str, arg: _Expr, scalar: bool = False) -> _Expr:
    return _Expr("fn", name, (arg,), scalar=scalar)


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


def _transpose(e: _Expr, push_had: bool = True) -> _Expr:
    """``e^T``, pushed through products (and Hadamard products if ``push_had``)."""
    if e.scalar or e.kind == "eye" or (e.kind == "fn" and e.name == "Diag"):
        return e
    if e.kind == "T":
        return e.parts[0]
    if e.kind == "prod":
        return _prod(*(_transpose(f) for f in reversed(e.parts)))
    if e.kind == "had" and push_had:
        return _had(*(_transpose(f) for f in e.parts))
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
    """The subscripts have no matrix form."""


def _sum_out(m: _Mat, letter: str) -> _Mat:
    """Sum index ``letter`` out: ``A 1`` over the columns, ``1^T A`` over the rows."""
    if m.row == letter and m.col == letter:
        raise _NoForm
    if m.col == letter:
        return _Mat(_prod(m.expr, _ONES), m.row, None)
    if m.row == letter:
        if m.col is None:
            return _Mat(_prod(_ONES_T, m.expr), None, None)
        return _Mat(_prod(_transpose(m.expr, push_had=False), _ONES), m.col, None)
    raise _NoForm


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
            raise _NoForm
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
            return _Mat(_fn("tr", _prod(_transpose(x.expr), y.expr), scalar=True), None, None)
        return _Mat(_fn("tr", _prod(x.expr, y.expr), scalar=True), None, None)
    if x.letters == y.letters:
        if (y.row, y.col) != (x.row, x.col):
            y = y.T()
        return _Mat(_had(x.expr, y.expr), x.row, x.col)
    vector, matrix, vector_first = (x, y, True) if len(x.letters) == 1 else (y, x, False)
    if len(vector.letters) != 1 or len(matrix.letters) != 2:
        raise _NoForm
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
        raise _NoForm
    i, j = out
    if i == j:
        if m.is_scalar:
            return _Mat(_prod(m.expr, _EYE), i, i)
        if m.row == i and m.col is None:
            return _Mat(_fn("Diag", m.expr), i, i)
        raise _NoForm
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
    raise _NoForm


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
    >>> latex_name("tanh'(z1)")
    "\\\\tanh'(z_{1})"
    """
    if re.fullmatch(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?", name):
        return name
    if " " in name or (name.startswith("(") and name.endswith(")")):
        inner = name[1:-1] if name.startswith("(") and name.endswith(")") else name
        text = " ".join(latex_name(w) for w in inner.split())
        return f"\\left({text}\\right)" if inner is not name else text
    call = re.fullmatch(r"([A-Za-z_]\w*)('*)\((.*)\)", name)
    if call:
        f, primes, arg = call.groups()
        head = "\\" + f if f in _LATEX_FUNCTIONS else "\\operatorname{" + f.replace("_", "\\_") + "}"
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
        (inner,) = e.parts
        text = _render(inner, style)
        simple = inner.kind in ("ones", "fn") or (
            inner.kind == "atom" and re.fullmatch(r"\w+", inner.name)
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


# ----------------------------------------------------------------- the public function


def default_names(terms: Sequence[Sequence[str]]) -> list[str]:
    """``A, B, C, ...`` by position; lower case for vectors and scalars."""
    letters = "ABCDEFGHKLMNPQRSUVWXYZ"
    return [
        letters[k] if len(term) == 2 else letters[k].lower() for k, term in enumerate(terms)
    ]


def matrix_form(
    subscripts: str,
    names: Sequence[str] | None = None,
    *,
    latex: bool = False,
    ascii: bool = False,
) -> str | None:
    """The matrix-notation form of an einsum, or ``None`` when there is none.

    Decided from the subscripts alone: one or two operands, each term and the
    output with at most two indices. Vectors are columns; ``1`` is the all-ones
    vector, ``I`` the identity, ``⊙`` the Hadamard product (see the module
    docstring for the whole convention).

    Args:
        subscripts: explicit or implicit einsum subscripts, letters or names.
        names: one display name per operand; default ``A, B, ...`` (lower case
            for vectors and scalars).
        latex: render as LaTeX (``W_{2}^\\top \\delta_{2}``).
        ascii: use ``*`` instead of ``⊙`` for the Hadamard product.

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
    >>> matrix_form("i,ij->j", ["delta2", "W2"], latex=True)
    'W_{2}^\\\\top \\\\delta_{2}'
    >>> print(matrix_form("ijk,k->ij"))
    None
    """
    sub = parse(subscripts)
    terms = list(sub.inputs)
    out = tuple(sub.output)
    if names is None:
        names = default_names(terms)
    names = list(names)
    if len(names) != len(terms):
        raise EinsumError(
            f"matrix_form {subscripts!r}: {len(terms)} operand(s) but {len(names)} name(s)"
        )
    if not 1 <= len(terms) <= 2 or len(out) > 2:
        return None
    if any(len(t) > 2 or ELLIPSIS in t for t in (*terms, out)):
        return None
    try:
        mats = []
        for k, term in enumerate(terms):
            m = _Mat(
                _atom(names[k], scalar=not term),
                term[0] if term else None,
                term[1] if len(term) == 2 else None,
            )
            needed = set(out) | {s for j, t in enumerate(terms) if j != k for s in t}
            mats.append(_reduce(m, needed))
        result = mats[0] if len(mats) == 1 else _combine(mats[0], mats[1], set(out))
        result = _to_output(result, out)
    except _NoForm:
        return None
    style = "latex" if latex else "ascii" if ascii else "unicode"
    return _render(result.expr, style)
