"""The :class:`Derivation` object and :func:`derive`."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import graph as _graph
from . import latex as _latex
from .jacobian import JacobianView, jacobian_view
from .record import Recording, record
from .steps import Step, build_steps, steps_text
from .textbook import Line, Notation, Textbook, textbook_text

__all__ = ["Derivation", "derive"]


class Derivation:
    """A traced function's forward and backward pass, in three views.

    ``str(d)`` is the textbook view (see :meth:`render`); ``d.steps`` lists the
    step-by-step view's :class:`Step` objects, ``d.textbook`` the textbook
    view's :class:`~einsumad.tools.derive.textbook.Line` objects.

    Attributes:
        gradients: the cotangent of every differentiated argument, by name.
        value: the function's value.
        view: the view ``str()`` shows: ``"textbook"`` or ``"steps"``.
    """

    def __init__(self, rec: Recording, notation: Notation, view: str = "textbook"):
        if view not in ("textbook", "steps"):
            raise ValueError(f"derive: view must be 'textbook' or 'steps', got {view!r}")
        self._rec = rec
        self.notation = notation
        self.view = view
        self.gradients: dict[str, Any] = rec.gradients
        self.value = np.asarray(rec.out.ans)
        self._steps: list[Step] | None = None
        self._textbook: Textbook | None = None
        self._lines: list[Line] | None = None

    # ----------------------------------------------------------------- views

    @property
    def steps(self) -> list[Step]:
        """The step-by-step view: forward steps, then one step per VJP (see :class:`Step`)."""
        if self._steps is None:
            self._steps = build_steps(self._rec)
        return self._steps

    @property
    def forward(self) -> list[Step]:
        """The forward steps of the step-by-step view."""
        return [s for s in self.steps if s.kind == "forward"]

    @property
    def backward(self) -> list[Step]:
        """The backward steps of the step-by-step view (one VJP each, plus delta-rule steps)."""
        return [s for s in self.steps if s.kind != "forward"]

    @property
    def textbook(self) -> list[Line]:
        """The textbook view's lines: the model, then the folded backward pass."""
        if self._lines is None:
            self._textbook = Textbook(self._rec, self.notation)
            self._lines = self._textbook.lines()
        return self._lines

    def line(self, name: str) -> Line:
        """The textbook line that defines ``name`` (``"delta3"``, ``"dW2"``, ``"z2"``)."""
        for ln in self.textbook:
            if ln.name == name:
                return ln
        raise KeyError(f"no textbook line defines {name!r}; the lines define {[ln.name for ln in self.textbook]}")

    def render(self, view: str | None = None) -> str:
        """The derivation as text: ``"textbook"`` (the default) or ``"steps"``."""
        view = view or self.view
        if view == "steps":
            return steps_text(self.steps)
        if view == "textbook":
            lines = self.textbook
            return textbook_text(lines, self._textbook.anonymous_constants(lines))  # type: ignore[union-attr]
        raise ValueError(f"view must be 'textbook' or 'steps', got {view!r}")

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"<Derivation of {self._rec.value_name[self._rec.out]}: {len(self._rec.order)} values, {len(self._rec.events)} VJPs>"

    # ----------------------------------------------------------------- LaTeX

    @property
    def latex(self) -> str:
        """The textbook view as a LaTeX ``alignedat`` block (put it in display math)."""
        return _latex.textbook_latex(self.textbook)

    def latex_document(self) -> str:
        """A complete LaTeX document (amsmath) holding :attr:`latex`."""
        return _latex.document(self.latex)

    def steps_latex(self) -> str:
        """The step-by-step view as a LaTeX ``alignedat`` block."""
        return _latex.steps_latex(self.steps)

    def _repr_latex_(self) -> str:
        return "$$" + self.latex + "$$"

    # ----------------------------------------------------------------- Jacobians, graphs

    def jacobian_view(self, max_elements: int = 2_000_000) -> JacobianView:
        """Per backward step, the full Jacobian, the chained product and its cost.

        Built only when called. Each Jacobian is computed by central finite
        differences of the op's own implementation, so its check column
        (``|J^T g - VJP(g)|``) does not trust the VJP rules it checks.

        Args:
            max_elements: Jacobians with more elements are not materialised;
                their VJP is checked along one random direction instead.
        """
        return jacobian_view(self._rec, self.steps, max_elements)

    def to_dot(self) -> str:
        """Graphviz DOT text: the forward pass, and beside it the backward pass."""
        return _graph.to_dot(self._rec, self.steps)

    def to_svg(self) -> str:
        """Render :meth:`to_dot` to SVG with Graphviz (an optional extra).

        Raises:
            RuntimeError: Graphviz is not installed; the message says how to install it.
        """
        return _graph.to_svg(self.to_dot())


def derive(
    fun: Callable,
    *args: Any,
    wrt: int | str | Sequence[int | str] | None = None,
    names: Sequence[str] | Mapping[str, str] | None = None,
    view: str = "textbook",
    sigma: str = "logistic",
    layers: str = "subscript",
    convention: str | None = None,
) -> Derivation:
    """Trace ``fun(*args)`` and return its derivation: textbook, step by step, Jacobians.

    The function must return a scalar (a loss). See :mod:`einsumad.tools.derive`
    for the views and how values, cotangents and indices are named.

    Args:
        fun: the function (written with einsumad ops).
        *args: its positional arguments.
        wrt: the arguments to differentiate, by position or name (default:
            every floating-point argument). The others are data: constants
            shown by name, never differentiated.
        names: display names for the arguments (a sequence, one per argument,
            or a mapping from parameter name to display name); default: the
            parameter names of ``fun``.
        view: what ``str()`` shows: ``"textbook"`` or ``"steps"``.
        sigma: ``"logistic"`` (``σ`` for the logistic function),
            ``"activations"`` (``σ`` for every activation) or ``"none"``.
        layers: ``"subscript"`` (``W3``) or ``"superscript"`` (``W^3``).
        convention: ``"column"`` or ``"row"`` vectors in matrix forms
            (default: as the program multiplies, ``W @ x`` or ``x @ W``).

    Returns:
        Derivation: ``print(d)`` shows the textbook view, ``d.steps`` the
            step-by-step view, ``d.latex`` typesets it and ``d.jacobian_view()``
            builds the Jacobians.

    >>> import numpy as np, einsumad as ea
    >>> def f(W, a):
    ...     z = W @ a
    ...     return ea.sum(ea.tanh(z))
    >>> d = ea.derive(f, np.eye(2), np.zeros(2), wrt="W")
    >>> print(d)
    Forward pass
           z = W a             z_i = sum_j W_ij a_j
           a1 = tanh(z)        a1_i = tanh(z_i)
           L = 1^T a1          L = sum_i a1_i
    Backward pass
      BP1  delta = tanh'(z)    delta_i = tanh'(z_i)
      BP4  dW = delta a^T      dW_ij = delta_i a_j
    >>> d.gradients["W"]
    array([[0., 0.],
           [0., 0.]])
    """
    if sigma not in ("logistic", "activations", "none"):
        raise ValueError(f"derive: sigma must be 'logistic', 'activations' or 'none', got {sigma!r}")
    if layers not in ("subscript", "superscript"):
        raise ValueError(f"derive: layers must be 'subscript' or 'superscript', got {layers!r}")
    if convention not in (None, "column", "row"):
        raise ValueError(f"derive: convention must be 'column' or 'row', got {convention!r}")
    for k, a in enumerate(args):
        _check_array(k, a)
    rec = record(fun, args, names, wrt)
    return Derivation(rec, Notation(sigma, layers, convention), view)


def _check_array(k: int, a: Any) -> None:
    """derive names and indexes each argument as one array: a dict or a list of arrays is not one."""
    ragged = isinstance(a, (list, tuple)) and (
        any(isinstance(v, Mapping) for v in a) or len({np.shape(v) for v in a}) > 1)
    nested = isinstance(a, Mapping) or ragged
    if nested:
        kind = type(a).__name__
        raise TypeError(
            f"derive: argument {k} is a {kind}; derive takes arrays (one per argument, so that each has "
            f"a name and indices). Pass the arrays as separate arguments instead, e.g. "
            f"ea.derive(lambda W, b: loss({{'W': W, 'b': b}}), params['W'], params['b'])"
        )
