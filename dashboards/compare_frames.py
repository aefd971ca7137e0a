"""The Compare and Subgroups pages' data: per probe, the side-by-side table of A and B with the
paired change (CIs, p-values, gate verdict), the bar charts of A and B, the forest plot of one
metric's subgroup changes, and the subgroup x metric heatmap.

Frames are built here, not in the pages, so tests can check the numbers without a browser.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import altair as alt
import pandas as pd

from dashboards.numbers import ci_shown, ci_text, number
from dashboards.verdicts import row_verdict
from rai_audit.store import MetricRow


def overall_metrics(rows: Sequence[MetricRow], probe: str) -> dict[str, MetricRow]:
    return {m.name: m for m in rows if m.probe == probe and m.subgroup == "" and m.name != "items_errored"}


def side_by_side(comp: Mapping[str, Any], probe: str, metrics_a: Sequence[MetricRow], metrics_b: Sequence[MetricRow],
                 gate_rows: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """Per overall metric of ``probe``: A and B with their CIs (from each run's stored metrics),
    the paired difference B - A with CI, p-values and the gate verdict."""
    pc = next((p for p in comp["probes"] if p["probe"] == probe), None)
    ma, mb = overall_metrics(metrics_a, probe), overall_metrics(metrics_b, probe)
    verdicts: dict[tuple[str, str], list[str]] = {}
    for g in gate_rows:
        if g["probe"] == probe:
            verdicts.setdefault((g["metric"], g["subgroup"]), []).append(g["verdict"])
    headline = (pc or {}).get("headline") or ""
    out = []
    for row in (pc or {}).get("rows", []):
        if row["subgroup"] != "":
            continue
        a, b = ma.get(row["metric"]), mb.get(row["metric"])
        a_lo, a_hi = ci_shown(a.ci_low, a.ci_high, a.n) if a else (None, None)
        b_lo, b_hi = ci_shown(b.ci_low, b.ci_high, b.n) if b else (None, None)
        d_lo, d_hi = ci_shown(row["ci_low"], row["ci_high"], row["n"], row.get("clusters"))
        out.append({
            "metric": row["metric"],
            "source": row["source"],
            "headline": bool(headline) and row["metric"] == headline and row["source"] == "metric",
            "n": row["n"],
            "A": number(row["value_a"]),
            "A CI low": a_lo,
            "A CI high": a_hi,
            "B": number(row["value_b"]),
            "B CI low": b_lo,
            "B CI high": b_hi,
            "diff (B-A)": number(row["diff"]),
            "diff CI low": d_lo,
            "diff CI high": d_hi,
            "diff CI": ci_text(row["ci_low"], row["ci_high"], row["n"], row.get("clusters")),
            "MDE": number(row.get("mde")),
            "p": number(row["p_value"]),
            "p adjusted": number(row["p_adjusted"]),
            "significant": bool(row["significant"]),
            "better": row.get("better", "none"),
            "gate": row_verdict(verdicts.get((row["metric"], ""), [])) if row["source"] == "metric" else "-",
            "method": row["method"],
        })
    return pd.DataFrame(out)


def bar_frame(side: pd.DataFrame) -> pd.DataFrame:
    """Long form of the metric rows for the bar chart: one bar per metric and model, with CI."""
    rows = []
    for _, r in side[side["source"] == "metric"].iterrows() if len(side) else []:
        for model in ("A", "B"):
            rows.append({"metric": r["metric"], "model": model, "value": r[model],
                         "ci_low": r[f"{model} CI low"], "ci_high": r[f"{model} CI high"]})  # side_by_side blanked CIs of n < 2
    return pd.DataFrame(rows, columns=["metric", "model", "value", "ci_low", "ci_high"])


BARS_PER_ROW = 4  # metric bar charts per row on the Compare page (like the metric cards above them)
MODEL_COLORS = alt.Scale(domain=["A", "B"], range=["#4c78a8", "#f58518"])  # A blue, B orange


def bar_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """One metric's A and B with 95% CIs (``frame``: that metric's rows of :func:`bar_frame`).
    The page draws one such chart per metric, each in its own column at the column's width
    (Vega-Lite autosize "fit"), so no chart can grow past its column into a neighbour, as one
    faceted chart of every metric (natural width = metrics x panel width) did."""
    base = alt.Chart(frame)
    bars = base.mark_bar().encode(
        x=alt.X("model:N", title=None, axis=alt.Axis(labelAngle=0)), y=alt.Y("value:Q", title=None, axis=alt.Axis(format="~g")),
        color=alt.Color("model:N", scale=MODEL_COLORS, legend=None),
        tooltip=["metric", "model", "value", "ci_low", "ci_high"],
    )
    err = base.mark_errorbar().encode(x="model:N", y=alt.Y("ci_low:Q", title=None), y2="ci_high:Q")
    return alt.layer(bars, err, data=frame).properties(height=160)


def forest_frame(comp: Mapping[str, Any], probe: str, metric: str, source: str = "metric") -> pd.DataFrame:
    """Subgroup deltas (B - A) of one metric with CIs, overall first."""
    pc = next((p for p in comp["probes"] if p["probe"] == probe), {"rows": []})
    rows = [
        {"subgroup": r["subgroup"] or "overall", "n": r["n"], "diff": number(r["diff"]),
         **dict(zip(("ci_low", "ci_high"), ci_shown(r["ci_low"], r["ci_high"], r["n"], r.get("clusters")))),
         "CI": ci_text(r["ci_low"], r["ci_high"], r["n"], r.get("clusters")), "p adjusted": number(r["p_adjusted"]),
         "significant": bool(r["significant"])}
        for r in pc["rows"] if r["metric"] == metric and r["source"] == source
    ]
    return pd.DataFrame(rows, columns=["subgroup", "n", "diff", "ci_low", "ci_high", "CI", "p adjusted", "significant"])


def forest_plot(frame: pd.DataFrame) -> alt.LayerChart:
    order = list(frame["subgroup"])
    y = alt.Y("subgroup:N", sort=order, title=None)
    points = alt.Chart(frame).mark_point(filled=True, size=60).encode(
        x=alt.X("diff:Q", title="difference B - A (95% CI)"), y=y,
        color=alt.Color("significant:N", scale=alt.Scale(domain=[False, True], range=["#4c78a8", "#e45756"])),
        tooltip=["subgroup", "n", "diff", "CI", "p adjusted"],
    )
    ci = alt.Chart(frame).mark_rule().encode(x="ci_low:Q", x2="ci_high:Q", y=y)
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="x:Q")
    return alt.layer(ci, points, zero).properties(height=alt.Step(24))  # a readable row per subgroup


def heatmap_frame(comp: Mapping[str, Any], probe: str, source: str = "metric") -> pd.DataFrame:
    """One cell per (subgroup, metric): delta, n, corrected p-value and significance."""
    pc = next((p for p in comp["probes"] if p["probe"] == probe), {"rows": []})
    rows = []
    for r in pc["rows"]:
        if r["source"] != source or r["subgroup"] == "":
            continue
        field, _, value = r["subgroup"].partition("=")
        lo, hi = ci_shown(r["ci_low"], r["ci_high"], r["n"], r.get("clusters"))
        rows.append({"subgroup": r["subgroup"], "field": field if value else "", "value": value or field,
                     "metric": r["metric"], "diff": number(r["diff"]), "n": r["n"], "ci_low": lo, "ci_high": hi,
                     "CI": ci_text(r["ci_low"], r["ci_high"], r["n"], r.get("clusters")), "p": number(r["p_value"]),
                     "p adjusted": number(r["p_adjusted"]), "significant": bool(r["significant"])})
    return pd.DataFrame(rows, columns=["subgroup", "field", "value", "metric", "diff", "n", "ci_low", "ci_high", "CI", "p",
                                       "p adjusted", "significant"])


def heatmap(frame: pd.DataFrame, sort_by: str = "subgroup") -> alt.LayerChart:
    order = list(frame.sort_values(sort_by, ascending=sort_by == "subgroup")["subgroup"].drop_duplicates())
    lim = max(1e-9, float(frame["diff"].abs().max())) if len(frame) and frame["diff"].notna().any() else 1.0
    base = alt.Chart(frame).encode(x=alt.X("metric:N", title=None), y=alt.Y("subgroup:N", sort=order, title=None))
    cells = base.mark_rect().encode(
        color=alt.Color("diff:Q", scale=alt.Scale(scheme="redblue", reverse=True, domain=[-lim, lim]), title="B - A"),
        tooltip=["subgroup", "metric", "diff", "n", "CI", "p adjusted", "significant"],
    )
    text = base.mark_text(fontSize=11).encode(text=alt.Text("label:N")).transform_calculate(
        label="format(datum.diff, '+.3f') + ' (n=' + datum.n + ')' + (datum.significant ? ' *' : '')"
    )
    return alt.layer(cells, text)
