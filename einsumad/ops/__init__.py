"""Layer 2, the op library: every op declared by what it is, next to its derivative.

* :mod:`.einsum`: the front door ``einsum`` and the ops that are einsums
  (multiply, sum, mean, matmul, transpose, broadcast_to);
* :mod:`.arith`: ``+ - / **`` and exp, log, sqrt, square, reciprocal;
* :mod:`.functions`: elementwise functions (tanh, sigmoid, sin, cos, relu, ...);
* :mod:`.elementary`: log1p, expm1, logaddexp, tan, arctan, arcsin, arccos, sinh,
  cosh, arctanh, sign, floor, round;
* :mod:`.special`: erf (fdlibm's rational approximations, no SciPy);
* :mod:`.nn`: softplus, log_sigmoid, silu, gelu, layer_norm;
* :mod:`.select`: where, maximum, minimum, abs, clip, one_hot;
* :mod:`.reduce`: max, min, logsumexp, softmax, log_softmax;
* :mod:`.statistics`: var, std;  :mod:`.products`: prod;  :mod:`.scan`: cumsum;
* :mod:`.linalg`: inv, solve, det, slogdet, cholesky, eigh, trace, norm;
* :mod:`.shape`: reshape, indexing, stack, concatenate, rearrange;
* :mod:`.compare`: comparisons and masks (no derivative flows);
* :mod:`.declare`: the one-line declaration of an elementwise op (and ``dense``);
* :mod:`.tensor_methods`: ``Tensor``'s operators and methods.

The ops import the core and the algebra, never the transformations or tools.
"""
