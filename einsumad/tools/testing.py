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
* **Finite differences in float64, and tolerances of the reference.** The
  floating-point arguments are upcast to float64 copies, and the analytic
  derivatives are compared with the finite differences on those copies:
  ``eps``, ``rtol`` and ``atol`` follow the precision of that reference (the
  dtype ``fun`` returns on float64 arguments: float64 gives 1e-5, 1e-5, 1e-5;
  float32 1e-3, 2e-3, 2e-3), never the dtype of the user's arguments, so a
  gradient 0.2 % off fails on float32 arguments too. Arguments in a lower
  precision (float32) are checked once more: the derivatives evaluated on them
  must agree with those evaluated in float64, within the tolerances of their
  own dtype. An element fails when ``|analytic - numeric| > atol + rtol * |numeric| + noise``,
  where ``noise`` is the rounding error of the finite difference itself, about
  ``eps * S / step`` with ``S`` the sum of the absolute terms of ``<v, y>`` (``|f|`` for a
  scalar loss): a loss of 1e8 or a sum of a million products is not blamed on the
  rule. Where that noise matters, a failing element gets a wider step (up to 1000
  times), whose rounding plus estimated truncation error is least.
* **Kinks.** Where an element fails, the one-sided differences are compared:
  if they disagree, ``fun`` has a kink within the step (a ``relu`` whose
  pre-activation is 1e-6 from 0). The step is shrunk until the one-sided
  differences agree, and the central difference at that step is the
  reference. If they never agree, the kink is at the point itself, where no
  derivative exists: the analytic value passes if it lies from one one-sided
  derivative to the other (a generalised gradient: relu'(0) in [0, 1]), and the
  message says so when it does not.
* **Pytrees.** Arguments may be nested dicts, lists and tuples of arrays
  (``params = {"W1": ..., "b1": ...}``); every leaf is checked and named by its
  path (``params['W1'][3, 7]``).
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
from ..core.general import RuleError
from ..core.names import parameter_names
from ..core.pytree import TreeDef, leaf_expression, tree_flatten, tree_unflatten
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
#: Failing elements examined for a kink (and given a finer reference) per comparison.
LOOK_CLOSER = 64

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
_FLOAT64 = "the same derivative in float64"


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
        args: the arguments, a tuple (a list counts as a tuple; a single array
            or dict is one argument). Each is an array or a pytree of arrays
            (nested dicts, lists, tuples); integer leaves are held constant.
        order: 1 or 2 (order 2 runs only once order 1 passes).
        modes: a subset of ``("rev", "fwd")``.
        eps: the finite-difference step; by the precision of the reference when None.
        atol: absolute tolerance; by the precision of the reference when None.
        rtol: relative tolerance; by the precision of the reference when None.
        seed: seed of the random cotangents and directions.

    Raises:
        GradientCheckError: (an ``AssertionError``) on a mismatch. The message
            names the mode, the argument and its worst element (``W[2, 3]``,
            ``params['W1'][3, 7]``), the analytic and numeric values, and whether
            the other modes agree; or says why a mode cannot run (forward mode
            of a primitive whose VJP is written in NumPy and which has no JVP).

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
    if report.failed:
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
    argument); an argument may be a pytree (``params = {"W1": ..., "b1": ...}``),
    and its gradient is then a pytree of the same structure. The gradients are
    compared

    * with central finite differences of ``fun`` in float64, always, with the
      tolerances of that float64 reference (for float32 arguments too, whose
      gradients must in addition agree with those computed on float64 copies,
      within float32 tolerances);
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
            argument, each of its argument's shape (and pytree structure).
        args: a tuple of arrays or pytrees of arrays (a single array or dict is
            allowed).
        eps: the finite-difference step; by the precision of the reference when None.
        atol: absolute tolerance; by the precision of the reference when None.
        rtol: relative tolerance; by the precision of the reference when None.
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
    args = _as_args(args)
    leaves = _Leaves.of(args, _arg_names(fun, len(args)), "check_gradient")
    for a, name in zip(leaves.arrays, leaves.names):
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(
                f"check_gradient: argument {name} has dtype {a.dtype}; every argument is "
                "differentiated, so pass floating-point arrays"
            )
    value = np.asarray(fun(*args))
    if value.shape != () or not np.issubdtype(value.dtype, np.number):
        raise TypeError(
            f"check_gradient: fun must return a scalar, but it returned shape {value.shape}; "
            "for other outputs use ea.check_grads"
        )
    leaves64 = [np.array(a, dtype=np.float64) for a in leaves.arrays]
    args64 = leaves.rebuild(leaves64)
    reference = np.asarray(fun(*args64))  # what finite differences evaluate
    given64 = _validated_gradients(grad_fun(*args64), args, leaves)
    tol = _tolerances([reference.dtype], eps, atol, rtol)
    ref_eps = _machine_eps([reference.dtype])
    ours = _einsumad_gradient(fun, args64, leaves)
    rng = np.random.default_rng(seed)

    def pairing(*a: np.ndarray) -> np.ndarray:
        return np.atleast_1d(np.asarray(fun(*leaves.rebuild(a)), dtype=np.float64)).ravel()

    report = _Report("check_gradient")
    for i, (x, name) in enumerate(zip(leaves.arrays, leaves.names)):
        sources: dict[str, Any] = {"grad_fun": np.asarray(given64[i], dtype=np.float64)}
        if ours is not None:
            sources["einsumad"] = np.asarray(ours[i], dtype=np.float64)
        report.outcomes += _check_argument(
            pairing, leaves64, i, x, name, sources, tol, rng, order=1, label="fun", ref_eps=ref_eps
        )
        if ours is not None:
            report.outcomes.append(
                _compare_full(
                    sources["grad_fun"], sources["einsumad"], "grad_fun", "einsumad's gradient",
                    i, name, x, tol, 1, "fun", "element by element",
                )
            )
    if any(a.dtype != np.float64 for a in leaves.arrays):
        # The arguments as given (float32): grad_fun must agree with itself in float64.
        given = _validated_gradients(grad_fun(*args), args, leaves)
        tol_own = _tolerances([a.dtype for a in leaves.arrays] + [value.dtype], eps, atol, rtol)
        for i, (x, name) in enumerate(zip(leaves.arrays, leaves.names)):
            report.outcomes.append(
                _compare_full(
                    np.asarray(given[i], dtype=np.float64), np.asarray(given64[i], dtype=np.float64),
                    "grad_fun", _FLOAT64, i, name, x, tol_own, 1, "fun", "element by element",
                )
            )
    if report.failed:
        raise GradientCheckError(report.message())


# ===================================================================== the engine


@dataclass
class _Outcome:
    """One mode compared with one reference for one argument."""

    mode: str
    reference: str  # "finite differences", "einsumad's gradient" or _FLOAT64
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
    note: str | None = None  # what a closer look at the worst element found (a kink)

    @property
    def ok(self) -> bool:
        return self.error <= self.bound


@dataclass
class _Report:
    """All outcomes of one check, the modes that could not run, and the failure message."""

    tool: str
    outcomes: list[_Outcome] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # why a mode could not run

    @property
    def failures(self) -> list[_Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def failed(self) -> bool:
        return bool(self.failures or self.broken)

    def message(self) -> str:
        lines = list(self.broken)
        if not self.failures:
            if self.broken and any(o.mode == "rev" for o in self.outcomes):
                lines.append("  reverse mode ('rev') agrees with finite differences for every argument")
            return "\n".join(lines)
        # The headline: lowest order first, then the first argument, then finite
        # differences (the independent truth) before the other references.
        failures = sorted(
            self.failures,
            key=lambda o: (o.order, o.position, o.reference != "finite differences"),
        )
        head = failures[0]
        what = "" if head.label == "fun" else f" of {head.label} (order {head.order})"
        lines += [
            f"{self.tool}: {_MODE_NAMES.get(head.mode, head.mode)}{what} disagrees with "
            f"{head.reference} for argument {head.name} (shape {head.shape}, {head.dtype})",
            f"  worst element {head.where}: {head.mode} gives {head.analytic:.6g}, "
            f"{head.reference} give{'s' if head.reference != 'finite differences' else ''} "
            f"{head.numeric:.6g} (|difference| {head.error:.3g} > tolerance {head.bound:.2g})",
        ]
        if head.how != "element by element":
            lines[-1] = lines[-1].replace(
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
    if head.note is not None:
        hints.append(head.note)
    elif head.full is not None:
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
    if head.reference == _FLOAT64:
        hints.append(
            f"the derivative evaluated on the {head.dtype} arguments as given differs from the "
            "same derivative on float64 copies by more than "
            f"{head.dtype} rounding: look for a step that loses precision or changes dtype"
        )
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
    args = _as_args(args)
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    unknown = [m for m in modes if m not in ("rev", "fwd")]
    if unknown or not modes:
        raise ValueError(f"check_grads: modes must be a non-empty subset of ('rev', 'fwd'), got {modes!r}")
    if order not in (1, 2):
        raise ValueError(f"check_grads: order must be 1 or 2, got {order!r}")
    arg_names = list(names) if names is not None else _arg_names(fun, len(args))
    leaves = _Leaves.of(args, arg_names, "check_grads")
    flat_fun: Callable[..., Any] = lambda *xs: fun(*leaves.rebuild(xs))  # noqa: E731
    flat_args, flat_names = list(leaves.arrays), list(leaves.names)
    if any(is_complex(a) for a in flat_args):
        flat_fun, flat_args, flat_names = _realified(flat_fun, flat_args, flat_names)
    floating = [i for i, a in enumerate(flat_args) if np.issubdtype(a.dtype, np.floating)]
    if not floating:
        raise TypeError("check_grads: no floating-point argument to differentiate")

    def fun_d(*diff_args: Any) -> Any:
        full: list[Any] = list(flat_args)
        for i, a in zip(floating, diff_args):
            full[i] = a
        return flat_fun(*full)

    args_d = [flat_args[i] for i in floating]
    args64 = [np.array(a, dtype=np.float64) for a in args_d]
    names_d = [flat_names[i] for i in floating]
    # The reference is finite differences on float64 copies: its precision is the
    # dtype fun returns there, and the tolerances follow it.
    ref_dtypes = [np.asarray(leaf).dtype for leaf in tree_flatten(fun_d(*args64))[0]]
    tol = _tolerances(ref_dtypes, eps, atol, rtol)
    ref_eps = _machine_eps(ref_dtypes)
    rng = np.random.default_rng(seed)
    report = _Report("check_grads")
    modes = _runnable(fun_d, args64, modes, report)
    if not modes:
        return report
    report.outcomes = _check_order1(
        fun_d, args64, names_d, modes, tol, rng, 1, "fun", floating, shown=args_d, ref_eps=ref_eps
    )
    if any(a.dtype != np.float64 for a in args_d):
        out_dtypes = [np.asarray(leaf).dtype for leaf in tree_flatten(fun_d(*args_d))[0]]
        tol_own = _tolerances([a.dtype for a in args_d] + out_dtypes, eps, atol, rtol)
        report.outcomes += _check_precision(fun_d, args_d, args64, names_d, modes, tol_own, rng, floating)
    if order == 2 and not report.failed:
        for derived, label in _derivatives(fun_d, args64, names_d, modes, rng):
            report.outcomes += _check_order1(
                derived, args64, names_d, modes, tol, rng, 2, label, floating, shown=args_d,
                ref_eps=ref_eps,
            )
    return report


def _runnable(fun: Callable, args: list[np.ndarray], modes: tuple[str, ...], report: _Report) -> tuple[str, ...]:
    """The modes that can run on ``fun``; forward mode may not, when a primitive has no
    JVP and its VJP is written in NumPy (forward mode transposes the VJP)."""
    if "rev" in modes:
        try:
            vjp(fun, *args)[1](tree_unflatten(*_unit_cotangent(fun(*args))))
        except NotImplementedError as error:  # a primitive with a JVP only
            report.broken.append(
                f"{report.tool}: reverse mode ('rev') cannot differentiate fun: {error}; reverse "
                "mode needs a VJP (declare one with ea.defvjp), or check forward mode alone with "
                "modes=('fwd',)"
            )
            modes = tuple(m for m in modes if m != "rev")
        except Exception:  # noqa: BLE001 - anything else is raised by the check itself
            pass
    if "fwd" not in modes:
        return modes
    try:
        jvp(fun, tuple(args), tuple(np.ones_like(a) for a in args))
    except RuleError as error:
        report.broken.append(f"{report.tool}: forward mode ('fwd') cannot differentiate fun: {error}")
        return tuple(m for m in modes if m != "fwd")
    return modes


def _unit_cotangent(out: Any) -> tuple[TreeDef, list[np.ndarray]]:
    leaves, treedef = tree_flatten(out)
    return treedef, [np.ones(np.shape(o), dtype=np.result_type(np.asarray(o).dtype, np.float32)) for o in leaves]


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
        if is_complex(a):
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
    shown: list[np.ndarray] | None = None,
    ref_eps: float = float(np.finfo(np.float64).eps),
) -> list[_Outcome]:
    """Every mode against finite differences of ``<v, fun(*args)>``, argument by argument.

    ``args`` are the float64 copies everything is evaluated on; ``shown`` the
    arguments as the user gave them (their shapes and dtypes name them in messages).
    """
    shown = args if shown is None else shown
    out_leaves, out_def = tree_flatten(fun(*args))
    cot_leaves = _cotangents(out_leaves, rng)
    cot64 = [np.asarray(c, dtype=np.float64) for c in cot_leaves]

    def pairing(*a: np.ndarray) -> np.ndarray:
        return _terms(cot64, tree_flatten(fun(*a))[0])

    rev_grads = None
    if "rev" in modes:
        rev_grads = vjp(fun, *args)[1](tree_unflatten(out_def, cot_leaves))
    args64 = [np.array(a, dtype=np.float64) for a in args]
    outcomes: list[_Outcome] = []
    for i, x in enumerate(shown):
        sources: dict[str, Any] = {}
        if rev_grads is not None:
            sources["rev"] = np.asarray(rev_grads[i], dtype=np.float64)
        if "fwd" in modes:
            sources["fwd"] = _forward_directional(fun, args, i, cot64)
        found = _check_argument(
            pairing, args64, i, x, names[i], sources, tol, rng, order, label, ref_eps=ref_eps
        )
        for o in found:
            o.position = positions[i]
        outcomes += found
    return outcomes


def _check_precision(
    fun: Callable,
    args: list[np.ndarray],
    args64: list[np.ndarray],
    names: list[str],
    modes: Sequence[str],
    tol: tuple[float, float, float],
    rng: np.random.Generator,
    positions: list[int],
) -> list[_Outcome]:
    """Every mode evaluated on the arguments as given (e.g. float32) against the same
    mode on their float64 copies, within the tolerances of the arguments' own dtype.

    A kink closer to the point than the step of the arguments' dtype (a relu
    pre-activation of 1e-7, which float32 rounding may put on the other side)
    lets the two evaluations take different sides: there a one-sided derivative
    of the float64 function passes (:class:`_NearKink`)."""
    out_leaves, out_def = tree_flatten(fun(*args))
    cot_leaves = _cotangents(out_leaves, rng)
    cot64 = [np.asarray(c, dtype=np.float64) for c in cot_leaves]
    rev = rev64 = None
    if "rev" in modes:
        rev = vjp(fun, *args)[1](tree_unflatten(out_def, cot_leaves))
        rev64 = vjp(fun, *args64)[1](tree_unflatten(out_def, cot64))

    def pairing(*a: np.ndarray) -> np.ndarray:
        return _terms(cot64, tree_flatten(fun(*a))[0])

    outcomes: list[_Outcome] = []
    for i, x in enumerate(args):
        if x.size <= SMALL:
            directions = [_unit(x.shape, k) for k in range(x.size)]
            how = "element by element"
        else:
            directions = [_random_direction(x, rng) for _ in range(DIRECTIONS)]
            how = f"along {DIRECTIONS} random directions"
        near = _NearKink(pairing, args64, i, tol, float(np.finfo(np.float64).eps))
        for mode in modes:
            if mode == "rev" and rev is not None and rev64 is not None:
                low = np.array([float(np.vdot(np.asarray(rev[i], dtype=np.float64), d)) for d in directions])
                high = np.array([float(np.vdot(np.asarray(rev64[i], dtype=np.float64), d)) for d in directions])
            else:
                along, along64 = _forward_directional(fun, args, i, cot64), _forward_directional(fun, args64, i, cot64)
                low = np.array([along(d) for d in directions])
                high = np.array([along64(d) for d in directions])
            near.values = high
            if how == "element by element":
                outcome = _judged(
                    low.reshape(x.shape), high.reshape(x.shape),
                    lambda k: near.closer(directions[k], k), near, mode,
                    lambda k: _element(names[i], np.unravel_index(k, x.shape)),
                    lambda a_, n_, accepted, notes, noise, mode=mode: _compare_full(
                        a_, n_, mode, _FLOAT64, i, names[i], x, tol, 1, "fun", how, accepted, notes, noise
                    ),
                )
            else:
                outcome = _judged(
                    low, high, lambda k: near.closer(directions[k], k), near, mode,
                    lambda k: f"random direction {k + 1}",
                    lambda a_, n_, accepted, notes, noise, mode=mode: _compare_vectors(
                        a_, n_, mode, i, names[i], x, tol, 1, "fun", how, accepted, notes, noise
                    ),
                )
                outcome.reference = _FLOAT64
            outcome.position = positions[i]
            outcomes.append(outcome)
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


# ----------------------------------------------------------------- finite differences and kinks

#: The rounding error of one evaluation of the pairing, in units of the rounding unit
#: times the sum of the absolute values of its terms (a product per term, a few
#: roundings in computing each output of fun).
_ROUNDING = 4.0


def _terms(cot64: list[np.ndarray], leaves: list[Any]) -> np.ndarray:
    """The terms ``v_j * y_j`` of the pairing ``<v, y>``, as one float64 vector: finite
    differences subtract them term by term before summing, so the large common part
    of ``y(x + h d)`` and ``y(x - h d)`` cancels exactly instead of rounding a sum."""
    parts = [
        (np.asarray(c, dtype=np.float64) * np.asarray(o, dtype=np.float64)).ravel()
        for c, o in zip(cot64, leaves)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


@dataclass
class _Closer:
    """What a closer look at one failing element (or direction) found.

    ``reference`` is a better central difference (None: there is nothing
    within the step, the first one stands); ``kink`` the (left, right) one-sided
    differences where they never agree, however small the step: the point
    itself is a kink; ``nan`` the function values when one of them is NaN.
    ``noise`` bounds the error of ``reference`` (rounding, and for a wider step
    its truncation error).
    """

    reference: float | None
    step: float = 0.0
    kink: tuple[float, float] | None = None
    slack: float = 0.0  # rounding in the one-sided differences at ``step``
    noise: float = 0.0
    nan: tuple[float, float, float] | None = None  # fun at x - h, x, x + h
    curved: bool = False  # the sides disagreed by what curvature explains, not a kink


class _Differences:
    """Central differences of ``pairing`` along directions in argument ``i``, and the
    closer look at a direction that fails: one-sided differences that disagree
    beyond what the curvature explains mean a kink within the step; a reference
    whose rounding error is too large gets a wider step.

    The rounding error of a difference is estimated from the magnitudes summed:
    ``(f(x + h d) - f(x - h d)) / 2h`` is off by about ``eps * S / h``, with ``S``
    the sum of the absolute terms of the pairing (``sum |v_j y_j|``; ``|f|`` for a
    scalar loss) and ``eps`` the rounding unit of the reference. A discrepancy
    within that estimate is never a failure.
    """

    def __init__(self, pairing: Callable[..., np.ndarray], args64: list[np.ndarray], i: int,
                 tol: tuple[float, float, float], ref_eps: float):
        self.pairing, self.args64, self.i = pairing, args64, i
        self.eps, self.rtol, self.atol = tol
        self.ref_eps = ref_eps
        # Below this step the reference's rounding would swamp the difference.
        self.floor = max(self.eps * 1e-5, 0.01 * float(np.sqrt(ref_eps)))
        self._t0: np.ndarray | None = None
        x = args64[i]
        self._xmax = float(np.max(np.abs(x), initial=0.0)) if x.size else 0.0

    def terms(self, d: np.ndarray, h: float) -> np.ndarray:
        if h == 0.0:
            if self._t0 is None:
                self._t0 = self.pairing(*self.args64)
            return self._t0
        moved = list(self.args64)
        moved[self.i] = self.args64[self.i] + h * d
        return self.pairing(*moved)

    def at(self, d: np.ndarray, h: float) -> float:
        return float(np.sum(self.terms(d, h)))

    def scale(self) -> float:
        """``S``: the sum of the absolute terms of the pairing at the point."""
        return float(np.sum(np.abs(self.terms(np.zeros(0), 0.0))))

    def noise(self, h: float, value: float = 0.0) -> float:
        """The rounding error of a central difference at step ``h`` (for a derivative
        near ``value``): the function values' rounding over the step, and the
        rounding of the moved point ``x + h d``, which changes the step itself."""
        return (
            _ROUNDING * self.ref_eps * self.scale() / h
            + 2 * float(np.finfo(np.float64).eps) * self._xmax / h * abs(value)
        )

    def _central(self, d: np.ndarray, h: float) -> float:
        return float(np.sum(self.terms(d, h) - self.terms(d, -h))) / (2 * h)

    def central(self, d: np.ndarray) -> float:
        return self._central(d, self.eps)

    def _sides(self, d: np.ndarray, h: float) -> tuple[float, float, bool, float]:
        t0, up, down = self.terms(d, 0.0), self.terms(d, h), self.terms(d, -h)
        left, right = float(np.sum(t0 - down)) / h, float(np.sum(up - t0)) / h
        slack = 2 * self.noise(h, max(abs(left), abs(right)))
        smooth = abs(right - left) <= self.atol + self.rtol * max(abs(left), abs(right)) + slack
        return left, right, smooth, slack

    def _nan(self, d: np.ndarray, h: float) -> tuple[float, float, float] | None:
        values = (self.at(d, -h), self.at(d, 0.0), self.at(d, h))
        return values if any(np.isnan(v) for v in values) else None

    def _curvature(self, jumps: list[tuple[float, float, float]]) -> bool:
        """Do the sides' disagreements ``right - left`` at successive steps shrink with
        the step, as ``h f''`` does for a smooth function (a kink's jump does not)?"""
        (h1, j1, s1), (h2, j2, s2) = jumps[-2], jumps[-1]
        predicted = j1 * h2 / h1  # h f'' with f'' from the wider step
        return abs(j2 - predicted) <= 0.5 * abs(predicted) + s1 * h2 / h1 + s2

    def closer(self, d: np.ndarray) -> _Closer:
        nan = self._nan(d, self.eps)
        if nan is not None:
            return _Closer(float("nan"), self.eps, nan=nan)
        left, right, smooth, slack = self._sides(d, self.eps)
        if smooth:
            return self._wider(d)
        h = self.eps
        jumps = [(h, right - left, slack)]
        while h / 10 >= self.floor * (1 - 1e-9):
            h /= 10
            left, right, smooth, slack = self._sides(d, h)
            jumps.append((h, right - left, slack))
            if smooth:  # the kink (or the curvature) was within the larger step only
                mid = (left + right) / 2
                return _Closer(mid, h, None, slack, self.noise(h, mid), curved=self._curvature(jumps))
            if self._curvature(jumps):  # a smooth function with a large second derivative
                mid = (left + right) / 2
                return _Closer(mid, h, None, slack, self.noise(h, mid) + abs(right - left) / 2, curved=True)
        # Non-smooth at every step the reference resolves: a kink at the point or
        # closer than the smallest step. (A smooth function's one-sided differences
        # straddle its derivative, so a right value passes there too.)
        return _Closer((left + right) / 2, h, (left, right), slack)

    def _wider(self, d: np.ndarray) -> _Closer:
        """Smooth at the step: if the reference's rounding error matters, a wider step
        (up to 1000 times) whose rounding plus truncation error is least, the
        truncation error estimated from the central difference at twice the step."""
        base = self._central(d, self.eps)
        noise = self.noise(self.eps, base)
        if noise <= 0.01 * (self.atol + self.rtol * abs(base)):
            return _Closer(None)
        best = _Closer(base, self.eps, noise=noise)
        h = self.eps
        for _ in range(3):
            h *= 10
            value, double = self._central(d, h), self._central(d, 2 * h)
            if np.isnan(value) or np.isnan(double):
                break
            # The truncation error of a central difference grows as h^2: the one at
            # 2h is off by about 4 times as much, so it estimates this one's.
            error = self.noise(h, value) + abs(double - value) / 3 + 2 * self.noise(2 * h, double)
            if error < best.noise:
                best = _Closer(value, h, noise=error)
        return best

    def accepts(self, look: _Closer, analytic: float) -> bool:
        """At a kink, any value from one one-sided derivative to the other passes (the
        generalised gradient: relu'(0) may be 0 or 1 or between, abs'(0) from -1 to 1)."""
        if look.kink is None:
            return False
        low, high = min(look.kink), max(look.kink)
        slack = self.atol + self.rtol * max(abs(low), abs(high)) + look.slack
        return low - slack <= analytic <= high + slack

    def note(self, look: _Closer, where: str, mode: str, analytic: float) -> str | None:
        if look.nan is not None:
            below, at, above = look.nan
            return (
                f"fun is NaN at or near {where} (the pairing of its output is {at:.6g} there, "
                f"{below:.6g} and {above:.6g} a step of {look.step:.1g} either side), so finite "
                "differences cannot check it there: check at a point where fun is finite"
            )
        if look.kink is not None:
            left, right = look.kink
            return (
                f"fun has a kink at {where} (or closer to it than {look.step:.1g}): the one-sided "
                f"differences disagree (left {left:.6g}, right {right:.6g}) for every step down "
                f"to {look.step:.1g}, so finite differences cannot check it there; {mode} gives "
                f"{analytic:.6g}, outside the range of the one-sided derivatives (where a "
                "generalised gradient lies). Check at a point away from the kink"
            )
        if look.curved or look.step >= self.eps:
            return None  # curvature, or a wider step against rounding: nothing to say
        return (
            f"fun has a kink within the step {self.eps:.1g} of {where}: the one-sided "
            f"differences disagree at that step by more than its curvature explains, so the "
            f"reference is the central difference at step {look.step:.1g}, where they agree"
        )


class _NearKink(_Differences):
    """For :func:`_check_precision`: the float64 function's one-sided differences at
    the step of the arguments' own dtype. If they disagree, a kink lies closer to
    the point than that dtype resolves, and either side's derivative passes."""

    values: np.ndarray  # the float64 evaluation, which stays the reference

    def closer(self, d: np.ndarray, k: int = 0) -> _Closer:  # type: ignore[override]
        left, right, smooth, slack = self._sides(d, self.eps)
        if smooth:
            return _Closer(None)
        left2, right2, smooth2, slack2 = self._sides(d, self.eps / 10)
        if self._curvature([(self.eps, right - left, slack), (self.eps / 10, right2 - left2, slack2)]):
            return _Closer(None)  # the sides disagree by the curvature, not across a kink
        return _Closer(float(self.values.reshape(-1)[k]), self.eps, (left, right), slack + self.rtol * abs(right - left))

    def note(self, look: _Closer, where: str, mode: str, analytic: float) -> str | None:
        left, right = look.kink or (0.0, 0.0)
        return (
            f"fun has a kink within {self.eps:.1g} of {where} (one-sided differences of the "
            f"float64 function: left {left:.6g}, right {right:.6g}), and {mode} gives "
            f"{analytic:.6g}, outside their range"
        )


def _check_argument(
    pairing: Callable[..., np.ndarray],
    args64: list[np.ndarray],
    i: int,
    x: np.ndarray,
    name: str,
    sources: dict[str, Any],
    tol: tuple[float, float, float],
    rng: np.random.Generator,
    order: int,
    label: str,
    ref_eps: float = float(np.finfo(np.float64).eps),
) -> list[_Outcome]:
    """Compare each source (a full gradient array, or a directional-derivative
    function) with central differences of ``pairing`` in argument ``i``; a failing
    element gets a closer look (:class:`_Differences`)."""
    diffs = _Differences(pairing, args64, i, tol, ref_eps)
    looks: dict[int, _Closer] = {}

    def look(k: int, direction: np.ndarray) -> _Closer:
        if k not in looks:
            looks[k] = diffs.closer(direction)
        return looks[k]

    def elementwise() -> tuple[np.ndarray, Callable[[Any], np.ndarray]]:
        num = np.array([diffs.central(_unit(x.shape, k)) for k in range(x.size)]).reshape(x.shape)

        def analytic(src: Any) -> np.ndarray:
            if isinstance(src, np.ndarray):
                return src
            return np.array([src(_unit(x.shape, k)) for k in range(x.size)]).reshape(x.shape)

        return num, analytic

    def judged_full(a: np.ndarray, num: np.ndarray, mode: str) -> _Outcome:
        return _judged(
            a, num, lambda k: look(k, _unit(x.shape, k)), diffs, mode,
            lambda k: _element(name, np.unravel_index(k, x.shape)),
            lambda a_, n_, accepted, notes, noise: _compare_full(
                a_, n_, mode, "finite differences", i, name, x, tol, order, label,
                "element by element", accepted, notes, noise,
            ),
            diffs.noise(diffs.eps, float(np.max(np.abs(num), initial=0.0))),
        )

    outcomes = []
    if x.size <= SMALL:
        num, analytic = elementwise()
        for mode, src in sources.items():
            outcomes.append(judged_full(analytic(src), num, mode))
        return outcomes

    directions = [_random_direction(x, rng) for _ in range(DIRECTIONS)]
    num_dirs = np.array([diffs.central(d) for d in directions])
    localised: tuple[np.ndarray, Callable] | None = None
    how = f"along {DIRECTIONS} random directions"
    for mode, src in sources.items():
        if isinstance(src, np.ndarray):
            a_dirs = np.array([np.vdot(src, d) for d in directions])
        else:
            a_dirs = np.array([src(d) for d in directions])
        dir_looks: dict[int, _Closer] = {}

        def look_dir(k: int) -> _Closer:
            if k not in dir_looks:
                dir_looks[k] = diffs.closer(directions[k])
            return dir_looks[k]

        outcome = _judged(
            a_dirs, num_dirs, look_dir, diffs, mode, lambda k: f"random direction {k + 1}",
            lambda a_, n_, accepted, notes, noise, mode=mode: _compare_vectors(
                a_, n_, mode, i, name, x, tol, order, label, how, accepted, notes, noise
            ),
            diffs.noise(diffs.eps, float(np.max(np.abs(num_dirs), initial=0.0))),
        )
        if not outcome.ok and x.size <= LOCALISE:
            if localised is None:
                localised = elementwise()
            num, analytic = localised
            full = judged_full(analytic(src), num, mode)
            if not full.ok:
                outcome = full
        outcomes.append(outcome)
    return outcomes


def _judged(
    a: np.ndarray,
    num: np.ndarray,
    look: Callable[[int], _Closer],
    diffs: _Differences,
    mode: str,
    where: Callable[[int], str],
    compare: Callable[..., _Outcome],
    noise: float = 0.0,
) -> _Outcome:
    """Compare ``a`` with ``num``, looking closer at the worst failing entries first:
    a kink within the step gets a finer reference, a kink at the point accepts a
    one-sided derivative, a reference swamped by rounding a wider step. Every entry
    is allowed the rounding error of its reference (``noise`` for the first one).
    Stops at the first entry that fails with nothing better within its step."""
    shape = np.shape(a)  # entries by flat index (``.flat`` stops at 32 dimensions)
    a = np.asarray(a).reshape(-1)
    num = np.array(num, dtype=np.float64).reshape(-1)
    slack = np.full(a.shape, float(noise))
    accepted = np.zeros(a.shape, dtype=bool)
    notes: dict[int, str] = {}
    looked: set[int] = set()
    tol = (diffs.eps, diffs.rtol, diffs.atol)
    for _ in range(LOOK_CLOSER):
        _, _, ratio = _errors(a, num, tol)  # without the noise: entries worth a closer look
        ratio = np.where(accepted, 0.0, ratio).ravel()
        order = [k for k in np.argsort(-ratio, kind="stable") if ratio[k] > 1 and int(k) not in looked]
        if not order:
            break
        k = int(order[0])
        looked.add(k)
        found = look(k)
        if found.reference is None:
            if _errors(a, num, tol, slack)[2][k] > 1:
                break  # nothing within the step: a plain mismatch
            continue
        num[k] = found.reference
        slack[k] = found.noise
        if diffs.accepts(found, float(a[k])):
            accepted[k] = True
        note = diffs.note(found, where(k), mode, float(a[k]))
        if note is not None:
            notes[k] = note
    return compare(a.reshape(shape), num.reshape(shape), accepted.reshape(shape), notes, slack.reshape(shape))


def _errors(
    a: np.ndarray, n: np.ndarray, tol: tuple[float, float, float], noise: np.ndarray | float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _, rtol, atol = tol
    error = np.abs(a - n)
    noise = np.where(np.isfinite(noise), noise, 0.0)  # no allowance from a NaN or infinite value of fun
    bound = atol + rtol * np.abs(n) + noise
    ratio = np.where(np.isnan(a) | np.isnan(n), np.inf, error / bound)
    return error, bound, ratio


def _compare_full(
    a: np.ndarray, n: np.ndarray, mode: str, reference: str, i: int, name: str, x: np.ndarray,
    tol: tuple[float, float, float], order: int, label: str, how: str,
    accepted: np.ndarray | None = None, notes: dict[int, str] | None = None,
    noise: np.ndarray | float = 0.0,
) -> _Outcome:
    error, bound, ratio = _errors(a, n, tol, noise)
    if accepted is not None:
        ratio = np.where(accepted, 0.0, ratio)
    k = np.unravel_index(int(np.argmax(ratio)), a.shape) if a.size else ()
    outcome = _Outcome(
        mode, reference, i, name, x.shape, x.dtype, order, label, how, _element(name, k),
        float(a[k]) if a.size else 0.0, float(n[k]) if a.size else 0.0,
        float(error[k]) if a.size else 0.0, float(bound[k]) if a.size else 1.0,
        float(np.max(error, initial=0.0)), (a, n),
    )
    if a.size and not np.isfinite(ratio[k]):
        outcome.error = np.inf
    if a.size and accepted is not None and accepted[k]:
        outcome.error = 0.0
    if a.size and notes:
        outcome.note = notes.get(int(np.ravel_multi_index(k, a.shape)) if a.ndim else 0)
    return _with_tol(outcome, tol)


def _compare_vectors(
    a: np.ndarray, n: np.ndarray, mode: str, i: int, name: str, x: np.ndarray,
    tol: tuple[float, float, float], order: int, label: str, how: str,
    accepted: np.ndarray | None = None, notes: dict[int, str] | None = None,
    noise: np.ndarray | float = 0.0,
) -> _Outcome:
    error, bound, ratio = _errors(a, n, tol, noise)
    if accepted is not None:
        ratio = np.where(accepted, 0.0, ratio)
    k = int(np.argmax(ratio))
    outcome = _Outcome(
        mode, "finite differences", i, name, x.shape, x.dtype, order, label, how,
        f"random direction {k + 1}", float(a[k]), float(n[k]),
        float(error[k]) if np.isfinite(ratio[k]) else np.inf, float(bound[k]),
        float(np.max(error)), None,
    )
    if accepted is not None and accepted[k]:
        outcome.error = 0.0
    if notes:
        outcome.note = notes.get(k)
    return _with_tol(outcome, tol)


def _with_tol(outcome: _Outcome, tol: tuple[float, float, float]) -> _Outcome:
    outcome.rtol, outcome.atol = tol[1], tol[2]
    return outcome


# ===================================================================== helpers


def _as_args(args: Any) -> tuple:
    """The arguments as a tuple: a list counts as a tuple, anything else is one argument."""
    if isinstance(args, list):
        return tuple(args)
    if not isinstance(args, tuple):
        return (args,)
    return args


@dataclass
class _Leaves:
    """The arguments flattened to their array leaves, each named by its path."""

    arrays: list[np.ndarray]
    names: list[str]  # "W", "params['W1']", "layers[0]['b']"
    defs: list[TreeDef]  # one per argument
    counts: list[int]  # leaves per argument
    arg_names: list[str]

    @classmethod
    def of(cls, args: tuple, arg_names: Sequence[str], where: str) -> _Leaves:
        arrays: list[np.ndarray] = []
        names: list[str] = []
        defs: list[TreeDef] = []
        counts: list[int] = []
        for arg, arg_name in zip(args, arg_names):
            leaves, treedef = tree_flatten(arg)
            for leaf, path in zip(leaves, treedef.paths()):
                name = leaf_expression(arg_name, path)
                if isinstance(leaf, Tensor):
                    raise TypeError(f"{where}: argument {name} is a traced Tensor; pass NumPy arrays")
                a = np.asarray(leaf)
                if a.dtype == object:
                    raise TypeError(
                        f"{where}: argument {name} is not an array ({type(leaf).__name__}); pass "
                        "arrays, or dicts, lists and tuples of arrays"
                    )
                arrays.append(a)
                names.append(name)
            defs.append(treedef)
            counts.append(len(leaves))
        return cls(arrays, names, defs, counts, list(arg_names))

    def rebuild(self, values: Sequence[Any]) -> tuple:
        """The arguments with these leaves, in the user's structure."""
        out, start = [], 0
        for treedef, count in zip(self.defs, self.counts):
            out.append(tree_unflatten(treedef, list(values[start : start + count])))
            start += count
        return tuple(out)


def _arg_names(fun: Callable, n: int) -> list[str]:
    """Parameter names of ``fun`` for its first ``n`` positional arguments, else ``args[i]``."""
    return parameter_names(fun, n, lambda i: f"args[{i}]")


def _element(name: str, index: tuple[Any, ...]) -> str:
    """``W[2, 3]`` (or ``W`` for a scalar)."""
    if not index:
        return name
    return f"{name}[{', '.join(str(int(k)) for k in index)}]"


def _unit(shape: tuple[int, ...], k: int) -> np.ndarray:
    e = np.zeros(shape)
    e.reshape(-1)[k] = 1.0  # a view; ``e.flat`` is limited to 32 dimensions
    return e


def _random_direction(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random unit direction, representable in ``x``'s dtype."""
    d = rng.standard_normal(x.shape)
    return (d / np.linalg.norm(d)).astype(x.dtype).astype(np.float64)


def _cotangents(out_leaves: list[Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Random cotangents; for a scalar output just 1, so reported values are the gradient's."""
    if len(out_leaves) == 1 and np.shape(out_leaves[0]) == ():
        return [np.ones((), dtype=_random_like(np.asarray(out_leaves[0]), rng).dtype)]
    return [_random_like(np.asarray(o), rng) for o in out_leaves]


def _random_like(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    return rng.standard_normal(np.shape(x)).astype(dtype)


def _least_precise(dtypes: Sequence[np.dtype]) -> np.dtype:
    floats = [np.dtype(d) for d in dtypes if np.issubdtype(d, np.floating)]
    return min(floats, key=lambda d: d.itemsize, default=np.dtype(np.float64))


def _tolerances(
    dtypes: Sequence[np.dtype], eps: float | None, atol: float | None, rtol: float | None
) -> tuple[float, float, float]:
    """(eps, rtol, atol): the defaults of the least precise floating dtype, unless given."""
    d_eps, d_rtol, d_atol = _DEFAULTS.get(_least_precise(dtypes), _DEFAULTS[np.dtype(np.float64)])
    return (
        d_eps if eps is None else float(eps),
        d_rtol if rtol is None else float(rtol),
        d_atol if atol is None else float(atol),
    )


def _machine_eps(dtypes: Sequence[np.dtype]) -> float:
    """The rounding unit of the least precise floating dtype (float64 when none)."""
    return float(np.finfo(_least_precise(dtypes)).eps)


def _validated_gradients(result: Any, args: tuple, leaves: _Leaves) -> list[np.ndarray]:
    """grad_fun's result as one array per leaf; a wrong count, structure or shape is an error."""
    n = len(args)
    names = leaves.arg_names
    if n == 1 and not (
        isinstance(result, (tuple, list)) and tree_flatten(result)[1] != leaves.defs[0]
    ):
        per_arg = [result]
    elif isinstance(result, (tuple, list)) and len(result) == n:
        per_arg = list(result)
    else:
        got = (
            f"a {type(result).__name__} of {len(result)} gradient(s)"
            if isinstance(result, (tuple, list))
            else f"a single gradient (shape {np.shape(result)})"
        )
        raise GradientCheckError(
            f"check_gradient: grad_fun returned {got}, but fun takes {n} argument(s) "
            f"({', '.join(names)}); return one gradient per argument"
            + (", as a tuple" if n > 1 else "")
        )
    grads: list[Any] = []
    for g, treedef, name in zip(per_arg, leaves.defs, names):
        g_leaves, g_def = tree_flatten(g)
        if g_def != treedef:
            raise GradientCheckError(
                f"check_gradient: grad_fun's gradient for {name} has the structure {g_def}, but "
                f"{name} has {treedef}; return each gradient in the structure of its argument"
            )
        grads += g_leaves
    out = []
    for g, x, name in zip(grads, leaves.arrays, leaves.names):
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


def _einsumad_gradient(fun: Callable, args: tuple, leaves: _Leaves) -> list | None:
    """einsumad's gradient of ``fun`` per leaf, or None when ``fun`` cannot be traced."""
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
    flat: list[Any] = []
    for g, treedef in zip(vjp_fn(np.ones((), dtype=np.asarray(out).dtype)), leaves.defs):
        g_leaves, g_def = tree_flatten(g)
        if g_def != treedef:
            return None
        flat += g_leaves
    return flat
