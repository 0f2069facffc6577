"""The tape: traced values, trace levels, and :func:`bind`.

The mechanism follows HIPS/autograd. A transformation (``grad``, ``jvp``, ...)
opens a :class:`Trace` one level above any trace already open *in this thread*
and wraps its inputs in :class:`Tensor` boxes of that trace. Every primitive call
goes through :func:`bind`, which peels off the boxes of the highest trace among
its arguments, evaluates the primitive on what is inside (which may still be
boxes of lower traces, so nesting works), and boxes the result:

* in a reverse trace the box holds a :class:`Node` recording the primitive, its
  unboxed arguments and its result (:mod:`.backward` walks the nodes later);
* in a forward trace the box holds the tangent, computed at once by the
  primitive's declaration (:meth:`~einsumad.core.primitive.Primitive.jvp`);
* in a staging trace (``ea.compile``) the call is handed to a recorder.

Tangents and cotangents may carry *leading batch axes*: a stack of directions
(the rows of a Jacobian, seeded with a Kronecker delta) rides through one pass.

A trace ends when its transformation returns. A box of an ended trace that is
used again (kept in a list or a global and reused by a later call) would be
read as a constant of the wrong trace, so :func:`bind` refuses it with an error
naming the value, as JAX does for escaped tracers.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = [
    "REVERSE", "FORWARD", "STAGE",
    "Trace", "Node", "Tensor", "apply", "bind", "weak", "new_trace", "unbox", "strip_differentiation",
    "EscapedTracerError", "MixedLibrariesError", "register_numpy_equivalent",
]

REVERSE = "rev"
FORWARD = "fwd"
STAGE = "stage"  # ea.compile: record primitive calls into a straight-line program


class EscapedTracerError(TypeError):
    """A traced value was used after the transformation that traced it returned."""


class MixedLibrariesError(TypeError):
    """Operands of one call come from different array libraries (or devices)."""

    def within(self, op: str) -> MixedLibrariesError:
        """The error with the op's name in front (once, at the innermost call)."""
        if getattr(self, "op", None) is None:
            self.op = op
            self.args = (f"ea.{op}: {self.args[0]}",)
        return self


class Trace:
    """One level of differentiation (reverse or forward) or of staging."""

    __slots__ = ("level", "mode", "recorder", "active", "__weakref__")

    def __init__(self, level: int, mode: str, recorder: Any = None) -> None:
        self.level = level
        self.mode = mode
        self.recorder = recorder  # for STAGE traces: recorder(prim, args, ans, params)
        self.active = True

    def __repr__(self) -> str:
        return f"Trace(level={self.level}, mode={self.mode!r})"


_state = threading.local()


@contextlib.contextmanager
def new_trace(mode: str, recorder: Any = None) -> Iterator[Trace]:
    """Open a trace one level above every trace currently open in this thread."""
    depth = getattr(_state, "depth", 0) + 1
    _state.depth = depth
    trace = Trace(depth, mode, recorder)
    try:
        yield trace
    finally:
        trace.active = False
        trace.recorder = None
        _state.depth = depth - 1


class Node:
    """A recorded primitive call: ``ans = prim(*args, **params)``.

    ``parents`` pairs each traced argument position with the node that produced
    it; a leaf (an input of the transformation) has ``prim is None``.
    """

    __slots__ = ("prim", "args", "params", "ans", "parents", "__weakref__")

    def __init__(self, prim: Any, args: tuple, params: dict, ans: Any, parents: tuple) -> None:
        self.prim = prim
        self.args = args
        self.params = params
        self.ans = ans
        self.parents = parents

    @classmethod
    def leaf(cls, value: Any = None) -> Node:
        return cls(None, (), {}, value, ())


#: NumPy functions and the einsumad function to use instead, for error messages
#: (filled by the op library: ``np.tanh -> "ea.tanh"``).
_NUMPY_EQUIVALENTS: dict[Any, str] = {}

#: Ufuncs that Python operators call on ``ndarray <op> Tensor``: handled by the
#: Tensor's own reflected operator, so arrays and tensors mix in arithmetic.
_OPERATOR_UFUNCS = {
    np.add: "add", np.subtract: "sub", np.multiply: "mul", np.true_divide: "truediv",
    np.power: "pow", np.matmul: "matmul", np.less: "lt", np.less_equal: "le",
    np.greater: "gt", np.greater_equal: "ge", np.equal: "eq", np.not_equal: "ne",
}
_MIRRORED = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le", "eq": "eq", "ne": "ne"}


def register_numpy_equivalent(numpy_function: Any, einsumad_name: str) -> None:
    """Record that ``numpy_function`` on a traced value should be ``einsumad_name``."""
    _NUMPY_EQUIVALENTS[numpy_function] = einsumad_name


def _use_instead(func: Any) -> str:
    name = getattr(func, "__name__", repr(func))
    instead = _NUMPY_EQUIVALENTS.get(func)
    if instead is not None:
        return f"np.{name} cannot see a traced value's derivative; use {instead} instead"
    return (
        f"np.{name} cannot see a traced value's derivative, and einsumad has no op of "
        "that name; write it with einsumad ops (ea.einsum, ea.exp, ea.where, ...) or "
        "declare it with ea.primitive"
    )


class Tensor:
    """A value being traced by a transformation.

    Behaves like a read-only NumPy array in arithmetic: ``+ - * / ** @``,
    unary ``-``, ``.T``, ``.shape``, ``.ndim``, ``.dtype``; mixes with arrays
    and Python scalars on either side. Comparisons return plain NumPy boolean
    arrays (they carry no gradient). NumPy functions (``np.tanh(t)``,
    ``np.sum(t)``) raise a ``TypeError`` naming the einsumad op to use.

    >>> import einsumad as ea
    >>> def f(x):
    ...     print(type(x).__name__, x.shape)
    ...     return ea.sum(x * x)
    >>> ea.grad(f)(np.ones(3))
    Tensor (3,)
    array([2., 2., 2.])
    """

    __slots__ = ("value", "trace", "node", "tangent", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, value: Any, trace: Trace, node: Any = None, tangent: Any = None):
        self.value = value
        self.trace = trace
        self.node = node
        self.tangent = tangent

    # Shape and type queries see through every level of boxing.
    @property
    def shape(self) -> tuple[int, ...]:
        value = unbox(self)
        if type(value) is np.ndarray:
            return value.shape
        s = getattr(value, "shape", None)  # any array library's; never np.shape (it would compute a Dask array)
        return np.shape(value) if s is None else tuple(s)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def dtype(self) -> Any:
        """The dtype in the value's own library (``torch.float32`` for a torch tensor)."""
        value = unbox(self)
        d = getattr(value, "dtype", None)
        return np.result_type(value) if d is None else d

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d Tensor")
        return self.shape[0]

    def __iter__(self) -> Any:
        if not self.shape:  # as NumPy: a 0-d value is not a sequence (never an empty one)
            raise TypeError("iteration over a 0-d Tensor")
        return (self[i] for i in range(self.shape[0]))  # type: ignore[index]  # __getitem__ is set by ops.tensor_methods

    def __repr__(self) -> str:
        value = unbox(self)
        if isinstance(value, (np.ndarray, np.generic, int, float, complex)):
            return f"Tensor({np.array2string(np.asarray(value), separator=', ')}, level={self.trace.level})"
        return f"Tensor({value!r}, level={self.trace.level})"  # never computed or copied to the host

    # -- NumPy interoperability ------------------------------------------------------

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(
            "a traced einsumad.Tensor cannot be turned into a NumPy array inside a "
            "function being differentiated (the derivative would be lost); use the "
            "einsumad functions (ea.exp, ea.sum, ea.einsum, ...) instead of numpy ones"
        )

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        op = _OPERATOR_UFUNCS.get(ufunc)
        if op is not None and method == "__call__" and not kwargs and len(inputs) == 2:
            left, right = inputs
            if isinstance(left, Tensor):
                return getattr(left, f"__{op}__")(right)
            if op in _MIRRORED:
                return getattr(right, f"__{_MIRRORED[op]}__")(left)
            return getattr(right, f"__r{op}__")(left)
        raise TypeError(_use_instead(ufunc))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(_use_instead(func))

    # -- conversions to Python values --------------------------------------------------

    def __bool__(self) -> bool:
        return bool(_concrete(self, "bool()"))

    def __float__(self) -> float:
        return float(_concrete(self, "float()"))

    def __int__(self) -> int:
        return int(_concrete(self, "int()"))

    def __index__(self) -> int:
        return int(_concrete(self, "an index"))

    def __complex__(self) -> complex:
        return complex(_concrete(self, "complex()"))

    def item(self, *args: Any) -> Any:
        return _concrete(self, ".item()").item(*args)

    def tolist(self) -> Any:
        return _concrete(self, ".tolist()").tolist()

    __hash__ = object.__hash__


def unbox(x: Any) -> Any:
    """The plain value inside every level of boxing."""
    while isinstance(x, Tensor):
        x = x.value
    return x


def strip_differentiation(x: Any) -> Any:
    """The value inside every differentiation box, keeping a staging box if any.

    Used for constants derived from traced values (conditions, index arrays):
    they carry no derivative, but a compiled program must still recompute them.
    """
    while isinstance(x, Tensor) and x.trace.mode != STAGE:
        x = x.value
    return x


def _concrete(x: Tensor, conversion: str) -> np.ndarray:
    """Refuse to turn a traced value into a Python value (the derivative would be cut)."""
    if isinstance(strip_differentiation(x), Tensor):
        raise TypeError(
            f"a traced value was converted with {conversion} inside ea.compile: Python "
            "control flow on values is frozen when the function is traced, so the compiled "
            "program would silently take the same branch for every input. Use "
            "ea.where(cond, a, b) for value-dependent choices; an argument used as a "
            "Python value (an axis, a shape, an index, a loop count) must be declared "
            "static: ea.compile(f, static_argnums=...). Or call the function without "
            "ea.compile."
        )
    raise TypeError(
        f"{conversion} of a traced value (shape {x.shape}) would cut its derivative: the "
        "result is a plain number, so the gradient would silently treat it as a constant. "
        "Keep the value as a Tensor (every einsumad op accepts it), or, to use it as a "
        "constant on purpose, convert ea.stop_gradient(x) instead."
    )


def _escaped(x: Tensor) -> EscapedTracerError:
    return EscapedTracerError(
        f"a traced value (shape {x.shape}, dtype {x.dtype}) from a transformation that has "
        "already returned was used again: it escaped its trace (kept in a list, a global "
        "or an attribute) and its derivative context has ended. Pass it to the function "
        "as an argument instead, or keep the plain array (ea.grad(..., has_aux=True) "
        "returns auxiliary values as arrays)."
    )


_PYTHON_NUMBERS = (int, float, complex)
_NUMPY_SCALARS = (np.float64, np.float32, np.float16, np.int64, np.int32, np.complex128, np.complex64, np.bool_)


def apply(prim: Any, args: Sequence[Any], params: dict) -> Any:
    """Apply primitive ``prim`` to plain values (no traced argument): its implementation,
    with Python numbers kept "weak" (numbers in, a Python number out, as NumPy's
    scalar promotion expects). Eager calls end here, and so does a compiled
    program run step by step (:mod:`einsumad.tools.stepper`)."""
    try:
        ans = prim.impl(*args, **params)
    except MixedLibrariesError as error:
        raise error.within(prim.name) from None
    if type(ans) in _NUMPY_SCALARS and all(type(a) in _PYTHON_NUMBERS for a in args):  # the cheap test first
        return weak(ans)
    return ans


def weak(ans: Any) -> Any:
    """The result of an op on Python numbers only, as a Python number when NumPy made a
    scalar of it: it then stays "weak" in NumPy's promotion (``x32 * weak(np.sin(0.5))``
    is float32), as the numbers it came from were. A compiled program writes such an op
    as ``weak(op(a, b))``."""
    return ans.item() if type(ans) in _NUMPY_SCALARS else ans


def bind(prim: Any, args: tuple, params: dict) -> Any:
    """Apply primitive ``prim`` to ``args``, recording it on the highest trace."""
    top: Trace | None = None
    for a in args:
        if isinstance(a, Tensor):
            if not a.trace.active:
                raise _escaped(a)
            if top is None or a.trace.level > top.level:
                top = a.trace
    if top is None:
        return apply(prim, args, params)
    inner_list = []
    traced = []  # positions of the arguments boxed by ``top``
    nested = False  # does a lower trace still box some argument?
    for i, a in enumerate(args):
        if isinstance(a, Tensor) and a.trace is top:
            traced.append(i)
            a = a.value
        if isinstance(a, Tensor):
            nested = True
        inner_list.append(a)
    inner = tuple(inner_list)
    if not prim.differentiable and top.mode != STAGE:
        # No derivative flows through (comparisons, masks): evaluate on the values.
        return bind(prim, inner, params)
    # The values inside, as an eager call computes them (``apply``: Python numbers stay weak).
    ans = bind(prim, inner, params) if nested else apply(prim, inner, params)
    if top.mode == STAGE:
        return top.recorder(prim, args, ans, params)
    if top.mode == REVERSE:
        parents = tuple((i, args[i].node) for i in traced)
        return Tensor(ans, top, Node(prim, inner, params, ans, parents))
    tangents = {i: args[i].tangent for i in traced}
    return Tensor(ans, top, tangent=prim.jvp(tangents, ans, inner, params))
