"""Derivations a learner can read: ``ea.derive`` and what it returns.

:func:`derive` runs a function once on a reverse trace and subscribes to the
core's backward pass; it never runs a pass of its own. The derivation it
returns has three views, each built only when asked for:

* the **textbook view** (``str(d)``, :attr:`Derivation.textbook`): the forward
  model, then BP1-BP4 folded by the index algebra, in matrix and index form
  with the user's own names and index names (:mod:`.textbook`);
* the **step-by-step view** (``d.steps``, ``d.render("steps")``): one line per
  op and per vector-Jacobian product, with the swapped subscripts that
  ``ea.codegen`` prints for the same step (:mod:`.steps`);
* the **Jacobian view** (:meth:`Derivation.jacobian_view`): the full Jacobian
  behind each step, the chained product, its cost beside the VJPs' cost, and a
  finite-difference check of every VJP (:mod:`.jacobian`).

``d.latex`` typesets the textbook view (an ``alignedat`` block), and
``d.to_dot()`` / ``d.to_svg()`` draw the forward and backward passes (:mod:`.graph`).
"""

from .derivation import Derivation, derive
from .jacobian import JacobianRow, JacobianView
from .naming import name
from .steps import Step
from .textbook import Line, Notation

__all__ = ["derive", "Derivation", "Step", "Line", "Notation", "JacobianRow", "JacobianView", "name"]
