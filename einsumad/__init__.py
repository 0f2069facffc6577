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

from . import algebra, optim  # ea.optim.SGD, ea.optim.Adam, ea.optim.fit
from .algebra.errors import EinsumError, GradientCheckError
from .algebra.matrix import matrix_form
from .algebra.swap import jvp_subscripts, vjp_subscripts
from .core.pytree import tree_flatten, tree_map, tree_unflatten
from .core.tape import EscapedTracerError, MixedLibrariesError, Tensor
from .ops import tensor_methods  # noqa: F401  (installs Tensor's operators)
from .ops.arith import add, divide, exp, log, negative, power, reciprocal, sqrt, square, subtract
from .ops.compare import stop_gradient
from .ops.complex import abs, angle, conj, imag, real
from .ops.einsum import broadcast_to, einsum, matmul, mean, multiply, sum, transpose
from .ops.einsum_path import einsum_path
from .ops.elementary import (
    arccos,
    arcsin,
    arctan,
    arctanh,
    cosh,
    expm1,
    floor,
    log1p,
    logaddexp,
    round,
    sign,
    sinh,
    tan,
)
from .ops.functions import cos, relu, sigmoid, sin, tanh
from .ops.linalg import cholesky, det, eigh, inv, norm, slogdet, solve, trace
from .ops.nn import gelu, layer_norm, log_sigmoid, silu, softplus
from .ops.products import prod
from .ops.reduce import log_softmax, logsumexp, max, min, softmax
from .ops.scan import cumsum
from .ops.select import clip, maximum, minimum, one_hot, where
from .ops.shape import concatenate, rearrange, reshape, stack
from .ops.special import erf
from .ops.statistics import std, var
from .tools.compile import codegen, compile
from .tools.derive import Derivation, derive, name
from .tools.testing import check_gradient, check_grads
from .transforms.autodiff import grad, hessian, jacfwd, jacobian, jacrev, jvp, value_and_grad, vjp
from .transforms.extend import defjvp, defvjp, defvjp_all, primitive
from .version import __version__

__all__ = [
    # index algebra
    "vjp_subscripts", "jvp_subscripts",
    # derivations a learner can read
    "derive", "Derivation", "matrix_form", "name",
    # the einsum and the op set
    "einsum", "einsum_path", "add", "subtract", "multiply", "divide", "negative", "power", "matmul",
    "transpose", "sum", "mean", "exp", "log", "tanh", "sigmoid", "sin", "cos", "sqrt",
    "relu", "reciprocal", "square", "where", "reshape", "broadcast_to", "concatenate", "stack",
    "max", "min", "logsumexp", "softmax", "log_softmax", "maximum", "minimum", "abs", "clip",
    "one_hot", "rearrange", "stop_gradient",
    # more elementwise functions, reductions and normalisation
    "log1p", "expm1", "logaddexp", "softplus", "log_sigmoid", "silu", "erf", "gelu",
    "tan", "arctan", "arcsin", "arccos", "sinh", "cosh", "arctanh", "sign", "floor", "round",
    "var", "std", "prod", "cumsum", "layer_norm",
    # complex numbers: the ops that are not holomorphic
    "real", "imag", "conj", "angle",
    # linear algebra
    "inv", "solve", "det", "slogdet", "cholesky", "eigh", "trace", "norm",
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
    "EinsumError", "GradientCheckError", "EscapedTracerError", "MixedLibrariesError",
]
