"""Array libraries: the gradient runs where the arrays live.

Operands of PyTorch, Dask, or any array API library (``array_api_strict``, the
standard's reference, which has nothing NumPy-only in it) stay in their library
through the forward pass, every cotangent and the result. Each library is an
optional extra (``pip install "einsumad[backends]"``); its tests skip with the
reason when it is missing, and GPU tests skip without a CUDA device.

Truths: NumPy's einsum and closed forms for values, central finite differences
(in float64, on NumPy copies) for derivatives.
"""

from __future__ import annotations

import numpy as np
import pytest

import einsumad as ea
from einsumad.core.arrays import to_numpy

from .numeric import numerical_gradient, numerical_jacobian

INSTALL = "pip install 'einsumad[backends]'"


def _torch():
    return pytest.importorskip("torch", reason=f"PyTorch is not installed ({INSTALL})")


def _strict():
    return pytest.importorskip("array_api_strict", reason=f"array-api-strict is not installed ({INSTALL})")


def _dask():
    pytest.importorskip("array_api_compat", reason=f"array-api-compat is not installed ({INSTALL})")
    return pytest.importorskip("dask.array", reason=f"Dask is not installed ({INSTALL})")


class Backend:
    """How to make an array of one library, and which module its arrays come from."""

    def __init__(self, name: str):
        self.name = name
        if name == "torch":
            pytest.importorskip("array_api_compat", reason=f"array-api-compat is not installed ({INSTALL})")
            self.lib = _torch()
            self.convert = lambda a: self.lib.as_tensor(np.asarray(a))
            self.module = "torch"
        elif name == "array_api_strict":
            self.lib = _strict()
            self.convert = lambda a: self.lib.asarray(np.asarray(a))
            self.module = "array_api_strict"
        else:
            self.lib = _dask()
            self.convert = lambda a: self.lib.from_array(np.asarray(a), chunks=2)
            self.module = "dask"

    def __call__(self, a):
        return self.convert(a)

    def owns(self, x) -> bool:
        return type(x).__module__.split(".")[0] == self.module


@pytest.fixture(params=["array_api_strict", "torch", "dask"])
def backend(request) -> Backend:
    return Backend(request.param)


# ---------------------------------------------------------------- contractions, each plan's dialect

CONTRACTIONS = [
    ("ij,jk->ik", [(2, 3), (3, 4)], {}),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], {}),
    ("ij,j->i", [(2, 3), (3,)], {}),
    ("ij,ij->", [(2, 3), (2, 3)], {}),
    ("i,j->ij", [(2,), (3,)], {}),
    ("ij->ji", [(2, 3)], {}),
    ("ii->i", [(3, 3)], {}),
    ("ii->", [(3, 3)], {}),
    ("iji->j", [(2, 3, 2)], {}),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], {}),
    ("ab,bc->ac", [(1, 3), (3, 2)], {}),
    ("ij,ij->ij", [(2, 1), (2, 3)], {}),
    ("iij,jk->kji", [(2, 2, 3), (3, 4)], {}),
    # generalised outputs: a broadcast letter and a diagonal embedding
    ("i->ij", [(3,)], {"j": 2}),
    ("i->ii", [(3,)], {}),
    ("ij->iji", [(2, 3)], {}),
]


def _expected(subscripts: str, arrays: list[np.ndarray], sizes: dict) -> np.ndarray:
    """NumPy's einsum, with the generalised outputs built by hand."""
    if subscripts == "i->ij":
        return np.repeat(arrays[0][:, None], sizes["j"], axis=1)
    if subscripts == "i->ii":
        return np.diag(arrays[0])
    if subscripts == "ij->iji":
        x = arrays[0]
        return x[:, :, None] * np.eye(x.shape[0])[:, None, :]
    return np.einsum(subscripts, *arrays)


@pytest.mark.parametrize("subscripts,shapes,sizes", CONTRACTIONS, ids=[c[0] for c in CONTRACTIONS])
def test_contractions_stay_in_the_operands_library(backend, subscripts, shapes, sizes, rng):
    arrays = [rng.standard_normal(s) for s in shapes]
    out = ea.einsum(subscripts, *[backend(a) for a in arrays], sizes=sizes or None)
    assert backend.owns(out), type(out)
    np.testing.assert_allclose(to_numpy(out), _expected(subscripts, arrays, sizes), rtol=1e-12, atol=1e-12)


def test_a_number_scales_a_contraction_in_the_operands_dtype(backend):
    x = backend(np.ones((2, 3), dtype=np.float32))
    out = ea.einsum("ij,->ij", x, 2.5)
    assert backend.owns(out) and "float32" in str(out.dtype)
    np.testing.assert_allclose(to_numpy(out), 2.5)


# ---------------------------------------------------------------- gradients of models

W0 = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
X0 = np.array([0.3, -0.7, 1.1])


def mlp_loss(W, x):
    h = ea.tanh(ea.einsum("ij,j->i", W, x))
    return ea.sum((h - 0.25) ** 2) + ea.mean(ea.exp(W) * 0.1) + ea.sum(ea.sigmoid(W)) + ea.logsumexp(x)


LOSSES = {
    "mlp": (mlp_loss, (W0, X0)),
    "select": (lambda W, x: ea.sum(ea.where(W > 0, W, 0.0)) + ea.sum(ea.maximum(x, 0.1)) + ea.sum(ea.abs(W))
               + ea.sum(ea.relu(x)) + ea.max(W) + ea.sum(ea.clip(W, -0.5, 0.5)), (W0, X0)),
    "shape": (lambda W, x: ea.sum(ea.reshape(W, (12,))[2:7] ** 2) + ea.sum(W[1] * x)
              + ea.sum(ea.stack([x, 2.0 * x]) ** 2) + ea.sum(ea.concatenate([x, x]) * 3.0)
              + ea.sum(ea.transpose(W)[0]), (W0, X0)),
    "normalise": (lambda W, x: ea.sum(ea.softmax(W) * W) + ea.sum(ea.log_softmax(x)) + ea.var(W) + ea.std(x)
                  + ea.sum(ea.layer_norm(W, axis=-1) * W), (W0, X0)),
    "elementary": (lambda W, x: ea.sum(ea.log1p(x ** 2) + ea.expm1(x) + ea.arctan(x) + ea.sinh(x) + ea.cosh(x)
                                       + ea.softplus(x) + ea.gelu(x) + ea.erf(x) + ea.silu(x) + ea.sqrt(x ** 2 + 1.0)
                                       + 1.0 / (2.0 + x ** 2) + (x ** 2 + 1.0) ** x + ea.sin(x) * ea.cos(x)), (W0, X0)),
    "diagonals": (lambda W, x: ea.einsum("ii->", W[:3]) + ea.sum(ea.einsum("ii->i", W[1:]) ** 2)
                  + ea.sum(ea.einsum("i,j->ij", x, x) * W[:3]), (W0, X0)),
    "chain": (lambda W, x: ea.sum(ea.einsum("ij,jk,kl->il", W, ea.transpose(W), W)) + ea.sum(ea.cumsum(x) * x)
              + ea.prod(x), (W0, X0)),
}


@pytest.mark.parametrize("name", LOSSES)
def test_gradients_stay_in_the_library_and_match_finite_differences(backend, name):
    loss, args = LOSSES[name]
    grads = ea.grad(loss, argnums=(0, 1))(*[backend(a) for a in args])
    for k, g in enumerate(grads):
        assert backend.owns(g), (name, type(g))
        numeric = numerical_gradient(lambda *a: to_numpy(loss(*a)), list(args), k)
        np.testing.assert_allclose(to_numpy(g), numeric, rtol=1e-6, atol=1e-7)


def test_value_and_grad_returns_both_in_the_library(backend):
    value, g = ea.value_and_grad(mlp_loss)(backend(W0), backend(X0))
    assert backend.owns(value) and backend.owns(g)
    np.testing.assert_allclose(to_numpy(value), mlp_loss(W0, X0))


def test_jacobians_hessians_and_forward_mode(backend):
    A = backend(W0[:3])
    x = backend(X0)

    def f(v):
        return ea.tanh(ea.einsum("ij,j->i", A, v))

    expected = numerical_jacobian(lambda v: np.tanh(W0[:3] @ v), [X0], 0)
    for jac in (ea.jacobian, ea.jacrev, ea.jacfwd):
        J = jac(f)(x)
        assert backend.owns(J)
        np.testing.assert_allclose(to_numpy(J), expected, rtol=1e-6, atol=1e-8)
    H = ea.hessian(lambda v: ea.einsum("i,ij,j->", v, A, v))(x)
    assert backend.owns(H)
    np.testing.assert_allclose(to_numpy(H), W0[:3] + W0[:3].T, rtol=1e-12)
    _, t = ea.jvp(f, (x,), (backend(np.array([1.0, 0.0, 0.0])),))
    assert backend.owns(t)
    np.testing.assert_allclose(to_numpy(t), expected[:, 0], rtol=1e-6, atol=1e-8)
    _, vjp_fn = ea.vjp(f, x)
    (g,) = vjp_fn(backend(np.ones(3)))
    assert backend.owns(g)
    np.testing.assert_allclose(to_numpy(g), expected.sum(axis=0), rtol=1e-6, atol=1e-8)


def test_second_derivatives_by_nesting(backend):
    x = backend(X0)
    hvp = ea.grad(lambda v: ea.sum(ea.grad(lambda w: ea.sum(ea.tanh(w) ** 3))(v) * v))(x)
    assert backend.owns(hvp)
    numeric = numerical_gradient(
        lambda v: float(np.sum(numerical_gradient(lambda w: np.sum(np.tanh(w) ** 3), [v], 0, 1e-5) * v)),
        [X0], 0, 1e-4,
    )
    np.testing.assert_allclose(to_numpy(hvp), numeric, rtol=1e-4, atol=1e-5)


def test_float32_stays_float32(backend):
    W = backend(W0.astype(np.float32))
    x = backend(X0.astype(np.float32))
    g = ea.grad(mlp_loss)(W, x)
    assert "float32" in str(g.dtype)


def test_linear_algebra(rng):
    torch = _torch()
    pytest.importorskip("array_api_compat", reason=f"array-api-compat is not installed ({INSTALL})")
    A = rng.standard_normal((3, 3))
    S = A @ A.T + 3 * np.eye(3)

    def loss(S):
        return ea.sum(ea.inv(S)) + ea.det(S) + ea.trace(S) + ea.norm(S) + ea.sum(ea.cholesky(S))

    g = ea.grad(loss)(torch.as_tensor(S))
    assert isinstance(g, torch.Tensor)
    numeric = numerical_gradient(
        lambda S: np.sum(np.linalg.inv(S)) + np.linalg.det(S) + np.trace(S) + np.linalg.norm(S)
        + np.sum(np.linalg.cholesky(S)),
        [S], 0,
    )
    # cholesky reads the lower triangle only, so compare the symmetric part of the gradient
    sym = lambda M: (M + M.T) / 2  # noqa: E731
    np.testing.assert_allclose(sym(to_numpy(g)), sym(numeric), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- mixing libraries, compile, codegen


def test_mixing_libraries_names_each_operand():
    torch = _torch()
    pytest.importorskip("array_api_compat", reason=f"array-api-compat is not installed ({INSTALL})")
    with pytest.raises(ea.MixedLibrariesError, match=r"operand 0 is a torch.Tensor; operand 1 is a numpy.ndarray"):
        ea.einsum("ij,jk->ik", torch.ones(2, 2), np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"ea.einsum.*operand 0 is a torch.Tensor; operand 1 is a numpy.ndarray"):
        ea.grad(lambda x: ea.sum(x * np.ones(2)))(torch.ones(2, dtype=torch.float64))
    da = _dask()
    with pytest.raises(ea.MixedLibrariesError, match=r"torch.Tensor.*dask.array.core.Array"):
        ea.grad(lambda x: ea.sum(ea.einsum("i,i->i", x, da.ones(2))))(torch.ones(2, dtype=torch.float64))


def test_codegen_prints_the_namespace_and_compile_runs_it(backend):
    W, x = backend(W0), backend(X0)
    source = ea.codegen(ea.grad(mlp_loss, argnums=(0, 1)), W, x)
    assert "# xp = " in source and "np." not in source
    compiled = ea.compile(ea.grad(mlp_loss, argnums=(0, 1)))
    for _ in range(2):  # the second call replays the program
        grads = compiled(W, x)
        for k, g in enumerate(grads):
            assert backend.owns(g)
            numeric = numerical_gradient(lambda *a: mlp_loss(*a), [W0, X0], k)
            np.testing.assert_allclose(to_numpy(g), numeric, rtol=1e-6, atol=1e-7)
    assert compiled.cache_size() == 1


def test_a_stepped_program_runs_in_the_arrays_library(backend, monkeypatch):
    """A long program's first calls run op by op; its results stay in the library too."""
    from einsumad.tools import stepper

    monkeypatch.setattr(stepper, "STEP_ABOVE", 0)
    monkeypatch.setattr(stepper, "STEP_CALLS", 2)
    W, x = backend(W0), backend(X0)
    compiled = ea.compile(ea.grad(mlp_loss, argnums=(0, 1)))
    for written in (False, True):  # stepped, then written on the second call
        grads = compiled(W, x)
        (program,) = compiled.programs.values()
        assert (program.source is not None) == written
        for k, g in enumerate(grads):
            assert backend.owns(g)
            numeric = numerical_gradient(lambda *a: mlp_loss(*a), [W0, X0], k)
            np.testing.assert_allclose(to_numpy(g), numeric, rtol=1e-6, atol=1e-7)


def test_numpy_programs_are_unchanged_by_the_other_libraries():
    source = ea.codegen(ea.grad(mlp_loss), W0, X0)
    assert "# xp" not in source and "xp." not in source.replace("np.exp", "") and "np.tanh" in source


# ---------------------------------------------------------------- Dask: lazy, one task graph


def test_dask_gradients_are_lazy_until_computed():
    da = _dask()
    calls = []

    def block(x):
        calls.append(1)
        return x

    X = da.from_array(np.linspace(0.0, 1.0, 40).reshape(10, 4), chunks=(5, 4)).map_blocks(block)
    y = da.from_array(np.linspace(-1.0, 1.0, 10), chunks=5)
    w = da.from_array(np.array([0.1, -0.2, 0.3, 0.0]), chunks=4)
    calls.clear()

    def loss(w):
        r = ea.einsum("nd,d->n", X, w) - y
        return ea.sum(r * r) / 10.0

    value, g = ea.value_and_grad(loss)(w)
    assert calls == [] and isinstance(g, da.Array) and isinstance(value, da.Array)
    # One graph: the gradient's tasks reach back to the data's blocks.
    assert any("block" in str(key) for key in dict(g.__dask_graph__()))
    Xn, yn, wn = np.linspace(0.0, 1.0, 40).reshape(10, 4), np.linspace(-1.0, 1.0, 10), np.array([0.1, -0.2, 0.3, 0.0])
    np.testing.assert_allclose(g.compute(), 2 * Xn.T @ (Xn @ wn - yn) / 10, rtol=1e-12)
    assert calls  # computing ran the blocks


def test_dask_gradient_on_a_local_cluster_of_two_workers():
    _dask()
    distributed = pytest.importorskip("distributed", reason=f"dask.distributed is not installed ({INSTALL})")
    import dask.array as da

    rng = np.random.default_rng(0)
    Xn = rng.standard_normal((4000, 8))
    yn = Xn @ np.arange(8.0) + 0.1 * rng.standard_normal(4000)
    wn = np.zeros(8)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        X = da.from_array(Xn, chunks=(500, 8))
        y = da.from_array(yn, chunks=500)
        w = da.from_array(wn, chunks=8)

        def loss(w, X, y):
            r = ea.einsum("nd,d->n", X, w) - y
            return ea.sum(r * r) / r.shape[0]

        value, g = client.compute(ea.value_and_grad(loss)(w, X, y), sync=True)
        workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2
    np.testing.assert_allclose(g, 2 * Xn.T @ (Xn @ wn - yn) / 4000, rtol=1e-10)
    np.testing.assert_allclose(value, np.mean((Xn @ wn - yn) ** 2), rtol=1e-12)


# ---------------------------------------------------------------- GPUs (skipped without CUDA)


def _cuda_torch():
    torch = _torch()
    pytest.importorskip("array_api_compat", reason=f"array-api-compat is not installed ({INSTALL})")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: PyTorch reports torch.cuda.is_available() == False")
    return torch


def test_cuda_tensors_stay_on_the_gpu():
    torch = _cuda_torch()
    W = torch.as_tensor(W0, device="cuda")
    x = torch.as_tensor(X0, device="cuda")
    grads = ea.grad(mlp_loss, argnums=(0, 1))(W, x)
    for k, g in enumerate(grads):
        assert g.device.type == "cuda"
        numeric = numerical_gradient(lambda *a: mlp_loss(*a), [W0, X0], k)
        np.testing.assert_allclose(to_numpy(g), numeric, rtol=1e-6, atol=1e-7)


def test_cupy_arrays_stay_on_the_gpu():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (it needs a CUDA toolkit)")
    pytest.importorskip("array_api_compat", reason=f"array-api-compat is not installed ({INSTALL})")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # noqa: BLE001
        pytest.skip(f"no CUDA device: {error}")
    grads = ea.grad(mlp_loss, argnums=(0, 1))(cupy.asarray(W0), cupy.asarray(X0))
    for k, g in enumerate(grads):
        assert isinstance(g, cupy.ndarray)
        numeric = numerical_gradient(lambda *a: mlp_loss(*a), [W0, X0], k)
        np.testing.assert_allclose(to_numpy(g), numeric, rtol=1e-6, atol=1e-7)


def test_astype_with_a_numpy_dtype_converts_in_the_operands_library(backend):
    """``x.astype(np.float32)`` on a torch or array-API array: the library's float32
    (torch raised "to() received an invalid combination"; array-api-strict an AttributeError)."""
    x = np.array([0.5, 1.5, -2.0])

    def loss(z):
        return ea.sum(z.astype(np.float32).astype("float64") ** 2) + ea.sum(z.astype(np.int64).astype(np.float64))

    g = ea.grad(loss)(backend(x))
    assert backend.owns(g)
    np.testing.assert_array_equal(to_numpy(g), 2 * x)  # the cast to float32 is exact here; the int cast is a step


@pytest.mark.parametrize("op", [ea.det, ea.slogdet, ea.eigh])
def test_a_linalg_function_dask_lacks_is_a_clear_error(op):
    """array_api_compat's Dask namespace has no det, slogdet or eigh: an einsumad error
    that names the function, not a bare AttributeError from inside the namespace."""
    dask_array = _dask()
    a = dask_array.from_array(np.eye(3) * 2.0, chunks=3)
    with pytest.raises(TypeError, match=f"ea.{op.__name__}: .*has no linalg.{op.__name__}"):
        op(a)
