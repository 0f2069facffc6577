"""Names of a function's positional parameters, for messages, derivations and code.

``check_grads`` says ``W[2, 3]``, ``derive`` writes ``W2^T delta2`` and ``codegen``
writes ``def grad_loss(W, x)`` because all three read the user's own names here.
"""

from __future__ import annotations

import inspect
from typing import Callable


def parameter_names(fun: Callable, count: int, fallback: Callable[[int], str]) -> list[str]:
    """The names of ``fun``'s first ``count`` positional parameters.

    Where ``fun`` has fewer (or takes ``*args``), ``fallback(i)`` names argument ``i``.

    >>> parameter_names(lambda W, x, *rest: None, 3, lambda i: f"args[{i}]")
    ['W', 'x', 'args[2]']
    """
    names: list[str] = []
    try:
        parameters = inspect.signature(fun).parameters.values()
    except (TypeError, ValueError):
        parameters = []  # type: ignore[assignment]
    for p in parameters:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            break
        names.append(p.name)
    return [names[i] if i < len(names) else fallback(i) for i in range(count)]
