"""Compare: two runs side by side per probe, with CIs, the paired difference and its
significance, gate verdicts, a bar chart with error bars and a forest plot of subgroup deltas."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import common, queries as q, views as v

st.title("Compare")
url, runs = common.runs_or_stop()
ra, rb = common.pick_pair_or_stop(runs, "compare")
comp = common.comparison_or_stop(ra, rb)

policy = st.selectbox("Gate policy", ["default", "demo"], key="compare_policy",
                      help="Bundled policies under data/policies/ (rai_audit.gate)")
gate = common.gate_for(comp, policy)
errors = sum(p["errors_a"] + p["errors_b"] for p in comp["probes"])
st.subheader(f"Gate: {gate['verdict'].upper()}")
st.caption(f"Policy {policy}; {gate['errors']} error(s) counted against max {gate['max_errors']} "
           f"({errors} error record(s) in the two runs). Settings: {v.md_escape(comp['settings'])}")
for w in comp.get("warnings", []):
    st.warning(v.md_escape(w))

ma, mb = q.metrics(url, ra), q.metrics(url, rb)
summary = pd.concat([v.side_by_side(comp, p["probe"], ma, mb, gate["rows"]).assign(probe=p["probe"]) for p in comp["probes"]],
                    ignore_index=True)
if not summary.empty:
    summary = summary[summary["source"] == "metric"][["probe", "metric", "n", "A", "B", "diff (B-A)", "diff CI low", "diff CI high",
                                                      "p adjusted", "significant", "gate"]]
st.caption("All probes, overall metrics (B - A, paired; p adjusted across each metric's subgroups)")
st.dataframe(summary, hide_index=True, width="stretch", key="compare_summary")

probes = [p["probe"] for p in comp["probes"]]
probe = st.radio("Probe details", probes, horizontal=True, key="compare_probe",
                 format_func=lambda p: next((x.get("title") or p) for x in comp["probes"] if x["probe"] == p))
pc = next(p for p in comp["probes"] if p["probe"] == probe)
st.header(v.md_escape(pc.get("title") or probe))
st.caption(f"{v.md_escape(probe)}: {pc['n_pairs']} paired items; errors A {pc['errors_a']}, B {pc['errors_b']}. "
           f"{v.md_escape(pc.get('citation', ''))}")
side = v.side_by_side(comp, probe, ma, mb, gate["rows"])
cards = side[side["source"] == "metric"] if len(side) else side
for start in range(0, len(cards), 4):
    for col, (_, r) in zip(st.columns(4), cards.iloc[start:start + 4].iterrows()):
        col.metric(
            r["metric"], v.num(r["B"]), delta=None if v.num(r["diff (B-A)"]) == "-" else f"{float(r['diff (B-A)']):+.4f}",
            delta_color={"lower": "inverse", "higher": "normal"}.get(r["better"], "off"),
            help=f"A {v.num(r['A'])} -> B {v.num(r['B'])}; difference 95% CI [{v.num(r['diff CI low'])}, "
                 f"{v.num(r['diff CI high'])}]; p adjusted {v.num(r['p adjusted'])}; gate {r['gate']}",
        )
st.dataframe(side, hide_index=True, width="stretch", key="compare_side",
             column_config={c: st.column_config.NumberColumn(format="%.4f") for c in side.columns
                            if c not in ("metric", "source", "n", "significant", "better", "gate", "method")})
left, right = st.columns(2)
bars = v.bar_frame(side)
if not bars.empty:
    with left:
        st.caption("Overall metrics, A and B, with 95% CIs")
        common.chart(v.bar_chart(bars))
        with st.expander("Data behind the bar chart"):
            st.dataframe(bars, hide_index=True, key="compare_bars")
metrics = list(dict.fromkeys(r["metric"] for r in pc["rows"] if r["subgroup"] and r["source"] == "metric"))
if metrics:
    with right:
        metric = st.selectbox("Forest plot of subgroup deltas for", metrics, key=f"forest_metric_{probe}")
        forest = v.forest_frame(comp, probe, metric)
        common.chart(v.forest_plot(forest))
        with st.expander("Data behind the forest plot"):
            st.dataframe(forest, hide_index=True, key="compare_forest")
conf = pc.get("confounders", {})
if conf:
    st.caption("Confounders (a model that refuses or says nothing more often can look safer)")
    st.dataframe(pd.DataFrame({k.upper(): c for k, c in conf.items()}).T, key="compare_conf")

with st.expander("All gate rows"):
    st.dataframe(pd.DataFrame(gate["rows"]), hide_index=True, key="gate_rows")
