"""Trajectory: a model audited *during* instruction tuning, the same probes on the same items at
the base, at checkpoints along the training steps (or along the number of mixture tasks) and at
the end. Per probe, the headline metric along the trajectory with 95% CI bands, the base as a
reference line, each point's gate verdict against the base, the trend; and a table of points.

Clicking a point opens that checkpoint's comparison with the base on the Compare page (and from
there its items); the checkpoint picker below does the same without a mouse. The analysis is
computed once per trajectory (cached), as ``rai-audit`` computes it for reports."""

from __future__ import annotations

import streamlit as st

from dashboards import common, queries as q, trajectory_frames as tf, verdicts
from rai_audit.errors import StoreError, UserError
from rai_audit.report.escaping import md_escape

COMPARE, ITEMS = "app_pages/compare.py", "app_pages/items.py"

st.title("Trajectory")
url = q.store_url()
try:
    trajectories = q.list_trajectories(url)
except StoreError as e:
    st.error(f"Cannot read the results store: {md_escape(e)}")
    st.stop()
if not trajectories:
    st.info(
        f"The store {md_escape(q.display_url(url))} holds no trajectory audit yet. A trajectory audit probes the model "
        "during instruction tuning: add `trajectory: {every: N}` to an audit config with a `finetune` section and run "
        "`rai-audit run audit.yaml` (checkpoints every N steps), or give `trajectory: {mixture_sizes: [1, 2, 4, all]}` "
        "and run `rai-audit sweep audit.yaml` (growing mixtures)."
    )
    st.stop()

audits = list(dict.fromkeys(pts[0].audit_id for pts in trajectories if pts and pts[0].audit_id))
c1, c2 = st.columns([1, 3])
audit = c1.selectbox("Audit", [None] + audits, key="trajectory_audit",
                     format_func=lambda a: "all audits" if a is None else str(a)[:24])
choices = tf.trajectory_choices(trajectories, audit)
by_id = {c["trajectory_id"]: c for c in choices}
tid = c2.selectbox("Trajectory (newest first)", list(by_id), index=0, key="trajectory_id",
                   format_func=lambda i: by_id[i]["label"])
choice = by_id[tid]
try:
    with st.spinner("Analysing the trajectory (each point paired with the base, bootstrap CIs)..."):
        analysis = q.trajectory_analysis(url, tid, len(choice["positions"]))
except UserError as e:
    st.error(md_escape(e))
    st.stop()
if {p.comparison_id for p in analysis.points if p.comparison_id} - {c["comparison_id"] for c in q.list_comparisons(url)}:
    q.list_comparisons.clear()  # the analysis saved comparisons just now: the Compare page must find them

base_pos = tf.base_position(analysis)
gate = tf.gate_summary(analysis)
if gate and gate.get("verdict"):
    v = str(gate["verdict"])
    st.subheader(f"Trajectory gate: :{verdicts.verdict_color(v)}[{md_escape(v.upper())}]"
                 + md_escape(f" — policy {verdicts.policy_text(analysis.policy)}"))
    with st.expander(f"Why ({len(gate.get('reasons') or [])} reason(s))"):
        common.text_block("The trajectory gate's reasons, one a line", "\n".join(map(str, gate.get("reasons") or [])))
st.caption(md_escape(tf.summary_text(analysis)))
for w in analysis.warnings:
    st.warning(md_escape(w))

frame = tf.headline_frame(analysis)
st.caption("Lines: the probe's headline metric at each point; band: 95% CI; dashed: the base's value; points: the "
           "point's gate verdict against the base (square base, circle pass, cross fail, diamond inconclusive). "
           "Click a point to open its comparison with the base.")
last_cid = next((p.comparison_id for p in reversed(analysis.points) if p.comparison_id), None)
titles = tf.probe_titles(q.comparison_dict(url, last_cid) if last_cid else None)
clicked = None
for probe in tf.probes(analysis):
    f = frame[frame["probe"] == probe]
    metric = str(f["metric"].iloc[0])
    title = titles.get(probe) or probe
    st.subheader(md_escape(f"{title}: {metric}"))
    event = st.altair_chart(tf.chart(f, analysis.axis, tf.base_value(f, base_pos), metric), on_select="rerun",
                            selection_mode=tf.SELECTION, key=f"trajectory_chart_{probe}", width="stretch")
    clicked = tf.selected_position(event) if clicked is None else clicked
    st.caption(md_escape(tf.trend_text(tf.trend_of(analysis, probe))))
    st.dataframe(verdicts.style_verdicts(tf.points_table(frame, probe, analysis)), hide_index=True, width="stretch",
                 key=f"trajectory_points_{probe}",
                 column_config={"train loss": st.column_config.NumberColumn(format="%.4f")})

cid = tf.comparison_of(analysis, clicked)
if cid:  # a click on a checkpoint: open its comparison with the base
    st.switch_page(COMPARE, query_params={"comparison": cid})
elif clicked is not None:
    st.caption("The base has no comparison of its own: click a later point.")

st.subheader("Open a checkpoint")
points = [p for p in analysis.points if p.comparison_id]
if not points:
    st.info("No checkpoint has been compared with the base yet.")
    st.stop()
pos = st.selectbox("Checkpoint", [p.position for p in points], index=len(points) - 1, key="trajectory_checkpoint",
                   format_func=lambda x: f"{analysis.point(x).label} ({tf.point_verdict(analysis.point(x), base_pos)})")
point = analysis.point(pos)
l1, l2 = st.columns(2)
l1.page_link(COMPARE, label="Its comparison with the base", icon=":material/compare_arrows:",
             query_params={"comparison": point.comparison_id})
l2.page_link(ITEMS, label="Its items beside the base's", icon=":material/list:", query_params={"comparison": point.comparison_id})
if point.gate_reasons:
    common.text_block("Why (gate rules that did not pass)", "\n".join(point.gate_reasons))
