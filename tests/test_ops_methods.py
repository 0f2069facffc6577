"""Tensor methods mirror NumPy's ndarray methods, so NumPy code keeps working when traced.

Truth: the same method called on a plain NumPy array (values), and central finite
differences of that NumPy expression (gradients).
"""

from __future__ import annotations

import numpy as np
import pytest

import einsumad as ea
from tests.numeric import numerical_gradient

X = np.arange(1.0, 13.0).reshape(3, 4, 1) / 7 - 0.8

# method calls, each a function of x that works on NumPy arrays and on traced tensors
CALLS = {
    "astype": lambda x: x.astype(np.float32).astype(np.float64) * 2,
    "var": lambda x: x.var(axis=1, ddof=1),
    "std": lambda x: x.std(axis=(0, 1), keepdims=True),
    "max": lambda x: x.max(axis=1),
    "min": lambda x: x.min(),
    "reshape": lambda x: x.reshape(4, 3) * np.arange(3.0),
    "reshape_tuple": lambda x: x.reshape((2, -1)),
    "transpose": lambda x: x.transpose(2, 0, 1) * np.arange(4.0),
    "transpose_tuple": lambda x: x.transpose((1, 0, 2)),
    "T": lambda x: x.T,
    "sum": lambda x: x.sum(axis=0),
    "mean": lambda x: x.mean(axis=(1, 2), keepdims=True),
    "prod": lambda x: x.prod(axis=1),
    "clip": lambda x: x.clip(-0.5, 0.5),
    "clip_keywords": lambda x: x.clip(min=-0.3),
    "flatten": lambda x: x.flatten() * np.arange(12.0),
    "ravel": lambda x: x.ravel(),
    "squeeze": lambda x: x.squeeze(),
    "squeeze_axis": lambda x: x.squeeze(axis=-1),
    "cumsum": lambda x: x.cumsum(axis=1),
    "dot_vector": lambda x: x.squeeze().dot(np.arange(4.0)),
    "dot_matrix": lambda x: x.squeeze().dot(np.ones((4, 2))),
    "dot_nd": lambda x: x.dot(np.ones((2, 1, 5))),
    "dot_scalar": lambda x: x.dot(2.0),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_method_matches_numpy_and_its_gradient_matches_finite_differences(name):
    call = CALLS[name]
    expected = call(X)
    seen = {}

    def loss(x):
        y = call(x)
        seen["value"] = y.value if isinstance(y, ea.Tensor) else y
        return ea.sum(y * np.cos(np.arange(np.size(expected)).reshape(np.shape(expected))))

    grad = ea.grad(loss)(X)
    np.testing.assert_allclose(seen["value"], expected, rtol=1e-6 if name == "astype" else 1e-14)
    weights = np.cos(np.arange(np.size(expected)).reshape(np.shape(expected)))
    eps = 1e-2 if name == "astype" else 1e-6   # a step float32 resolves (the function is linear)
    reference = numerical_gradient(lambda x: np.sum(call(x) * weights), [X], 0, eps=eps)
    np.testing.assert_allclose(grad, reference, rtol=1e-5, atol=1e-5)


def test_astype_keeps_the_requested_dtype_and_converts_the_gradient_back():
    x = np.array([1.0, 2.0])
    seen = {}

    def f(x):
        y = x.astype(np.float32)
        seen["dtype"] = y.dtype
        return ea.sum(y * y)

    g = ea.grad(f)(x)
    assert seen["dtype"] == np.float32 and g.dtype == np.float64
    np.testing.assert_allclose(g, 2 * x)


def test_squeeze_refuses_an_axis_of_size_other_than_one():
    with pytest.raises(ValueError, match="size not equal to one"):
        ea.grad(lambda x: ea.sum(x.squeeze(axis=0)))(np.ones((2, 1)))


def test_item_on_a_traced_value_raises_the_clear_error():
    with pytest.raises(TypeError, match=r"\.item\(\) of a traced value .* would cut its derivative"):
        ea.grad(lambda x: x.sum().item())(np.ones(2))
    with pytest.raises(TypeError, match="stop_gradient"):
        ea.grad(lambda x: float(x.sum()))(np.ones(2))
    # the way out the error names: convert a stop_gradient'ed value
    assert ea.grad(lambda x: ea.sum(x) * ea.stop_gradient(x).sum().item())(np.ones(2)).tolist() == [2.0, 2.0]


@pytest.mark.parametrize("dtype", [np.int64, np.int8, bool, "int32"])
def test_astype_to_integers_is_a_step_with_no_derivative(dtype):
    """A cast to integers was differentiated as the identity (gradient 1); finite
    differences of the step function give 0, as for ea.floor."""
    x = np.array([0.5, 1.7, -2.2])
    grad = ea.grad(lambda z: ea.sum(z.astype(dtype) * 1.0))(x)
    fd = numerical_gradient(lambda z: np.sum(z.astype(dtype) * 1.0), [x], 0)
    np.testing.assert_array_equal(grad, fd)
    np.testing.assert_array_equal(grad, np.zeros(3))
    value, tangent = ea.jvp(lambda z: z.astype(dtype), (x,), (np.ones(3),))
    np.testing.assert_array_equal(value, x.astype(dtype))
    assert not np.any(tangent)
