"""ea.optim: SGD and Adam against the textbook update formulas written out by hand.

The truths are loops over steps with the formulas of the papers (Kingma & Ba,
Algorithm 1; heavy-ball and Nesterov momentum in the PyTorch/optax convention),
written independently of einsumad.optim.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

import einsumad as ea
from einsumad.optim import SGD, Adam, AdamState, SGDState, fit, minibatches

STEPS = 5


def _grad_sequence(rng: np.random.Generator, shape: tuple[int, ...]) -> list[np.ndarray]:
    return [rng.normal(size=shape) for _ in range(STEPS)]


def _textbook_adam(p, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v


def _textbook_sgd(p, grads, lr, momentum=0.0, nesterov=False):
    buf = np.zeros_like(p)
    for g in grads:
        buf = momentum * buf + g
        p = p - lr * ((g + momentum * buf) if nesterov else buf)
    return p


def _run(opt, params, grads_per_step):
    state = opt.init(params)
    for g in grads_per_step:
        params, state = opt.update(params, g, state)
    return params, state


# ================================================================= update formulas


@pytest.mark.parametrize("lr, b1, b2, eps", [(1e-3, 0.9, 0.999, 1e-8), (0.05, 0.5, 0.9, 1e-3)])
def test_adam_matches_algorithm_1(rng, lr, b1, b2, eps):
    p0 = rng.normal(size=(3, 4))
    grads = _grad_sequence(rng, p0.shape)
    expected, m, v = _textbook_adam(p0, grads, lr, b1, b2, eps)
    params, state = _run(Adam(lr, b1=b1, b2=b2, eps=eps), p0, grads)
    np.testing.assert_allclose(params, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state.mu, m, rtol=1e-12)
    np.testing.assert_allclose(state.nu, v, rtol=1e-12)
    assert state.count == STEPS


def test_adam_defaults_are_the_papers():
    opt = Adam()
    assert (opt.learning_rate, opt.b1, opt.b2, opt.eps) == (1e-3, 0.9, 0.999, 1e-8)


def test_adam_eps_is_outside_the_square_root():
    # One step with g tiny: bias-corrected m_hat = g, sqrt(v_hat) = |g|.
    # eps outside: step = lr * g / (|g| + eps); inside would be lr * g / sqrt(g^2 + eps).
    g = np.array([1e-8])
    p, _ = _run(Adam(learning_rate=1.0, eps=1e-8), np.zeros(1), [g])
    np.testing.assert_allclose(p, -g / (np.abs(g) + 1e-8), rtol=1e-12)
    assert not np.allclose(p, -g / np.sqrt(g**2 + 1e-8))


def test_adam_first_step_has_size_learning_rate():
    # Bias correction makes the first step lr * sign(g), whatever |g| is.
    g = np.array([1e3, -2.0, 1e-3])
    p, _ = _run(Adam(learning_rate=0.01), np.zeros(3), [g])
    np.testing.assert_allclose(p, -0.01 * np.sign(g), rtol=1e-4)


@pytest.mark.parametrize(
    "momentum, nesterov", [(0.0, False), (0.9, False), (0.5, True), (0.9, True)]
)
def test_sgd_matches_textbook(rng, momentum, nesterov):
    p0 = rng.normal(size=(4,))
    grads = _grad_sequence(rng, p0.shape)
    params, state = _run(SGD(0.1, momentum=momentum, nesterov=nesterov), p0, grads)
    np.testing.assert_allclose(
        params, _textbook_sgd(p0, grads, 0.1, momentum, nesterov), rtol=1e-12
    )
    assert state.count == STEPS
    assert (state.momentum is None) == (momentum == 0.0)


def test_plain_sgd_step_by_hand():
    p, _ = _run(SGD(0.5), np.array([1.0, 2.0]), [np.array([2.0, -2.0])])
    np.testing.assert_array_equal(p, [0.0, 3.0])


def test_learning_rate_schedule_gets_the_step_count():
    seen = []

    def schedule(count):
        seen.append(count)
        return 0.1 / (1 + count)

    p, _ = _run(SGD(schedule), np.zeros(1), [np.ones(1)] * 3)
    assert seen == [0, 1, 2]
    np.testing.assert_allclose(p, [-(0.1 + 0.05 + 0.1 / 3)])


# ================================================================= pytrees, purity, dtype


def _tree(rng, dtype=np.float64):
    return {
        "layers": [
            {"W": rng.normal(size=(3, 2)).astype(dtype), "b": np.zeros(2, dtype=dtype)},
            (rng.normal(size=(2,)).astype(dtype),),
        ],
        "scale": np.array(1.5, dtype=dtype),
    }


@pytest.mark.parametrize("opt", [SGD(0.1), SGD(0.1, momentum=0.9), Adam(0.01)], ids=repr)
def test_structure_is_preserved_and_leaves_match_single_array_runs(rng, opt):
    params = _tree(rng)
    grads = [ea.tree_map(lambda x: rng.normal(size=np.shape(x)), params) for _ in range(3)]
    new, state = _run(opt, params, grads)
    assert ea.tree_flatten(new)[1] == ea.tree_flatten(params)[1]
    # Leaf by leaf, a pytree run equals a run on that leaf alone.
    for i, leaf in enumerate(ea.tree_flatten(params)[0]):
        alone, _ = _run(opt, leaf, [ea.tree_flatten(g)[0][i] for g in grads])
        np.testing.assert_allclose(ea.tree_flatten(new)[0][i], alone, rtol=1e-14)


@pytest.mark.parametrize("opt", [SGD(0.1, momentum=0.9, nesterov=True), Adam(0.01)], ids=repr)
def test_update_never_mutates_its_inputs(rng, opt):
    params = _tree(rng)
    grads = ea.tree_map(lambda x: np.ones(np.shape(x)), params)
    before = ea.tree_map(np.copy, params)
    state = opt.init(params)
    state_before = ea.tree_map(np.copy, tuple(state[1:]))
    new, new_state = opt.update(params, grads, state)
    for a, b in zip(ea.tree_flatten(params)[0], ea.tree_flatten(before)[0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ea.tree_flatten(tuple(state[1:]))[0], ea.tree_flatten(state_before)[0]):
        np.testing.assert_array_equal(a, b)
    assert state.count == 0 and new_state.count == 1
    # Replaying from the old state gives the same step: the update is a pure function.
    again, _ = opt.update(params, grads, state)
    for a, b in zip(ea.tree_flatten(new)[0], ea.tree_flatten(again)[0]):
        np.testing.assert_array_equal(a, b)


def test_states_are_immutable_namedtuples(rng):
    for state, cls in ((SGD(0.1, momentum=0.5).init(np.zeros(2)), SGDState),
                       (Adam().init(np.zeros(2)), AdamState)):
        assert isinstance(state, cls)
        with pytest.raises(AttributeError):
            state.count = 3


@pytest.mark.parametrize("opt", [SGD(0.1, momentum=0.9), Adam(0.01)], ids=repr)
def test_float32_params_stay_float32(rng, opt):
    params = _tree(rng, np.float32)
    grads = ea.grad(lambda p: ea.sum(p["layers"][0]["W"] ** 2) + ea.sum(p["scale"] * p["layers"][1][0]))(params)
    new, state = _run(opt, params, [grads, grads])
    for leaf in ea.tree_flatten(new)[0] + ea.tree_flatten(tuple(state[1:]))[0]:
        assert leaf.dtype == np.float32


def test_structure_mismatch_names_both_structures():
    params = {"W": np.zeros((2, 2)), "b": np.zeros(2)}
    for opt in (SGD(0.1), Adam()):
        state = opt.init(params)
        with pytest.raises(ValueError, match=r"\{'W': \*\}.*\{'W': \*, 'b': \*\}"):
            opt.update(params, {"W": np.zeros((2, 2))}, state)
        with pytest.raises(ValueError, match=r"structure"):
            opt.update(params, [np.zeros((2, 2)), np.zeros(2)], state)


def test_leaf_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(2,\)"):
        SGD(0.1).update(np.zeros(2), np.zeros(3), SGD(0.1).init(np.zeros(2)))


@pytest.mark.parametrize(
    "make",
    [lambda: SGD(0.0), lambda: SGD(0.1, momentum=1.0), lambda: SGD(0.1, nesterov=True),
     lambda: Adam(b1=1.0), lambda: Adam(b2=-0.1), lambda: Adam(-1e-3)],
)
def test_bad_hyperparameters_are_rejected(make):
    with pytest.raises(ValueError):
        make()


# ================================================================= the training loop


def test_fit_solves_least_squares_and_prints_a_line_per_epoch(rng):
    X = rng.normal(size=(40, 3))
    w_true = np.array([1.0, -2.0, 0.5])
    y = X @ w_true

    def loss(p, X, y):
        return ea.mean((ea.einsum("n i, i -> n", X, p["w"]) - y) ** 2)

    out = io.StringIO()
    params, history = fit(loss, {"w": np.zeros(3)}, minibatches(X, y, batch_size=8), SGD(0.05, momentum=0.9),
                          epochs=60, file=out)
    np.testing.assert_allclose(params["w"], w_true, atol=1e-4)   # truth: the generating weights
    assert len(history) == 60 and history[-1] < 1e-6 * history[0]
    lines = out.getvalue().splitlines()
    assert len(lines) == 60
    assert lines[0].startswith("epoch  1/60  loss ") and "time " in lines[0]


def test_fit_history_is_the_mean_batch_loss_before_each_step():
    # loss = (p - c)^2 per batch; one SGD step per batch, recomputed by hand.
    batches = [(np.array(1.0),), (np.array(3.0),)]
    params, history = fit(lambda p, c: (p - c) ** 2, np.array(0.0), batches, SGD(0.25), epochs=2, verbose=False)
    p, expected = 0.0, []
    for _ in range(2):
        losses = []
        for (c,) in batches:
            losses.append((p - c) ** 2)
            p = p - 0.25 * 2 * (p - c)
        expected.append(np.mean(losses))
    np.testing.assert_allclose(history, expected)
    np.testing.assert_allclose(params, p)


def test_fit_callback_text_is_appended_and_silent_when_not_verbose():
    out = io.StringIO()
    fit(lambda p: ea.sum(p**2), np.ones(2), [()], Adam(0.1), epochs=2, file=out,
        callback=lambda epoch, p, loss: f"norm {np.linalg.norm(p):.3f}")
    assert all("norm " in line for line in out.getvalue().splitlines())
    quiet = io.StringIO()
    fit(lambda p: ea.sum(p**2), np.ones(2), [()], Adam(0.1), epochs=2, file=quiet, verbose=False)
    assert quiet.getvalue() == ""


def test_minibatches_cover_every_example_once_per_epoch():
    x = np.arange(10)
    batches = minibatches(x, x * 2, batch_size=3, seed=1)
    for epoch in range(3):
        seen = [b for b in batches(epoch)]
        assert [len(b[0]) for b in seen] == [3, 3, 3, 1]
        xs = np.concatenate([b[0] for b in seen])
        np.testing.assert_array_equal(np.sort(xs), x)
        np.testing.assert_array_equal(np.concatenate([b[1] for b in seen]), xs * 2)
    assert not np.array_equal(np.concatenate([b[0] for b in batches(0)]),
                              np.concatenate([b[0] for b in batches(1)]))
