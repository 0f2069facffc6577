"""Linear algebra: inv, solve, det, slogdet, cholesky, eigh, trace, norm.

Every op works on stacks of matrices (``(..., n, n)``), batched over the
leading axes as :mod:`numpy.linalg` is. Each is a primitive of the *general*
kind whose rules are the identities of matrix calculus, written as einsums of
the results (and of the ops themselves), so that second derivatives come out
of the same rules::

    inv       X = A⁻¹            dX = -X dA X                 Ā = -Xᵀ Ḡ Xᵀ
    solve     X = A⁻¹ B          dX = A⁻¹ (dB - dA X)         B̄ = A⁻ᵀ Ḡ (the adjoint solve),
                                                              Ā = -B̄ Xᵀ
    det       d = det A          dd = d tr(A⁻¹ dA)            Ā = ḡ d A⁻ᵀ
    slogdet   l = log|det A|     dl = tr(A⁻¹ dA)              Ā = ḡ A⁻ᵀ
    cholesky  A = L Lᵀ           dL = L Φ(L⁻¹ dA L⁻ᵀ)         Ā = sym(L⁻ᵀ Φ(Lᵀ L̄) L⁻¹)
    eigh      A = V diag(w) Vᵀ   dw = diag(Vᵀ dA V)           Ā = sym(V (diag(w̄) + F ∘ Vᵀ V̄) Vᵀ)
                                 dV = V (F ∘ Vᵀ dA V)
    trace     t = A[..., i, i]   the einsum ``...ii->...``; its VJP is the swap ``...->...ii``
    norm      ‖x‖ = √(sum x²)    a composition; ∂‖x‖/∂x = x/‖x‖ (0 at x = 0)

with ``Φ(M)`` the lower triangle of ``M`` with its diagonal halved,
``sym(M) = (M + Mᵀ)/2``, and ``F[i, j] = 1/(w[j] - w[i])`` off the diagonal
(0 on it). In index form the inverse's VJP is the einsum
``Ā[i,l] = -sum_jk X[j,i] Ḡ[j,k] X[l,k]`` (``...ji,...jk,...lk->...il``).

Cotangents and tangents may carry leading batch axes (the rows of a Jacobian):
every einsum uses ``...``, which broadcasts them as extra stack axes.

The derivatives of ``cholesky`` and ``eigh`` treat ``A`` as symmetric (as
PyTorch and JAX do): tangents are symmetrised and cotangents are symmetric,
i.e. they are the derivatives of ``cholesky((A + Aᵀ)/2)``.

``eigh`` returns two arrays; the core's primitives have one result, so the
primitive returns them packed, ``[w; V]`` of shape ``(..., n + 1, n)``, and
``ea.eigh`` slices them apart.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from ..core.arrays import device, is_complex
from ..core.arrays import ndim as _ndim
from ..core.arrays import shape as _shape
from ..core.backend import array_namespace
from ..core.einsum import broadcast_batched, einsum_of, unbroadcast
from ..core.general import General
from ..core.primitive import Notation, Primitive, nondifferentiable
from ..core.structural import getitem_p, reshape_p
from ..core.tape import register_numpy_equivalent, unbox
from .arith import add, negative, reciprocal, sqrt
from .compare import greater, not_equal
from .complex import abs_squared, real
from .declare import dense, real_only
from .einsum import accumulated, einsum, multiply, normalize_axes
from .einsum import sum as total
from .select import where
from .shape import concatenate

__all__ = [
    "inv", "solve", "det", "slogdet", "cholesky", "eigh", "trace", "norm", "SlogdetResult", "EighResult",
]

SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])


def _square(a: Any, name: str) -> int:
    """The size ``n`` of a stack of square matrices ``(..., n, n)``, or NumPy's error."""
    shape = _shape(a)
    if len(shape) < 2:
        raise np.linalg.LinAlgError(
            f"ea.{name}: {len(shape)}-dimensional array given; the array must be at least "
            "two-dimensional, a (stack of) square matrices"
        )
    if shape[-1] != shape[-2]:
        raise np.linalg.LinAlgError(
            f"ea.{name}: last 2 dimensions of the array must be square; got shape {shape}"
        )
    return shape[-1]


def _linalg(a: Any, name: str, xp: Any = None) -> Any:
    """``xp.linalg.<name>`` of ``a``'s library, or a clear error where it has none
    (Dask's array namespace has no ``det``, ``slogdet`` or ``eigh``)."""
    xp = array_namespace(a) if xp is None else xp
    function = getattr(getattr(xp, "linalg", None), name, None)
    if function is None:
        library = getattr(xp, "__name__", type(a).__module__)
        raise TypeError(
            f"ea.{name}: the arrays' library ({library}) has no linalg.{name}; compute it on "
            "NumPy arrays (for Dask: on a computed block, e.g. a.compute())"
        )
    return function


#: Why eigh and cholesky refuse complex matrices (a Hermitian input).
_HERMITIAN = "its derivative rules transpose where a Hermitian matrix needs the conjugate transpose"


def _real_part(x: Any) -> Any:
    """The real part of a complex value (log|det A| is real: its tangent is Re tr(A⁻¹ Ȧ))."""
    return real(x) if is_complex(x) else x


def _mT(x: Any) -> Any:
    """The transpose of every matrix in a stack: ``...ij->...ji``."""
    return einsum_of("...ij->...ji")(x)


def _sym(x: Any) -> Any:
    """``(M + Mᵀ)/2`` for every matrix of a stack."""
    return multiply(add(x, _mT(x)), 0.5)


# ================================================================= inv
#   X = A⁻¹     JVP: Ẋ = -X Ȧ X     ("...ij,...jk,...kl->...il")
#               VJP: Ā = -Xᵀ Ḡ Xᵀ   ("...ji,...jk,...lk->...il", the swap of the JVP's einsum)


def _inv_vjp(g: Any, ans: Any, a: Any) -> Any:
    return negative(einsum_of("...ji,...jk,...lk->...il")(ans, g, ans))


def _inv_jvp(t: Any, ans: Any, a: Any) -> Any:
    return negative(einsum_of("...ij,...jk,...kl->...il")(ans, t, ans))


inv_p = Primitive(
    lambda a: _linalg(a, "inv")(a),
    name="inv",
    declaration=General(
        {0: _inv_vjp}, {0: _inv_jvp},
        notation=Notation("inv", latex="^{-1}", forward="{0}^-1", vjp=("-{ans}^T {g} {ans}^T",)),
    ),
    source="{xp}.linalg.inv({0})",
)


def inv(a: Any) -> Any:
    """The inverse of a square matrix (or of each matrix of a stack), as :func:`numpy.linalg.inv`.

    ``X = A⁻¹``; ``dX = -X dA X``, so the VJP is ``Ā = -Xᵀ Ḡ Xᵀ``, the einsum
    ``Ā[i,l] = -sum_jk X[j,i] Ḡ[j,k] X[l,k]``.

    Raises:
        numpy.linalg.LinAlgError: if ``a`` is not a stack of square matrices, or singular.

    >>> import numpy as np, einsumad as ea
    >>> A = np.array([[2.0, 0.0], [0.0, 4.0]])
    >>> ea.inv(A)
    array([[0.5 , 0.  ],
           [0.  , 0.25]])
    >>> ea.grad(lambda A: ea.trace(ea.inv(A)))(A)   # -A^-T A^-T
    array([[-0.25  , -0.    ],
           [-0.    , -0.0625]])
    """
    _square(a, "inv")
    return inv_p(a)


# ================================================================= solve
#   X = A⁻¹ B (B: (..., n, k))    JVP: Ẋ = A⁻¹ (Ḃ - Ȧ X)
#   VJP: B̄ = A⁻ᵀ Ḡ (the adjoint solve),  Ā = -B̄ Xᵀ ("...ik,...jk->...ij")
#   Stack axes broadcast (NumPy rules); cotangents are summed back to each operand's shape.


def _solve_impl(a: Any, b: Any) -> Any:
    xp = array_namespace(a, b)
    a, b = xp.asarray(a), xp.asarray(b)
    if a.ndim < b.ndim:  # leading stack axes, so that no library reads b as a stack of vectors
        a = xp.reshape(a, (1,) * (b.ndim - a.ndim) + tuple(a.shape))
    elif b.ndim < a.ndim:
        b = xp.reshape(b, (1,) * (a.ndim - b.ndim) + tuple(b.shape))
    return _linalg(a, "solve", xp)(a, b)


def _adjoint_solve(g: Any, a: Any) -> Any:
    return solve_p(_mT(a), dense(g))


def _solve_vjp_a(g: Any, ans: Any, a: Any, b: Any) -> Any:
    bbar = _adjoint_solve(g, a)
    abar = negative(einsum_of("...ik,...jk->...ij")(bbar, ans))
    n = _shape(a)[-1]
    return unbroadcast(abar, _shape(a), _shape(ans)[:-2] + (n, n))


def _solve_vjp_b(g: Any, ans: Any, a: Any, b: Any) -> Any:
    return unbroadcast(_adjoint_solve(g, a), _shape(b), _shape(ans))


def _solve_jvp_a(t: Any, ans: Any, a: Any, b: Any) -> Any:
    n = _shape(a)[-1]
    t = broadcast_batched(dense(t), _shape(a), _shape(ans)[:-2] + (n, n))
    return negative(solve_p(a, einsum_of("...ij,...jk->...ik")(t, ans)))


def _solve_jvp_b(t: Any, ans: Any, a: Any, b: Any) -> Any:
    return solve_p(a, broadcast_batched(dense(t), _shape(b), _shape(ans)))


solve_p = Primitive(
    _solve_impl,
    name="solve",
    declaration=General(
        {0: _solve_vjp_a, 1: _solve_vjp_b}, {0: _solve_jvp_a, 1: _solve_jvp_b},
        notation=Notation("solve", forward="{0}^-1 {1}", vjp=("-{0}^-T {g} {ans}^T", "{0}^-T {g}")),
    ),
)


def solve(a: Any, b: Any) -> Any:
    """The solution ``x`` of ``a x = b``, as :func:`numpy.linalg.solve` (NumPy 2 semantics).

    ``a`` is ``(..., n, n)``; ``b`` is a vector ``(n,)`` or a stack of matrices
    ``(..., n, k)``; stack axes broadcast. ``dX = A⁻¹ (dB - dA X)``, so the
    VJP is the *adjoint solve* ``B̄ = A⁻ᵀ Ḡ`` and ``Ā = -B̄ Xᵀ``
    (``Ā[i,j] = -sum_k B̄[i,k] X[j,k]``): no inverse is formed.

    Raises:
        numpy.linalg.LinAlgError: if ``a`` is not a stack of square matrices, or singular.
        ValueError: if ``b`` does not have ``n`` rows.

    >>> import numpy as np, einsumad as ea
    >>> A, b = np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 5.0])
    >>> ea.solve(A, b)
    array([0.8, 1.4])
    >>> ea.grad(lambda b: ea.sum(ea.solve(A, b)))(b)     # A^-T 1
    array([0.4, 0.2])
    """
    n = _square(a, "solve")
    shape_b = _shape(b)
    vector = len(shape_b) == 1
    if vector:
        if shape_b[0] != n:
            raise ValueError(f"ea.solve: a has shape {_shape(a)} but b has shape {shape_b}: b needs {n} entries")
        x = solve_p(a, reshape_p(b, shape=(n, 1)))
        return reshape_p(x, shape=_shape(x)[:-1])
    if len(shape_b) == 0 or shape_b[-2] != n:
        raise ValueError(
            f"ea.solve: a has shape {_shape(a)} but b has shape {shape_b}: b must be a vector of "
            f"{n} entries or a stack of matrices with {n} rows, (..., {n}, k)"
        )
    return solve_p(a, b)


# ================================================================= det and slogdet
#   d = det A          JVP: ḋ = d tr(A⁻¹ Ȧ)    ("...,...ij,...ji->...")
#                      VJP: Ā = ḡ d A⁻ᵀ         ("...,...,...ji->...ij")
#   l = log|det A|     JVP: l̇ = tr(A⁻¹ Ȧ)       VJP: Ā = ḡ A⁻ᵀ
#   The sign of det A is piecewise constant: no derivative.


det_p = Primitive(
    lambda a: _linalg(a, "det")(a),
    name="det",
    declaration=General(
        {0: lambda g, ans, a: einsum_of("...,...,...ji->...ij")(g, ans, inv_p(a))},
        {0: lambda t, ans, a: einsum_of("...,...ij,...ji->...")(ans, inv_p(a), t)},
        notation=Notation("det", latex="\\det", forward="det({0})", vjp=("{g} {ans} {0}^-T",)),
    ),
    source="{xp}.linalg.det({0})",
)
logabsdet_p = Primitive(
    lambda a: _linalg(a, "slogdet")(a)[1],
    name="logabsdet",
    declaration=General(
        {0: lambda g, ans, a: einsum_of("...,...ji->...ij")(g, inv_p(a))},
        {0: lambda t, ans, a: _real_part(einsum_of("...ij,...ji->...")(inv_p(a), t))},  # Re tr(A⁻¹ Ȧ)
        notation=Notation("logabsdet", forward="log|det({0})|", vjp=("{g} {0}^-T",)),
    ),
    source="{xp}.linalg.slogdet({0})[1]",
)
det_sign = nondifferentiable(lambda a: _linalg(a, "slogdet")(a)[0], "det_sign",
                             source="np.linalg.slogdet({0})[0]")


def det(a: Any) -> Any:
    """The determinant of a square matrix (or of each matrix of a stack), as :func:`numpy.linalg.det`.

    ``d(det A) = det A tr(A⁻¹ dA)``, so ``Ā = ḡ det(A) A⁻ᵀ``. The derivative
    needs ``A`` invertible (at a singular ``A`` it is the adjugate, which this
    rule does not compute: the inverse raises ``LinAlgError``). Prefer
    :func:`slogdet` for log-likelihoods: ``det`` overflows for large matrices.

    >>> import numpy as np, einsumad as ea
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> float(ea.det(A))
    5.000000000000001
    >>> ea.grad(ea.det)(A)        # det(A) A^-T, the cofactor matrix
    array([[ 3., -1.],
           [-1.,  2.]])
    """
    _square(a, "det")
    return det_p(a)


def slogdet(a: Any) -> SlogdetResult:
    """The sign and the log of the absolute value of the determinant, as :func:`numpy.linalg.slogdet`.

    Returns ``(sign, logabsdet)``; ``sign`` is a constant (no derivative), and
    ``d log|det A| = tr(A⁻¹ dA)``, so ``Ā = ḡ A⁻ᵀ``, without overflow for large
    matrices. For a symmetric positive definite ``A`` (a covariance) the sign is
    1 and ``Ā = ḡ A⁻¹``. A singular ``A`` gives ``logabsdet = -inf``, where the
    derivative does not exist (the inverse raises ``LinAlgError``).

    >>> import numpy as np, einsumad as ea
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> sign, logdet = ea.slogdet(A)
    >>> float(sign), round(float(logdet), 6)
    (1.0, 1.609438)
    >>> ea.grad(lambda A: ea.slogdet(A)[1])(A)   # A^-T
    array([[ 0.6, -0.2],
           [-0.2,  0.4]])
    """
    _square(a, "slogdet")
    return SlogdetResult(det_sign(a), logabsdet_p(a))


# ================================================================= cholesky
#   A = L Lᵀ (L lower)    JVP: L̇ = L Φ(L⁻¹ sym(Ȧ) L⁻ᵀ)
#                         VJP: Ā = sym(L⁻ᵀ Φ(Lᵀ L̄) L⁻¹)
#   Φ(M): the lower triangle of M with its diagonal halved (a constant mask, a Hadamard product).


def _phi(m: Any, ans: Any) -> Any:
    xp = array_namespace(unbox(ans))
    n = _shape(ans)[-1]
    dtype = unbox(ans).dtype
    where = device(ans)  # the operands' device (None for NumPy)
    mask = xp.tril(xp.ones((n, n), dtype=dtype, device=where), k=-1) + 0.5 * xp.eye(n, dtype=dtype, device=where)
    return multiply(m, mask)


def _cholesky_vjp(g: Any, ans: Any, a: Any) -> Any:
    l_inv = inv_p(ans)
    p = _phi(einsum_of("...ji,...jk->...ik")(ans, g), ans)
    return _sym(einsum_of("...ji,...jk,...kl->...il")(l_inv, p, l_inv))


def _cholesky_jvp(t: Any, ans: Any, a: Any) -> Any:
    l_inv = inv_p(ans)
    m = einsum_of("...ij,...jk,...lk->...il")(l_inv, _sym(t), l_inv)
    return einsum_of("...ij,...jk->...ik")(ans, _phi(m, ans))


cholesky_p = Primitive(
    lambda a: _linalg(a, "cholesky")(a),
    name="cholesky",
    declaration=General(
        {0: _cholesky_vjp}, {0: _cholesky_jvp},
        notation=Notation("cholesky", forward="chol({0})", vjp=("sym({ans}^-T Φ({ans}^T {g}) {ans}^-1)",)),
    ),
    source="{xp}.linalg.cholesky({0})",
)


def cholesky(a: Any) -> Any:
    """The lower-triangular Cholesky factor ``L`` of ``A = L Lᵀ``, as :func:`numpy.linalg.cholesky`.

    NumPy reads only the lower triangle of ``A``; the derivative treats ``A``
    as symmetric (as PyTorch and JAX do): it is the derivative of
    ``cholesky((A + Aᵀ)/2)``, and the gradient is a symmetric matrix:
    ``Ā = sym(L⁻ᵀ Φ(Lᵀ L̄) L⁻¹)`` with ``Φ`` the lower triangle with halved
    diagonal and ``sym(M) = (M + Mᵀ)/2``.

    Raises:
        numpy.linalg.LinAlgError: if ``a`` is not positive definite.

    >>> import numpy as np, einsumad as ea
    >>> ea.cholesky(np.array([[4.0, 2.0], [2.0, 2.0]]))
    array([[2., 0.],
           [1., 1.]])
    """
    _square(a, "cholesky")
    real_only("cholesky", a, why=_HERMITIAN)
    return cholesky_p(a)


# ================================================================= eigh
#   A = V diag(w) Vᵀ (w ascending)     F[i,j] = 1/(w[j] - w[i]) for w[i] != w[j], else 0
#   JVP: M = Vᵀ sym(Ȧ) V   ẇ = diag(M)  ("...ii->...i")   V̇ = V (F ∘ M)
#   VJP: Ā = sym(V (diag(w̄) + F ∘ (Vᵀ V̄)) Vᵀ)
#   Packed: the primitive returns [w; V], shape (..., n + 1, n).


def _eigh_impl(a: Any) -> Any:
    xp = array_namespace(a)
    w, v = _linalg(a, "eigh", xp)(a)
    return xp.concat([xp.expand_dims(w, axis=-2), v], axis=-2)


def _unpack(packed: Any) -> tuple[Any, Any]:
    """``(w, V)`` from ``[w; V]`` (leading batch axes kept)."""
    ndim = _ndim(packed)
    w = getitem_p(packed, index=(slice(None),) * (ndim - 2) + (0, slice(None)))
    v = getitem_p(packed, index=(slice(None),) * (ndim - 2) + (slice(1, None), slice(None)))
    return w, v


def _gaps(w: Any) -> Any:
    """``F[..., i, j] = 1/(w[j] - w[i])`` off the diagonal and between distinct eigenvalues, else 0."""
    shape = _shape(w)
    difference = add(reshape_p(w, shape=shape[:-1] + (1, shape[-1])),
                     negative(reshape_p(w, shape=shape + (1,))))
    distinct = not_equal(difference, 0)
    return where(distinct, reciprocal(where(distinct, difference, 1.0)), 0.0)


def _eigh_vjp(g: Any, ans: Any, a: Any) -> Any:
    gw, gv = _unpack(dense(g))
    w, v = _unpack(ans)
    values = einsum_of("...ij,...j,...kj->...ik")(v, gw, v)
    weighted = einsum_of("...ji,...jk,...ik->...ik")(v, gv, _gaps(w))
    vectors = einsum_of("...ij,...jk,...lk->...il")(v, weighted, v)
    return _sym(add(values, vectors))


def _eigh_jvp(t: Any, ans: Any, a: Any) -> Any:
    w, v = _unpack(ans)
    m = einsum_of("...ji,...jk,...kl->...il")(v, _sym(t), v)
    dw = einsum_of("...ii->...i")(m)
    dv = einsum_of("...ij,...jk,...jk->...ik")(v, _gaps(w), m)
    return concatenate([reshape_p(dw, shape=_shape(dw)[:-1] + (1, _shape(dw)[-1])), dv], axis=-2)


eigh_p = Primitive(
    _eigh_impl,
    name="eigh",
    declaration=General(
        {0: _eigh_vjp}, {0: _eigh_jvp},
        notation=Notation("eigh", forward="eigh({0})",
                          vjp=("sym(V (diag(ḡ_w) + F ∘ (V^T ḡ_V)) V^T), F_ij = 1/(w_j - w_i)",)),
    ),
)


def eigh(a: Any) -> EighResult:
    """Eigenvalues (ascending) and orthonormal eigenvectors of a symmetric matrix, as :func:`numpy.linalg.eigh`.

    Returns ``(eigenvalues, eigenvectors)`` with ``A = V diag(w) Vᵀ``. NumPy
    reads the lower triangle; the derivative treats ``A`` as symmetric
    (tangents are symmetrised, gradients are symmetric)::

        dw = diag(Vᵀ dA V)          dV = V (F ∘ (Vᵀ dA V)),   F[i,j] = 1/(w[j] - w[i])
        Ā = sym(V (diag(w̄) + F ∘ (Vᵀ V̄)) Vᵀ)

    The eigenvalues' derivative is always defined. The eigenvectors' needs
    *distinct* eigenvalues: for a repeated eigenvalue the eigenvectors are not
    unique (any rotation within the eigenspace will do) and their derivative
    does not exist; einsumad then sets the ``F`` entries of the equal pairs to 0,
    so functions of the eigenvalues alone (and of the eigenspace projector)
    still get the right gradient, while the derivative of an individual
    eigenvector is meaningless there. Close eigenvalues give large derivatives.

    >>> import numpy as np, einsumad as ea
    >>> w, V = ea.eigh(np.array([[2.0, 1.0], [1.0, 2.0]]))
    >>> w
    array([1., 3.])
    >>> ea.grad(lambda A: ea.eigh(A)[0][1])(np.array([[2.0, 1.0], [1.0, 2.0]]))  # v vᵀ
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    _square(a, "eigh")
    real_only("eigh", a, why=_HERMITIAN)
    packed = eigh_p(a)
    w, v = _unpack(packed)
    return EighResult(w, v)


# ================================================================= norm
#   ‖x‖ = √(sum_i x[i]²)   (vector 2-norm; Frobenius norm for matrices): a composition
#   ∂‖x‖/∂x[i] = x[i] / ‖x‖;   at x = 0 the subgradient 0 is used.


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A002
    """The vector 2-norm or the Frobenius norm, as :func:`numpy.linalg.norm`.

    ``norm(x)`` is ``sqrt(sum(x²))`` over all entries (the 2-norm of a vector,
    the Frobenius norm of a matrix); ``axis`` (an int, or a pair of axes) and
    ``keepdims`` select and keep axes as in NumPy; ``ord`` may be None, 2 (for
    vectors) or ``"fro"`` (for matrices). The derivative is ``x / ‖x‖``. At
    ``x = 0`` the norm is not differentiable; its subdifferential is the unit
    ball, and einsumad returns its smallest element, the gradient 0 (as
    PyTorch does; JAX returns nan), with second derivatives 0 there too.

    >>> import numpy as np, einsumad as ea
    >>> float(ea.norm(np.array([3.0, 4.0])))
    5.0
    >>> ea.grad(lambda x: ea.norm(x))(np.array([3.0, 4.0]))
    array([0.6, 0.8])
    >>> ea.grad(lambda x: ea.norm(x))(np.zeros(2))   # the subgradient at 0
    array([0., 0.])
    """
    shape = _shape(x)
    if axis is None:
        axes = tuple(range(len(shape)))
        vector = len(shape) == 1
    else:
        axes = normalize_axes(axis, len(shape))
        vector = len(axes) == 1
        if len(axes) > 2:
            raise ValueError(f"norm: improper number of dimensions to norm: axis={axis!r}")
    allowed = (None, 2) if vector else (None, "fro")
    if ord not in allowed or (ord is not None and axis is None and len(shape) > 2):
        raise ValueError(
            f"ea.norm supports the vector 2-norm (ord=None or 2) and the Frobenius norm "
            f"(ord=None or 'fro'); got ord={ord!r} for {'a vector' if vector else 'matrices'} "
            "(write other norms with ops, e.g. ea.sum(ea.abs(x) ** p) ** (1 / p))"
        )
    x = accumulated(x, floating=True)  # integers as float64, as NumPy: no overflow in x²
    squares = total(abs_squared(x), axis=axes, keepdims=bool(keepdims))
    positive = greater(squares, 0)
    return where(positive, sqrt(where(positive, squares, 1.0)), 0.0)


# ================================================================= trace
#   t[...] = sum_i A[..., i, i]: the einsum "...ii->...", whose swap "...->...ii" is ḡ I.
#   A non-square A (m, n): the same einsum on its leading square block A[..., :k, :k],
#   k = min(m, n); the slice's VJP pads ḡ I with zeros to (m, n).


def trace(a: Any) -> Any:
    """The trace of each matrix of a stack: the einsum ``...ii->...``, as :func:`numpy.linalg.trace`.

    Sums the diagonal of the *last two* axes (``numpy.linalg.trace``;
    ``numpy.trace`` uses the first two). Its VJP is the swap ``...->...ii``:
    ``Ā = ḡ I``. A non-square matrix sums its main diagonal, ``min(m, n)``
    entries, as NumPy does.

    >>> import numpy as np, einsumad as ea
    >>> float(ea.trace(np.array([[1.0, 2.0], [3.0, 4.0]])))
    5.0
    >>> ea.grad(ea.trace)(np.ones((2, 2)))
    array([[1., 0.],
           [0., 1.]])
    >>> float(ea.trace(np.ones((2, 3))))   # non-square: the main diagonal, 2 entries
    2.0
    """
    shape = _shape(a)
    if len(shape) < 2:
        raise ValueError(
            f"ea.trace: {len(shape)}-dimensional array given; the array must be at least "
            "two-dimensional, a (stack of) matrices"
        )
    k = min(shape[-2], shape[-1])
    if shape[-2] != shape[-1]:
        a = getitem_p(a, index=(slice(None),) * (len(shape) - 2) + (slice(0, k), slice(0, k)))  # leading square block
    return einsum("...ii->...", a)


register_numpy_equivalent(np.linalg.norm, "ea.norm")
register_numpy_equivalent(np.linalg.inv, "ea.inv")
register_numpy_equivalent(np.linalg.solve, "ea.solve")
register_numpy_equivalent(np.linalg.det, "ea.det")
register_numpy_equivalent(np.linalg.slogdet, "ea.slogdet")
register_numpy_equivalent(np.linalg.cholesky, "ea.cholesky")
register_numpy_equivalent(np.linalg.eigh, "ea.eigh")
register_numpy_equivalent(np.linalg.trace, "ea.trace")
register_numpy_equivalent(np.trace, "ea.trace (over the last two axes, as np.linalg.trace)")
