"""The one relabeller: internal symbols to letters a person (and NumPy) can read.

A resolved :class:`~einsumad.algebra.subscripts.Spec` names its axes with
one-character symbols. Most are already the user's own letters (``"ij,jk->ik"``
resolves to the symbols ``i, j, k``) or the initials of their named indices
(``"batch in, in out"`` gives ``b, i, o``); the rest are fresh symbols chosen by
the algebra (ellipsis axes, stretched size-1 axes, the batch letters that carry a
Jacobian's rows). Symbols beyond the 52 ASCII letters are not valid in
``numpy.einsum``.

:func:`readable_letters` is used wherever subscripts are shown or handed to
NumPy: the backend's equations, the generated code of ``ea.codegen`` and
``ea.compile``, and the derivations of ``ea.derive``. So one backward step is
written with the same letters everywhere.
"""

from __future__ import annotations

import functools
import string
from typing import Iterable

__all__ = ["readable_letters", "relabel_terms"]

_ASCII = string.ascii_letters
#: The order in which free letters are handed out to symbols that need one.
_PREFERENCE = "ijklmnopqrstuvwxyzabcdefghIJKLMNOPQRSTUVWXYZABCDEFGH"


def readable_letters(terms: Iterable[str]) -> dict[str, str]:
    """Map every symbol in ``terms`` to an ASCII letter, keeping letters as they are.

    Symbols that are ASCII letters keep themselves; any other symbol takes the
    first free letter of ``i j k ... z a ... h`` then upper case. With more than
    52 distinct symbols no such map exists and the symbols are returned
    unchanged (opt_einsum accepts them; NumPy does not).

    >>> readable_letters(["ij", "jk", "ik"])
    {'i': 'i', 'j': 'j', 'k': 'k'}
    >>> readable_letters(["\\u0100j", "j"])
    {'Ā': 'i', 'j': 'j'}
    """
    symbols = list(dict.fromkeys("".join(terms)))
    if len(symbols) > len(_ASCII):
        return {s: s for s in symbols}
    kept = {s for s in symbols if s in _ASCII}
    free = (c for c in _PREFERENCE if c not in kept)
    return {s: s if s in kept else next(free) for s in symbols}


def relabel_terms(inputs: Iterable[str], output: str) -> tuple[list[str], str]:
    """Terms and output rewritten in :func:`readable_letters`.

    >>> relabel_terms(["\\u0100b"], "b\\u0100")
    (['ib'], 'bi')
    """
    terms, out = _relabelled(tuple(inputs), output)
    return list(terms), out


@functools.lru_cache(maxsize=4096)
def _relabelled(inputs: tuple[str, ...], output: str) -> tuple[tuple[str, ...], str]:
    mapping = readable_letters([*inputs, output])
    return tuple("".join(mapping[s] for s in t) for t in inputs), "".join(mapping[s] for s in output)
