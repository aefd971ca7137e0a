"""The Trends page's data: a probe's overall metrics per completed run over time with CIs, the
gate's limits drawn from each metric's first value, and the faceted chart of both.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import altair as alt
import pandas as pd

from dashboards.numbers import ci_shown, number
from dashboards.run_labels import COMPLETE, audit_name, short
from rai_audit.store import MetricRow, RunRecord


def lineage_key(run: RunRecord, by: str) -> str:
    return audit_name(run) if by == "audit" else (run.model_reference or run.model_id or "")


def trend_frame(runs: Sequence[RunRecord], metric_rows: Mapping[str, Sequence[MetricRow]], probe: str) -> pd.DataFrame:
    """Overall metrics of ``probe`` per complete run over time, with CIs."""
    rows = []
    for r in runs:
        if r.status not in COMPLETE:
            continue
        for m in metric_rows.get(r.run_id, []):
            if m.probe == probe and m.subgroup == "" and m.name != "items_errored":
                lo, hi = ci_shown(m.ci_low, m.ci_high, m.n)
                rows.append({"time": r.created_at, "run": short(r.run_id), "role": r.role or "", "model": r.model_reference or "",
                             "metric": m.name, "value": number(m.value), "ci_low": lo, "ci_high": hi, "n": m.n})
    frame = pd.DataFrame(rows, columns=["time", "run", "role", "model", "metric", "value", "ci_low", "ci_high", "n"])
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def threshold_frame(trend: pd.DataFrame, max_abs_change: float | None, better: Mapping[str, str]) -> pd.DataFrame:
    """Gate limits drawn on trends: from each metric's first value, the allowed change on the bad side."""
    rows = []
    if max_abs_change is None or trend.empty:
        return pd.DataFrame(rows, columns=["metric", "threshold", "side"])
    for metric, g in trend.groupby("metric", sort=False):
        first = g["value"].dropna()
        if first.empty:
            continue
        v0 = float(first.iloc[0])
        b = better.get(metric, "none")
        sides = {"higher": ["-"], "lower": ["+"]}.get(b, ["-", "+"])
        for s in sides:
            rows.append({"metric": metric, "threshold": v0 + max_abs_change if s == "+" else v0 - max_abs_change,
                         "side": "max" if s == "+" else "min"})
    return pd.DataFrame(rows, columns=["metric", "threshold", "side"])


def trend_chart(frame: pd.DataFrame, thresholds: pd.DataFrame) -> alt.FacetChart:
    x = alt.X("time:T", title=None)
    band = alt.Chart().mark_area(opacity=0.25).encode(x=x, y=alt.Y("ci_low:Q", title="value (95% CI)"), y2="ci_high:Q")
    line = alt.Chart().mark_line(point=True).encode(x=x, y="value:Q", tooltip=["run", "role", "model", "value", "ci_low", "ci_high", "n"])
    layers = [band, line]
    data = frame
    if not thresholds.empty:
        data = pd.concat([frame, thresholds.assign(time=pd.NaT)], ignore_index=True)
        layers.append(alt.Chart().mark_rule(color="red", strokeDash=[6, 3]).encode(y="threshold:Q"))
    return alt.layer(*layers, data=data).facet(row=alt.Row("metric:N", title=None)).resolve_scale(y="independent")
