"""``ea.compile`` and ``ea.codegen``: trace once, run the straight-line NumPy it prints.

``ea.codegen(f, *args)`` stages ``f`` (:func:`~.program.trace`) and returns the
program as NumPy source (:func:`~.program.emit`). ``ea.compile(f)`` does the
same once per input signature, executes that source, and calls the resulting
function on later inputs: there is no tape, no parsing and no planning left at
call time, and what ``codegen`` prints is exactly what runs.

A program is keyed by the input signature: the pytree structure, the shape and
dtype of every array leaf, the type of every Python number, and the values of
static arguments (``static_argnums``, keyword arguments, bools, strings and
None). Python numbers are *inputs*, as in ``jax.jit``: a new float does not
re-trace. Python control flow on traced values is frozen at trace time, so
converting a traced value to ``bool`` (``if x > 0:``) raises a clear error
instead of silently baking in one branch; use ``ea.where``, or declare the
argument static.
"""

from __future__ import annotations

import collections
import functools
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from ..core.names import parameter_names
from ..core.pytree import tree_flatten
from ..core.tape import Tensor
from .program import Program, Source, emit, is_traced_leaf, trace

__all__ = ["compile", "codegen", "CompiledFunction"]

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


def _arg_names(fun: Callable, count: int) -> list[str]:
    names = parameter_names(fun, count, lambda i: f"arg{i}")
    seen: set[str] = set()
    out = []
    for i, n in enumerate(names):
        n = n if n.isidentifier() and n not in seen and n not in ("np",) else f"arg{i}"
        seen.add(n)
        out.append(n)
    return out


def _static_positions(static_argnums: int | Sequence[int], count: int) -> frozenset[int]:
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    return frozenset(n % count for n in nums if -count <= n < count)


def _build(fun: Callable, args: tuple, kwargs: dict, static: frozenset[int]) -> tuple[Program, Source]:
    program = trace(fun, args, kwargs, static)
    source = emit(program, _function_name(fun), _arg_names(fun, len(args)), args, static)
    return program, source


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
    return _build(fun, args, kwargs, static)[1]


class CompiledFunction:
    """A function traced once per input signature; see :func:`compile`."""

    def __init__(self, fun: Callable, static_argnums: int | Sequence[int]):
        self.fun = fun
        self.static_argnums = static_argnums
        self.programs: collections.OrderedDict[Any, Program] = collections.OrderedDict()
        self.traces = 0
        functools.update_wrapper(self, fun)  # type: ignore[arg-type]

    def cache_size(self) -> int:
        return len(self.programs)

    def _key(self, args: tuple, kwargs: dict, static: frozenset[int]) -> Any:
        parts: list[Any] = []
        for i, arg in enumerate(args):
            if i in static:
                parts.append(("static", arg))
                continue
            leaves, treedef = tree_flatten(arg)
            leaf_keys: list[Any] = []
            for leaf in leaves:
                if isinstance(leaf, Tensor):
                    raise _Traced
                if not is_traced_leaf(leaf):
                    leaf_keys.append((type(leaf), leaf))
                elif isinstance(leaf, (int, float, complex)):
                    leaf_keys.append(type(leaf))
                else:
                    array = np.asarray(leaf)
                    leaf_keys.append((array.shape, array.dtype))
            parts.append((treedef, tuple(leaf_keys)))
        if kwargs:
            parts.append(tuple(sorted(kwargs.items())))
        return tuple(parts)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs and not self.static_argnums:
            # The common case, fast: every argument a NumPy array.
            key: list[Any] = []
            for a in args:
                if type(a) is not np.ndarray:
                    break
                key.append(a.shape)
                key.append(a.dtype)
            else:
                entry = self.programs.get(tuple(key))
                if entry is not None:
                    return entry.function(*args)
                return self._miss(tuple(key), args, kwargs, frozenset())
        static = _static_positions(self.static_argnums, len(args))
        try:
            key_full = self._key(args, kwargs, static)
            entry = self.programs.get(key_full)
        except _Traced:
            return self.fun(*args, **kwargs)  # inside a transformation: nothing to replay
        except TypeError:  # an unhashable static argument: trace every call
            return _build(self.fun, args, kwargs, static)[1].function()(*args)
        if entry is not None:
            self.programs.move_to_end(key_full)
            return entry.function(*args)
        return self._miss(key_full, args, kwargs, static)

    def _miss(self, key: Any, args: tuple, kwargs: dict, static: frozenset[int]) -> Any:
        program, source = _build(self.fun, args, kwargs, static)
        program.source = source
        program.function = function = source.function()
        self.programs[key] = program
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


class _Traced(Exception):
    """An argument is already traced: ``compile`` is inside a transformation."""


def compile(fun: Callable, static_argnums: int | Sequence[int] = ()) -> CompiledFunction:  # noqa: A001
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

    >>> import numpy as np, einsumad as ea
    >>> loss = lambda W, x: ea.sum(ea.tanh(ea.einsum("ij,j->i", W, x)))
    >>> fast = ea.compile(ea.grad(loss))
    >>> W, x = np.ones((2, 3)), np.zeros(3)
    >>> np.allclose(fast(W, x), ea.grad(loss)(W, x))
    True
    >>> fast.cache_size()
    1
    """
    return CompiledFunction(fun, static_argnums)
