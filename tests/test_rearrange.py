"""rearrange: the pattern parser (pure strings), the op, and its derivatives.

Truths: hand-written NumPy reshapes and transposes for a table of patterns; a
brute-force copy loop over elementary multi-indices for random patterns
(hypothesis); the reversed pattern undoing the forward one; the VJP equal to
the rearrangement with the reversed pattern; finite differences for Jacobians.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import einsumad as ea
from einsumad.algebra import rearrange as _rearrange
from tests.numeric import numerical_jacobian


def _reversed(pattern: str) -> str:
    """The pattern read from right to left: the rearrangement that undoes it."""
    _rearrange.parse(pattern)
    left, right = pattern.split("->")
    return f"{right.strip()} -> {left.strip()}"

# ================================================================= the parser (strings only)


@pytest.mark.parametrize(
    "pattern, left, right",
    [
        ("i j -> j i", (("i",), ("j",)), (("j",), ("i",))),
        ("b s (h d) -> b h s d", (("b",), ("s",), ("h", "d")), (("b",), ("h",), ("s",), ("d",))),
        ("(a b) c->c(b a)", (("a", "b"), ("c",)), (("c",), ("b", "a"))),
        ("x () -> x 1", (("x",), ()), (("x",), ())),
        ("b ... -> (...) b", (("b",), "..."), (("...",), ("b",))),
        ("... c -> c ...", ("...", ("c",)), (("c",), "...")),
        ("batch_1 x2 -> x2 batch_1", (("batch_1",), ("x2",)), (("x2",), ("batch_1",))),
    ],
)
def test_parse_table(pattern, left, right):
    assert _rearrange.parse(pattern) == (left, right)


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("i j", "exactly one '->'"),
        ("i -> j -> i", "exactly one '->'"),
        ("i j -> i", r"'j' appear\(s\) on the left side but not on the right"),
        ("i -> i k", r"'k' appear\(s\) on the right side but not on the left"),
        ("i i -> i", "axis 'i' appears twice on the left side"),
        ("(i j -> i j", r"unmatched '\('"),
        ("i j) -> i j", r"unmatched '\)'"),
        ("((i j)) -> i j", "nested parentheses"),
        ("(i ...) -> i ...", "cannot be inside parentheses on the left"),
        ("i 2 -> i", "numeric axis '2'"),
        ("i+j -> i j", r"unexpected character '\+'"),
        ("... i -> i", "'...' appear"),
    ],
)
def test_parse_errors_quote_the_pattern_and_name_the_problem(pattern, message):
    with pytest.raises(ea.EinsumError, match=message) as info:
        _rearrange.parse(pattern)
    assert repr(pattern) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_reverse_swaps_the_sides():
    assert _reversed("b s (h d) -> b h s d") == "b h s d -> b s (h d)"
    assert _reversed(" i j->j i ") == "j i -> i j"


def test_plan_of_the_attention_split():
    plan = _rearrange.plan("b s (h d) -> b h s d", (2, 5, 12), (("h", 4),))
    assert plan == _rearrange.Plan((2, 5, 4, 3), (0, 2, 1, 3), (2, 4, 5, 3))


# ================================================================= values against NumPy

x24 = np.arange(24.0).reshape(2, 3, 4)

CASES = [
    ("a b c -> c a b", {}, np.transpose(x24, (2, 0, 1))),
    ("a b c -> a b c", {}, x24),
    ("a b c -> a (b c)", {}, x24.reshape(2, 12)),
    ("a b c -> (a b c)", {}, x24.ravel()),
    ("a b c -> (c b a)", {}, np.transpose(x24, (2, 1, 0)).ravel()),
    ("a b (h d) -> a h b d", {"h": 2}, x24.reshape(2, 3, 2, 2).transpose(0, 2, 1, 3)),
    ("a b (h d) -> a h b d", {"d": 1}, x24.reshape(2, 3, 4, 1).transpose(0, 2, 1, 3)),
    ("a b (h d) -> a b h d", {"h": 2, "d": 2}, x24.reshape(2, 3, 2, 2)),
    ("a b c -> a b c ()", {}, x24[..., None]),
    ("a b c -> 1 a b 1 c", {}, x24[None, :, :, None]),
    ("... c -> c ...", {}, np.moveaxis(x24, -1, 0)),
    ("a ... -> (...) a", {}, x24.reshape(2, 12).T),
    ("a ... c -> a c ...", {}, x24.transpose(0, 2, 1)),
    ("... a b c -> ... (b a) c", {}, x24.transpose(1, 0, 2).reshape(6, 4)),
]


@pytest.mark.parametrize("pattern, sizes, expected", CASES, ids=[c[0] for c in CASES])
def test_values_match_numpy(pattern, sizes, expected):
    np.testing.assert_array_equal(ea.rearrange(x24, pattern, **sizes), expected)


def test_attention_heads_round_trip():
    x = np.arange(2 * 5 * 12.0).reshape(2, 5, 12)
    heads = ea.rearrange(x, "b s (h d) -> b h s d", h=4)
    np.testing.assert_array_equal(heads, x.reshape(2, 5, 4, 3).transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(ea.rearrange(heads, "b h s d -> b s (h d)"), x)


def test_ungrouping_a_grouped_output_needs_no_sizes_it_can_infer():
    x = np.arange(6.0).reshape(2, 3)
    y = ea.rearrange(x, "i j -> (j i)")
    np.testing.assert_array_equal(ea.rearrange(y, "(j i) -> i j", i=2), x)


# ================================================================= errors that involve the shape


@pytest.mark.parametrize(
    "pattern, shape, sizes, message",
    [
        ("a (h d) -> a h d", (2, 10), {"h": 3}, r"\(h d\) does not divide axis 1 of length 10.*h=3"),
        ("a (h d) -> a h d", (2, 10), {}, "cannot infer the sizes of h, d"),
        ("a b -> b a", (2, 3), {"q": 4}, "size was given for axis 'q', which is not in the pattern"),
        ("a b -> b a", (2, 3), {"a": 3}, "axis 0 has length 2"),
        ("a (h d) -> a h d", (2, 10), {"h": 2, "d": 4}, "axis 1 has length 10"),
        ("a b -> b a", (2, 3, 4), {}, "left side has 2 axes but the input has 3"),
        ("a b c ... -> a b c ...", (2, 3), {}, "left side has 3 or more axes but the input has 2"),
        ("a () -> a", (2, 3), {}, "axis 1 has length 3"),
    ],
)
def test_shape_errors_quote_pattern_and_shape(pattern, shape, sizes, message):
    with pytest.raises(ValueError, match=message) as info:
        ea.rearrange(np.ones(shape), pattern, **sizes)
    assert repr(pattern) in str(info.value)
    assert str(shape) in str(info.value) or "size was given" in str(info.value)


def test_ellipsis_on_one_side_only_is_an_error():
    with pytest.raises(ea.EinsumError, match="'...'"):
        ea.rearrange(x24, "a b c -> c b ... a")


# ================================================================= random patterns against a copy loop


@st.composite
def patterns(draw):
    n = draw(st.integers(1, 4))
    names = [f"n{k}" for k in range(n)]
    sizes = {name: draw(st.integers(1, 3)) for name in names}

    def grouping(order):
        groups, i = [], 0
        while i < len(order):
            width = draw(st.integers(1, len(order) - i))
            groups.append(order[i : i + width])
            i += width
        return groups

    left = grouping(names)
    right = grouping(draw(st.permutations(names)))
    render = lambda groups: " ".join(g[0] if len(g) == 1 else "(" + " ".join(g) + ")" for g in groups)  # noqa: E731
    return render(left) + " -> " + render(right), left, right, sizes


@given(case=patterns())
def test_random_patterns_against_a_brute_force_copy(case):
    pattern, left, right, sizes = case
    in_shape = tuple(int(np.prod([sizes[n] for n in g])) for g in left)
    out_shape = tuple(int(np.prod([sizes[n] for n in g])) for g in right)
    x = np.arange(float(np.prod(in_shape, dtype=int))).reshape(in_shape)
    expected = np.zeros(out_shape)
    names = list(sizes)
    for values in np.ndindex(*[sizes[n] for n in names]):
        at = dict(zip(names, values))
        src = tuple(np.ravel_multi_index([at[n] for n in g], [sizes[n] for n in g]) for g in left)
        dst = tuple(np.ravel_multi_index([at[n] for n in g], [sizes[n] for n in g]) for g in right)
        expected[dst] = x[src]
    got = ea.rearrange(x, pattern, **sizes)
    np.testing.assert_array_equal(got, expected)
    back = ea.rearrange(got, _reversed(pattern), **sizes)
    np.testing.assert_array_equal(back, x)


# ================================================================= derivatives


@pytest.mark.parametrize(
    "pattern, shape, sizes",
    [
        ("b s (h d) -> b h s d", (2, 3, 4), {"h": 2}),
        ("b h s d -> b s (h d)", (1, 2, 3, 2), {}),
        ("i j -> j i", (2, 3), {}),
        ("a ... -> ... a", (2, 3, 2), {}),
    ],
)
def test_vjp_is_the_rearrange_with_the_reversed_pattern(pattern, shape, sizes, rng):
    x = rng.standard_normal(shape)
    y, pullback = ea.vjp(lambda x: ea.rearrange(x, pattern, **sizes), x)
    g = rng.standard_normal(np.shape(y))
    all_sizes = dict(zip(*_elementary(pattern, shape, sizes)))
    (xbar,) = pullback(g)
    np.testing.assert_array_equal(xbar, ea.rearrange(g, _reversed(pattern), **all_sizes))
    np.testing.assert_allclose(np.sum(g * y), np.sum(xbar * x), rtol=1e-12)
    f = lambda x: ea.rearrange(x, pattern, **sizes)  # noqa: E731
    expected = numerical_jacobian(lambda x: np.array(f(x)), [x], 0)
    np.testing.assert_allclose(ea.jacrev(f)(x), expected, atol=1e-8)
    np.testing.assert_allclose(ea.jacfwd(f)(x), expected, atol=1e-8)


def _elementary(pattern, shape, sizes):
    """Names and sizes of the elementary axes (without '...'), to reverse a pattern."""
    left, _ = _rearrange.parse(pattern)
    plan = _rearrange.plan(pattern, shape, tuple(sorted(sizes.items())))
    if "..." in left:
        return [], []
    return [n for g in left for n in g], plan.elementary_shape


def test_second_derivative_through_rearrange():
    x = np.linspace(-1.0, 1.0, 8).reshape(2, 4)

    def f(x):
        heads = ea.rearrange(x, "b (h d) -> h b d", h=2)
        return ea.sum(ea.sin(heads) * heads[::-1])

    np.testing.assert_allclose(ea.hessian(f)(x), numerical_jacobian(ea.grad(f), [x], 0), rtol=1e-6, atol=1e-7)


def test_float32_and_traced_values():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert ea.rearrange(x, "a (b c) -> c b a", c=2).dtype == np.float32
    g = ea.grad(lambda x: ea.sum(ea.rearrange(x, "a (b c) -> c b a", c=2)[0] * 2.0))(x)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.tile([2.0, 0.0], (3, 2)))


def test_numpy_integer_sizes_are_accepted():
    np.testing.assert_array_equal(ea.rearrange(np.ones((2, 6)), "a (h d) -> a h d", h=np.int64(3)).shape, (2, 3, 2))
