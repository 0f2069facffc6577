"""Graphs of a derivation: the forward pass, and beside it the backward pass.

Forward values are boxes (arguments and constants ellipses), joined by edges
labelled with each op's subscripts; every cotangent is a node of the backward
pass, joined to the cotangent it comes from by an edge labelled with the VJP's
einsum (the swapped subscripts) or its elementwise product. A dotted edge
links each value to its cotangent.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Sequence

import numpy as np

from ...core.tape import Node
from .record import Recording
from .steps import Step

__all__ = ["to_dot", "to_svg", "INSTALL_HINT"]

INSTALL_HINT = (
    "rendering SVG needs Graphviz: install the Python package with "
    "`pip install einsumad[graph]` (or `pip install graphviz`) and the Graphviz system "
    "package that provides the `dot` program (`apt install graphviz`, `brew install "
    "graphviz`, `conda install graphviz`); Derivation.to_dot() works without it"
)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_dot(rec: Recording, steps: Sequence[Step]) -> str:
    ids = {node: f"n{i}" for i, node in enumerate(rec.order)}
    forward = {s.node: s for s in steps if s.kind == "forward"}
    lines = ["digraph derivation {", "  rankdir=LR;", '  node [fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    lines.append('  subgraph cluster_forward { label="forward pass";')
    constants: dict[str, str] = {}
    const_edges = []
    for node in rec.order:
        nm = rec.value_name[node]
        shape = np.shape(node.ans)
        if node.prim is None:
            lines.append(f'    {ids[node]} [label="{_escape(nm)}\\n{shape}", shape=ellipse];')
            continue
        step = forward.get(node)
        label = (f"{nm} = {step.matrix_form}" if step and step.matrix_form else step.index_form if step else nm) or nm
        lines.append(f'    {ids[node]} [label="{_escape(label)}\\n{shape}", shape=box];')
        parents = dict(node.parents)
        for k in range(len(node.args)):
            if k in parents:
                continue
            cname = rec.operand_name(node, k)
            if np.ndim(node.args[k]) == 0 and not cname.isidentifier():
                continue  # a number: shown in the op's label
            if cname not in constants:
                constants[cname] = f"c{len(constants)}"
                lines.append(f'    {constants[cname]} [label="{_escape(cname)}\\n{np.shape(node.args[k])}\\n(constant)", '
                             'shape=ellipse, style=dashed];')
            const_edges.append((constants[cname], ids[node], step.subscripts if step and step.subscripts else ""))
    lines.append("  }")
    for node in rec.order:
        for _argnum, parent in node.parents:
            step = forward.get(node)
            label = step.subscripts if step and step.subscripts else node.prim.name
            lines.append(f'  {ids[parent]} -> {ids[node]} [label="{_escape(label)}"];')
    for src, dst, label in const_edges:
        lines.append(f'  {src} -> {dst} [label="{_escape(label)}", style=dashed];')
    # the backward pass: one node per cotangent, edges labelled with the VJP
    lines.append('  subgraph cluster_backward { label="backward pass"; style=filled; color="#f3f3f3";')
    cot_id: dict[str, str] = {}
    for node in reversed(rec.order):
        if node not in rec.cotangent:
            continue
        cname = rec.cotangent_of(node)
        if cname in cot_id:
            continue
        cot_id[cname] = f"g{len(cot_id)}"
        lines.append(f'    {cot_id[cname]} [label="{_escape(cname)}\\n{np.shape(node.ans)}", shape=box, style=rounded];')
    lines.append("  }")
    seen = set()
    for s in steps:
        if s.kind != "backward" or s.node is None or s.argnum is None:
            continue
        g = rec.cotangent_of(s.node)
        target = s.name
        if g == target or g not in cot_id or target not in cot_id:
            continue
        if s.vjp_subscripts:
            label = f"VJP {s.vjp_subscripts}\\n{s.matrix_form or ''}"
        else:
            label = s.matrix_form or s.index_form or s.op
        key = (g, target, label)
        if key in seen:
            continue
        seen.add(key)
        lines.append(f'  {cot_id[g]} -> {cot_id[target]} [label="{_escape(label)}", color="#b03030"];')
    for node in rec.order:
        cname = rec.cotangent_of(node)
        if node in rec.cotangent and cname in cot_id and rec.value_name[node] != "":
            lines.append(f"  {ids[node]} -> {cot_id[cname]} [style=dotted, arrowhead=none, constraint=false];")
    lines.append("}")
    return "\n".join(lines)


def to_svg(dot: str) -> str:
    try:
        import graphviz  # type: ignore[import-not-found]
    except ImportError:
        graphviz = None
    if graphviz is not None:
        try:
            return graphviz.Source(dot).pipe(format="svg").decode("utf-8")
        except Exception as exc:  # graphviz.ExecutableNotFound and friends
            raise RuntimeError(f"{INSTALL_HINT} ({exc})") from None
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(INSTALL_HINT)
    done = subprocess.run([exe, "-Tsvg"], input=dot.encode(), capture_output=True, check=True)
    return done.stdout.decode("utf-8")


_ = Node
