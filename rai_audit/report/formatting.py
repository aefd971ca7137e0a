"""How the reports print numbers and generated text, in every format: CIs (never an interval
from one item or cluster), MDEs, signed changes, p-values, percentages, short ids, and clipped
generated text. The HTML and the Markdown templates get these as their Jinja filters
(:mod:`rai_audit.report.render`), and the builders use the same functions, so a number reads the
same in every format.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

#: Characters of generated text shown per response in the HTML/PDF (the JSON keeps it whole).
MAX_CHARS = 500


def missing(v: Any) -> bool:
    """None or NaN: a number the report shows as absent."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def ci_text(lo: Any, hi: Any, n: Any = None, clusters: Any = None) -> str:
    """A 95% CI as text: "[+0.0100, +0.2000]", "—" when absent, and "n/a (n=1)" when the row
    rests on fewer than two items or clusters (an interval from one unit reads like certainty)."""
    from rai_audit.display import fmt_ci

    count = lambda v: int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None  # noqa: E731
    return fmt_ci(None if missing(lo) else lo, None if missing(hi) else hi, count(n), count(clusters), signed=True, missing="—")


def row_ci_text(row: Mapping[str, Any]) -> str:
    """:func:`ci_text` of a row with ``ci_low``, ``ci_high``, ``n`` and ``clusters``."""
    return ci_text(row.get("ci_low"), row.get("ci_high"), row.get("n"), row.get("clusters"))


def ci_unavailable(row: Mapping[str, Any]) -> bool:
    """Whether the row's CI is "n/a" (one item or cluster): no interval to show or draw."""
    return row_ci_text(row).startswith("n/a")


def mde_text(row: Any) -> str:
    """The row's MDE as text: "n/a" where its CI is (one item or cluster), "—" where undefined."""
    row = _mapping(row)
    if ci_unavailable(row):
        return "n/a"
    v = row.get("mde")
    return "—" if missing(v) else f"{v:.4f}"


def _mapping(row: Any) -> Mapping[str, Any]:
    if isinstance(row, Mapping):
        return row
    dump = getattr(row, "model_dump", None)
    return dump() if callable(dump) else dict(row)


def is_worse(row: Mapping[str, Any]) -> bool | None:
    """Whether B is worse than A on this row by the metric's direction (None: no direction)."""
    a, b, d, better = row.get("value_a"), row.get("value_b"), row.get("diff"), row.get("better")
    if a is None or b is None or d is None:
        return None
    if better == "higher":
        return d < 0
    if better == "lower":
        return d > 0
    if better in ("closer_to_zero", "closer_to_half"):
        t = 0.0 if better == "closer_to_zero" else 0.5
        return abs(b - t) > abs(a - t)
    return None


def effect(row: Mapping[str, Any]) -> float:
    """|B - A| of a row (-1 when undefined: sorts last)."""
    d = row.get("diff")
    return -1.0 if missing(d) else abs(float(d))


# ------------------------------------------------------------------------------ template filters


def num(v: Any, digits: int = 4) -> str:
    """A number to ``digits`` decimals; "—" when absent; text as it is."""
    if missing(v):
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:.{digits}f}"


def signed(v: Any, digits: int = 4) -> str:
    """A change with its sign ("+0.0100"); "—" when absent."""
    return "—" if missing(v) else f"{v:+.{digits}f}"


def signed_or_na(v: Any) -> str:
    """A change with its sign, "n/a" when absent (the summary's sentences)."""
    return "n/a" if missing(v) else f"{v:+.4f}"


def pval(v: Any) -> str:
    """A p-value: "<0.0001" below that; "—" when absent."""
    if missing(v):
        return "—"
    return "<0.0001" if v < 1e-4 else f"{v:.4f}"


def pct(v: Any) -> str:
    """A proportion as a percentage ("12.5%"); "—" when absent."""
    return "—" if missing(v) else f"{100 * v:.1f}%"


def pct_or_na(v: Any) -> str:
    """A proportion as a percentage ("12.5%"); "n/a" when absent (page-1 contamination marks)."""
    return "n/a" if missing(v) else f"{100 * float(v):.1f}%"


def short(v: Any, n: int = 12) -> str:
    """An id or revision cut to ``n`` characters and "…" (whole when that saves nothing)."""
    s = "" if v is None else str(v)
    return s if len(s) <= n + 1 else s[:n] + "…"


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]}


def clip(text: Any, limit: int = MAX_CHARS) -> str:
    """Generated text for a report cell: at most ``limit`` characters, control characters shown as
    ``\\xNN`` (a reader sees they are there; fonts have no glyph for them)."""
    s = "" if text is None else str(text)
    s = s if len(s) <= limit else s[:limit] + " […]"
    return s.translate(_CONTROL)
