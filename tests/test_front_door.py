"""The einsum front door at parity with NumPy and opt_einsum (issue 10, items 7-9, 12,
14, 19-23).

Truths: ``numpy.einsum`` and ``numpy.einsum_path``, ``opt_einsum.contract`` and
``opt_einsum.contract_path`` (the path and its flop count), brute-force counts of
flops written out by hand, and central finite differences for gradients.
"""

from __future__ import annotations

import numpy as np
import opt_einsum
import pytest

import einsumad as ea
from einsumad.tools.cli import main
from tests.numeric import numerical_gradient

# ----------------------------------------------------------------- 7: letters or names


@pytest.mark.parametrize(
    "subscripts, shapes",
    [
        ("... ji", [(2, 3)]),  # one name next to '...': letters, as NumPy reads it
        ("ji ...", [(2, 3, 4)]),
        ("... ij -> ji ...", [(5, 2, 3)]),
        ("... ij, ... jk", [(4, 2, 3), (4, 3, 2)]),
        (" ij , jk -> ik ", [(2, 3), (3, 4)]),
    ],
)
def test_one_name_next_to_an_ellipsis_is_letters_as_in_numpy(subscripts, shapes, rng):
    arrays = [rng.normal(size=s) for s in shapes]
    value = ea.einsum(subscripts, *arrays)
    truth = np.einsum(subscripts, *arrays)
    assert np.shape(value) == truth.shape
    np.testing.assert_allclose(value, truth, rtol=1e-12)


def test_the_issue_example_gives_numpy_shape():
    assert ea.einsum("... ji", np.ones((2, 3))).shape == np.einsum("... ji", np.ones((2, 3))).shape == (3, 2)


def test_two_names_in_a_term_are_named_indices(rng):
    X, W = rng.normal(size=(5, 3)), rng.normal(size=(3, 2))
    np.testing.assert_allclose(ea.einsum("batch in, in out -> batch out", X, W), X @ W)
    np.testing.assert_allclose(ea.einsum("... in, in out -> ... out", X, W), X @ W)
    np.testing.assert_allclose(ea.einsum("x_1, x_1 ->", X[0], X[0]), X[0] @ X[0])


def test_the_rule_is_stated_in_the_einsum_docstring():
    doc = " ".join(ea.einsum.__doc__.split())
    assert "two or more space-separated names (``...`` is never a name)" in doc


# ----------------------------------------------------------------- 8: dropped ellipsis axes


@pytest.mark.parametrize(
    "subscripts, shapes",
    [
        ("...ij,...jk->ik", [(2, 2, 3), (3, 4)]),
        ("...i->i", [(1, 3)]),
        ("i...->", [(3, 2)]),
    ],
)
def test_an_explicit_output_may_not_drop_ellipsis_axes(subscripts, shapes):
    arrays = [np.ones(s) for s in shapes]
    with pytest.raises(ValueError):
        np.einsum(subscripts, *arrays)
    with pytest.raises(ea.EinsumError, match=r"under '\.\.\.'.*output has no '\.\.\.'.*NumPy") as info:
        ea.einsum(subscripts, *arrays)
    assert subscripts in str(info.value)


def test_an_empty_ellipsis_may_be_left_out_of_the_output():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(ea.einsum("...ij->ji", x), np.einsum("...ij->ji", x))


# ----------------------------------------------------------------- 9: zero-size axes


ZERO_CASES = [
    ("ab,bc,cd->", [(0, 2), (2, 3), (3, 4)]),
    ("ab,bc,cd->ad", [(0, 2), (2, 3), (3, 4)]),
    ("ab,bc,cd->ad", [(2, 0), (0, 3), (3, 4)]),
    ("ab,bc,cd,de->be", [(2, 3), (3, 0), (0, 4), (4, 5)]),
    ("i,i,i->i", [(0,), (0,), (0,)]),
]


@pytest.mark.parametrize("subscripts, shapes", ZERO_CASES)
def test_three_or_more_operands_with_a_zero_size_axis(subscripts, shapes, rng):
    arrays = [rng.normal(size=s) for s in shapes]
    truth = np.einsum(subscripts, *arrays)
    value = ea.einsum(subscripts, *arrays)
    assert np.shape(value) == truth.shape
    np.testing.assert_array_equal(value, truth)
    np.testing.assert_array_equal(ea.compile(lambda *xs: ea.einsum(subscripts, *xs))(*arrays), truth)


@pytest.mark.parametrize("subscripts, shapes", ZERO_CASES)
def test_gradients_with_a_zero_size_axis(subscripts, shapes, rng):
    arrays = [rng.normal(size=s) for s in shapes]
    weights = rng.normal(size=np.einsum(subscripts, *arrays).shape)

    def loss(*xs):
        return ea.sum(ea.einsum(subscripts, *xs) * weights)

    def loss_np(*xs):
        return np.sum(np.einsum(subscripts, *xs) * weights)

    grads = ea.grad(loss, argnums=tuple(range(len(arrays))))(*arrays)
    compiled = ea.compile(ea.grad(loss, argnums=tuple(range(len(arrays)))))(*arrays)
    for k, (g, c) in enumerate(zip(grads, compiled)):
        truth = numerical_gradient(loss_np, arrays, k)
        np.testing.assert_allclose(g, truth, atol=1e-8)
        np.testing.assert_allclose(c, truth, atol=1e-8)


def test_the_cli_checks_an_einsum_with_a_zero_size_axis(capsys):
    assert main(["check", "ab,bc,cd->", "--shapes", "0x2,2x3,3x4"]) == 0
    assert "all derivatives agree" in capsys.readouterr().out


# ----------------------------------------------------------------- 12, 14: argument types


def test_sizes_must_be_a_mapping():
    with pytest.raises(TypeError, match="sizes"):
        ea.einsum("i->iz", np.ones(2), sizes=[("z", 2)])
    with pytest.raises(TypeError, match="sizes"):
        ea.einsum("i->iz", np.ones(2), sizes={"z": 2.5})
    with pytest.raises(TypeError, match="sizes"):
        ea.einsum("i->iz", np.ones(2), sizes={0: 2})
    assert ea.einsum("i->iz", np.ones(2), sizes={"z": np.int64(3)}).shape == (2, 3)


@pytest.mark.parametrize("args", [(0, 0), (None, np.ones(2)), (1.5, np.ones(2)), (np.ones(2), 0)])
def test_non_string_subscripts_raise_type_error_as_numpy(args):
    with pytest.raises(TypeError):
        np.einsum(*args)
    with pytest.raises(TypeError, match="einsum"):
        ea.einsum(*args)


# ----------------------------------------------------------------- 19: integer dtypes


INTEGER_CASES = [
    ("ab->a", [(2, 3)]),  # a sum
    ("ab->", [(2, 3)]),
    ("ab->ba", [(2, 3)]),  # a transpose
    ("ab,ab->ab", [(2, 3), (2, 3)]),  # products
    ("a,b->ab", [(2,), (3,)]),
    ("ab,b->ab", [(2, 3), (3,)]),
    ("ab,bc->ac", [(2, 3), (3, 4)]),  # matmul
    ("ab,bc->ca", [(2, 3), (3, 4)]),
    ("zab,zbc->zac", [(5, 2, 3), (5, 3, 4)]),
    ("zab,zb->za", [(5, 2, 3), (5, 3)]),
    ("abc,bcd->ad", [(2, 3, 4), (3, 4, 5)]),
    ("acb,bd->d", [(3, 2, 3), (3, 2)]),  # one operand summed before the product
    ("ii->i", [(3, 3)]),  # diagonals
    ("ii->", [(3, 3)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)]),  # three or more operands
    ("ab,bc,cd,da->", [(2, 3), (3, 4), (4, 5), (5, 2)]),
    ("b,d->", [(3,), (2,)]),
]


@pytest.mark.parametrize("dtypes", [
    ("int32",), ("int8",), ("uint16",), ("bool",), ("int64",),
    ("bool", "int16", "int8", "uint8"),  # mixed: NumPy casts to the common dtype first
    ("int8", "uint8", "int32", "int8"),
])
@pytest.mark.parametrize("subscripts, shapes", INTEGER_CASES)
def test_integer_operands_keep_numpy_dtype_and_values(subscripts, shapes, dtypes, rng):
    arrays = [
        rng.integers(-120, 120, size=s).astype(dtypes[k % len(dtypes)]) for k, s in enumerate(shapes)
    ]
    with np.errstate(all="ignore"):
        truth = np.einsum(subscripts, *arrays)
        value = ea.einsum(subscripts, *arrays)
        traced = ea.einsum(subscripts, *arrays, optimize="greedy")  # the front door's own path
    for got in (value, traced):
        assert np.asarray(got).dtype == truth.dtype
        np.testing.assert_array_equal(got, truth)


def test_int32_sum_stays_int32():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert ea.einsum("ab->a", x).dtype == np.einsum("ab->a", x).dtype == np.int32


def test_a_boolean_operand_summed_next_to_an_integer_counts(rng):
    mask, counts = np.ones((3, 2, 3), dtype=bool), np.arange(6, dtype=np.int16).reshape(3, 2)
    np.testing.assert_array_equal(ea.einsum("acb,bd->d", mask, counts), np.einsum("acb,bd->d", mask, counts))


# ----------------------------------------------------------------- 20: '...' only in the output


def test_an_output_ellipsis_with_none_in_the_inputs_is_empty():
    assert ea.einsum("->...", 1.0) == np.einsum("->...", 1.0)
    x = np.arange(3.0)
    np.testing.assert_array_equal(ea.einsum("i->...i", x), np.einsum("i->...i", x))


# ----------------------------------------------------------------- 21: the sublist form


def test_the_sublist_form_as_numpy_and_opt_einsum(rng):
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3, 4))
    truth = np.einsum(a, [0, 1], b, [1, 2], [0, 2])
    np.testing.assert_allclose(ea.einsum(a, [0, 1], b, [1, 2], [0, 2]), truth)
    np.testing.assert_allclose(opt_einsum.contract(a, [0, 1], b, [1, 2], [0, 2]), truth)
    np.testing.assert_allclose(ea.einsum(a, [0, 1], b, [1, 2]), np.einsum(a, [0, 1], b, [1, 2]))
    np.testing.assert_allclose(ea.einsum(a, (0, 1), b, (1, 2), (2, 0)), truth.T)


def test_the_sublist_form_with_ellipsis_and_large_labels(rng):
    x, y = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 3, 2))
    truth = np.einsum(x, [Ellipsis, 0, 30], y, [Ellipsis, 30, 51], [Ellipsis, 0, 51])
    np.testing.assert_allclose(ea.einsum(x, [Ellipsis, 0, 30], y, [Ellipsis, 30, 51], [Ellipsis, 0, 51]), truth)
    # implicit output: NumPy orders the labels as numbers (0-25 are 'A-Z', 26-51 'a-z')
    z = rng.normal(size=(2, 3))
    np.testing.assert_allclose(ea.einsum(z, [30, 4]), np.einsum(z, [30, 4]))
    np.testing.assert_allclose(ea.einsum(z, [np.int64(3), 1]), np.einsum(z, [3, 1]))


def test_the_sublist_form_with_opt_einsum_labels(rng):
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3, 4))
    truth = opt_einsum.contract(a, ["x", "y"], b, ["y", "z"], ["z", "x"])
    np.testing.assert_allclose(ea.einsum(a, ["x", "y"], b, ["y", "z"], ["z", "x"]), truth)
    np.testing.assert_allclose(ea.einsum(a, [100, 7], b, [7, 200], [100, 200]), a @ b)


def test_the_sublist_form_differentiates(rng):
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3, 4))
    g = ea.grad(lambda a: ea.sum(ea.einsum(a, [0, 1], b, [1, 2], [0, 2]) ** 2))(a)
    truth = numerical_gradient(lambda a, b: np.sum((a @ b) ** 2), [a, b], 0)
    np.testing.assert_allclose(g, truth, rtol=1e-6)


def test_sublist_errors_are_clear(rng):
    a = rng.normal(size=(2, 3))
    with pytest.raises(TypeError, match="list or a tuple"):
        ea.einsum(a, [0, 1], a, 5)
    with pytest.raises(TypeError, match="label"):
        ea.einsum(a, [0, True])
    with pytest.raises(ea.EinsumError, match="sublists were read as"):
        ea.einsum(a, [0, 1], a, [0, 0])
    with pytest.raises(TypeError):
        ea.einsum(a)


# ----------------------------------------------------------------- 22: optimize= and dtype=


@pytest.mark.parametrize("optimize", [None, False, True, "greedy", "optimal", "dp", "auto", "branch-2"])
def test_optimize_strategies_give_numpy_values(optimize, rng):
    shapes = [(2, 3), (3, 4), (4, 5), (5, 2)]
    arrays = [rng.normal(size=s) for s in shapes]
    truth = np.einsum("ab,bc,cd,da->", *arrays)
    np.testing.assert_allclose(ea.einsum("ab,bc,cd,da->", *arrays, optimize=optimize), truth)
    grads = ea.grad(lambda *xs: ea.einsum("ab,bc,cd,da->", *xs, optimize=optimize), argnums=(0, 3))(*arrays)
    for g, k in zip(grads, (0, 3)):
        np.testing.assert_allclose(
            g, numerical_gradient(lambda *xs: np.einsum("ab,bc,cd,da->", *xs), arrays, k), rtol=1e-6
        )


@pytest.mark.parametrize("strategy", ["greedy", "optimal", "dp", "branch-2"])
def test_the_path_taken_is_the_path_of_the_strategy(strategy, rng):
    """The steps recorded on the tape follow opt_einsum's path for that strategy."""
    shapes = [(2, 30), (30, 4), (4, 50), (50, 3)]
    arrays = [rng.normal(size=s) for s in shapes]
    truth, _ = opt_einsum.contract_path("ab,bc,cd,de->ae", *arrays, optimize=strategy)
    path, _ = ea.einsum_path("ab,bc,cd,de->ae", *arrays, optimize=strategy)
    assert path == [tuple(step) for step in truth]


def _recorded_steps(fun, arrays) -> list[str]:
    """The einsum steps a traced call records, in order, as subscripts."""
    from einsumad.transforms.autodiff import _Recording

    recording = _Recording(fun, arrays, "test")
    steps, stack, seen = [], [recording.out.node], set()
    while stack:
        node = stack.pop()
        if id(node) in seen or node.prim is None:
            continue
        seen.add(id(node))
        steps.append(str(node.params["spec"]))
        stack.extend(p for _, p in node.parents)
    return sorted(steps)


@pytest.mark.parametrize("strategy", ["greedy", "optimal", False, [(2, 3), (1, 2), (0, 1)]])
def test_the_traced_steps_follow_the_chosen_path(strategy, rng):
    """Truth: opt_einsum's path for the strategy (left to right for False), whose steps
    are written out by hand below as their subscripts."""
    shapes = [(2, 30), (30, 4), (4, 50), (50, 3)]
    arrays = [rng.normal(size=s) for s in shapes]
    if strategy is False:
        path = [(0, 1), (0, 2), (0, 1)]
    elif isinstance(strategy, list):
        path = strategy
    else:
        path = [tuple(p) for p in opt_einsum.contract_path("ab,bc,cd,de->ae", *arrays, optimize=strategy)[0]]
    terms, expected = ["ab", "bc", "cd", "de"], []
    for positions in path:  # each step keeps the letters still needed later or in the output
        chosen = [terms[p] for p in positions]
        rest = [t for i, t in enumerate(terms) if i not in positions]
        needed = set("".join(rest)) | set("ae")
        out = "".join(dict.fromkeys(c for c in "".join(chosen) if c in needed)) if rest else "ae"
        expected.append(",".join(chosen) + "->" + out)
        terms = rest + [out]
    steps = _recorded_steps(lambda *xs: ea.einsum("ab,bc,cd,de->ae", *xs, optimize=strategy), arrays)
    assert steps == sorted(expected)


def test_an_explicit_path_is_followed(rng):
    arrays = [rng.normal(size=s) for s in [(2, 3), (3, 4), (4, 5)]]
    truth = np.einsum("ab,bc,cd->ad", *arrays)
    for path in ([(1, 2), (0, 1)], [(0, 1), (0, 1)], ["einsum_path", (0, 2), (0, 1)], [(0, 1, 2)]):
        np.testing.assert_allclose(ea.einsum("ab,bc,cd->ad", *arrays, optimize=path), truth)
        assert ea.einsum_path("ab,bc,cd->ad", *arrays, optimize=path)[0] == [
            tuple(p) for p in path if p != "einsum_path"
        ]
    with pytest.raises(ValueError, match="optimize"):
        ea.einsum("ab,bc,cd->ad", *arrays, optimize=[(0, 5)])
    with pytest.raises(ValueError, match="leaves 2 operands"):
        ea.einsum("ab,bc,cd->ad", *arrays, optimize=[(0, 1)])


def test_bad_optimize_and_unknown_keywords(rng):
    arrays = [rng.normal(size=s) for s in [(2, 3), (3, 4), (4, 5)]]
    with pytest.raises(ValueError, match="not a path strategy"):
        ea.einsum("ab,bc,cd->ad", *arrays, optimize="fastest")
    with pytest.raises(TypeError):
        ea.einsum("ab,bc,cd->ad", *arrays, memory_limit=10)
    with pytest.raises(TypeError):
        ea.einsum("ab,bc,cd->ad", *arrays, not_a_keyword=1)


def test_dtype_and_casting_as_numpy(rng):
    x = rng.integers(0, 5, size=(2, 3)).astype(np.int32)
    for dtype, casting in [(np.float64, "safe"), (np.int64, "safe"), (np.float32, "same_kind"), (np.int8, "unsafe")]:
        truth = np.einsum("ab->a", x, dtype=dtype, casting=casting)
        value = ea.einsum("ab->a", x, dtype=dtype, casting=casting)
        assert value.dtype == truth.dtype
        np.testing.assert_array_equal(value, truth)
    with pytest.raises(TypeError):
        np.einsum("ab->a", x, dtype=np.int8)
    with pytest.raises(TypeError, match="cast"):
        ea.einsum("ab->a", x, dtype=np.int8)


def test_dtype_under_grad_casts_back(rng):
    x = rng.normal(size=(2, 3)).astype(np.float32)
    g = ea.grad(lambda x: ea.sum(ea.einsum("ab->a", x, dtype=np.float64) ** 2))(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2 * np.repeat(x.astype(np.float64).sum(1, keepdims=True), 3, 1), rtol=1e-6)


# ----------------------------------------------------------------- 23: einsum_path


PATH_CASES = [
    ("ab,bc,cd->ad", [(5, 2), (2, 3), (3, 4)]),
    ("ab,bc,cd,de->ae", [(2, 30), (30, 4), (4, 50), (50, 3)]),
    ("ij,jk,kl,lm,mn->in", [(8, 2), (2, 9), (9, 3), (3, 7), (7, 8)]),
    ("abc,bd,cde,ea->", [(2, 3, 4), (3, 5), (4, 5, 2), (2, 2)]),
]


@pytest.mark.parametrize("optimize", ["greedy", "optimal", "dp"])
@pytest.mark.parametrize("subscripts, shapes", PATH_CASES)
def test_einsum_path_matches_opt_einsum_contract_path(subscripts, shapes, optimize):
    truth_path, truth = opt_einsum.contract_path(subscripts, *shapes, shapes=True, optimize=optimize)
    path, info = ea.einsum_path(subscripts, *shapes, optimize=optimize)
    assert path == [tuple(p) for p in truth_path]
    assert info.forward_flops == truth.opt_cost
    assert info.naive_flops == truth.naive_cost
    assert info.largest_intermediate == truth.largest_intermediate


def test_einsum_path_matches_numpy_einsum_path(rng):
    arrays = [rng.normal(size=s) for s in [(5, 2), (2, 3), (3, 4)]]
    truth, _ = np.einsum_path("ab,bc,cd->ad", *arrays, optimize="greedy")
    path, _ = ea.einsum_path("ab,bc,cd->ad", *arrays, optimize="greedy")
    assert path == truth[1:]


def test_the_gradient_of_a_matrix_chain_costs_twice_the_forward_pass_more():
    """Each pairwise matmul step i,j,k has 2 i j k flops, and so has each of its two
    VJPs (g B^T and A^T g): with every operand differentiated, backward = 2 forward."""
    shapes = [(2, 30), (30, 4), (4, 50), (50, 3)]
    path, info = ea.einsum_path("ab,bc,cd,de->ae", *shapes)
    size = {"a": 2, "b": 30, "c": 4, "d": 50, "e": 3}
    by_hand = 0
    for step in info.steps:
        letters = set(step.subscripts.replace(",", "").replace("->", ""))
        flops = 2 * int(np.prod([size[c] for c in letters]))
        assert step.flops == flops
        assert [f for _, _, f in step.vjps] == [flops, flops]
        by_hand += flops
    assert info.forward_flops == by_hand
    assert info.backward_flops == 2 * by_hand
    assert info.gradient_flops == 3 * by_hand


def test_einsum_path_with_respect_to_some_operands():
    """(A B) C with respect to A alone: the first step needs the VJP for A, the second
    the VJP for the intermediate A B; nothing for B or C."""
    path, info = ea.einsum_path("ab,bc,cd->ad", (2, 3), (3, 4), (4, 5), optimize=[(0, 1), (0, 1)], wrt=[0])
    first, second = info.steps
    assert [(j, s) for j, s, _ in first.vjps] == [(0, "ac,bc->ab")]
    assert [(j, s) for j, s, _ in second.vjps] == [(1, "ad,cd->ac")]
    assert info.backward_flops == 2 * 2 * 3 * 4 + 2 * 2 * 4 * 5


def test_einsum_path_accepts_arrays_shapes_names_and_sublists(rng):
    arrays = [rng.normal(size=s) for s in [(5, 2), (2, 3), (3, 4)]]
    by_shape = ea.einsum_path("ab,bc,cd->ad", *[a.shape for a in arrays])
    by_array = ea.einsum_path("ab,bc,cd->ad", *arrays)
    by_sublist = ea.einsum_path(arrays[0], [0, 1], arrays[1], [1, 2], arrays[2], [2, 3], [0, 3])
    named = ea.einsum_path("batch in, in mid, mid out -> batch out", *arrays)
    assert by_shape[0] == by_array[0] == by_sublist[0] == named[0]
    assert by_shape[1].forward_flops == named[1].forward_flops == by_sublist[1].forward_flops
    assert "in mid, mid out -> in out" in str(named[1])
    one = ea.einsum_path("ij->", (3, 4))[1]
    assert one.forward_flops == 24 and one.backward_flops == 12  # sum: 12 + 12; VJP: a broadcast


def test_einsum_path_is_exported_and_documented():
    assert "einsum_path" in ea.__all__
    from pathlib import Path

    api = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    assert "::: einsumad.einsum_path" in api


def test_the_default_path_search_stays_affordable():
    """The dynamic-programming search visits every connected sub-network: on 18 small
    operands that all share indices it took a minute (found by the fuzz). There the
    default is opt_einsum's 'auto'; on a tensor train it is still 'dp'."""
    dense = "ab,bfa,gfb,bb,aa,b,aa,ga,ba,b,,baa,b,,a,bfg,aag,f->"
    size = {"a": 3, "b": 2, "f": 3, "g": 3}
    shapes = [tuple(size[c] for c in t) for t in dense.split("->")[0].split(",")]
    auto, _ = opt_einsum.contract_path(dense, *shapes, shapes=True, optimize="auto")
    assert ea.einsum_path(dense, *shapes)[0] == [tuple(p) for p in auto]
    arrays = [np.full(s, 0.5) for s in shapes]
    np.testing.assert_allclose(ea.einsum(dense, *arrays), np.einsum(dense, *arrays))
    train = ",".join(f"n{k}" for k in "pqrstu") + ",pA,AqB,BrC,CsD,DtE,Eu->n"
    train_shapes = [(64, 2)] * 6 + [(2, 8)] + [(8, 2, 8)] * 4 + [(8, 2)]
    dp, _ = opt_einsum.contract_path(train, *train_shapes, shapes=True, optimize="dp")
    assert ea.einsum_path(train, *train_shapes)[0] == [tuple(p) for p in dp]


@pytest.mark.parametrize(
    "subscripts, operands",
    [(",ij", (2.5, np.ones((2, 2), np.float32))), (",ij", (3, np.ones((2, 2), np.int32))),
     ("ij,", (np.ones((1, 1), np.int8), 1000)), (",", (2, 3.0)), ("i,", (np.arange(3, dtype=np.float16), 1.5))],
)
def test_python_numbers_are_promoted_as_numpy_einsum_promotes_them(subscripts, operands):
    """numpy.einsum makes arrays of Python numbers (float64, int64), so they take part
    in the result's dtype; the arithmetic operators keep weak scalars instead."""
    expected = np.einsum(subscripts, *operands)
    got = ea.einsum(subscripts, *operands)
    assert np.result_type(got) == np.result_type(expected)
    np.testing.assert_array_equal(got, expected)


def test_out_and_order_as_numpy(rng):
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3, 4))
    out = np.empty((2, 4))
    assert ea.einsum("ij,jk->ik", a, b, out=out) is out
    np.testing.assert_allclose(out, np.einsum("ij,jk->ik", a, b))
    with pytest.raises(TypeError):  # NumPy's 'safe' casting into out
        ea.einsum("ij,jk->ik", a, b, out=np.empty((2, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        ea.einsum("ij,jk->ik", a, b, out=np.empty((4, 2)))
    fortran = ea.einsum("ij,jk->ik", a, b, order="F")
    assert fortran.flags["F_CONTIGUOUS"]
    np.testing.assert_allclose(fortran, a @ b)
    with pytest.raises(TypeError, match="traced"):
        ea.grad(lambda a: ea.sum(ea.einsum("ij,jk->ik", a, b, out=out)))(a)
    np.testing.assert_allclose(ea.grad(lambda a: ea.sum(ea.einsum("ij,jk->ik", a, b, order="C")))(a),
                               np.tile(b.sum(axis=1), (2, 1)))
