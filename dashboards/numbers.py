"""How the dashboard prints numbers: undefined values, CIs (none from fewer than two items or
clusters, as the CLI and reports print them) and ``st.metric`` deltas coloured by the metric's
better direction.
"""

from __future__ import annotations

import math
from typing import Any


def _too_few(n: Any, clusters: Any = None) -> str | None:
    """ "n/a (n=1)" / "n/a (1 cluster)" where a CI would rest on fewer than two items or
    clusters, else None (:func:`rai_audit.display.ci_unavailable`; NaN counts are unknown)."""
    from rai_audit.display import ci_unavailable

    def count(k: Any) -> int | None:
        return None if k is None or (isinstance(k, float) and math.isnan(k)) else int(k)

    return ci_unavailable(count(n), count(clusters))


def ci_shown(lo: Any, hi: Any, n: Any, clusters: Any = None) -> tuple[float | None, float | None]:
    """A 95% CI as tables and charts show it: none from fewer than two items or clusters (an
    "interval" from one item, e.g. [0.686, 0.686], reads like certainty)."""
    if _too_few(n, clusters) is not None:
        return None, None
    return number(lo), number(hi)


def ci_text(lo: Any, hi: Any, n: Any, clusters: Any = None) -> str:
    """The CI of a change as text, as the CLI and reports print it: "[+0.0100, +0.2000]"; "n/a (n=1)"
    from fewer than two items or clusters; "-" when undefined."""
    few = _too_few(n, clusters)
    if few is not None:
        return few
    lo, hi = number(lo), number(hi)
    if lo is None or hi is None:
        return "-"
    return f"[{lo:+.4f}, {hi:+.4f}]"  # rai_audit.display.fmt_ci(..., signed=True) prints the same


def is_zero_change(diff: Any, digits: int = 4) -> bool:
    """A change that shows as zero at the shown precision: neutral (no arrow, no colour)."""
    f = number(diff)
    return f is not None and round(f, digits) == 0


def delta_args(diff: Any, better: str, digits: int = 4) -> dict[str, Any]:
    """``st.metric`` delta arguments for a change B - A: coloured by whether it is better or worse
    for the metric; a zero change is neutral (grey, no arrow); undefined: no delta."""
    f = number(diff)
    if f is None:
        return {"delta": None}
    if is_zero_change(f, digits):
        return {"delta": f"{0:.{digits}f}", "delta_color": "off", "delta_arrow": "off"}
    return {"delta": f"{f:+.{digits}f}", "delta_color": {"lower": "inverse", "higher": "normal"}.get(better, "off")}


def number(v: Any) -> float | None:
    """A value as a float, None when it is missing, not a number or NaN."""
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def num(v: Any, digits: int = 4) -> str:
    """A number as the dashboard prints it ("-" when undefined)."""
    f = number(v)
    return "-" if f is None else f"{f:.{digits}f}"
