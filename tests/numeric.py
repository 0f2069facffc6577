"""Independent numerical truths for the tests: central finite differences in float64.

Nothing here uses einsumad's differentiation; these are the yardsticks.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from einsumad.algebra.subscripts import parse, resolve


def numerical_gradient(
    fun: Callable[..., float], args: Sequence[np.ndarray], argnum: int, eps: float = 1e-6
) -> np.ndarray:
    """d fun / d args[argnum] by central differences, element by element (float64)."""
    args = [np.array(a, dtype=np.float64) for a in args]
    x = args[argnum]
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + eps
        up = float(np.asarray(fun(*args)))
        x[index] = old - eps
        down = float(np.asarray(fun(*args)))
        x[index] = old
        grad[index] = (up - down) / (2 * eps)
    return grad


def numerical_jacobian(
    fun: Callable[..., np.ndarray], args: Sequence[np.ndarray], argnum: int, eps: float = 1e-6
) -> np.ndarray:
    """The Jacobian d fun / d args[argnum], shape out.shape + arg.shape (float64)."""
    args = [np.array(a, dtype=np.float64) for a in args]
    x = args[argnum]
    out_shape = np.shape(fun(*args))
    jac = np.zeros(out_shape + x.shape)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + eps
        up = np.array(fun(*args), dtype=np.float64)
        x[index] = old - eps
        down = np.array(fun(*args), dtype=np.float64)
        x[index] = old
        jac[(Ellipsis,) + index] = (up - down) / (2 * eps)
    return jac


def numerical_directional(
    fun: Callable[..., np.ndarray], args: Sequence[np.ndarray], tangents: Sequence[np.ndarray], eps: float = 1e-6
) -> np.ndarray:
    """(fun(x + eps t) - fun(x - eps t)) / (2 eps): the JVP by central differences."""
    up = fun(*[np.asarray(a, dtype=np.float64) + eps * np.asarray(t) for a, t in zip(args, tangents)])
    down = fun(*[np.asarray(a, dtype=np.float64) - eps * np.asarray(t) for a, t in zip(args, tangents)])
    return (np.asarray(up) - np.asarray(down)) / (2 * eps)


def brute_force_einsum(subscripts: str, *arrays: np.ndarray, sizes: Mapping[str, int] | None = None) -> np.ndarray:
    """The generalised einsum by a loop over every assignment of every letter: the
    definition itself (an output letter may repeat, or appear in no operand, sized by
    ``sizes``). Only the parser is shared with the library, not the evaluation."""
    spec = resolve(parse(subscripts), [np.shape(a) for a in arrays], sizes)
    size = dict(spec.sizes)
    letters = sorted(spec.symbols)
    out = np.zeros(tuple(size[s] for s in spec.output))
    for values in itertools.product(*[range(size[s]) for s in letters]):
        at = dict(zip(letters, values))
        term = 1.0
        for t, a in zip(spec.inputs, arrays):
            term *= a[tuple(at[s] for s in t)]
        out[tuple(at[s] for s in spec.output)] += term
    return out


def poly_value(poly: Any, factor_value: Callable[[Any], Any], sizes: Mapping[str, int] | None = None) -> Any:
    """The value of one of derive's index polynomials, by ``np.einsum`` over its factors.

    ``factor_value(f)`` gives each factor's array (before its power), from values the
    test computed itself; an output index that no factor of a term carries is a sum
    of ones, sized from ``sizes`` (by index name, primes dropped). Only the
    polynomial's structure is read from the library, never a value."""
    letters: dict[str, str] = {}

    def pick(index: str) -> str:
        return letters.setdefault(index, "abcdefghijklmnopqrstuvwxyz"[len(letters)])

    out = "".join(pick(i) for i in poly.indices)
    total: Any = 0.0
    for term in poly.terms:
        ops, subs = [], []
        for f in term.factors:
            ops.append(np.asarray(factor_value(f), dtype=float) ** f.power)
            subs.append("".join(pick(i) for i in f.indices))
        present = set("".join(subs))
        missing = [i for i in poly.indices if letters[i] not in present]
        if missing:
            ops.append(np.ones([(sizes or {})[i.rstrip("'")] for i in missing]))
            subs.append("".join(letters[i] for i in missing))
        if not ops:
            ops, subs = [np.ones(())], [""]
        total = total + float(term.coef) * np.einsum(",".join(subs) + "->" + out, *ops)
    return total


def sin_chain(steps: int) -> Callable[[Any], Any]:
    """``sum`` of ``steps`` steps ``x = sin(x) * 0.999 + 0.001``: a long elementwise loop."""
    import einsumad as ea

    def f(x: Any) -> Any:
        for _ in range(steps):
            x = ea.sin(x) * 0.999 + 0.001
        return ea.sum(x)

    return f


def sin_chain_gradient(x: np.ndarray, steps: int) -> np.ndarray:
    """The gradient of :func:`sin_chain` by the chain rule in NumPy: the product of the
    steps' derivatives ``0.999 cos(x_k)``."""
    ys = [x]
    for _ in range(steps):
        ys.append(np.sin(ys[-1]) * 0.999 + 0.001)
    gradient = np.ones_like(x)
    for y in reversed(ys[:-1]):
        gradient = gradient * np.cos(y) * 0.999
    return gradient
