"""The report: a text table on stdout, a JSON file, and a bar chart of the ratios."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["format_time", "format_table", "write_json", "plot_ratios"]


def format_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _target(row: dict[str, Any]) -> str:
    parts = []
    if row.get("target") is not None:
        parts.append(f"<= {row['target']:.1f}x {'met' if row.get('target_met') else 'MISSED'}")
    for v in row.get("peer_targets", ()):
        parts.append(f"{v['ratio']:.2f}x {v['vs']} (<= {v['bound']:.1f}x {'met' if v['met'] else 'MISSED'})")
    return "; ".join(parts)


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per (problem, scale, implementation)."""
    header = ("problem", "scale", "implementation", "median", "best", "ratio", "best ratio",
              "target", "status")
    lines = [header]
    for r in rows:
        lines.append((
            r["problem"], r["scale"], r["label"], format_time(r.get("median_s")),
            format_time(r.get("best_s")), _ratio(r.get("ratio")), _ratio(r.get("best_ratio")),
            _target(r), r["status"] + (" (1 call: too slow to time)" if r.get("note") else ""),
        ))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    previous = None
    for n, line in enumerate(lines):
        key = line[:2]
        if n > 1 and key != previous:
            out.append("")
        previous = key
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def plot_ratios(path: Path, rows: list[dict[str, Any]]) -> str:
    """A bar chart (log scale) of each implementation's median ratio to the hand-derived
    NumPy baseline, one panel per scale. Returns a note saying what was done."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not importable: chart skipped (pip install -e '.[bench]')"
    timed = [r for r in rows if r.get("ratio") is not None and r["library"] != "numpy"]
    if not timed:
        return "no timed rows: chart skipped"
    scales = list(dict.fromkeys(r["scale"] for r in timed))
    labels = list(dict.fromkeys(r["label"] for r in timed))
    fig, axes = plt.subplots(len(scales), 1, figsize=(13, 4.2 * len(scales)), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, scale in zip(axes[:, 0], scales):
        problems = list(dict.fromkeys(r["problem"] for r in timed if r["scale"] == scale))
        width = 0.8 / len(labels)
        for j, label in enumerate(labels):
            xs, ys = [], []
            for i, p in enumerate(problems):
                for r in timed:
                    if r["scale"] == scale and r["problem"] == p and r["label"] == label:
                        xs.append(i - 0.4 + (j + 0.5) * width)
                        ys.append(r["ratio"])
            if xs:
                ax.bar(xs, ys, width=width, label=label, color=colors(j % 10))
        for i, p in enumerate(problems):
            for r in timed:
                if r["scale"] == scale and r["problem"] == p and r.get("target") is not None:
                    ax.hlines(r["target"], i - 0.45, i + 0.45, colors="black", linestyles="dotted")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(problems)))
        ax.set_xticklabels(problems, rotation=20)
        ax.set_ylabel("median time / hand-derived NumPy")
        ax.set_title(f"{scale} scale (dotted: einsumad targets)")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0, 0].legend(fontsize="small", ncol=min(4, len(labels)))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {path}"
