"""The trajectory plot of the report: each probe's headline metric along the trajectory (training
step, or number of mixture tasks) with its 95% CI band, the base's value as a dashed line and the
points that failed the gate marked, one small panel per probe.

Drawn like :mod:`rai_audit.report.charts`: matplotlib without pyplot, SVG with text as paths
(labels from the store cannot become markup), stable ids, embedded as a ``data:`` URI.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any, Sequence

#: Marker colour per verdict (as the report's text colours: pass green, fail red, inconclusive amber).
COLOURS = {"pass": "#0b6b2b", "fail": "#b3261e", "inconclusive": "#c98a00"}
LINE = "#1f4e79"
MAX_PANELS = 9  # a 3 x 3 grid; the tables below list every probe


def _two_lines(title: str, width: int = 44) -> str:
    """A panel title in at most two lines of about ``width`` characters (the probe's title, then
    the metric), so that three panels a row never overlap or run off the figure."""
    import textwrap

    lines = textwrap.wrap(title, width) or [""]
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))


def trajectory_plot(panels: Sequence[Any], *, axis: str, xlabel: str, panel_width: float = 3.0, panel_height: float = 1.7,
                    per_row: int = 3) -> str | None:
    """The panels (objects with ``title``, ``positions``, ``values``, ``lows``, ``highs``,
    ``verdicts``, ``base``), side by side (``per_row`` a row: wide and short, so the plot sits
    beside the section's text), as a ``data:image/svg+xml`` URI; None when no panel has a value.
    Each panel has its own y axis (the metrics' scales differ). The tasks axis is symlog (1, 2,
    4, ... tasks with the base at 0)."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    panels = [p for p in panels if any(_finite(v) for v in p.values)][:MAX_PANELS]
    if not panels:
        return None
    cols = min(per_row, len(panels))
    rows = math.ceil(len(panels) / cols)
    height = 0.35 + panel_height * rows
    fig = Figure(figsize=(panel_width * cols, height))
    FigureCanvasSVG(fig)
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = [grid[i // cols][i % cols] for i in range(len(panels))]
    for ax in [a for row in grid for a in row][len(panels):]:
        ax.set_visible(False)
    for ax, p in zip(axes, panels):
        xs = [x for x, v in zip(p.positions, p.values) if _finite(v)]
        ys = [v for v in p.values if _finite(v)]
        band = [(x, lo, hi) for x, lo, hi in zip(p.positions, p.lows, p.highs) if _finite(lo) and _finite(hi)]
        if band:
            ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=LINE, alpha=0.15, linewidth=0)
        ax.plot(xs, ys, color=LINE, linewidth=1.3)
        if _finite(p.base):
            ax.axhline(p.base, color="#777777", linewidth=0.8, linestyle="--")
        for x, v, verdict in zip(p.positions, p.values, p.verdicts):
            if not _finite(v):
                continue
            if verdict == "fail":
                ax.plot([x], [v], marker="X", markersize=7, color=COLOURS["fail"], linestyle="none")
            else:
                ax.plot([x], [v], marker="s" if verdict == "base" else "o", markersize=4.5,
                        color=COLOURS.get(str(verdict), LINE if verdict == "base" else "#888888"), linestyle="none")
        ax.set_title(_two_lines(str(p.title)), fontsize=6.5, loc="left")
        ax.tick_params(labelsize=6.5)
        ax.grid(color="#dddddd", linewidth=0.5)
        if axis == "tasks":
            ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(sorted({int(x) for x in p.positions}))
        ax.set_xticklabels([str(int(x)) for x in sorted({int(x) for x in p.positions})])
        ax.set_xlabel(xlabel, fontsize=6.5)
    handles = [Line2D([], [], color=LINE, marker="s", linestyle="none", markersize=4, label="base"),
               Line2D([], [], color=COLOURS["pass"], marker="o", linestyle="none", markersize=4, label="pass"),
               Line2D([], [], color=COLOURS["inconclusive"], marker="o", linestyle="none", markersize=4, label="inconclusive"),
               Line2D([], [], color=COLOURS["fail"], marker="X", linestyle="none", markersize=6, label="fail"),
               Line2D([], [], color="#777777", linestyle="--", linewidth=0.8, label="base value")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=6.2, frameon=False)
    fig.tight_layout(rect=(0, 0.22 / height, 1, 1))
    buf = io.BytesIO()
    with rc_context({"svg.hashsalt": "rai-audit"}):  # stable element ids: same data, same bytes
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
