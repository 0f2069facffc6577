"""The Jacobian view: what each VJP avoids building, what it would cost, and an honest check.

Built only when asked for (:meth:`~einsumad.tools.derive.Derivation.jacobian_view`).
For every backward step it states the full Jacobian ``∂out/∂arg`` (as a
generalised einsum of the op's other operands, named, and in matrix form where
one exists), its shape and size, and the cost of the chained Jacobian product
beside the cost of the VJP chain. Its check column compares each VJP with the
Jacobian computed by **central finite differences of the op's own
implementation**, never with the rules being checked: a wrong custom VJP shows
a large error there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ...algebra.matrix import matrix_form_details
from ...core.einsum import Einsum
from ...core.elementwise import Elementwise
from ...core.tape import Node, unbox
from .record import Recording, declaration, partial_is_one
from .steps import Step

__all__ = ["JacobianRow", "JacobianView", "jacobian_view"]


@dataclass
class JacobianRow:
    """The full Jacobian behind one backward step, beside its VJP.

    Attributes:
        label: ``∂a1/∂z1``.
        matrix_form: ``Diag(tanh'(z1))``, ``W2``, ... or None (see ``reason``).
        subscripts: the Jacobian as a generalised einsum of the op's other
            operands: the VJP's subscripts with the cotangent removed and its
            letters moved to the output (``j->iij`` for ``∂(W a)/∂W``).
        operands: the names of those operands (``("a1",)``).
        shape: ``out.shape + arg.shape``.
        size: number of elements of the Jacobian.
        vjp_size: elements the VJP reads besides the cotangent.
        jacobian_flops: multiply-adds of ``g^T J`` with the Jacobian built.
        vjp_flops: multiply-adds of the VJP.
        value: the Jacobian by central finite differences (None when larger
            than the view's ``max_elements``).
        error: ``max |J^T g - VJP(g)|`` on the derivation's own cotangent,
            with ``J`` from finite differences (or, for a Jacobian too large to
            build, ``|<VJP(g), v> - <g, J v>|`` along a random direction ``v``).
        reason: why ``matrix_form`` is None.
    """

    label: str
    matrix_form: str | None
    subscripts: str | None
    operands: tuple[str, ...]
    shape: tuple[int, ...]
    size: int
    vjp_size: int
    jacobian_flops: int
    vjp_flops: int
    value: Any = field(repr=False, default=None)
    error: float = 0.0
    reason: str | None = None
    out_name: str = ""
    arg_name: str = ""

    @property
    def formula(self) -> str:
        if self.matrix_form is not None:
            return self.matrix_form
        if self.subscripts is not None:
            of = f" of ({', '.join(self.operands)})" if self.operands else " (a Kronecker delta)"
            return f"einsum '{self.subscripts}'{of}"
        return "(computed by finite differences)"


class JacobianView:
    """The Jacobian view of a derivation (see the module docstring)."""

    def __init__(self, rows: list[JacobianRow], chains: list[str]):
        self.rows = rows
        self.chains = chains

    @property
    def jacobian_flops(self) -> int:
        return sum(r.jacobian_flops for r in self.rows)

    @property
    def jacobian_memory(self) -> int:
        return sum(r.size for r in self.rows)

    @property
    def vjp_flops(self) -> int:
        return sum(r.vjp_flops for r in self.rows)

    @property
    def vjp_memory(self) -> int:
        return sum(r.vjp_size for r in self.rows)

    def __str__(self) -> str:
        lines = ["Chained Jacobian products (in the order a backward pass multiplies them)"]
        lines += [f"  {c}" for c in self.chains]
        lines.append("Jacobians (what each VJP avoids materialising)")
        table = [["step", "Jacobian", "shape", "elements", "g^T J flops", "VJP reads", "VJP flops",
                  "|J^T g - VJP| (finite differences)"]]
        for r in self.rows:
            table.append([r.label, r.formula, "x".join(map(str, r.shape)) or "1", str(r.size),
                          str(r.jacobian_flops), str(r.vjp_size), str(r.vjp_flops), f"{r.error:.1e}"])
        widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
        for row in table:
            lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        lines.append(
            f"  cost: the Jacobian chain stores {self.jacobian_memory} elements and takes "
            f"{self.jacobian_flops} multiply-adds; the VJP chain reads {self.vjp_memory} elements "
            f"and takes {self.vjp_flops} multiply-adds"
        )
        return "\n".join(lines)

    __repr__ = __str__


def _impl_of(node: Node, k: int):  # type: ignore[no-untyped-def]
    args = [np.asarray(unbox(a)) if not hasattr(a, "base_shape") else np.asarray(a) for a in node.args]

    def f(x: np.ndarray) -> np.ndarray:
        call = list(args)
        call[k] = x
        return np.asarray(node.prim.impl(*call, **node.params), dtype=float)

    return f


def _fd_jacobian(f, x: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:  # type: ignore[no-untyped-def]
    x = np.asarray(x, dtype=float)
    J = np.zeros(out_shape + x.shape)
    flat = x.reshape(-1)
    for n in range(flat.size):
        h = 1e-6 * max(1.0, abs(flat[n]))
        up, down = flat.copy(), flat.copy()
        up[n] += h
        down[n] -= h
        col = (f(up.reshape(x.shape)) - f(down.reshape(x.shape))) / (2 * h)
        J.reshape(out_shape + (flat.size,))[..., n] = col
    return J


def _row(rec: Recording, step: Step, rng: np.random.Generator, max_elements: int) -> JacobianRow | None:
    node, k = step.node, step.argnum
    if node is None or k is None:
        return None
    arg = np.asarray(unbox(node.args[k]))
    if arg.dtype.kind != "f":
        return None
    ans_shape = tuple(np.shape(node.ans))
    shape = ans_shape + arg.shape
    size = int(np.prod(shape, dtype=np.int64))
    g = np.asarray(unbox(rec.cotangent.get(node)), dtype=float)
    vjp = np.asarray(step.value, dtype=float)
    f = _impl_of(node, k)
    value = None
    if size <= max_elements:
        value = _fd_jacobian(f, arg, ans_shape)
        jtg = np.tensordot(g, value, axes=g.ndim) if g.ndim else g * value
        error = float(np.max(np.abs(jtg - vjp))) if vjp.size else 0.0
    else:
        v = rng.normal(size=arg.shape)
        h = 1e-6 * max(1.0, float(np.max(np.abs(arg))))
        jv = (f(arg + h * v) - f(arg - h * v)) / (2 * h)
        error = float(abs(np.sum(g * jv) - np.sum(vjp * v)))
    decl = declaration(node)
    out_name = rec.value_name[node]
    arg_name = step.wrt or rec.operand_name(node, k)
    label = f"∂{out_name}/∂{arg_name}"
    form = reason = subs = None
    operands: tuple[str, ...] = ()
    vjp_size = 0
    vjp_flops = 0
    if isinstance(decl, Einsum) and step.vjp_subscripts:
        ins, res = step.vjp_subscripts.split("->")
        terms = ins.split(",")
        others = terms[1:]
        subs = ",".join(others) + "->" + terms[0] + res
        operands = tuple(step.operands[1:])
        details = matrix_form_details(subs, list(operands)) if operands else None
        if details is not None:
            form, reason = details.text, details.reason
        elif terms[0] == "" and len(res) == 1:
            form = "1^T"
        elif len(set(terms[0])) == len(terms[0]) == 1 and terms[0] == res:
            form = "I"
        else:
            reason = "a Kronecker delta with more than two indices"
        vjp_size = sum(int(np.size(unbox(a))) for j, a in enumerate(node.args) if j != k)
        sizes = {}
        for t, a in zip([terms[0]] + others, [g] + [unbox(a) for j, a in enumerate(node.args) if j != k]):
            for c, n in zip(t, np.shape(a)):
                sizes[c] = n
        for c, n in zip(res, arg.shape):
            sizes[c] = n
        vjp_flops = int(np.prod([sizes[c] for c in set("".join(terms) + res)], dtype=np.int64))
    elif isinstance(decl, Elementwise):
        n = len(arg.shape)
        letters = "ijklmnpq"[:n]
        out_letters = "bcdefgh"[: len(ans_shape) - n] + letters
        if partial_is_one(node, k):
            subs = f"->{out_letters}{letters}"
            form = "I" if ans_shape == arg.shape else None
            reason = None if form else "a broadcast: the Kronecker delta with the broadcast index beside it"
            vjp_flops = int(np.prod(ans_shape, dtype=np.int64)) if ans_shape != arg.shape else 0
        else:
            fp = step.operands[1] if len(step.operands) > 1 else f"∂{out_name}/∂{arg_name}"
            subs = f"{out_letters}->{out_letters}{letters}" if ans_shape != arg.shape else f"{letters}->{letters}{letters}"
            operands = (fp,)
            details = matrix_form_details(subs, [fp])
            form, reason = details.text, details.reason
            vjp_size = int(np.prod(ans_shape, dtype=np.int64))
            vjp_flops = vjp_size
    elif step.note.startswith("linear negation"):
        form = "-I"
        vjp_flops = int(arg.size)
    jacobian_flops = size  # g^T J: one multiply-add per element of J
    return JacobianRow(label, form, subs, operands, shape, size, vjp_size, jacobian_flops, vjp_flops,
                       value, error, reason, out_name, arg_name)


def _chains(rec: Recording, rows: list[JacobianRow]) -> list[str]:
    """``∂L/∂W = ∂L/∂a3 ∂a3/∂z3 ...`` per differentiated argument, with shapes, loss first."""
    by_edge = {(r.out_name, r.arg_name): r for r in rows}
    out: list[str] = []
    for leaf, name in rec.wrt.items():
        paths: list[list[Node]] = []

        def walk(node: Node, path: list[Node]) -> None:
            if len(paths) >= 4:
                return
            if node is rec.out:
                paths.append(path)
                return
            for consumer, _ in rec.consumers.get(node, []):
                walk(consumer, path + [consumer])

        walk(leaf, [leaf])
        if not paths:
            continue
        terms = []
        for path in paths:
            factors, shapes = [], []
            for a, b in reversed(list(zip(path, path[1:]))):
                an, bn = rec.value_name[a], rec.value_name[b]
                factors.append(f"∂{bn}/∂{an}")
                r = by_edge.get((bn, an))
                shapes.append("(" + "x".join(map(str, r.shape)) + ")" if r is not None and r.shape else "(1)")
            terms.append(" ".join(factors) + "    " + " ".join(shapes))
        out.append(f"∂{rec.value_name[rec.out]}/∂{name} = " + "\n      + ".join(terms))
    return out


def jacobian_view(rec: Recording, steps: Sequence[Step], max_elements: int) -> JacobianView:
    rng = np.random.default_rng(0)
    rows = []
    for s in steps:
        if s.kind != "backward" or s.node is None:
            continue
        row = _row(rec, s, rng, max_elements)
        if row is not None:
            rows.append(row)
    return JacobianView(rows, _chains(rec, rows))
