"""The Trajectory page's data: which trajectories the store holds (and how the picker names them),
each probe's headline metric along the trajectory with CIs and each point's gate verdict, the
table of points, the trend sentence, and the chart whose points are clicked to open a checkpoint's
comparison.

Built here from a :class:`~rai_audit.trajectory.model.TrajectoryAnalysis`, not in the page, so
tests can check the numbers without a browser. Labels and probe titles come from the store and
are untrusted: frames carry them as plain values (tables and Vega-Lite draw text, never markup);
the page escapes what it puts into Markdown.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import altair as alt
import pandas as pd

from dashboards.numbers import ci_text, num, number
from rai_audit.store.api import TrajectoryPointRecord
from rai_audit.trajectory.model import HeadlinePoint, PointSummary, TrajectoryAnalysis, Trend

#: The verdict of a point as the chart and tables name it: the base has none ("base"); a point
#: without a gate verdict (no policy recorded) is "not gated".
BASE, NOT_GATED = "base", "not gated"
VERDICT_ORDER = [BASE, "pass", "fail", "inconclusive", NOT_GATED]
VERDICT_COLORS = alt.Scale(domain=VERDICT_ORDER, range=["#4c78a8", "#2e7d32", "#c62828", "#e69500", "#9e9e9e"])
VERDICT_SHAPES = alt.Scale(domain=VERDICT_ORDER, range=["square", "circle", "cross", "diamond", "circle"])
#: The chart's point selection: clicking a point selects its position (the page opens that
#: checkpoint's comparison).
SELECTION = "checkpoint"
AXIS_TITLE = {"step": "training step", "tasks": "number of mixture tasks"}


def trajectory_choices(trajectories: Sequence[Sequence[TrajectoryPointRecord]], audit: str | None = None) -> list[dict[str, Any]]:
    """The picker's trajectories, newest first (the store's order): id, audit, axis, positions,
    the newest point's time and a label; only ``audit``'s when given."""
    out = []
    for pts in trajectories:
        if not pts or (audit is not None and pts[0].audit_id != audit):
            continue
        positions = [p.position for p in pts]
        newest = max(p.created_at for p in pts)
        axis = pts[0].axis
        span = f"steps {', '.join(map(str, positions))}" if axis == "step" else f"tasks {', '.join(map(str, positions))}"
        out.append({
            "trajectory_id": pts[0].trajectory_id, "audit_id": pts[0].audit_id, "axis": axis, "positions": positions,
            "created_at": newest,
            "label": f"{pts[0].trajectory_id[:8]} · {axis} axis · {len(pts)} points ({span}) · "
                     f"{newest:%Y-%m-%d %H:%M}" + (f" · audit {str(pts[0].audit_id)[:24]}" if pts[0].audit_id else ""),
        })
    return out


def point_verdict(point: PointSummary | None, base_position: int) -> str:
    if point is None:
        return NOT_GATED
    if point.position == base_position or point.comparison_id is None:
        return BASE if point.position == base_position else NOT_GATED
    return point.verdict or NOT_GATED


def headline_frame(analysis: TrajectoryAnalysis) -> pd.DataFrame:
    """One row per probe headline metric and point: value with its CI, the paired change from the
    base with its CI, the point's verdict (colour and shape in the chart), label, comparison id
    and training loss."""
    base = base_position(analysis)
    by_pos = {p.position: p for p in analysis.points}
    rows = []
    for h in analysis.headline:
        p = by_pos.get(h.position)
        at_base = h.position == base
        rows.append({
            "probe": h.probe, "metric": h.metric, "position": h.position, "label": h.label, "n": h.n,
            "value": number(h.value), "ci_low": number(h.ci_low), "ci_high": number(h.ci_high),
            "diff": None if at_base else number(h.diff),
            "diff_ci_low": None if at_base else number(h.diff_ci_low), "diff_ci_high": None if at_base else number(h.diff_ci_high),
            "verdict": point_verdict(p, base),
            "comparison_id": (p.comparison_id if p else None) or "",
            "train_loss": number(p.train_loss) if p else None,
            "value_text": _value_text(h), "diff_text": "-" if at_base else _diff_text(h),
        })
    cols = ["probe", "metric", "position", "label", "n", "value", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high",
            "verdict", "comparison_id", "train_loss", "value_text", "diff_text"]
    return pd.DataFrame(rows, columns=cols)  # the analysis' order: per probe, points by position


def base_position(analysis: TrajectoryAnalysis) -> int:
    """The base's position on the axis (0 in every trajectory the audit writes)."""
    base = [p.position for p in analysis.points if p.run_id == analysis.base_run]
    return base[0] if base else min((p.position for p in analysis.points), default=0)


def _value_text(h: HeadlinePoint) -> str:
    lo, hi = number(h.ci_low), number(h.ci_high)
    ci = ci_text(lo, hi, h.n).replace("+", "") if lo is not None and hi is not None else ci_text(lo, hi, h.n)
    return f"{num(h.value)} {ci}" if ci != "-" else num(h.value)


def _diff_text(h: HeadlinePoint) -> str:
    d = number(h.diff)
    if d is None:
        return "-"
    ci = ci_text(h.diff_ci_low, h.diff_ci_high, h.n)
    return f"{d:+.4f} {ci}" if ci != "-" else f"{d:+.4f}"


def probes(analysis: TrajectoryAnalysis) -> list[str]:
    """The probes with a headline series, in the analysis' order."""
    return list(dict.fromkeys(h.probe for h in analysis.headline))


def probe_titles(comparison: Mapping[str, Any] | None) -> dict[str, str]:
    """Probe name -> title, as a point's saved comparison records them (empty without one)."""
    return {str(p["probe"]): str(p.get("title") or p["probe"]) for p in (comparison or {}).get("probes", [])}


def points_table(frame: pd.DataFrame, probe: str, analysis: TrajectoryAnalysis) -> pd.DataFrame:
    """A probe's table of points: position, label, verdict (with the gate's reasons), the headline
    value with its CI, the change from the base with its CI, and the training loss."""
    reasons = {p.position: "; ".join(p.gate_reasons) for p in analysis.points}
    f = frame[frame["probe"] == probe]
    return pd.DataFrame({
        "position": f["position"].astype(int), "label": f["label"], "verdict": f["verdict"],
        "value [95% CI]": f["value_text"], "change vs base [95% CI]": f["diff_text"],
        "train loss": f["train_loss"], "why": [reasons.get(int(p), "") for p in f["position"]],
    }).reset_index(drop=True)


def trend_of(analysis: TrajectoryAnalysis, probe: str) -> Trend | None:
    return next((t for t in analysis.trends if t.probe == probe), None)


def trend_text(trend: Trend | None) -> str:
    """The trend caption: "Trend of expected_max_toxicity: +0.0120 per 1,000 steps, 95% CI
    [+0.0030, +0.0210] (5 points, 24 items): worsening." Plain text (the page escapes it)."""
    if trend is None:
        return "No trend: fewer than two points with a value."
    slope = number(trend.slope)
    if slope is None:
        return f"Trend of {trend.metric}: undefined ({trend.n_points} points)."
    ci = ci_text(trend.ci_low, trend.ci_high, trend.n_items)
    judged = {True: "worsening (the whole CI is on the worse side)", False: "not worsening"}.get(
        trend.worsening, "no direction declared" if trend.better == "none" else "undefined")
    return (f"Trend of {trend.metric}: {slope:+.4f} {trend.per or 'per unit'}, 95% CI {ci} "
            f"({trend.n_points} points, {trend.n_items} items): {judged}.")


def base_value(frame: pd.DataFrame, base_position: int) -> float | None:
    b = frame[frame["position"] == base_position]["value"].dropna()
    return float(b.iloc[0]) if len(b) else None


def chart(frame: pd.DataFrame, axis: str, base: float | None, metric: str) -> alt.LayerChart:
    """One probe's headline metric along the trajectory: the 95% CI as a band, the value as a line,
    each point coloured and shaped by its verdict (base, pass, fail, inconclusive, not gated) and
    clickable (selection :data:`SELECTION` on ``position``), the base's value as a dashed line.
    The tasks axis is symlog (1, 2, 4, ... tasks; the base at 0)."""
    x = alt.X("position:Q", title=AXIS_TITLE.get(axis, axis),
              scale=alt.Scale(type="symlog") if axis == "tasks" else alt.Scale(zero=True),
              axis=alt.Axis(values=sorted({int(p) for p in frame["position"]}), format="d"))
    y_title = f"{metric} (95% CI)"
    src = alt.Chart(frame)
    band = src.mark_area(opacity=0.18, color="#4c78a8").encode(x=x, y=alt.Y("ci_low:Q", title=y_title), y2="ci_high:Q")
    line = src.mark_line(color="#4c78a8").encode(x=x, y=alt.Y("value:Q", title=y_title))
    pick = alt.selection_point(name=SELECTION, fields=["position"], on="click", nearest=False, empty=False)
    points = src.mark_point(filled=True, size=140, opacity=1).encode(
        x=x, y=alt.Y("value:Q", title=y_title),
        color=alt.Color("verdict:N", scale=VERDICT_COLORS, title="gate vs base"),
        shape=alt.Shape("verdict:N", scale=VERDICT_SHAPES, title="gate vs base"),
        stroke=alt.condition(pick, alt.value("black"), alt.value(None)),
        tooltip=[alt.Tooltip("label:N"), alt.Tooltip("verdict:N"), alt.Tooltip("value_text:N", title="value [95% CI]"),
                 alt.Tooltip("diff_text:N", title="change vs base [95% CI]"), alt.Tooltip("train_loss:Q", title="train loss")],
    ).add_params(pick)
    layers = [band, line]
    if base is not None:
        layers.append(alt.Chart(pd.DataFrame({"base": [base]})).mark_rule(strokeDash=[5, 4], color="#555555").encode(y="base:Q"))
    layers.append(points)
    # SVG (Streamlit's default for small charts, pinned here): each point is an element a click
    # (or a browser test) can target, and the chart stays sharp in screenshots
    return alt.layer(*layers).properties(height=260, usermeta={"embedOptions": {"renderer": "svg"}})


def selected_position(event: Any) -> int | None:
    """The position clicked in a chart (``st.altair_chart(on_select="rerun")``'s state), or None."""
    sel = (getattr(event, "selection", None) or (event.get("selection") if isinstance(event, Mapping) else None)) or {}
    picked = sel.get(SELECTION) if isinstance(sel, Mapping) else None
    if not picked:
        return None
    value = picked[0].get("position") if isinstance(picked, list) and isinstance(picked[0], Mapping) else None
    return None if value is None else int(value)


def comparison_of(analysis: TrajectoryAnalysis, position: int | None) -> str | None:
    """The comparison id of the point at ``position`` vs the base (None for the base or no point)."""
    if position is None:
        return None
    p = next((p for p in analysis.points if p.position == position), None)
    return p.comparison_id if p else None


def summary_text(analysis: TrajectoryAnalysis) -> str:
    """One sentence on the trajectory: its axis, points with their verdicts, the base, and the
    latest checkpoint that passes (the one to ship when stopping early), as plain text."""
    from rai_audit.trajectory.gate import choose_checkpoint

    base = base_position(analysis)
    pts = ", ".join(p.label if p.position == base else f"{p.label} ({point_verdict(p, base)})" for p in analysis.points)
    chosen = choose_checkpoint(analysis)
    return (f"Axis: {AXIS_TITLE.get(analysis.axis, analysis.axis)}; {len(analysis.points)} points: {pts}. Each checkpoint "
            f"is paired with the base (run {str(analysis.base_run)[:8]}) on the same items. "
            + (f"Checkpoint to ship: {chosen.point.label} ({chosen.reason})." if chosen.point
               else f"No checkpoint to ship: {chosen.reason}."))


def gate_summary(analysis: TrajectoryAnalysis) -> Mapping[str, Any] | None:
    """The trajectory gate's result (verdict, reasons, chosen checkpoint) when the analysis was
    judged."""
    return analysis.gate or None
