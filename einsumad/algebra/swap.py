"""The index algebra: derivatives of einsums as operations on subscript strings.

One rule carries the whole library. Contract ``y = einsum("s_1,...,s_n->out")``
with a cotangent ``g`` of y's shape: ``<g, y>`` is a sum over all letters of
``g[out] * prod_k x_k[s_k]``, in which ``out`` plays the same role as any
operand's term. Differentiating with respect to ``x_k`` leaves its term free:

    VJP_k = einsum("out, s_1..s_n without s_k -> s_k")(g, other operands)

So the transpose in ``W^T g`` is the swap ``ij,j->i  =>  i,ij->j``; the sum that
"unbroadcasts" is the swap ``bi,i->bi  =>  bi,bi->i``; the identity in the
gradient of a trace is the swap ``ii->  =>  ->ii``. Forward mode needs no new
subscripts at all: the tangent of a product is the same einsum with one operand
replaced by its tangent, summed over operands.

Everything here works on strings only (user subscripts or resolved
:class:`~einsumad._subscripts.Spec`); nothing touches an array.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence, TypeVar

from .errors import EinsumError
from .subscripts import Spec, Subscripts, format_terms, fresh_symbols, parse

__all__ = [
    "vjp_subscripts",
    "jvp_subscripts",
    "swap",
    "with_batch",
    "broadcast_spec",
    "pairwise_steps",
    "contract_delta",
    "drop_constant_axes",
    "substitute",
    "run_pairwise",
    "factor_out",
]

T = TypeVar("T")


def _operand_index(sub: Subscripts, k: int) -> int:
    n = len(sub.inputs)
    if isinstance(k, bool) or not isinstance(k, int):
        raise EinsumError(f"einsum {sub.text!r}: operand index must be an int, got {k!r}")
    if not -n <= k < n:
        raise EinsumError(
            f"einsum {sub.text!r}: there is no operand {k}; the subscripts name {n} operand(s)"
        )
    return k % n


def vjp_subscripts(subscripts: str, k: int) -> str:
    """Subscripts of the VJP of ``subscripts`` with respect to operand ``k``.

    The output term and operand ``k``'s term trade places: the cotangent comes
    first, then the other operands in their order, and the result carries
    operand ``k``'s term. Implicit subscripts are made explicit first; named
    subscripts stay named.

    >>> vjp_subscripts("ij,j->i", 1)          # W^T g: the transpose, by itself
    'i,ij->j'
    >>> vjp_subscripts("ij,jk->ik", 0)        # g B^T
    'ik,jk->ij'
    >>> vjp_subscripts("ii->", 0)             # g I
    '->ii'
    >>> vjp_subscripts("bi,i->bi", 1)         # the batch sum of "unbroadcasting"
    'bi,bi->i'
    >>> vjp_subscripts("batch in, in out -> batch out", 1)
    'batch out, batch in -> in out'
    """
    sub = parse(subscripts)
    k = _operand_index(sub, k)
    others = [t for i, t in enumerate(sub.inputs) if i != k]
    return format_terms([sub.output, *others], sub.inputs[k], sub.named)


def jvp_subscripts(subscripts: str, k: int) -> str:
    """Subscripts of the JVP of ``subscripts`` along operand ``k``'s tangent.

    Forward mode reuses the forward subscripts unchanged: the tangent takes
    operand ``k``'s place. Returned in explicit form.

    >>> jvp_subscripts("ij,j", 1)
    'ij,j->i'
    """
    sub = parse(subscripts)
    _operand_index(sub, k)
    return format_terms(sub.inputs, sub.output, sub.named)


# ----------------------------------------------------------------- on resolved specs


def swap(spec: Spec, k: int, batch: str = "") -> Spec:
    """The VJP spec of ``spec`` w.r.t. operand ``k``, as :func:`vjp_subscripts`.

    ``batch`` symbols are prepended to the cotangent's term and to the result:
    they carry a stack of cotangents (the rows of a Jacobian) through the pass.

    >>> spec = Spec(("ij", "j"), "i", (("i", 2), ("j", 3)))
    >>> str(swap(spec, 1)), str(swap(spec, 1, batch="Z"))
    ('i,ij->j', 'Zi,ij->Zj')
    """
    others = tuple(t for i, t in enumerate(spec.inputs) if i != k)
    return _add_batch_sizes(spec.with_terms((batch + spec.output, *others), batch + spec.inputs[k]), batch)


def with_batch(spec: Spec, k: int, batch: str) -> Spec:
    """The JVP spec along operand ``k`` whose tangent carries ``batch`` symbols.

    >>> spec = Spec(("ij", "j"), "i", (("i", 2), ("j", 3)))
    >>> str(with_batch(spec, 0, "Z"))
    'Zij,j->Zi'
    """
    inputs = tuple(batch + t if i == k else t for i, t in enumerate(spec.inputs))
    return _add_batch_sizes(spec.with_terms(inputs, batch + spec.output), batch)


def _add_batch_sizes(spec: Spec, batch: str) -> Spec:
    if not batch:
        return spec
    # Batch sizes are read from the cotangent at evaluation time; record -1.
    sizes = dict(spec.sizes)
    for s in batch:
        sizes.setdefault(s, -1)
    return spec.with_terms(spec.inputs, spec.output, sizes.items())


def batch_symbols(spec: Spec, count: int) -> str:
    """``count`` symbols that ``spec`` does not use, for stacked cotangents."""
    return fresh_symbols(spec.symbols, count)


def broadcast_spec(*shapes: tuple[int, ...]) -> Spec:
    """The elementwise product of operands of these shapes, as an einsum.

    NumPy broadcasting is an index assignment: right-aligned axes share a
    symbol, and a size-1 axis that is stretched gets a symbol of its own.

    >>> str(broadcast_spec((3,), (2, 3)))
    'j,ij->ij'
    >>> str(broadcast_spec((1, 3), (2, 3)))
    'kj,ij->ij'
    """
    ndim = max((len(s) for s in shapes), default=0)
    letters = fresh_symbols("", ndim)
    out_sizes: list[int] = []
    for axis in range(ndim):
        n = 1
        for shape in shapes:
            pos = axis - (ndim - len(shape))
            if pos >= 0 and shape[pos] != 1:
                if n != 1 and shape[pos] != n:
                    raise EinsumError(
                        f"operands could not be broadcast together with shapes "
                        f"{' '.join(map(str, shapes))}: axis {axis - ndim} has sizes "
                        f"{n} and {shape[pos]}"
                    )
                n = shape[pos]
        out_sizes.append(n)
    sizes = dict(zip(letters, out_sizes))
    used = set(letters)
    terms: list[str] = []
    for shape in shapes:
        term = []
        for pos, n in enumerate(shape):
            axis = pos + ndim - len(shape)
            if n == 1 and out_sizes[axis] != 1:
                fresh = fresh_symbols(used, 1)
                used.add(fresh)
                sizes[fresh] = 1
                term.append(fresh)
            else:
                term.append(letters[axis])
        terms.append("".join(term))
    return Spec(tuple(terms), letters, tuple(sorted(sizes.items())))


def pairwise_steps(
    spec: Spec, path: Sequence[Sequence[int]]
) -> list[tuple[tuple[int, ...], Spec]]:
    """Split an n-ary einsum into the steps of a contraction path.

    ``path`` is opt_einsum's: each step names positions in the current list of
    operands, which are removed and whose result is appended. Each step keeps
    the symbols still needed by a remaining operand or by the output; the last
    step produces ``spec.output`` (repeats and broadcasts included). Each step is
    itself a generalised einsum, so its VJP is again the swap.

    >>> spec = Spec(("ij", "jk", "kl"), "il", tuple((s, 2) for s in "ijkl"))
    >>> [(pos, str(s)) for pos, s in pairwise_steps(spec, [(0, 1), (0, 1)])]
    [((0, 1), 'ij,jk->ik'), ((0, 1), 'kl,ik->il')]
    """
    return list(_pairwise_steps(spec, tuple(tuple(p) for p in path)))


@functools.lru_cache(maxsize=4096)
def _pairwise_steps(spec: Spec, path: tuple[tuple[int, ...], ...]) -> tuple[tuple[tuple[int, ...], Spec], ...]:
    terms = list(spec.inputs)
    steps: list[tuple[tuple[int, ...], Spec]] = []
    for n, positions in enumerate(path):
        positions = tuple(positions)
        chosen = [terms[p] for p in positions]
        rest = [t for i, t in enumerate(terms) if i not in positions]
        if n == len(path) - 1 and not rest:
            out = spec.output
        else:
            needed = set("".join(rest)) | set(spec.output)
            out = "".join(dict.fromkeys(s for s in "".join(chosen) if s in needed))
        steps.append((positions, spec.with_terms(chosen, out)))
        terms = rest + [out]
    return tuple(steps)


def contract_delta(spec: Spec, k: int) -> Spec:
    """Contract operand ``k``, a Kronecker delta, by relabelling.

    Operand ``k``'s term is ``B + S`` with ``len(B) == len(S)`` and stands for
    ``prod_i δ[B_i, S_i]``. Summing over ``B`` sets each ``B_i`` to ``S_i``: rename
    ``B_i`` to ``S_i`` everywhere and drop the operand. A delta contracted with a
    matrix becomes a transpose, a relabelled term, or a diagonal embedding
    (a repeated output letter), never a product with an identity matrix.

    >>> spec = Spec(("ij", "Zj"), "Zi", tuple((s, 2) for s in "ijZ"))
    >>> str(contract_delta(spec, 1))      # X @ delta  ->  X^T laid out as Z,i
    'ij->ji'
    >>> spec = Spec(("ZYab", "ab"), "ZYab", tuple((s, 2) for s in "ZYab"))
    >>> str(contract_delta(spec, 0))      # delta * f'(x)  ->  Diag(f'(x))
    'ab->abab'
    """
    term = spec.inputs[k]
    half = len(term) // 2
    rename = dict(zip(term[:half], term[half:]))
    relabel = lambda t: "".join(rename.get(s, s) for s in t)  # noqa: E731
    others = tuple(relabel(t) for i, t in enumerate(spec.inputs) if i != k)
    return spec.with_terms(others, relabel(spec.output))


def drop_constant_axes(spec: Spec, k: int, axes: Sequence[int]) -> tuple[Spec, str]:
    """Operand ``k`` is constant along ``axes``: contract its slice at index 0 instead.

    A broadcast array (the cotangent of a sum is a scalar broadcast to the summed
    shape) holds one value along each broadcast axis. Dropping those axes from term
    ``k`` leaves the einsum's value unchanged, except that a letter then absent from
    every term and from the output was summed over a constant: the caller multiplies
    by the size of each letter returned. A letter kept in the output but now absent
    from every term is a broadcast (the generalised output form).

    >>> spec = Spec(("ij", "ij"), "ij", (("i", 2), ("j", 3)))    # ones(i,j) * G
    >>> new, summed = drop_constant_axes(spec, 0, (0, 1))
    >>> str(new), summed                                          # G, no scale
    (',ij->ij', '')
    >>> spec = Spec(("ij", "jk"), "ik", (("i", 2), ("j", 3), ("k", 4)))
    >>> new, summed = drop_constant_axes(spec, 0, (0, 1))         # c 1 @ B
    >>> str(new), summed
    (',jk->ik', '')
    >>> spec = Spec(("ij", "i"), "", (("i", 2), ("j", 3)))
    >>> new, summed = drop_constant_axes(spec, 0, (1,))           # sum_j a[i] = 3 a[i]
    >>> str(new), summed
    ('i,i->', 'j')
    """
    term = spec.inputs[k]
    kept = "".join(s for a, s in enumerate(term) if a not in set(axes))
    inputs = spec.inputs[:k] + (kept,) + spec.inputs[k + 1 :]
    present = set("".join(inputs)) | set(spec.output)
    summed = "".join(s for s in dict.fromkeys(term) if s not in present)
    return spec.with_terms(inputs, spec.output), summed


def substitute(consumer: Spec, k: int, producer: Spec) -> Spec | None:
    """Fuse two einsums: operand ``k`` of ``consumer`` is the result of ``producer``.

    The producer's output letters are renamed to the letters of term ``k``, its
    summed letters to fresh ones, and its operands take operand ``k``'s place.
    Returns None where the producer's output is generalised (a repeated or
    broadcast letter) or term ``k`` repeats a letter: no plain substitution then.

    >>> product = Spec(("ab", "ab"), "ab", (("a", 2), ("b", 3)))   # x * g
    >>> total = Spec(("ij",), "", (("i", 2), ("j", 3)))              # sum
    >>> str(substitute(total, 0, product))                          # <x, g>
    'ij,ij->'
    """
    term = consumer.inputs[k]
    out = producer.output
    present = set("".join(producer.inputs))
    if len(set(term)) != len(term) or len(set(out)) != len(out) or not set(out) <= present:
        return None
    rename = dict(zip(out, term))
    inner = [s for s in dict.fromkeys("".join(producer.inputs)) if s not in rename]
    fresh = fresh_symbols(consumer.symbols | producer.symbols, len(inner))
    rename.update(zip(inner, fresh))
    renamed = tuple("".join(rename[s] for s in t) for t in producer.inputs)
    sizes = dict(consumer.sizes)
    for s, n in producer.sizes:
        if s in rename and rename[s] not in sizes:
            sizes[rename[s]] = n
    inputs = consumer.inputs[:k] + renamed + consumer.inputs[k + 1 :]
    return consumer.with_terms(inputs, consumer.output, sizes.items())


def run_pairwise(
    spec: Spec,
    path: Sequence[Sequence[int]],
    operands: Sequence[T],
    contract: Callable[[Spec, list[T]], T],
) -> T:
    """Contract ``operands`` along ``path``: the one pairwise-path runner.

    ``contract(step_spec, chosen)`` evaluates one step of :func:`pairwise_steps`;
    its result joins the end of the operand list, as opt_einsum's paths expect.
    The operands are opaque: arrays (the backend), traced values (the tape
    records each step) or names in generated source.

    >>> spec = Spec(("ij", "jk", "kl"), "il", tuple((s, 2) for s in "ijkl"))
    >>> run_pairwise(spec, [(1, 2), (0, 1)], ["A", "B", "C"],
    ...              lambda step, ops: f"({' '.join(ops)} : {step})")
    '(A (B C : jk,kl->jl) : ij,jl->il)'
    """
    current = list(operands)
    for positions, step in pairwise_steps(spec, path):
        chosen = [current[p] for p in positions]
        current = [o for i, o in enumerate(current) if i not in positions]
        current.append(contract(step, chosen))
    (result,) = current
    return result


def factor_out(a: Spec, k_a: int, b: Spec, k_b: int) -> tuple[Spec, Spec, Spec] | None:
    """Distributivity: ``a + b`` where operand ``k_a`` of ``a`` and ``k_b`` of ``b`` are
    the same tensor X, written as one einsum of X with a sum of smaller ones.

    Returns ``(p, q, outer)``: ``p`` contracts ``a``'s other operands to the letters
    they share with X and the output, ``q`` does the same for ``b`` (in ``a``'s
    letter order), and ``a + b = outer(X, p + q)``. None when the two einsums do
    not line up (different roles for X, other operands touching different letters,
    generalised outputs).

    >>> a = Spec(("ji", "i"), "ji", (("i", 5), ("j", 3)))            # X^T * u
    >>> b = Spec(("ab", "b", "b"), "ab", (("a", 3), ("b", 5)))        # X^T * v * w
    >>> [str(s) for s in factor_out(a, 0, b, 0)]
    ['i->i', 'b,b->b', 'ji,i->ji']
    """
    term_a, term_b = a.inputs[k_a], b.inputs[k_b]
    if len(a.output) != len(b.output) or len(term_a) != len(term_b):
        return None
    for spec, term in ((a, term_a), (b, term_b)):
        present = set("".join(spec.inputs))
        if len(set(spec.output)) != len(spec.output) or not set(spec.output) <= present:
            return None
        if len(set(term)) != len(term) or len(spec.inputs) < 2:
            return None
    rename: dict[str, str] = {}  # b's symbols -> a's
    for sb, sa in zip(b.output + term_b, a.output + term_a):
        if rename.setdefault(sb, sa) != sa:
            return None
    if len(set(rename.values())) != len(rename):
        return None
    outside_a = set(a.output) | set(term_a)
    outside_b = set(b.output) | set(term_b)
    rest_a = [t for i, t in enumerate(a.inputs) if i != k_a]
    rest_b = [t for i, t in enumerate(b.inputs) if i != k_b]
    shared_a = "".join(dict.fromkeys(s for s in "".join(rest_a) if s in outside_a))
    shared_b = {rename[s] for s in "".join(rest_b) if s in outside_b}
    if set(shared_a) != shared_b or not shared_a:
        return None
    back = {v: k for k, v in rename.items()}
    p = a.with_terms(rest_a, shared_a)
    q = b.with_terms(rest_b, "".join(back[s] for s in shared_a))
    outer = a.with_terms((term_a, shared_a), a.output)
    return p, q, outer
