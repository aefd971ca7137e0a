"""Charts for the reports: matplotlib without pyplot (no global backend state, headless), drawn
to SVG and embedded as ``data:`` URIs so the HTML and PDF stay self-contained.

Text is drawn as paths (matplotlib's default ``svg.fonttype = "path"``), so no label text from
the data ends up as markup, and an ``<img>``-embedded SVG cannot run scripts in a browser.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Sequence

MAX_ROWS = 40


def _finite(v: float | None) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def forest_plot(
    labels: Sequence[str],
    values: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    *,
    title: str,
    xlabel: str,
    reference: float | None = 0.0,
    highlight: Sequence[bool] | None = None,
    width: float = 7.0,
    row_height: float = 0.28,
) -> str | None:
    """A horizontal point-and-interval chart as a ``data:image/svg+xml`` URI (None if empty).

    One row per label (at most ``MAX_ROWS``); ``highlight`` marks rows drawn in the accent colour
    (significant regressions); ``reference`` draws a vertical line (zero change).
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    rows = [i for i, v in enumerate(values) if _finite(v)][:MAX_ROWS]
    if not rows:
        return None
    fig = Figure(figsize=(width, 0.8 + row_height * len(rows)))
    FigureCanvasSVG(fig)
    ax = fig.add_subplot(1, 1, 1)
    for y, i in enumerate(rows):
        colour = "#b3261e" if highlight is not None and highlight[i] else "#1f4e79"
        lo, hi = lows[i], highs[i]
        if _finite(lo) and _finite(hi):
            ax.plot([lo, hi], [y, y], color=colour, linewidth=1.6)
        ax.plot([values[i]], [y], "o", color=colour, markersize=4)
    if reference is not None:
        ax.axvline(reference, color="#777777", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([labels[i][:48] for i in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title[:90], fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    fig.tight_layout()
    buf = io.BytesIO()
    with rc_context({"svg.hashsalt": "rai-audit"}):  # stable element ids: same data, same bytes
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
