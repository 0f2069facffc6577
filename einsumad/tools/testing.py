"""Gradient checking: analytic derivatives against central finite differences.

Two tools, for two questions:

* :func:`check_grads` asks "are einsumad's derivatives of ``fun`` right?" It
  compares reverse mode (``ea.vjp``), forward mode (``ea.jvp``) and central
  finite differences, up to second order. This is how a custom rule declared
  with ``ea.defvjp`` / ``ea.defjvp`` is tested.
* :func:`check_gradient` asks "is the gradient I derived by hand right?" It
  compares a user's ``grad_fun`` with finite differences of a plain NumPy
  ``fun`` and, when ``fun`` can be traced, with einsumad's own gradient.

Design decisions:

* **One scalar per check.** A non-scalar output ``y = fun(*args)`` is paired with
  a fixed random cotangent ``v``: every mode then differentiates the same scalar
  ``<v, y>``. Reverse mode gives its whole gradient ``VJP(v)`` in one pass;
  forward mode gives ``<v, J t>`` for a tangent ``t``; finite differences give
  ``(<v, y(x + eps t)> - <v, y(x - eps t)>) / (2 eps)``.
* **Every element, or a few random directions.** For an argument with at most
  64 elements ``t`` runs over the unit vectors, so a mismatch is named by its
  element (``W[2, 3]``). For a larger argument ``t`` is a unit vector in a
  random direction: if the analytic Jacobian ``J_a`` differs from the true one
  ``J``, the bilinear form ``<v, (J_a - J) t>`` is a non-zero polynomial in the
  random ``(v, t)``, whose zero set has measure zero; so one random pair
  exposes the error with probability one (the argument of JAX's
  ``check_vjp``). Three directions are used against rounding bad luck. When a
  direction fails, the argument is checked element by element (up to 4096
  elements) to name the worst element.
* **Finite differences in float64.** Arguments are upcast to float64 copies;
  ``eps``, ``rtol`` and ``atol`` default by the lowest precision among the
  arguments and outputs (float64: 1e-5, 1e-5, 1e-5; float32: 1e-3, 2e-3, 2e-3).
  An element fails when ``|analytic - numeric| > atol + rtol * |numeric|``.
* **Messages point at the culprit.** They name the mode, the argument (by the
  parameter names of ``fun``, else ``args[1]``), the worst element, both values,
  and which other modes agree: "rev" wrong while "fwd" is right points at a
  VJP rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..algebra.errors import GradientCheckError
from ..core.arrays import is_complex
from ..core.names import parameter_names
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.tape import Tensor
from ..ops.complex import imag, real
from ..transforms.autodiff import jvp, vjp

__all__ = ["check_grads", "check_gradient"]

#: Arguments with at most this many elements are checked element by element.
SMALL = 64
#: A failing random direction is localised element by element up to this size.
LOCALISE = 4096
#: Random directions per large argument.
DIRECTIONS = 3

# dtype -> (eps, rtol, atol)
_DEFAULTS = {
    np.dtype(np.float16): (1e-2, 5e-2, 5e-2),
    np.dtype(np.float32): (1e-3, 2e-3, 2e-3),
    np.dtype(np.float64): (1e-5, 1e-5, 1e-5),
}

_MODE_NAMES = {
    "rev": "reverse mode ('rev')",
    "fwd": "forward mode ('fwd')",
    "grad_fun": "the gradient returned by grad_fun",
    "einsumad": "einsumad's gradient ('rev')",
}


# ===================================================================== public API


def check_grads(
    fun: Callable[..., Any],
    args: Any,
    order: int = 1,
    modes: Sequence[str] = ("rev", "fwd"),
    eps: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    *,
    seed: int = 0,
) -> None:
    """Check einsumad's derivatives of ``fun`` against central finite differences.

    Reverse mode (``ea.vjp``) and forward mode (``ea.jvp``) are each compared
    with central differences computed in float64, for every floating-point
    argument. Arguments with at most 64 elements are checked element by
    element; larger ones along three random unit directions (a wrong Jacobian
    is caught by a random direction with probability one; see the module
    docstring). With ``order=2`` the VJP and the JVP of ``fun`` (for fixed
    random cotangents and tangents) are themselves checked the same way: this
    tests Hessian-vector products, i.e. derivatives of the derivative rules.

    Args:
        fun: a function of arrays built from einsumad ops; it may return an
            array of any shape or a pytree of arrays.
        args: the arguments, a tuple of arrays (a single array is allowed).
            Integer arguments are held constant; pytrees are not accepted.
        order: 1 or 2 (order 2 runs only once order 1 passes).
        modes: a subset of ``("rev", "fwd")``.
        eps: the finite-difference step; by dtype when None.
        atol: absolute tolerance; by dtype when None.
        rtol: relative tolerance; by dtype when None.
        seed: seed of the random cotangents and directions.

    Raises:
        GradientCheckError: (an ``AssertionError``) on a mismatch. The message
            names the mode, the argument and its worst element (``W[2, 3]``),
            the analytic and numeric values, and whether the other modes agree.

    >>> import numpy as np, einsumad as ea
    >>> W, a = np.arange(6.0).reshape(2, 3) / 6, np.array([0.5, -1.0, 2.0])
    >>> ea.check_grads(lambda W, a: ea.tanh(ea.einsum("ij,j->i", W, a)), (W, a), order=2)
    >>> @ea.primitive
    ... def cube(x):
    ...     return x ** 3
    >>> ea.defvjp(cube, lambda ans, x: lambda g: g * 2 * x ** 2)   # should be 3 x^2
    >>> try:
    ...     ea.check_grads(lambda x: ea.sum(cube(x)), (np.array([1.0, 2.0]),), modes=("rev",))
    ... except ea.GradientCheckError as e:
    ...     print(str(e).splitlines()[1])
      worst element x[1]: rev gives 8, finite differences give 12 (|difference| 4 > tolerance 0.00013)
    """
    report = _check_grads(fun, args, order, modes, eps, atol, rtol, seed)
    if report.failures:
        raise GradientCheckError(report.message())


def check_gradient(
    fun: Callable[..., Any],
    grad_fun: Callable[..., Any],
    args: Any,
    *,
    eps: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
) -> None:
    """Check a hand-derived gradient of a scalar function ("is my dL/dW right?").

    ``fun`` may be plain NumPy; ``grad_fun(*args)`` returns the gradient with
    respect to every argument, a tuple (a single array when there is one
    argument). The gradients are compared

    * with central finite differences of ``fun`` in float64, always;
    * with einsumad's own gradient, when ``fun`` can be traced: it is called
      on einsumad-traced arguments, and if that raises ``TypeError`` or
      ``AttributeError`` (a NumPy function applied to a traced value, e.g.
      ``np.tanh(x)``) or returns a value that is not traced, this comparison
      is skipped silently and finite differences are the only reference.

    Arguments with at most 64 elements are compared element by element, larger
    ones along three random directions (localised on failure), as in
    :func:`check_grads`. When a mismatch looks like a transpose or a constant
    factor, the message says so.

    Args:
        fun: a function of floating-point arrays returning a scalar.
        grad_fun: a function of the same arguments returning one gradient per
            argument, each of its argument's shape.
        args: a tuple of arrays (a single array is allowed).
        eps: the finite-difference step; by dtype when None.
        atol: absolute tolerance; by dtype when None.
        rtol: relative tolerance; by dtype when None.
        seed: seed of the random directions for large arguments.

    Raises:
        GradientCheckError: when ``grad_fun`` returns the wrong number of
            gradients, a gradient of the wrong shape, or wrong values (naming
            the argument, its worst element and both values).

    >>> import numpy as np, einsumad as ea
    >>> def loss(W, x):                        # plain NumPy
    ...     return np.sum(np.tanh(W @ x))
    >>> def dloss(W, x):                       # derived by hand
    ...     delta = 1 - np.tanh(W @ x) ** 2    # tanh'(z)
    ...     return np.outer(delta, x), W.T @ delta
    >>> W, x = np.array([[0.1, 0.2], [0.3, -0.4]]), np.array([1.0, 2.0])
    >>> ea.check_gradient(loss, dloss, (W, x))
    >>> def transposed(W, x):                 # a classic slip: dL/dW^T
    ...     dW, dx = dloss(W, x)
    ...     return dW.T, dx
    >>> try:
    ...     ea.check_gradient(loss, transposed, (W, x))
    ... except ea.GradientCheckError as e:
    ...     print(str(e).splitlines()[1])
    ...     print(str(e).splitlines()[2][:46])
      worst element W[1, 0]: grad_fun gives 1.5729, finite differences give 0.786448 (|difference| 0.786 > tolerance 1.8e-05)
      it equals the expected W transposed: the two
    """
    args = _as_args(args, "check_gradient")
    for i, a in enumerate(args):
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(
                f"check_gradient: argument {i} has dtype {a.dtype}; every argument is "
                "differentiated, so pass floating-point arrays"
            )
    names = _arg_names(fun, len(args))
    value = np.asarray(fun(*args))
    if value.shape != () or not np.issubdtype(value.dtype, np.number):
        raise TypeError(
            f"check_gradient: fun must return a scalar, but it returned shape {value.shape}; "
            "for other outputs use ea.check_grads"
        )
    given = _validated_gradients(grad_fun(*args), args, names)
    tol = _tolerances([a.dtype for a in args] + [value.dtype], eps, atol, rtol)
    ours = _einsumad_gradient(fun, args)
    rng = np.random.default_rng(seed)
    args64 = [np.array(a, dtype=np.float64) for a in args]

    def pairing(*a: np.ndarray) -> float:
        return float(np.asarray(fun(*a), dtype=np.float64))

    report = _Report("check_gradient")
    for i, x in enumerate(args):
        sources: dict[str, Any] = {"grad_fun": np.asarray(given[i], dtype=np.float64)}
        if ours is not None:
            sources["einsumad"] = np.asarray(ours[i], dtype=np.float64)
        report.outcomes += _check_argument(
            pairing, args64, i, x, names[i], sources, tol, rng, order=1, label="fun"
        )
        if ours is not None:
            report.outcomes.append(
                _compare_full(
                    sources["grad_fun"], sources["einsumad"], "grad_fun", "einsumad's gradient",
                    i, names[i], x, tol, 1, "fun", "element by element",
                )
            )
    if report.failures:
        raise GradientCheckError(report.message())


# ===================================================================== the engine


@dataclass
class _Outcome:
    """One mode compared with one reference for one argument."""

    mode: str
    reference: str  # "finite differences" or "einsumad's gradient"
    position: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    order: int
    label: str  # what was differentiated: "fun", "the VJP of fun"
    how: str  # "element by element" or "along 3 random directions"
    where: str  # "W[2, 3]" or "random direction 2"
    analytic: float
    numeric: float
    error: float
    bound: float
    max_error: float  # the largest |difference| over the argument
    full: tuple[np.ndarray, np.ndarray] | None = None  # (analytic, reference) arrays
    rtol: float = 0.0
    atol: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error <= self.bound


@dataclass
class _Report:
    """All outcomes of one check, and the failure message."""

    tool: str
    outcomes: list[_Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[_Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def message(self) -> str:
        # The headline: lowest order first, then the first argument, then finite
        # differences (the independent truth) before einsumad's gradient.
        failures = sorted(
            self.failures,
            key=lambda o: (o.order, o.position, o.reference != "finite differences"),
        )
        head = failures[0]
        what = "" if head.label == "fun" else f" of {head.label} (order {head.order})"
        lines = [
            f"{self.tool}: {_MODE_NAMES.get(head.mode, head.mode)}{what} disagrees with "
            f"{head.reference} for argument {head.name} (shape {head.shape}, {head.dtype})",
            f"  worst element {head.where}: {head.mode} gives {head.analytic:.6g}, "
            f"{head.reference} give{'s' if head.reference != 'finite differences' else ''} "
            f"{head.numeric:.6g} (|difference| {head.error:.3g} > tolerance {head.bound:.2g})",
        ]
        if head.how != "element by element":
            lines[1] = lines[1].replace(
                "worst element", f"checked {head.how} ({head.name} is too large to localise), worst:", 1
            )
        lines += ["  " + h for h in _hints(head, self.outcomes)]
        shown = {(o.mode, o.position, o.order, o.label) for o in failures if o.reference == "finite differences"}
        others = [
            o for o in failures[1:]
            if o.reference == "finite differences" or (o.mode, o.position, o.order, o.label) not in shown
        ]
        for o in others[:4]:
            lines.append(
                f"  also: {o.mode}{'' if o.label == 'fun' else f' (order {o.order})'} vs "
                f"{o.reference} for {o.name}, worst {o.where}: {o.analytic:.6g} vs {o.numeric:.6g}"
            )
        if len(others) > 4:
            lines.append(f"  ... and {len(others) - 4} more mismatch(es)")
        return "\n".join(lines)


def _hints(head: _Outcome, outcomes: list[_Outcome]) -> list[str]:
    hints: list[str] = []
    if head.full is not None:
        a, n = head.full
        close = lambda p, q: bool(np.all(np.abs(p - q) <= head.atol + head.rtol * np.abs(q)))  # noqa: E731
        if a.ndim == 2 and a.shape[0] == a.shape[1] and close(a, n.T):
            hints.append(
                f"it equals the expected {head.name} transposed: the two indices of the result "
                "are swapped (e.g. 'ji' where 'ij' was meant)"
            )
        elif not np.any(a):
            hints.append(
                "it is zero where it should not be: is the dependence on this argument lost "
                "(NumPy applied to a traced value, or a rule that ignores it)?"
            )
        elif np.any(np.abs(n) > head.atol):
            c = float(np.vdot(a, n) / np.vdot(n, n))
            if abs(c - 1) > head.rtol and close(a, c * n):
                hints.append(f"it is {c:.6g} times the expected gradient: a constant factor is off")
    if head.mode in ("rev", "fwd") and head.reference == "finite differences":
        other = "fwd" if head.mode == "rev" else "rev"
        peers = [
            o for o in outcomes
            if o.mode == other and o.position == head.position and o.order == head.order
            and o.label == head.label and o.reference == head.reference
        ]
        if peers and all(o.ok for o in peers):
            rule = "a VJP rule (e.g. one declared with ea.defvjp)" if head.mode == "rev" else (
                "a JVP rule (e.g. one declared with ea.defjvp)"
            )
            hints.append(
                f"{_MODE_NAMES[other]} agrees with finite differences for {head.name}, "
                f"so {rule} is the likely culprit"
            )
        elif peers:
            hints.append(
                f"{_MODE_NAMES[other]} disagrees too: suspect the derivative rule itself (forward "
                "mode transposes a VJP when no JVP is declared), or a point where fun is not "
                "differentiable"
            )
    if head.mode == "grad_fun":
        peers = [
            o for o in outcomes
            if o.mode == "einsumad" and o.position == head.position
            and o.reference == "finite differences"
        ]
        if peers and all(o.ok for o in peers) and head.reference == "finite differences":
            hints.append("einsumad's gradient of fun agrees with finite differences")
    return hints


def _check_grads(
    fun: Callable[..., Any],
    args: Any,
    order: int,
    modes: Sequence[str],
    eps: float | None,
    atol: float | None,
    rtol: float | None,
    seed: int,
    names: Sequence[str] | None = None,
) -> _Report:
    """Run every check of :func:`check_grads`; return all outcomes (the CLI prints them).

    ``names`` overrides the argument names taken from ``fun``'s signature.
    """
    args = _as_args(args, "check_grads")
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    unknown = [m for m in modes if m not in ("rev", "fwd")]
    if unknown or not modes:
        raise ValueError(f"check_grads: modes must be a non-empty subset of ('rev', 'fwd'), got {modes!r}")
    if order not in (1, 2):
        raise ValueError(f"check_grads: order must be 1 or 2, got {order!r}")
    names_all = list(names) if names is not None else _arg_names(fun, len(args))
    if any(np.iscomplexobj(a) for a in args):
        fun, args, names_all = _realified(fun, args, names_all)
    floating = [i for i, a in enumerate(args) if np.issubdtype(a.dtype, np.floating)]
    if not floating:
        raise TypeError("check_grads: no floating-point argument to differentiate")

    def fun_d(*diff_args: Any) -> Any:
        full: list[Any] = list(args)
        for i, a in zip(floating, diff_args):
            full[i] = a
        return fun(*full)

    args_d = [args[i] for i in floating]
    names = [names_all[i] for i in floating]
    out_dtypes = [np.asarray(leaf).dtype for leaf in tree_flatten(fun_d(*args_d))[0]]
    tol = _tolerances([a.dtype for a in args_d] + out_dtypes, eps, atol, rtol)
    rng = np.random.default_rng(seed)
    report = _Report("check_grads")
    report.outcomes = _check_order1(fun_d, args_d, names, modes, tol, rng, 1, "fun", floating)
    if order == 2 and not report.failures:
        for derived, label in _derivatives(fun_d, args_d, names, modes, rng):
            report.outcomes += _check_order1(derived, args_d, names, modes, tol, rng, 2, label, floating)
    return report


def _realified(fun: Callable, args: list[np.ndarray], names: list[str]) -> tuple[Callable, list[np.ndarray], list[str]]:
    """``fun`` of complex arguments as a function of their real and imaginary parts,
    with complex outputs split the same way: a real function whose derivatives are
    checked as usual, i.e. against finite differences in the real *and* the imaginary
    direction of every complex argument. The split and the join are einsumad ops
    (``x + i y``, ``ea.real``, ``ea.imag``), so reverse and forward mode go through the
    complex rules of ``fun`` and the documented convention of those ops."""
    parts: list[np.ndarray] = []
    part_names: list[str] = []
    complex_at = []
    for a, name in zip(args, names):
        if np.iscomplexobj(a):
            complex_at.append(True)
            parts += [np.ascontiguousarray(a.real), np.ascontiguousarray(a.imag)]
            part_names += [f"{name}.real", f"{name}.imag"]
        else:
            complex_at.append(False)
            parts.append(a)
            part_names.append(name)

    def split(*xs: Any) -> Any:
        full, it = [], iter(xs)
        for joined in complex_at:
            full.append(next(it) + next(it) * 1j if joined else next(it))
        leaves, treedef = tree_flatten(fun(*full))
        return tree_unflatten(treedef, [(real(o), imag(o)) if is_complex(o) else o for o in leaves])

    return split, parts, part_names


def _derivatives(
    fun: Callable, args: list[np.ndarray], names: list[str], modes: Sequence[str],
    rng: np.random.Generator,
) -> list[tuple[Callable, str]]:
    """First derivatives of ``fun`` as functions of the same arguments, to be checked again.

    Reverse mode: for a fixed random cotangent ``v``, one function per argument
    ``k``, ``args -> VJP_k(v)`` (the mixed second derivatives ``d/dx_j d/dx_k``
    contracted with ``v``, named after ``x_k`` in messages). Forward mode: for
    fixed random tangents ``u``, ``args -> J u``.
    """
    derived: list[tuple[Callable, str]] = []
    if "rev" in modes:
        leaves, treedef = tree_flatten(fun(*args))
        cot = tree_unflatten(treedef, _cotangents(leaves, rng))
        for k, name in enumerate(names):

            def vjp_of_fun(*a: Any, k: int = k) -> Any:
                return vjp(fun, *a)[1](cot)[k]

            derived.append((vjp_of_fun, f"the VJP of fun for {name}"))
    if "fwd" in modes:
        tangents = tuple(_random_like(a, rng) for a in args)

        def jvp_of_fun(*a: Any) -> Any:
            # Finite differences call this on float64 copies: tangents follow the primals.
            return jvp(fun, a, tuple(t.astype(p.dtype) for t, p in zip(tangents, a)))[1]

        derived.append((jvp_of_fun, "the JVP of fun"))
    return derived


def _check_order1(
    fun: Callable,
    args: list[np.ndarray],
    names: list[str],
    modes: Sequence[str],
    tol: tuple[float, float, float],
    rng: np.random.Generator,
    order: int,
    label: str,
    positions: list[int],
) -> list[_Outcome]:
    """Every mode against finite differences of ``<v, fun(*args)>``, argument by argument."""
    out_leaves, out_def = tree_flatten(fun(*args))
    cot_leaves = _cotangents(out_leaves, rng)
    cot64 = [np.asarray(c, dtype=np.float64) for c in cot_leaves]

    def pairing(*a: np.ndarray) -> float:
        leaves, _ = tree_flatten(fun(*a))
        return float(sum(np.vdot(c, np.asarray(o, dtype=np.float64)) for c, o in zip(cot64, leaves)))

    rev_grads = None
    if "rev" in modes:
        rev_grads = vjp(fun, *args)[1](tree_unflatten(out_def, cot_leaves))
    args64 = [np.array(a, dtype=np.float64) for a in args]
    outcomes: list[_Outcome] = []
    for i, x in enumerate(args):
        sources: dict[str, Any] = {}
        if rev_grads is not None:
            sources["rev"] = np.asarray(rev_grads[i], dtype=np.float64)
        if "fwd" in modes:
            sources["fwd"] = _forward_directional(fun, args, i, cot64)
        found = _check_argument(pairing, args64, i, x, names[i], sources, tol, rng, order, label)
        for o in found:
            o.position = positions[i]
        outcomes += found
    return outcomes


def _forward_directional(fun: Callable, args: list[np.ndarray], i: int, cot64: list[np.ndarray]) -> Callable:
    zeros = [np.zeros_like(a) for a in args]

    def along(d: np.ndarray) -> float:
        tangents = list(zeros)
        tangents[i] = d.astype(args[i].dtype)
        _, t_out = jvp(fun, tuple(args), tuple(tangents))
        leaves, _ = tree_flatten(t_out)
        return float(sum(np.vdot(c, np.asarray(t, dtype=np.float64)) for c, t in zip(cot64, leaves)))

    return along


def _check_argument(
    pairing: Callable[..., float],
    args64: list[np.ndarray],
    i: int,
    x: np.ndarray,
    name: str,
    sources: dict[str, Any],
    tol: tuple[float, float, float],
    rng: np.random.Generator,
    order: int,
    label: str,
) -> list[_Outcome]:
    """Compare each source (a full gradient array, or a directional-derivative
    function) with central differences of ``pairing`` in argument ``i``."""
    eps = tol[0]

    def numeric(d: np.ndarray) -> float:
        up = list(args64)
        down = list(args64)
        up[i] = args64[i] + eps * d
        down[i] = args64[i] - eps * d
        return (pairing(*up) - pairing(*down)) / (2 * eps)

    def elementwise() -> tuple[np.ndarray, Callable[[Any], np.ndarray]]:
        num = np.array([numeric(_unit(x.shape, k)) for k in range(x.size)]).reshape(x.shape)

        def analytic(src: Any) -> np.ndarray:
            if isinstance(src, np.ndarray):
                return src
            return np.array([src(_unit(x.shape, k)) for k in range(x.size)]).reshape(x.shape)

        return num, analytic

    outcomes = []
    if x.size <= SMALL:
        num, analytic = elementwise()
        for mode, src in sources.items():
            outcomes.append(
                _compare_full(analytic(src), num, mode, "finite differences", i, name, x, tol, order,
                              label, "element by element")
            )
        return outcomes

    directions = []
    for _ in range(DIRECTIONS):
        d = rng.standard_normal(x.shape)
        d = (d / np.linalg.norm(d)).astype(x.dtype).astype(np.float64)
        directions.append(d)
    num_dirs = np.array([numeric(d) for d in directions])
    localised: tuple[np.ndarray, Callable] | None = None
    for mode, src in sources.items():
        if isinstance(src, np.ndarray):
            a_dirs = np.array([np.vdot(src, d) for d in directions])
        else:
            a_dirs = np.array([src(d) for d in directions])
        how = f"along {DIRECTIONS} random directions"
        outcome = _compare_vectors(a_dirs, num_dirs, mode, i, name, x, tol, order, label, how)
        if not outcome.ok and x.size <= LOCALISE:
            if localised is None:
                localised = elementwise()
            num, analytic = localised
            full = _compare_full(analytic(src), num, mode, "finite differences", i, name, x, tol,
                                 order, label, "element by element")
            if not full.ok:
                outcome = full
        outcomes.append(outcome)
    return outcomes


def _errors(a: np.ndarray, n: np.ndarray, tol: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _, rtol, atol = tol
    error = np.abs(a - n)
    bound = atol + rtol * np.abs(n)
    ratio = np.where(np.isnan(a) | np.isnan(n), np.inf, error / bound)
    return error, bound, ratio


def _compare_full(
    a: np.ndarray, n: np.ndarray, mode: str, reference: str, i: int, name: str, x: np.ndarray,
    tol: tuple[float, float, float], order: int, label: str, how: str,
) -> _Outcome:
    error, bound, ratio = _errors(a, n, tol)
    k = np.unravel_index(int(np.argmax(ratio)), a.shape) if a.size else ()
    outcome = _Outcome(
        mode, reference, i, name, x.shape, x.dtype, order, label, how, _element(name, k),
        float(a[k]) if a.size else 0.0, float(n[k]) if a.size else 0.0,
        float(error[k]) if a.size else 0.0, float(bound[k]) if a.size else 1.0,
        float(np.max(error, initial=0.0)), (a, n),
    )
    if a.size and not np.isfinite(ratio[k]):
        outcome.error = np.inf
    return _with_tol(outcome, tol)


def _compare_vectors(
    a: np.ndarray, n: np.ndarray, mode: str, i: int, name: str, x: np.ndarray,
    tol: tuple[float, float, float], order: int, label: str, how: str,
) -> _Outcome:
    error, bound, ratio = _errors(a, n, tol)
    k = int(np.argmax(ratio))
    outcome = _Outcome(
        mode, "finite differences", i, name, x.shape, x.dtype, order, label, how,
        f"random direction {k + 1}", float(a[k]), float(n[k]),
        float(error[k]) if np.isfinite(ratio[k]) else np.inf, float(bound[k]),
        float(np.max(error)), None,
    )
    return _with_tol(outcome, tol)


def _with_tol(outcome: _Outcome, tol: tuple[float, float, float]) -> _Outcome:
    outcome.rtol, outcome.atol = tol[1], tol[2]
    return outcome


# ===================================================================== helpers


def _as_args(args: Any, where: str) -> list[np.ndarray]:
    if isinstance(args, list):
        args = tuple(args)
    if not isinstance(args, tuple):
        args = (args,)
    out = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            raise TypeError(f"{where}: argument {i} is a traced Tensor; pass NumPy arrays")
        a = np.asarray(a)
        if a.dtype == object:
            raise TypeError(
                f"{where}: argument {i} is not an array ({type(args[i]).__name__}); pass arrays "
                "(flatten a pytree of parameters with ea.tree_flatten)"
            )
        out.append(a)
    return out


def _arg_names(fun: Callable, n: int) -> list[str]:
    """Parameter names of ``fun`` for its first ``n`` positional arguments, else ``args[i]``."""
    return parameter_names(fun, n, lambda i: f"args[{i}]")


def _element(name: str, index: tuple[int, ...]) -> str:
    """``W[2, 3]`` (or ``W`` for a scalar)."""
    if not index:
        return name
    return f"{name}[{', '.join(str(int(k)) for k in index)}]"


def _unit(shape: tuple[int, ...], k: int) -> np.ndarray:
    e = np.zeros(shape)
    e.flat[k] = 1.0
    return e


def _cotangents(out_leaves: list[Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Random cotangents; for a scalar output just 1, so reported values are the gradient's."""
    if len(out_leaves) == 1 and np.shape(out_leaves[0]) == ():
        return [np.ones((), dtype=_random_like(np.asarray(out_leaves[0]), rng).dtype)]
    return [_random_like(np.asarray(o), rng) for o in out_leaves]


def _random_like(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    return rng.standard_normal(np.shape(x)).astype(dtype)


def _tolerances(
    dtypes: Sequence[np.dtype], eps: float | None, atol: float | None, rtol: float | None
) -> tuple[float, float, float]:
    """(eps, rtol, atol): the defaults of the least precise floating dtype, unless given."""
    floats = [np.dtype(d) for d in dtypes if np.issubdtype(d, np.floating)]
    least = min(floats, key=lambda d: d.itemsize, default=np.dtype(np.float64))
    d_eps, d_rtol, d_atol = _DEFAULTS.get(least, _DEFAULTS[np.dtype(np.float64)])
    return (
        d_eps if eps is None else float(eps),
        d_rtol if rtol is None else float(rtol),
        d_atol if atol is None else float(atol),
    )


def _validated_gradients(result: Any, args: list[np.ndarray], names: list[str]) -> list[np.ndarray]:
    """grad_fun's result as one array per argument; a wrong count or shape is an error."""
    n = len(args)
    if isinstance(result, (tuple, list)):
        grads = list(result)
    elif n == 1:
        grads = [result]
    else:
        grads = [result]
    if len(grads) != n:
        got = (
            f"a {type(result).__name__} of {len(grads)} gradient(s)"
            if isinstance(result, (tuple, list))
            else f"a single gradient (shape {np.shape(result)})"
        )
        raise GradientCheckError(
            f"check_gradient: grad_fun returned {got}, but fun takes {n} argument(s) "
            f"({', '.join(names)}); return one gradient per argument"
            + (", as a tuple" if n > 1 else "")
        )
    out = []
    for g, x, name in zip(grads, args, names):
        if isinstance(g, Tensor):
            raise TypeError("check_gradient: grad_fun returned a traced Tensor; return NumPy arrays")
        g = np.asarray(g)
        if g.shape != x.shape:
            hint = ""
            if x.ndim >= 2 and g.shape == x.shape[::-1]:
                hint = f" (the transposed shape: is it d/d{name}^T?)"
            raise GradientCheckError(
                f"check_gradient: grad_fun's gradient for {name} has shape {g.shape}, but {name} "
                f"has shape {x.shape}{hint}; a gradient has the shape of its argument"
            )
        out.append(g)
    return out


def _einsumad_gradient(fun: Callable, args: list[np.ndarray]) -> tuple | None:
    """einsumad's gradient of ``fun``, or None when ``fun`` cannot be traced."""
    traced: list[bool] = []

    def probe(*a: Any) -> Any:
        out = fun(*a)
        traced.append(isinstance(out, Tensor))
        return out

    try:
        out, vjp_fn = vjp(probe, *args)
    except (TypeError, AttributeError):
        return None
    if not traced or not traced[0] or np.shape(out) != ():
        return None
    return vjp_fn(np.ones((), dtype=np.asarray(out).dtype))
