"""Compare: two runs side by side per probe, with CIs, the paired difference and its
significance, gate verdicts, a bar chart with error bars and a forest plot of subgroup deltas;
probes whose items overlap a model's training data are flagged at the top (as on page 1 of the
report) and their details show the overlap and the clean-only rows.

One verdict: the page shows the audit's own comparison and its verdict under the audit's own
policy (as the audit's report does); other saved comparisons and other policies are explicit,
labelled choices."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import common, compare_frames, contamination_frames, numbers, queries as q, verdicts
from rai_audit.report.escaping import md_escape

st.title("Compare")
url, runs = common.runs_or_stop()
ra, rb = common.pick_pair_or_stop(runs, "compare")
comp = common.comparison_or_stop(ra, rb, "compare")

policy = common.policy_or_audit(comp, "compare_policy")
gate = common.gate_for(comp, policy)
errors = sum(p["errors_a"] + p["errors_b"] for p in comp["probes"])
common.show_gate(gate)
st.caption(f"Rows: {verdicts.counts_text(gate)}. {gate['errors']} error(s) counted against max {gate['max_errors']} "
           f"({errors} error record(s) in the two runs). Settings: "
           f"{md_escape({k: x for k, x in comp['settings'].items() if k != 'policy'})}")
for w in comp.get("warnings", []):
    st.warning(md_escape(w))
overlap = contamination_frames.contamination_overview(comp, {"a": ra, "b": rb})
if overlap["flags"]:  # the report's page-1 flag: these probes' items overlap a model's training data
    st.warning("**Contamination.** " + " · ".join(
        f"**{md_escape(f['probe'])}**: {md_escape(f['detail'])}"
        + (f" (clean-only subset: n = {f['clean_n']})" if f.get("clean_n") is not None else "") for f in overlap["flags"])
        + ". These probes' metrics may measure memorisation: their clean-only rows are under Probe details.")
if not overlap["flags"] or overlap["note"]:  # not checked, or checked and clean (with how to check, where not)
    st.caption(md_escape(overlap["note"] if overlap["flags"] else overlap["sentence"]))

ma, mb = q.metrics(url, ra), q.metrics(url, rb)
summary = pd.concat([compare_frames.side_by_side(comp, p["probe"], ma, mb, gate["rows"])
                     .assign(probe=p["probe"], **{"training-data overlap": contamination_frames.overlap_cell(comp, p["probe"])})
                     for p in comp["probes"]], ignore_index=True)
if not summary.empty:
    summary = summary[summary["source"] == "metric"][["probe", "training-data overlap", "metric", "gate", "n", "A", "B",
                                                      "diff (B-A)", "diff CI low", "diff CI high", "MDE", "p adjusted",
                                                      "significant", "headline"]]
st.caption("All probes, overall metrics (B - A, paired; p adjusted across each metric's subgroups; MDE: the smallest "
           "change this audit could detect; gate: pass green, fail red, inconclusive amber, insufficient data grey)")
st.dataframe(verdicts.style_verdicts(summary), hide_index=True, width="stretch", key="compare_summary")

probes = [p["probe"] for p in comp["probes"]]
probe = st.radio("Probe details", probes, horizontal=True, key="compare_probe",
                 format_func=lambda p: next((x.get("title") or p) for x in comp["probes"] if x["probe"] == p))
pc = next(p for p in comp["probes"] if p["probe"] == probe)
st.header(md_escape(pc.get("title") or probe))
st.caption(f"{md_escape(probe)}: {pc['n_pairs']} paired items; errors A {pc['errors_a']}, B {pc['errors_b']}. "
           f"{md_escape(pc.get('citation', ''))}")
side = compare_frames.side_by_side(comp, probe, ma, mb, gate["rows"])
cards = side[side["source"] == "metric"] if len(side) else side
if len(cards):
    cards = cards.sort_values("headline", ascending=False, kind="stable")  # the probe's headline metric first
for start in range(0, len(cards), 4):
    for col, (_, r) in zip(st.columns(4), cards.iloc[start:start + 4].iterrows()):
        col.metric(
            r["metric"], numbers.num(r["B"]), **numbers.delta_args(r["diff (B-A)"], r["better"]),
            help=("The probe's headline metric. " if r["headline"] else "")
            + f"A {numbers.num(r['A'])} -> B {numbers.num(r['B'])}; difference 95% CI {r['diff CI']}; MDE {numbers.num(r['MDE'])}; "
              f"p adjusted {numbers.num(r['p adjusted'])}; gate {r['gate']}",
        )
side_cols = ["metric", "source", "gate"] + [c for c in side.columns if c not in ("metric", "source", "gate")]
st.dataframe(verdicts.style_verdicts(side[side_cols] if len(side) else side), hide_index=True, width="stretch", key="compare_side",
             column_config={c: st.column_config.NumberColumn(format="%.4f") for c in side.columns
                            if c not in ("metric", "source", "headline", "n", "diff CI", "significant", "better", "gate",
                                         "method")})
detail = contamination_frames.contamination_detail(comp, probe)
if detail is not None:
    st.subheader("Training-data overlap (contamination)")
    st.caption("An item overlaps when a word n-gram of its normalised text (13 words, or 8 for short items) occurs in the "
               "model's training data (Brown et al. 2020, appendix C); items too short to check are never counted as clean.")
    st.dataframe(contamination_frames.overlap_frame(detail), hide_index=True, width="stretch", key="compare_overlap",
                 column_config={"fraction": st.column_config.NumberColumn(format="percent",
                                                                          help="overlapping share of the checked items")})
    if detail["contaminated"]:
        if detail["clean"]:
            st.caption("Clean-only rows: the overall metrics on the items checked and overlapping in neither run, beside "
                       "all paired items")
            st.dataframe(contamination_frames.clean_frame(detail), hide_index=True, width="stretch", key="compare_clean",
                         column_config={c: st.column_config.NumberColumn(format="%.4f")
                                        for c in ("A", "B", "diff (B-A)", "A clean", "B clean", "diff clean")})
        else:
            st.warning("No clean items: every item overlaps the training data or could not be checked.")
        st.caption("Overlapping items (a few per run; benchmark text, which may be offensive): the first matching n-gram")
        st.dataframe(contamination_frames.overlap_examples_frame(detail), hide_index=True, width="stretch", key="compare_overlap_items")
elif overlap["checked"]:  # other probes were checked (when none was, the sentence at the top says so once)
    st.caption("Contamination not checked for this probe: neither run recorded its model's training data.")
# Charts never share a row with a chart of another kind, and each fits its own column (autosize
# "fit"): the bar charts one per metric in columns, then the forest plot at the page's full width.
# (A faceted bar chart of all metrics beside the forest plot kept its natural width and drew over it.)
bars = compare_frames.bar_frame(side)
if not bars.empty:
    st.caption("Overall metrics, A (blue) and B (orange), with 95% CIs")
    names = list(dict.fromkeys(bars["metric"]))
    for start in range(0, len(names), compare_frames.BARS_PER_ROW):
        for col, name in zip(st.columns(compare_frames.BARS_PER_ROW), names[start:start + compare_frames.BARS_PER_ROW]):
            col.caption(md_escape(name))
            common.chart(compare_frames.bar_chart(bars[bars["metric"] == name]), col)
    with st.expander("Data behind the bar charts"):
        st.dataframe(bars, hide_index=True, key="compare_bars")
metrics = list(dict.fromkeys(r["metric"] for r in pc["rows"] if r["subgroup"] and r["source"] == "metric"))
if metrics:
    metric = st.selectbox("Forest plot of subgroup deltas for", metrics, key=f"forest_metric_{probe}")
    forest = compare_frames.forest_frame(comp, probe, metric)
    common.chart(compare_frames.forest_plot(forest))
    with st.expander("Data behind the forest plot"):
        st.dataframe(forest, hide_index=True, key="compare_forest")
conf = pc.get("confounders", {})
if conf:
    st.caption("Confounders (a model that refuses or says nothing more often can look safer)")
    st.dataframe(pd.DataFrame({k.upper(): c for k, c in conf.items()}).T, key="compare_conf")

with st.expander(f"All gate rows ({verdicts.counts_text(gate)})"):
    rows = pd.DataFrame(gate["rows"])
    if "ci_low" in rows and "n" in rows:  # no interval from one item
        shown = [numbers.ci_shown(r.get("ci_low"), r.get("ci_high"), r.get("n"), r.get("clusters")) for r in gate["rows"]]
        rows["ci_low"], rows["ci_high"] = [lo for lo, _ in shown], [hi for _, hi in shown]
    first = [c for c in ("verdict", "probe", "metric", "subgroup", "n", "reason") if c in rows.columns]
    rows = rows[first + [c for c in rows.columns if c not in first]] if len(rows) else rows
    st.dataframe(verdicts.style_verdicts(rows), hide_index=True, key="gate_rows")
