"""Optimisers and a training loop, public: ``ea.optim.SGD``, ``ea.optim.Adam``, ``ea.optim.fit``.

The implementation lives in :mod:`einsumad.tools.optim`.
"""

from .tools.optim import SGD, Adam, AdamState, SGDState, fit, minibatches

__all__ = ["SGD", "Adam", "SGDState", "AdamState", "fit", "minibatches"]
