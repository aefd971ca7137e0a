"""Runs: every run with its kind (probe / finetune), model, probe suite, status, errors (the
count of error records, or a failed run's message), time; provenance on expand."""

from __future__ import annotations

import streamlit as st

from dashboards import common, queries as q, run_labels
from rai_audit.report.escaping import md_escape

st.title("Runs")
url, runs = common.runs_or_stop()

models = sorted({r.model_reference or r.model_id or "" for r in runs})
probes = sorted({p for r in runs for p in r.probes})
days = [r.created_at.date() for r in runs]
c1, c2, c3 = st.columns([2, 2, 2])
sel_models = c1.multiselect("Model", models, key="runs_models")
sel_probes = c2.multiselect("Probe", probes, key="runs_probes")
span = c3.date_input("Date", value=(min(days), max(days)), key="runs_dates")
start, end = (span if isinstance(span, (tuple, list)) and len(span) == 2 else (span[0], span[0]) if isinstance(span, (tuple, list)) and span else (span, span))
shown = run_labels.filter_runs(runs, sel_models, sel_probes, start, end)

# the final event records the error count; older runs fall back to their items_errored metrics
errors = {
    r.run_id: run_labels.error_count(r, q.metrics(url, r) if r.status in run_labels.COMPLETE and "error_count" not in (r.status_detail or {}) else None)
    for r in shown
}
counts = {s: sum(r.status == s for r in runs) for s in run_labels.STATUS_TEXT}
st.caption(f"{len(shown)} of {len(runs)} runs shown; "
           + ", ".join(f"{n} {run_labels.STATUS_TEXT[s]}" for s, n in counts.items() if n))
frame = run_labels.runs_frame(shown, errors)
st.dataframe(frame, hide_index=True, width="stretch", column_config={
    "run_id": None,
    "kind": st.column_config.TextColumn("kind", help="probe: an evaluation run; finetune: a training run"),
    "errors": st.column_config.TextColumn("errors", width="large",
                                          help="Error records of a completed run; for a failed run, why it failed"),
    "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
    "finished": st.column_config.DatetimeColumn("finished", format="YYYY-MM-DD HH:mm:ss"),
})

for r in shown:
    with st.expander(md_escape(f"{run_labels.run_label(r)} - {run_labels.status_text(r, errors.get(r.run_id))}")):
        if r.status == "running":
            st.info(f"In progress: items recorded so far per probe: {q.progress(url, r.run_id)}. "
                    "This page refreshes its lists every few seconds (Refresh in the sidebar forces it).")
        elif r.status == "failed":
            st.error("Failed: " + md_escape(run_labels.failure_message(r) or "no message recorded"))
        elif r.status == "interrupted":
            st.warning("Interrupted: " + md_escape(run_labels.failure_message(r)))
        elif errors.get(r.run_id):
            st.warning(f"{errors[r.run_id]} item(s) recorded an error: {md_escape(r.status_detail.get('errors', {}))}")
        st.text(f"run id: {r.run_id}  kind: {r.kind}\naudit: {r.audit_id or '-'} ({run_labels.audit_name(r) or '-'})  role: {r.role or '-'}\n"
                f"model: {r.model_reference}  model id: {r.model_id}\nprobes: {', '.join(r.probes)}  seed: {r.seed}\n"
                f"started: {run_labels.when(r.created_at)}  finished: {run_labels.when(r.finished_at)}  config hash: {r.config_hash}")
        st.json({"provenance": r.provenance, "scorer": r.scorer, "datasets": r.datasets,
                 "events": [{"at": run_labels.when(e.at), "status": e.status, "detail": e.detail} for e in r.events]},
                expanded=False)
