"""Subgroups: heatmap of metric deltas by subgroup, n per cell, with the correction applied (CIs
from fewer than two items are shown as "n/a")."""

from __future__ import annotations

import streamlit as st

from dashboards import common, compare_frames
from rai_audit.report.escaping import md_escape

st.title("Subgroups")
url, runs = common.runs_or_stop()
comp = common.comparison_or_stop(*common.pick_pair_or_stop(runs, "subgroups"), "subgroups")

probes = [p["probe"] for p in comp["probes"]]
c1, c2, c3 = st.columns(3)
probe = c1.selectbox("Probe", probes, key="sub_probe")
source = c2.radio("Rows", ["metric", "outcome"], horizontal=True, key="sub_source",
                  help="metric: the probe's own aggregates; outcome: per-item outcomes")
sort_by = c3.selectbox("Sort by", ["subgroup", "diff", "n", "p adjusted"], key="sub_sort")
frame = compare_frames.heatmap_frame(comp, probe, source)
correction = comp["settings"].get("correction", "holm")
st.caption(f"Cells: B - A per subgroup, n items, '*' = significant after {md_escape(correction)} correction across "
           f"the subgroups of each metric (alpha {comp['settings'].get('alpha', 0.05)}).")
if frame.empty:
    st.info("This probe has no subgroup rows of this kind.")
    st.stop()
common.chart(compare_frames.heatmap(frame, sort_by))
ordered = frame.sort_values(sort_by, ascending=sort_by in ("subgroup", "p adjusted"), kind="stable")
st.dataframe(ordered, hide_index=True, width="stretch", key="sub_table")
