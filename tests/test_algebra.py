"""The index algebra as pure string functions: subscripts in, subscripts out.

Each VJP row is also checked numerically against finite differences in
test_einsum.py; here the strings themselves are the truth (the issue's table and
the table of the design note)."""

from __future__ import annotations

import pytest

import einsumad as ea
from einsumad.algebra.subscripts import Spec, parse, resolve
from einsumad.algebra.swap import broadcast_spec, contract_delta, pairwise_steps, swap

VJP_TABLE = [
    # (forward, operand, swapped)                       what a matrix text would write
    ("ij,j->i", 1, "i,ij->j"),  # W^T g: the transpose
    ("ij,j->i", 0, "i,j->ij"),  # g a^T: an outer product
    ("ij,jk->ik", 0, "ik,jk->ij"),  # g B^T
    ("ij,jk->ik", 1, "ik,ij->jk"),  # A^T g
    ("ii->", 0, "->ii"),  # g I
    ("ii->i", 0, "i->ii"),  # Diag(g)
    ("ij->i", 0, "i->ij"),  # g 1^T: a broadcast
    ("i->ii", 0, "ii->i"),  # diag(g)
    ("bi,i->bi", 1, "bi,bi->i"),  # unbroadcasting: a sum over the batch
    ("ijji,kji,jj->kj", 0, "kj,kji,jj->ijji"),  # no matrix form
    ("...ij,...jk->...ik", 0, "...ik,...jk->...ij"),
    ("...ij,...jk->...ik", 1, "...ik,...ij->...jk"),
    ("ij,jk", 0, "ik,jk->ij"),  # implicit output made explicit first
    ("ij,jk,kl->il", 1, "il,ij,kl->jk"),
    ("i,i->", 0, ",i->i"),  # the gradient of an inner product is the other vector
    ("->", 0, "->"),
]


@pytest.mark.parametrize("forward, k, swapped", VJP_TABLE)
def test_vjp_subscripts_table(forward, k, swapped):
    assert ea.vjp_subscripts(forward, k) == swapped


def test_vjp_subscripts_negative_operand_index():
    assert ea.vjp_subscripts("ij,j->i", -1) == "i,ij->j"


def test_vjp_subscripts_named_form_stays_named():
    assert ea.vjp_subscripts("batch in, in out -> batch out", 1) == "batch out, batch in -> in out"


def test_vjp_subscripts_swapping_twice_restores_the_term():
    """Swapping operand k, then the cotangent back, returns operand k's term."""
    for forward, k, _ in VJP_TABLE:
        once = ea.vjp_subscripts(forward, k)
        sub = parse(forward)
        twice = parse(ea.vjp_subscripts(once, 0))
        assert twice.output == sub.output


def test_jvp_subscripts_are_the_forward_subscripts():
    assert ea.jvp_subscripts("ij,jk", 1) == "ij,jk->ik"
    assert ea.jvp_subscripts("i j, j k -> i k", 0) == "i j, j k -> i k"


def test_swap_with_batch_letters():
    spec = resolve(parse("ij,jk->ik"), [(2, 3), (3, 4)])
    assert str(swap(spec, 1, batch="Z")) == "Zik,ij->Zjk"


@pytest.mark.parametrize(
    "shapes, expected",
    [
        (((3,), (2, 3)), "j,ij->ij"),
        (((2, 3), (3,)), "ij,j->ij"),
        (((1, 3), (2, 3)), "kj,ij->ij"),  # the stretched size-1 axis gets its own letter
        (((), (2,)), ",i->i"),
        (((2, 1), (1, 3)), "ik,lj->ij"),
    ],
)
def test_broadcast_spec_assigns_letters_as_numpy_broadcasts(shapes, expected):
    assert str(broadcast_spec(*shapes)) == expected


def test_broadcast_spec_rejects_incompatible_shapes():
    with pytest.raises(ea.EinsumError, match="could not be broadcast"):
        broadcast_spec((2, 3), (4, 3))


def test_pairwise_steps_keep_letters_needed_later():
    spec = Spec(("ab", "bc", "cd", "da"), "", tuple((s, 2) for s in "abcd"))
    steps = [(positions, str(step)) for positions, step in pairwise_steps(spec, [(0, 1), (0, 1), (0, 1)])]
    assert steps == [((0, 1), "ab,bc->ac"), ((0, 1), "cd,da->ca"), ((0, 1), "ac,ca->")]


def test_contract_delta_is_a_relabelling():
    # X @ δ: the delta's batch letter Z is renamed to j and the delta disappears.
    spec = Spec(("ij", "Zj"), "Zi", tuple((s, 2) for s in "ijZ"))
    assert str(contract_delta(spec, 1)) == "ij->ji"
    # δ ⊙ f'(x): a diagonal embedding, Diag(f'(x)).
    spec = Spec(("Zi", "i"), "Zi", tuple((s, 2) for s in "iZ"))
    assert str(contract_delta(spec, 0)) == "i->ii"
