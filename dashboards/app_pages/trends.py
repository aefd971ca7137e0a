"""Trends: metrics over time for one model lineage (runs of the same audit name, or of the same
model reference), with CI bands and the default gate's limits drawn from the first run."""

from __future__ import annotations

import streamlit as st

from dashboards import common, queries as q, run_labels, trend_frames

st.title("Trends")
url, runs = common.runs_or_stop()
c1, c2 = st.columns([1, 2])
by = c1.radio("Lineage by", ["audit", "model"], horizontal=True, key="trend_by",
              format_func=lambda b: "audit name" if b == "audit" else "model reference")
# lineages with completed runs first (newest first), then the rest
ordered = [r for r in runs if r.status in run_labels.COMPLETE] + [r for r in runs if r.status not in run_labels.COMPLETE]
lineages = list(dict.fromkeys(k for k in (trend_frames.lineage_key(r, by) for r in ordered) if k))
if not lineages:
    st.info("No run records an audit name or model reference to group by.")
    st.stop()
lineage = c2.selectbox("Lineage", lineages, key="trend_lineage")
members = [r for r in runs if trend_frames.lineage_key(r, by) == lineage]
roles = sorted({r.role or "" for r in members})
role = st.radio("Role", ["all"] + [r for r in roles if r], horizontal=True, key="trend_role") if len(roles) > 1 else "all"
if role != "all":
    members = [r for r in members if (r.role or "") == role]
done = [r for r in members if r.status in run_labels.COMPLETE]
pending = len(members) - len(done)
if pending:
    st.caption(f"{pending} run(s) of this lineage are running or failed and are not plotted (see Runs).")
if not done:
    st.info("No completed run in this lineage yet.")
    st.stop()
probes = list(dict.fromkeys(p for r in done for p in r.probes))
probe = st.selectbox("Probe", probes, key="trend_probe")
frame = trend_frames.trend_frame(done, {r.run_id: q.metrics(url, r) for r in done}, probe)
if frame.empty:
    st.info("No stored metrics for this probe in this lineage.")
    st.stop()

from rai_audit.gate import load_policy  # noqa: E402

rule = next((r for r in load_policy("default").rules if r.subgroup == "" and r.max_abs_change is not None), None)
better: dict[str, str] = {}
try:
    import probes as _probes

    better = {s.name: s.better for s in _probes.probe_class(probe).metric_specs}  # class attribute: no data loaded
except Exception:  # noqa: BLE001 - unknown probe: limits drawn both ways
    pass
limits = trend_frames.threshold_frame(frame, rule.max_abs_change if rule else None, better)
st.caption("Lines: value per run; bands: 95% CI; dashed red: default gate limit "
           f"({rule.max_abs_change if rule else '-'} absolute change from the first run, on the bad side).")
common.chart(trend_frames.trend_chart(frame, limits))
with st.expander("Data behind the chart"):
    st.dataframe(frame, hide_index=True, key="trend_table")
    st.dataframe(limits, hide_index=True, key="trend_limits")
