"""einsumad: automatic differentiation in tensor index notation.

Every operation is a (generalised) einsum, and its vector-Jacobian product is
derived by one rule: swap the subscripts of the operand with those of the
output. ``ea.vjp_subscripts("ij,j->i", 1)`` is ``"i,ij->j"``: the transpose of
backprop, produced by the index algebra.

>>> import numpy as np, einsumad as ea
>>> W, a = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, -1.0])
>>> ea.grad(lambda a: ea.sum(ea.einsum("ij,j->i", W, a)))(a)   # W^T 1
array([4., 6.])
"""

from __future__ import annotations

from . import (
    _tensor_ops,  # noqa: F401  (installs Tensor's operators)
    optim,  # ea.optim.SGD, ea.optim.Adam, ea.optim.fit
)
from ._algebra import jvp_subscripts, vjp_subscripts
from ._compile import codegen, compile
from ._derive import Derivation, derive, name
from ._errors import EinsumError, GradientCheckError
from ._matrix import matrix_form
from ._ops_math import (
    add,
    cos,
    divide,
    einsum,
    exp,
    log,
    matmul,
    mean,
    multiply,
    negative,
    power,
    reciprocal,
    relu,
    sigmoid,
    sin,
    sqrt,
    square,
    subtract,
    sum,
    tanh,
    transpose,
)
from ._ops_reduce import log_softmax, logsumexp, max, min, softmax
from ._ops_select import abs, clip, maximum, minimum, one_hot, where
from ._ops_shape import broadcast_to, concatenate, rearrange, reshape, stack
from ._primitive import defjvp, defvjp, defvjp_all, primitive
from ._pytree import tree_flatten, tree_map, tree_unflatten
from ._tape import Tensor
from ._transforms import grad, hessian, jacfwd, jacobian, jacrev, jvp, value_and_grad, vjp
from .testing import check_gradient, check_grads

__version__ = "0.1.0"

__all__ = [
    # index algebra
    "vjp_subscripts", "jvp_subscripts",
    # derivations a learner can read
    "derive", "Derivation", "matrix_form", "name",
    # the einsum and the op set
    "einsum", "add", "subtract", "multiply", "divide", "negative", "power", "matmul",
    "transpose", "sum", "mean", "exp", "log", "tanh", "sigmoid", "sin", "cos", "sqrt",
    "relu", "reciprocal", "square", "where", "reshape", "broadcast_to", "concatenate", "stack",
    "max", "min", "logsumexp", "softmax", "log_softmax", "maximum", "minimum", "abs", "clip",
    "one_hot", "rearrange",
    # transformations
    "compile", "codegen",
    "grad", "value_and_grad", "vjp", "jvp", "jacobian", "jacfwd", "jacrev", "hessian",
    # extending
    "Tensor", "primitive", "defvjp", "defvjp_all", "defjvp",
    "tree_flatten", "tree_unflatten", "tree_map",
    # training
    "optim",
    # checking derivatives
    "check_grads", "check_gradient",
    # errors
    "EinsumError", "GradientCheckError",
]
