"""LaTeX for derivations: an ``alignedat`` block with matrix form, index form and note in columns."""

from __future__ import annotations

from typing import Sequence

__all__ = ["textbook_latex", "steps_latex", "document", "text"]


def text(s: str) -> str:
    """Plain text inside ``\\text{...}``, escaped."""
    for a, b in (("\\", "\\textbackslash{}"), ("{", "\\{"), ("}", "\\}"), ("_", "\\_"), ("^", "\\^{}"),
                 ("&", "\\&"), ("%", "\\%"), ("#", "\\#"), ("$", "\\$")):
        s = s.replace(a, b)
    s = s.replace("⊙", "$\\odot$").replace("σ", "$\\sigma$").replace("=>", "$\\Rightarrow$").replace("->", "$\\to$")
    s = s.replace("δ", "$\\delta$").replace("ᵀ", "$^\\top$")
    return s


def textbook_latex(lines: Sequence) -> str:
    rows = ["\\text{forward pass} &&&&& \\\\"]
    for ln in lines:
        if ln.kind == "backward" and rows[-1] != "\\text{backward pass} &&&&& \\\\" and not any(
            r.startswith("\\text{backward pass}") for r in rows
        ):
            rows.append("\\text{backward pass} &&&&& \\\\")
        rows.append(_row(ln))
    return "\\begin{alignedat}{3}\n" + "\n".join(rows) + "\n\\end{alignedat}"


def _row(ln) -> str:  # type: ignore[no-untyped-def]
    label = f"\\text{{{ln.label}}}\\quad " if ln.label else ""
    note = f"\\text{{{ln.latex_note}}}" if ln.latex_note else ""
    if ln.latex_matrix is not None:
        left = f"{label}{ln.latex_name} &= {ln.latex_matrix}"
    else:
        left = f"{label} &"
    return f"{left} &\\qquad& {ln.latex_index} &\\qquad& {note} \\\\"


def steps_latex(steps: Sequence) -> str:
    rows = ["\\text{forward pass} &&&&& \\\\"]
    started = False
    for s in steps:
        if s.kind != "forward" and not started:
            rows.append("\\text{backward pass} &&&&& \\\\")
            started = True
        from ...algebra.matrix import latex_name

        eq = "\\mathrel{+}=" if s.accumulate else "="
        left = f"{latex_name(s.name)} &{eq} {s.latex_matrix}" if s.latex_matrix else " &"
        right = s.index.latex() if s.index is not None else ""
        note = f"\\text{{{text(s.note)}}}" if s.note else ""
        rows.append(f"{left} &\\qquad& {right} &\\qquad& {note} \\\\")
    return "\\begin{alignedat}{3}\n" + "\n".join(rows) + "\n\\end{alignedat}"


def document(block: str) -> str:
    """A standalone document: ``latex`` or ``pdflatex`` compiles it as it is."""
    return (
        "\\documentclass{article}\n\\usepackage[landscape,margin=1cm]{geometry}\n\\usepackage{amsmath}\n"
        "\\usepackage{amssymb}\n\\begin{document}\n\\small\n\\[\n" + block + "\n\\]\n\\end{document}\n"
    )
