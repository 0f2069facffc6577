"""Gradient checking, public: ``einsumad.testing.check_grads`` and ``check_gradient``.

The implementation lives in :mod:`einsumad.tools.testing`.
"""

from .tools.testing import check_gradient, check_grads

__all__ = ["check_grads", "check_gradient"]
