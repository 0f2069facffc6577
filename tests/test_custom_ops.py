"""User-declared primitives: ``@ea.primitive``, ``ea.defvjp``, ``ea.defvjp_all``, ``ea.defjvp``.

Truths: central finite differences of the primitive's NumPy implementation
(tests/numeric.py) and closed-form derivatives. A deliberately wrong rule must
show up unchanged in the gradient: the tape calls exactly what was declared.
"""

from __future__ import annotations

import numpy as np
import pytest

import einsumad as ea
from tests.numeric import numerical_directional, numerical_gradient, numerical_jacobian


def _logaddexp_impl(x, y):
    m = np.maximum(x, y)
    return m + np.log(np.exp(x - m) + np.exp(y - m))


def make_logaddexp():
    """log(e^x + e^y), a stable op einsumad lacks; d/dx = e^(x - ans), d/dy = e^(y - ans)."""

    @ea.primitive
    def logaddexp(x, y):
        return _logaddexp_impl(x, y)

    ea.defvjp(
        logaddexp,
        lambda ans, x, y: lambda g: g * ea.exp(x - ans),
        lambda ans, x, y: lambda g: g * ea.exp(y - ans),
    )
    return logaddexp


def make_cube(vjp_factor=3.0):
    @ea.primitive
    def cube(x):
        return x**3

    ea.defvjp(cube, lambda ans, x: lambda g: g * vjp_factor * x**2)
    return cube


XS = np.array([0.3, -1.2, 2.0])
YS = np.array([1.0, 0.5, -3.0])
WEIGHTS = np.array([0.7, -0.2, 1.1])


# ================================================================= a correct VJP


@pytest.mark.parametrize("argnum", [0, 1])
def test_correct_vjp_matches_finite_differences(argnum):
    logaddexp = make_logaddexp()
    g = ea.grad(lambda x, y: ea.sum(logaddexp(x, y) * WEIGHTS), argnums=argnum)(XS, YS)
    expected = numerical_gradient(lambda x, y: np.sum(_logaddexp_impl(x, y) * WEIGHTS), [XS, YS], argnum)
    np.testing.assert_allclose(g, expected, rtol=1e-7, atol=1e-9)


def test_custom_op_inside_a_model_with_einsum(rng):
    logaddexp = make_logaddexp()
    W = rng.normal(size=(3, 4))

    def f(W):   # softplus of a linear map: logaddexp(0, xW)
        return ea.sum(logaddexp(np.zeros(4), ea.einsum("i,io->o", XS, W)))

    expected = numerical_gradient(lambda W: np.sum(np.logaddexp(0, XS @ W)), [W], 0)
    np.testing.assert_allclose(ea.grad(f)(W), expected, rtol=1e-7, atol=1e-9)


def test_forward_value_is_the_numpy_implementation():
    logaddexp = make_logaddexp()
    np.testing.assert_allclose(logaddexp(XS, YS), np.logaddexp(XS, YS), rtol=1e-15)
    assert logaddexp.__name__ == "logaddexp" and "logaddexp" in repr(logaddexp)


def test_keyword_arguments_are_static_parameters():
    @ea.primitive
    def scale(x, factor=1.0):
        return x * factor

    ea.defvjp(scale, lambda ans, x, factor=1.0: lambda g: g * factor)
    np.testing.assert_array_equal(ea.grad(lambda x: ea.sum(scale(x, factor=3.0)))(XS), [3.0] * 3)


def test_defvjp_all_declares_every_argument_at_once():
    @ea.primitive
    def mul(x, y):
        return x * y

    ea.defvjp_all(mul, lambda ans, x, y: lambda g: (g * y, g * x))
    gx, gy = ea.grad(lambda x, y: ea.sum(mul(x, y) * WEIGHTS), argnums=(0, 1))(XS, YS)
    np.testing.assert_allclose(gx, WEIGHTS * YS, rtol=1e-15)
    np.testing.assert_allclose(gy, WEIGHTS * XS, rtol=1e-15)


# ================================================================= forward mode and higher order


def test_defjvp_is_used_and_matches_finite_differences():
    cube = make_cube()
    calls = []

    def jvp_rule(t, ans, x):
        calls.append(1)
        return t * 3 * x**2

    ea.defjvp(cube, jvp_rule)
    t = np.array([1.0, 0.5, -2.0])
    value, tangent = ea.jvp(cube, (XS,), (t,))
    np.testing.assert_allclose(value, XS**3)
    np.testing.assert_allclose(tangent, numerical_directional(lambda x: x**3, [XS], [t]), rtol=1e-8)
    assert calls, "the declared JVP rule was not called"


def test_forward_mode_without_a_jvp_transposes_the_vjp():
    cube = make_cube()   # only a VJP
    t = np.array([1.0, 0.5, -2.0])
    _, tangent = ea.jvp(cube, (XS,), (t,))
    np.testing.assert_allclose(tangent, 3 * XS**2 * t, rtol=1e-14)
    jac = ea.jacfwd(cube)(XS)
    np.testing.assert_allclose(jac, numerical_jacobian(lambda x: x**3, [XS], 0), rtol=1e-7, atol=1e-9)


def test_jacobian_and_hessian_through_a_custom_op():
    logaddexp = make_logaddexp()
    jac = ea.jacobian(lambda x: logaddexp(x, YS))(XS)
    np.testing.assert_allclose(jac, numerical_jacobian(lambda x: _logaddexp_impl(x, YS), [XS], 0), rtol=1e-7, atol=1e-9)
    cube = make_cube()
    hess = ea.hessian(lambda x: ea.sum(cube(x) * WEIGHTS))(XS)
    np.testing.assert_allclose(hess, np.diag(6 * XS * WEIGHTS), rtol=1e-12)   # closed form


# ================================================================= the tape calls exactly what was declared


def test_a_wrong_vjp_is_reflected_unchanged_in_grad():
    wrong = make_cube(vjp_factor=2.0)   # the true derivative is 3 x^2
    g = ea.grad(lambda x: ea.sum(wrong(x)))(XS)
    np.testing.assert_allclose(g, 2.0 * XS**2, rtol=1e-15)
    assert not np.allclose(g, numerical_gradient(lambda x: np.sum(x**3), [XS], 0), rtol=1e-3)


def test_the_declared_rule_is_called_with_the_recorded_values():
    seen = []

    @ea.primitive
    def square(x):
        return x * x

    def maker(ans, x):
        seen.append((np.array(ans), np.array(x)))
        return lambda g: g * 7.0   # deliberately nonsense

    ea.defvjp(square, maker)
    g = ea.grad(lambda x: ea.sum(square(x) * WEIGHTS))(XS)
    np.testing.assert_allclose(g, 7.0 * WEIGHTS)
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0][0], XS * XS)
    np.testing.assert_array_equal(seen[0][1], XS)


def test_a_wrong_vjp_is_caught_by_a_finite_difference_check():
    wrong = make_cube(vjp_factor=2.0)
    with pytest.raises(ea.GradientCheckError):   # the library's checker, reverse mode
        ea.check_grads(lambda x: ea.sum(wrong(x)), (XS,), modes=("rev",))
    with pytest.raises(ea.GradientCheckError):   # forward mode transposes the same wrong VJP
        ea.check_grads(lambda x: ea.sum(wrong(x)), (XS,), modes=("fwd",))
    ea.check_grads(lambda x: ea.sum(make_cube()(x)), (XS,))   # the correct rule passes
    with pytest.raises(AssertionError):   # and a plain finite-difference comparison
        np.testing.assert_allclose(
            ea.grad(lambda x: ea.sum(wrong(x)))(XS),
            numerical_gradient(lambda x: np.sum(x**3), [XS], 0),
            rtol=1e-5,
        )


# ================================================================= bad rules, named errors


def test_defvjp_all_with_too_few_gradients_names_the_op():
    @ea.primitive
    def logaddexp2(x, y):
        return _logaddexp_impl(x, y)

    ea.defvjp_all(logaddexp2, lambda ans, x, y: lambda g: (g * ea.exp(x - ans),))
    with pytest.raises(ValueError, match=r"'logaddexp2' returned 1 gradient\(s\).*called with 2 argument"):
        ea.grad(lambda x: ea.sum(logaddexp2(x, YS)))(XS)


def test_defvjp_all_with_a_single_array_instead_of_a_tuple_names_the_op():
    @ea.primitive
    def pair(x, y):
        return x + y

    ea.defvjp_all(pair, lambda ans, x, y: lambda g: g)
    with pytest.raises(ValueError, match=r"'pair' returned 1 gradient"):
        ea.grad(lambda x: ea.sum(pair(x, YS)))(XS)


@pytest.mark.parametrize("declare", ["defvjp", "defvjp_all"])
def test_vjp_of_the_wrong_shape_names_the_op_and_both_shapes(declare):
    @ea.primitive
    def badshape(x, y):
        return x * y

    if declare == "defvjp":
        ea.defvjp(badshape, lambda ans, x, y: lambda g: ea.sum(g))
    else:
        ea.defvjp_all(badshape, lambda ans, x, y: lambda g: (ea.sum(g), g * x))
    with pytest.raises(ValueError, match=r"VJP of primitive 'badshape' returned shape \(\), .* shape \(3,\)"):
        ea.grad(lambda x: ea.sum(badshape(x, YS)))(XS)


def test_jvp_of_the_wrong_shape_names_the_op():
    cube = make_cube()
    ea.defjvp(cube, lambda t, ans, x: ea.sum(t))
    with pytest.raises(ValueError, match=r"JVP of primitive 'cube' returned shape \(\)"):
        ea.jvp(cube, (XS,), (np.ones(3),))


def test_missing_vjp_names_the_op_and_the_argument():
    @ea.primitive
    def nograd(x):
        return 2 * x

    with pytest.raises(NotImplementedError, match=r"argument 0 of primitive 'nograd'.*ea.defvjp"):
        ea.grad(lambda x: ea.sum(nograd(x)))(XS)


def test_declaring_rules_on_a_plain_function_is_an_error():
    with pytest.raises(TypeError, match="decorated with @ea.primitive"):
        ea.defvjp(lambda x: x, lambda ans, x: lambda g: g)
    with pytest.raises(TypeError, match="decorated with @ea.primitive"):
        ea.defjvp(lambda x: x, lambda t, ans, x: t)
