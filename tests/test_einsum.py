"""The generalised einsum: values against numpy.einsum or a brute-force loop, and
every operand's gradient and tangent against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einsumad as ea
from tests.numeric import brute_force_einsum, numerical_directional, numerical_gradient

# ----------------------------------------------------------------- a corpus, grouped by kind
# (subscripts, operand shapes); NumPy accepts all of these.

CORPUS = {
    "products": [
        ("ij,jk->ik", [(2, 3), (3, 4)]),
        ("ij,kj->ik", [(2, 3), (4, 3)]),
        ("ij,j->i", [(2, 3), (3,)]),
        ("i,ij->j", [(2,), (2, 3)]),
        ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
        ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
        ("ab,bc,cd,da->", [(2, 3), (3, 2), (2, 4), (4, 2)]),
    ],
    "hadamard-like": [
        ("ij,ij->ij", [(2, 3), (2, 3)]),
        ("ij,ji->ij", [(2, 3), (3, 2)]),
        ("bi,i->bi", [(4, 3), (3,)]),
        ("i,i,i->i", [(3,), (3,), (3,)]),
    ],
    "collapse": [
        ("ij->", [(2, 3)]),
        ("ij->i", [(2, 3)]),
        ("ijk->kj", [(2, 3, 4)]),
        ("i,i->", [(3,), (3,)]),
    ],
    "outer products": [
        ("i,j->ij", [(2,), (3,)]),
        ("i,j,k->kji", [(2,), (3,), (2,)]),
        (",i->i", [(), (3,)]),
    ],
    "traces and diagonals": [
        ("ii->", [(3, 3)]),
        ("ii->i", [(3, 3)]),
        ("iij->j", [(2, 2, 3)]),
        ("ijji,kji,jj->kj", [(2, 3, 3, 2), (2, 3, 2), (3, 3)]),
        ("ii,i->i", [(3, 3), (3,)]),
    ],
    "ellipsis and broadcasting": [
        ("...ij,...jk->...ik", [(2, 2, 3), (3, 4)]),
        ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),
        ("...i,...i->...", [(2, 1, 3), (4, 3)]),
        ("i...->...", [(3, 2, 2)]),
        ("ij,ij->ij", [(1, 3), (4, 3)]),
        ("ij,ij->i", [(4, 1), (4, 3)]),
    ],
    "previously tricky": [
        ("ba,ab->ab", [(3, 2), (2, 3)]),
        ("aab,bc->ac", [(2, 2, 3), (3, 2)]),
        ("->", [()]),
        ("i->i", [(3,)]),
        ("ijk,jkl,lm->im", [(2, 1, 3), (1, 3, 2), (2, 2)]),
    ],
}
CASES = [(kind, s, shapes) for kind, cases in CORPUS.items() for s, shapes in cases]
IDS = [f"{kind}:{s}:{shapes}" for kind, s, shapes in CASES]


def _random(shapes, rng, dtype=np.float64):
    return [rng.normal(size=s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("kind, subscripts, shapes", CASES, ids=IDS)
def test_forward_matches_numpy(kind, subscripts, shapes, rng):
    arrays = _random(shapes, rng)
    np.testing.assert_allclose(
        ea.einsum(subscripts, *arrays), np.einsum(subscripts, *arrays), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("kind, subscripts, shapes", CASES, ids=IDS)
def test_every_operand_gradient_matches_finite_differences(kind, subscripts, shapes, rng):
    arrays = _random(shapes, rng)
    weights = rng.normal(size=np.einsum(subscripts, *arrays).shape)

    def loss_np(*xs):
        return np.sum(np.einsum(subscripts, *xs) * weights)

    def loss(*xs):
        return ea.sum(ea.einsum(subscripts, *xs) * weights)

    grads = ea.grad(loss, argnums=tuple(range(len(arrays))))(*arrays)
    for k, g in enumerate(grads):
        np.testing.assert_allclose(g, numerical_gradient(loss_np, arrays, k), atol=1e-7)


@pytest.mark.parametrize("kind, subscripts, shapes", CASES, ids=IDS)
def test_tangent_matches_finite_differences(kind, subscripts, shapes, rng):
    arrays = _random(shapes, rng)
    tangents = _random(shapes, rng)
    _, tangent = ea.jvp(lambda *xs: ea.einsum(subscripts, *xs), tuple(arrays), tuple(tangents))
    expected = numerical_directional(lambda *xs: np.einsum(subscripts, *xs), arrays, tangents)
    np.testing.assert_allclose(tangent, expected, atol=1e-7)


@pytest.mark.parametrize("kind, subscripts, shapes", CASES, ids=IDS)
def test_vjp_is_exact_adjoint_of_jvp(kind, subscripts, shapes, rng):
    """<g, J v> == <J^T g, v> to rounding: multilinear, so no step size is involved."""
    arrays = _random(shapes, rng)
    tangents = _random(shapes, rng)
    fun = lambda *xs: ea.einsum(subscripts, *xs)  # noqa: E731
    out, jv = ea.jvp(fun, tuple(arrays), tuple(tangents))
    g = rng.normal(size=np.shape(out))
    _, vjp_fn = ea.vjp(fun, *arrays)
    lhs = np.sum(g * jv)
    rhs = sum(np.sum(c * t) for c, t in zip(vjp_fn(g), tangents))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_float32_stays_float32(rng):
    a, b = _random([(2, 3), (3, 4)], rng, np.float32)
    assert ea.einsum("ij,jk->ik", a, b).dtype == np.float32
    ga, gb = ea.grad(lambda a, b: ea.sum(ea.einsum("ij,jk->ik", a, b)), (0, 1))(a, b)
    assert ga.dtype == np.float32 and gb.dtype == np.float32


# ----------------------------------------------------------------- generalised forms


GENERALISED = [
    ("i->ii", [(3,)], None),
    ("i->ij", [(3,)], {"j": 2}),
    ("->ii", [()], {"i": 3}),
    ("ij->iij", [(2, 3)], None),
    ("ij,jk->iik", [(2, 3), (3, 2)], None),
    ("i,i->ij", [(2,), (2,)], {"j": 3}),
    ("ij->jij", [(2, 3)], None),
]


@pytest.mark.parametrize("subscripts, shapes, sizes", GENERALISED)
def test_generalised_forms_match_brute_force(subscripts, shapes, sizes, rng):
    arrays = _random(shapes, rng)
    np.testing.assert_allclose(
        ea.einsum(subscripts, *arrays, sizes=sizes), brute_force_einsum(subscripts, *arrays, sizes=sizes)
    )


@pytest.mark.parametrize("subscripts, shapes, sizes", GENERALISED)
def test_generalised_gradients_match_finite_differences(subscripts, shapes, sizes, rng):
    arrays = _random(shapes, rng)
    weights = rng.normal(size=ea.einsum(subscripts, *arrays, sizes=sizes).shape)
    _assert_gradients_match_brute_force(subscripts, arrays, sizes, weights, atol=1e-7)


def _assert_gradients_match_brute_force(subscripts, arrays, sizes, weights, atol):
    """Every operand's gradient of sum(einsum * weights) against central differences
    of the brute-force evaluator."""

    def loss_np(*xs):
        return np.sum(brute_force_einsum(subscripts, *xs, sizes=sizes) * weights)

    grads = ea.grad(
        lambda *xs: ea.sum(ea.einsum(subscripts, *xs, sizes=sizes) * weights),
        argnums=tuple(range(len(arrays))),
    )(*arrays)
    for k, g in enumerate(grads):
        assert g.shape == arrays[k].shape
        np.testing.assert_allclose(g, numerical_gradient(loss_np, arrays, k), atol=atol)


# ----------------------------------------------------------------- random subscripts

LETTERS = "abcde"


@st.composite
def generalised_einsums(draw):
    """Random subscripts with 1-4 operands: repeated letters within a term, summed-out
    letters, and optionally ellipses, size-1 broadcasting, repeated or broadcast output
    letters. Returns (subscripts, shapes, sizes, numpy_ok)."""
    size = {c: draw(st.integers(1, 3)) for c in LETTERS}
    n = draw(st.integers(1, 4))
    terms = [draw(st.lists(st.sampled_from(LETTERS), max_size=3)) for _ in range(n)]
    use_ellipsis = draw(st.booleans())
    ellipsis_shape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    shapes, rendered = [], []
    for term in terms:
        shape = [size[c] for c in term]
        # NumPy-style size-1 broadcasting of a letter that is not repeated in this term.
        for i, c in enumerate(term):
            if term.count(c) == 1 and draw(st.integers(0, 5)) == 0:
                shape[i] = 1
        text = "".join(term)
        if use_ellipsis and draw(st.booleans()):
            width = draw(st.integers(0, len(ellipsis_shape)))
            own = [1 if draw(st.integers(0, 3)) == 0 else d for d in ellipsis_shape[len(ellipsis_shape) - width :]]
            shape = own + shape
            text = "..." + text
        shapes.append(tuple(shape))
        rendered.append(text)
    used = sorted({c for t in terms for c in t})
    has_ellipsis = any(t.startswith("...") for t in rendered)
    generalised = draw(st.booleans())
    sizes = None
    if generalised:
        out = draw(st.lists(st.sampled_from(LETTERS), max_size=3))
        absent = [c for c in out if c not in used]
        sizes = {c: size[c] for c in absent} or None
    else:
        out = draw(st.lists(st.sampled_from(used), unique=True, max_size=3)) if used else []
    output = ("..." if has_ellipsis and draw(st.booleans()) else "") + "".join(out)
    numpy_ok = not generalised or (len(set(out)) == len(out) and all(c in used for c in out))
    return ",".join(rendered) + "->" + output, shapes, sizes, numpy_ok


@settings(max_examples=200)
@given(generalised_einsums(), st.integers(0, 2**32 - 1))
def test_random_einsum_forward_and_gradients(case, seed):
    subscripts, shapes, sizes, numpy_ok = case
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=s) for s in shapes]
    inputs, output = subscripts.split("->")
    widths = [len(s) - (len(t) - 3) for t, s in zip(inputs.split(","), shapes) if t.startswith("...")]
    if max(widths, default=0) > 0 and not output.startswith("..."):
        # An explicit output that drops non-empty ellipsis axes: refused, as NumPy does.
        with pytest.raises(ea.EinsumError, match="under '...'"):
            ea.einsum(subscripts, *arrays, sizes=sizes)
        with pytest.raises(ValueError):
            np.einsum(subscripts, *arrays)
        return
    try:
        value = ea.einsum(subscripts, *arrays, sizes=sizes)
    except ea.EinsumError:
        # Only size conflicts between a stretched 1 and others are legitimate refusals;
        # the generator never makes them, except for repeated letters with a 1.
        assert any(1 in s for s in shapes)
        return
    if numpy_ok:
        truth = np.einsum(subscripts, *arrays)
    else:
        truth = brute_force_einsum(subscripts, *arrays, sizes=sizes)
    np.testing.assert_allclose(value, truth, rtol=1e-10, atol=1e-10)

    weights = rng.normal(size=np.shape(value))
    _assert_gradients_match_brute_force(subscripts, arrays, sizes, weights, atol=1e-6)


# ----------------------------------------------------------------- the pairwise tape


def test_long_chain_is_recorded_pairwise(rng):
    """A traced n-ary einsum is recorded as n-1 pairwise steps, not one n-ary node."""
    from einsumad.transforms.autodiff import _Recording

    mats = _random([(3, 3)] * 6, rng)
    recording = _Recording(lambda *m: ea.einsum("ab,bc,cd,de,ef,fg->ag", *m), mats, "test")
    node, count = recording.out.node, 0
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen or n.prim is None:
            continue
        seen.add(id(n))
        count += 1
        assert len(n.args) <= 2
        stack.extend(p for _, p in n.parents)
    assert count == 5
