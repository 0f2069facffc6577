"""``ea.compile`` and ``ea.codegen``: trace once, run the straight-line NumPy it prints.

``ea.codegen(f, *args)`` stages ``f`` (:func:`~.program.trace`) and returns the
program as NumPy source (:func:`~.program.emit`). ``ea.compile(f)`` does the
same once per input signature, executes that source, and calls the resulting
function on later inputs: there is no tape, no parsing and no planning left at
call time, and what ``codegen`` prints is exactly what runs. A long program
(over ``stepper.STEP_ABOVE`` instructions, such as the gradient of a loop
unrolled 100,000 times) would cost several eager calls to write and compile
before its first result: its first ``stepper.STEP_CALLS`` calls run the
recorded instructions one by one (:mod:`.stepper`), and then it is written.

A program is keyed by the input signature: the pytree structure, the shape and
dtype of every array leaf, the type of every Python number, and the values of
static arguments (``static_argnums``, keyword arguments, bools, strings and
None). Python numbers are *inputs*, as in ``jax.jit``: a new float does not
re-trace. Python control flow on traced values is frozen at trace time, so
converting a traced value to ``bool`` (``if x > 0:``) raises a clear error
instead of silently baking in one branch; use ``ea.where``, or declare the
argument static. A Python number used as an axis, a shape or an index must be
static too (``static_argnums``), as in ``jax.jit``. Arithmetic on traced Python
numbers is NumPy's, as every einsumad op's is (a Python int is an int64 there:
``a * 2`` with ``a = 2**62`` wraps around), and its results stay weak Python
numbers (``weak(...)`` in the printed program), so float32 arrays stay float32.

Arrays the function reads from its enclosing scope (not arguments) are constants
of the program, as in ``jax.jit``: work that depends only on them may be done
once, when the program is traced. Changing such an array in place afterwards
is not reliably seen by the compiled function; pass arrays that change as
arguments.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import math
import threading
import warnings
import weakref
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..core.arrays import device, dtype, shape
from ..core.backend import HELPERS
from ..core.names import parameter_names
from ..core.pytree import tree_signature
from ..core.tape import Tensor
from . import stepper
from .program import Program, Source, emit, is_traced_leaf, trace

__all__ = ["compile", "codegen", "ProgramCache"]

#: Programs kept per compiled function (least recently used are dropped).
CACHE_SIZE = 64
#: After this many traces, a function that keeps re-tracing is warned about.
RETRACE_WARNING = 16


def _function_name(fun: Callable) -> str:
    base = getattr(fun, "__name__", "program")
    name = base if base.isidentifier() else "program"
    transform = getattr(fun, "_einsumad_transform", None)
    if transform:
        name = f"{transform}_{name}" if name != "program" else transform
    return name


_RESERVED = frozenset({*HELPERS, "weak"})  # names a program calls: never a parameter's


def _arg_names(fun: Callable, count: int) -> list[str]:
    names = parameter_names(fun, count, lambda i: f"arg{i}")
    seen: set[str] = set()
    out = []
    for i, n in enumerate(names):
        n = n if n.isidentifier() and n not in seen and n not in _RESERVED else f"arg{i}"
        seen.add(n)
        out.append(n)
    return out


def _static_positions(static_argnums: int | Sequence[int], count: int) -> frozenset[int]:
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    return frozenset(n % count for n in nums if -count <= n < count)


_builds = {"running": 0, "paused": False}  # builds in progress (any thread); did they pause the collector?
_builds_lock = threading.Lock()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while programs are built: a build
    makes several objects per instruction that all live until it ends, and each
    automatic collection would walk them again (a third of the time of tracing a
    100,000-step chain). Nothing is lost: the next collection after the build
    finds any cycles made meanwhile. The collector is switched back on when the
    last build in progress ends, and only if a build switched it off."""
    with _builds_lock:
        if _builds["running"] == 0 and gc.isenabled():
            gc.disable()
            _builds["paused"] = True
        _builds["running"] += 1
    try:
        yield
    finally:
        with _builds_lock:
            _builds["running"] -= 1
            if _builds["running"] == 0 and _builds["paused"]:
                gc.enable()
                _builds["paused"] = False


def _traced(fun: Callable, args: tuple, kwargs: dict, static: frozenset[int]) -> Program:
    with _collector_paused():
        return trace(fun, args, kwargs, static)


def _written(program: Program, fun: Callable, args: tuple, static: frozenset[int], options: dict | None = None) -> Source:
    with _collector_paused():
        return emit(program, _function_name(fun), _arg_names(fun, len(args)), args, static, **(options or {}))


def codegen(fun: Callable, *args: Any, static_argnums: int | Sequence[int] = (), **kwargs: Any) -> Source:
    """The straight-line NumPy program that :func:`compile` runs, as source code.

    For ``ea.grad(loss)`` this is the backward pass a person would write by
    hand: each contraction carries its subscripts, so the transposes appear as
    swapped subscripts.

    >>> import numpy as np, einsumad as ea
    >>> def loss(W, x):
    ...     return ea.sum(ea.einsum("ij,j->i", W, x) ** 2)
    >>> print(ea.codegen(ea.grad(loss, argnums=1), np.ones((2, 3)), np.ones(3)))
    def grad_loss(W, x):
        v0 = W @ x  # ij,j->i
        v1 = v0 * 2
        del v0
        v2 = v1 @ W  # i,ij->j
        return v2
    """
    static = _static_positions(static_argnums, len(args))
    return _written(_traced(fun, args, kwargs, static), fun, args, static)


def _never(*args: Any) -> bool:
    return False


class ProgramCache:
    """The programs of one compiled function, keyed by input signature; see :func:`compile`.

    ``fast`` holds the guard and function of the latest call's program: a call
    with the same signature runs it after one generated check.
    """

    def __init__(self, fun: Callable, static_argnums: int | Sequence[int], options: dict | None = None):
        self.fun = fun
        self.static_argnums = static_argnums
        self.options = options or {}
        self.programs: collections.OrderedDict[Any, Program] = collections.OrderedDict()
        self.traces = 0
        self.fast: list[Any] = [_never, None]

    def _remember(self, program: Program, kwargs: dict) -> None:
        if not kwargs and program.guard is not None:
            self.fast[:] = [program.guard, program.function]
        else:
            self.fast[:] = [_never, None]

    def _writer(self, program: Program, static: frozenset[int]) -> Callable[[tuple], Callable]:
        """``_write`` for a stepper, holding this cache and the program weakly (the program
        holds the stepper): dropping the compiled function frees them by reference counting."""
        cache_ref, program_ref = weakref.ref(self), weakref.ref(program)

        def write(args: tuple) -> Callable:
            cache, program_ = cache_ref(), program_ref()
            if cache is None or program_ is None:
                raise ReferenceError("the compiled function was dropped")
            return cache._write(program_, static, args)

        return write

    def _write(self, program: Program, static: frozenset[int], args: tuple) -> Callable:
        """Write ``program`` as source (for arguments of its signature) and run that from now on."""
        source = _written(program, self.fun, args, static, self.options)
        with _collector_paused():
            function = source.function()
        stepped = program.function
        program.source, program.function = source, function
        if stepped is not None and self.fast[1] is stepped:
            self.fast[1] = function
        return function  # type: ignore[no-any-return]

    def cache_size(self) -> int:
        return len(self.programs)

    def _key(self, args: tuple, kwargs: dict, static: frozenset[int]) -> Any:
        dynamic = tuple(a for i, a in enumerate(args) if i not in static)
        key: tuple = tree_signature(dynamic, _leaf_key)[1]
        if static:  # with the type (1, 1.0 and True are equal keys); floats by text (nan != nan)
            key += (tuple((i, type(a), repr(a) if type(a) is float else a) for i, a in
                          ((i, args[i]) for i in sorted(static))),)
        if kwargs:
            key += (tuple(sorted(kwargs.items())),)
        return key

    def call(self, args: tuple, kwargs: dict) -> Any:
        static = _static_positions(self.static_argnums, len(args)) if self.static_argnums else _NONE
        try:
            key = self._key(args, kwargs, static)
            program = self.programs.get(key)
        except _Traced:
            return self.fun(*args, **kwargs)  # inside a transformation: nothing to replay
        except TypeError:  # an unhashable static argument: trace every call
            program = _traced(self.fun, args, kwargs, static)
            if len(program) > stepper.STEP_ABOVE:  # run once: not worth writing
                with _collector_paused():
                    once = stepper.Stepper(program, static)
                return once.run(args)
            return _written(program, self.fun, args, static, self.options).function()(*args)
        if program is None:
            return self._miss(key, args, kwargs, static)
        self.programs.move_to_end(key)
        self._remember(program, kwargs)
        return program.function(*args)

    def _miss(self, key: Any, args: tuple, kwargs: dict, static: frozenset[int]) -> Any:
        program = _traced(self.fun, args, kwargs, static)
        if len(program) > stepper.STEP_ABOVE:  # stepped through until it has earned its source
            with _collector_paused():
                program.function = stepper.Stepper(program, static, self._writer(program, static))
        else:
            self._write(program, static, args)
        function = program.function
        program.guard = _guard(args, static)
        self.programs[key] = program
        self._remember(program, kwargs)
        self.traces += 1
        if len(self.programs) > CACHE_SIZE:
            self.programs.popitem(last=False)
        if self.traces == RETRACE_WARNING:
            warnings.warn(
                f"ea.compile({_function_name(self.fun)}) has traced {self.traces} input signatures: "
                "the shapes, dtypes or static arguments change from call to call, so every "
                "call pays for tracing. Keep shapes fixed, or pass changing Python values as "
                "arrays or numbers (which are inputs) rather than as static arguments.",
                RuntimeWarning,
                stacklevel=3,
            )
        return function(*args)


def _guard(args: tuple, static: frozenset[int]) -> Callable[..., bool] | None:
    """A generated check that new arguments have exactly the signature of ``args``:
    the same containers (types, lengths, dict keys), arrays of the same shapes and
    dtypes, Python numbers of the same types, the same static values. It lets a
    call with the latest signature skip computing its key (None: no fast check).

    The check is one boolean expression, the cheapest Python can evaluate, over
    one parameter per argument: a call with another number of arguments, or a
    dict without one of the keys, raises inside it, which the caller counts as
    a different signature.
    """
    namespace: dict[str, Any] = {"ndarray": np.ndarray}
    conditions: list[str] = []
    counter = iter(range(1 << 30))
    for i, arg in enumerate(args):
        if i in static:
            if type(arg) not in (bool, int, float, str, type(None)):
                return None
            if type(arg) is float and not math.isfinite(arg):  # nan and inf have no literal
                test = f"a{i} != a{i}" if math.isnan(arg) else f"a{i} == float({str(arg)!r})"
            else:
                test = f"a{i} == {arg!r}"
            conditions.append(f"type(a{i}) is {type(arg).__name__} and {test}")
        elif not _check(f"a{i}", arg, 0, namespace, conditions, counter):
            return None
    parameters = ", ".join(f"a{i}" for i in range(len(args)))
    body = "\n        and ".join(conditions) if conditions else "True"
    source = f"def guard({parameters}):\n    return (\n        " + body + "\n    )"
    exec(source, namespace)  # noqa: S102 (written above from the arguments' structure)
    return namespace.pop("guard")  # type: ignore[no-any-return]  # out of its globals: no cycle


def _check(
    expr: str, value: Any, depth: int, namespace: dict[str, Any], conditions: list[str], counter: Iterator[int]
) -> bool:
    """Append to ``conditions`` that ``expr`` has ``value``'s signature (False: no fast check)."""
    if depth > 32:
        return False
    kind = type(value)
    if kind is np.ndarray:
        name = f"x{next(counter)}"
        namespace[f"{name}_dtype"] = value.dtype
        conditions.append(
            f"type({name} := {expr}) is ndarray and {name}.shape == {value.shape!r} "
            f"and {name}.dtype is {name}_dtype"
        )
        return True
    if kind in (int, float, complex):
        conditions.append(f"type({expr}) is {kind.__name__}")
        return True
    if kind in (tuple, list) or (kind is dict and all(type(k) in (str, int) for k in value)):
        name = f"x{next(counter)}"
        conditions.append(f"type({name} := {expr}) is {kind.__name__} and len({name}) == {len(value)}")
        if kind is dict:  # the length and a lookup of each key: exactly these keys
            return all(
                _check(f"{name}[{key!r}]", item, depth + 1, namespace, conditions, counter)
                for key, item in value.items()
            )
        return all(
            _check(f"{name}[{i}]", item, depth + 1, namespace, conditions, counter) for i, item in enumerate(value)
        )
    if value is None or kind is bool:
        conditions.append(f"{expr} is {value!r}")
        return True
    if kind is str:
        conditions.append(f"{expr} == {value!r}")
        return True
    return False  # any other object: no fast check


class _Traced(Exception):
    """An argument is already traced: ``compile`` is inside a transformation."""


_NONE: frozenset[int] = frozenset()


def _leaf_key(leaf: Any) -> Any:
    """A leaf's part of the signature: shape and dtype of an array, the type of a
    Python number (numbers are inputs), the value of a static leaf."""
    kind = type(leaf)
    if kind is np.ndarray:
        return (leaf.shape, leaf.dtype)
    if kind is float or kind is int or kind is complex:
        return kind
    if isinstance(leaf, Tensor):
        raise _Traced
    if not is_traced_leaf(leaf):
        return (kind, leaf)
    if isinstance(leaf, (list, tuple, np.generic)) or getattr(leaf, "shape", None) is None:
        array = np.asarray(leaf)
        return (array.shape, array.dtype)
    # another library's array: read, never converted (a Dask array stays lazy, a GPU tensor in place)
    return (kind, shape(leaf), dtype(leaf), str(device(leaf)))


def compile(  # noqa: A001
    fun: Callable, static_argnums: int | Sequence[int] = (), *, fuse: bool = True, buffers: bool = True
) -> Callable:
    """Trace ``fun`` once per input signature and run it as straight-line NumPy.

    ``fun`` may be any function of arrays, including a transformed one:
    ``ea.compile(ea.grad(loss))``, ``ea.compile(ea.value_and_grad(loss))``,
    ``ea.compile(ea.hessian(f))``. The first call with a new signature (pytree
    structure, shapes, dtypes; static arguments) records every primitive call
    into the program that :func:`codegen` prints; later calls run it. Python
    numbers are inputs (a new value does not re-trace) unless their position is
    in ``static_argnums``; keyword arguments are static.

    Python control flow on traced values is frozen at trace time; converting
    a traced value to ``bool`` raises ``TypeError`` (use ``ea.where``).

    Chains of elementwise work on large arrays are written as one expression
    (:mod:`einsumad.tools.fusion`); where numexpr is installed (``pip install
    "einsumad[fast]"``) and its threads make it faster than NumPy, as one
    multi-threaded numexpr kernel (``fuse=False``: never). Large intermediates
    are written into buffers the compiled function keeps from call to call
    (``out=``; :mod:`einsumad.tools.buffers`): results never share memory with
    them, and concurrent calls from several threads each use their own set.
    ``buffers=False`` allocates every intermediate afresh.

    A program of more than 10,000 instructions is run instruction by instruction
    for its first 8 calls and written as source only then, so that its first call
    costs about two eager calls rather than five (:mod:`einsumad.tools.stepper`).

    >>> import numpy as np, einsumad as ea
    >>> loss = lambda W, x: ea.sum(ea.tanh(ea.einsum("ij,j->i", W, x)))
    >>> fast = ea.compile(ea.grad(loss))
    >>> W, x = np.ones((2, 3)), np.zeros(3)
    >>> np.allclose(fast(W, x), ea.grad(loss)(W, x))
    True
    >>> fast.cache_size()
    1
    """
    cache = ProgramCache(fun, static_argnums, {"fuse": fuse, "buffers": buffers})
    fast = cache.fast

    @functools.wraps(fun)
    def compiled(*args: Any, **kwargs: Any) -> Any:
        if not kwargs:
            guard, function = fast
            try:
                same = guard(*args)  # the signature of the latest call: run its program
            except (TypeError, KeyError, IndexError):  # another number of arguments, another dict
                same = False
            if same:
                return function(*args)
        return cache.call(args, kwargs)

    compiled.cache_size = lambda: len(cache.programs)  # type: ignore[attr-defined]
    compiled.programs = cache.programs  # type: ignore[attr-defined]
    return compiled
