"""Running a long program instruction by instruction, until it has earned its source.

Writing a program as Python source (:func:`~.program.emit`) and compiling it
costs about 20 µs per instruction: for the gradient of a 100,000-step loop
(600,000 instructions) that is 12 s, two to three eager calls, before the first
result.
A :class:`Stepper` runs the recorded instructions directly instead: each one is
the primitive's own implementation applied to the values of its argument slots
(:func:`~einsumad.core.tape.apply`, where every eager call ends too), and each
value is dropped after its last use. That costs about 2 µs more per instruction
per call than the written source, which also fuses elementwise chains and keeps
buffers, so ``ea.compile`` steps through a long program only for its first
``STEP_CALLS`` calls and then writes it (the rent-or-buy rule: stop renting once
the rent paid approaches the price, here after about ten calls).

>>> import numpy as np, einsumad as ea
>>> from einsumad.tools.program import trace
>>> program = trace(ea.grad(lambda x: ea.sum(ea.sin(x) * 2.0)), (np.zeros(2),), {})
>>> Stepper(program, frozenset())(np.zeros(2))
array([2., 2.])
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Callable

import numpy as np

from ..core import arrays
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.tape import apply
from .program import Program, as_kind, is_traced_leaf, returned_constant

__all__ = ["Stepper", "STEP_ABOVE", "STEP_CALLS"]

#: ``ea.compile`` steps through programs of more instructions than this ...
STEP_ABOVE = 10_000
#: ... for this many calls, and then writes them as source.
STEP_CALLS = 8

_NUMBERS = (int, float, complex)


class Stepper:
    """A callable that runs ``program`` on new arguments, one instruction at a time.

    It takes the arguments of the traced function (static positions are ignored;
    their values are part of the program). Results never share memory with the
    arguments or the program's constants, as with the written source. With
    ``then``, the ``calls``-th call replaces the stepper by ``then(args)`` (the
    written function) and every later call goes there.
    """

    def __init__(
        self, program: Program, static: frozenset[int], then: Callable[[tuple], Callable] | None = None,
        calls: int | None = None,
    ):
        # The program's parts, not the program: it holds this stepper (as its function),
        # and a cycle would keep both alive until Python's cycle collector runs.
        self.values = program.values
        self.instructions = program.instructions
        self.input_slots = program.inputs
        self.outputs = program.outputs
        self.aliased = program.aliased_outputs
        self.kinds = program.scalar_kinds
        self.out_def = program.out_def
        self.static = static
        self.then = then
        self.calls_left = STEP_CALLS if calls is None else calls
        self.function: Callable | None = None  # the written program, once there is one
        self._lock = threading.Lock()
        last_use: dict[int, int] = {}
        for k, ins in enumerate(program.instructions):
            for a in ins.args:
                last_use[a] = k
        kept = set(program.outputs)
        dying: dict[int, list[int]] = {}
        for slot, k in last_use.items():
            if slot not in kept and not program.is_constant[slot]:
                dying.setdefault(k, []).append(slot)
        self.dead = [tuple(dying.get(k, ())) for k in range(len(program.instructions))]
        self.inputs = set(program.inputs)
        self.frozen = {  # constant results: one read-only copy, as the written source returns
            slot: returned_constant(program.values[slot]) for slot in program.outputs if program.is_constant[slot]
        }

    def __call__(self, *args: Any) -> Any:
        if self.function is not None:
            return self.function(*args)
        if self.then is not None:
            with self._lock:  # exactly one call writes; the others step on meanwhile
                self.calls_left -= 1
                then = self.then if self.calls_left <= 0 else None
                if then is not None:
                    self.then = None
            if then is not None:
                try:
                    self.function = then(args)
                except Exception as error:  # noqa: BLE001 (the steps still run: keep them, and say why)
                    warnings.warn(
                        f"ea.compile could not write a {len(self.instructions)}-instruction program as "
                        f"source ({type(error).__name__}: {error}); it keeps running it step by step",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                else:
                    return self.function(*args)
        return self.run(args)

    def run(self, args: tuple) -> Any:
        slots = list(self.values)
        leaves, _ = tree_flatten([a for i, a in enumerate(args) if i not in self.static])
        inputs = [leaf for leaf in leaves if is_traced_leaf(leaf)]
        for slot, leaf in zip(self.input_slots, inputs):  # as they are, as the written program takes them
            slots[slot] = leaf
        for ins, dead in zip(self.instructions, self.dead):
            slots[ins.out] = apply(ins.prim, [slots[a] for a in ins.args], ins.params)
            for slot in dead:
                slots[slot] = None
        results = []
        returned: set[int] = set()
        for slot in self.outputs:
            value = slots[slot]
            if slot in self.frozen:
                value = self.frozen[slot]
            elif type(value) in _NUMBERS:
                pass  # a Python number: immutable
            elif slot in returned or slot in self.aliased or slot in self.inputs:
                value = as_kind(_copy(value), self.kinds.get(slot))  # an argument, a view of one, or returned twice
            elif slot in self.kinds:
                value = as_kind(value, self.kinds[slot])
            results.append(value)
            returned.add(slot)
        return tree_unflatten(self.out_def, results) if self.out_def is not None else None


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, np.generic):  # a NumPy scalar is immutable
        return value
    return arrays.array_namespace(value).asarray(value, copy=True)
