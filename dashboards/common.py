"""Streamlit pieces every page shares: the store banner, the empty-store state, run pickers,
getting a comparison (the audit's own by default, another saved one on request, or one computed
on demand) and its gate verdict (the audit's own policy by default, another as a labelled what-if)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards import queries as q
from dashboards import item_frames, run_labels, verdicts
from rai_audit.report.escaping import md_escape
from rai_audit.errors import StoreError, UserError
from rai_audit.store import RunRecord


def runs_or_stop() -> tuple[str | None, list[RunRecord]]:
    """The store URL and its runs; shows a clear message and stops the page when the store cannot
    be opened or holds no runs."""
    url = q.store_url()
    try:
        runs = q.list_runs(url)
    except StoreError as e:
        st.error(f"Cannot read the results store: {md_escape(e)}")
        st.stop()
    if not runs:
        st.info(
            f"The store {md_escape(q.display_url(url))} has no runs yet. Run an audit (`rai-audit run audit.yaml`) or point the "
            "dashboard at the store that holds your runs (`rai-audit dashboard --db URL`)."
        )
        st.stop()
    return url, runs


def linked_comparison() -> dict[str, Any] | None:
    """The saved comparison a link asked for (``?comparison=<id>``, e.g. from a point of the
    Trajectory page), as :func:`dashboards.queries.list_comparisons` lists it; None without one."""
    cid = st.query_params.get("comparison")
    if not cid:
        return None
    return next((c for c in q.list_comparisons(q.store_url()) if c["comparison_id"] == cid), None)


def pick_pair_or_stop(runs: list[RunRecord], key: str) -> tuple[RunRecord, RunRecord]:
    """Two run pickers (A = before, B = after) defaulting to the pair of the linked comparison
    (:func:`linked_comparison`), else to the latest base/tuned pair; shows why and stops the page
    when the picked runs cannot be compared."""
    url = q.store_url()
    runs = [r for r in runs if run_labels.is_probe_run(r)]  # finetune runs have no probe results to compare
    by_id = {r.run_id: r for r in runs}
    ids = [r.run_id for r in runs]
    linked = linked_comparison()
    pair = ((linked["run_a"], linked["run_b"]) if linked and linked["run_a"] in by_id and linked["run_b"] in by_id
            else run_labels.default_pair(runs, q.list_comparisons(url)))
    if pair is None:
        st.info("A comparison needs two completed runs on the same items; this store has fewer. "
                "Runs still in progress or failed are listed on the Runs page.")
        st.stop()
    c1, c2 = st.columns(2)
    a = c1.selectbox("Run A (before)", ids, index=ids.index(pair[0]), format_func=lambda i: run_labels.run_label(by_id[i]), key=f"{key}_a")
    b = c2.selectbox("Run B (after)", ids, index=ids.index(pair[1]), format_func=lambda i: run_labels.run_label(by_id[i]), key=f"{key}_b")
    ra, rb = by_id[a], by_id[b]
    for side, r in (("A", ra), ("B", rb)):
        if r.status == "running":
            st.warning(f"Run {side} ({run_labels.short(r.run_id)}) is still running; compare it once it has finished. "
                       f"Items recorded so far: {q.progress(url, r.run_id)}.")
            st.stop()
        if r.status == "failed":
            st.error(f"Run {side} ({run_labels.short(r.run_id)}) failed: {md_escape(run_labels.failure_message(r) or 'no message recorded')}. "
                     "Pick another run.")
            st.stop()
        if r.status == "interrupted":
            st.warning(f"Run {side} ({run_labels.short(r.run_id)}) was interrupted; re-running its audit config resumes it.")
            st.stop()
    if a == b:
        st.warning("Pick two different runs.")
        st.stop()
    return ra, rb


def comparison_or_stop(ra: RunRecord, rb: RunRecord, key: str = "compare") -> dict[str, Any]:
    """The comparison of (A, B) the page shows: the linked one (``?comparison=<id>``), else the
    audit's own (the newest saved one whose result records the audit's policy), else the newest
    saved one; where several are saved, a picker lists them with their settings. With none
    saved, one computed now (200 bootstrap resamples). Shows a message and stops the page when
    the runs cannot be compared."""
    url = q.store_url()
    saved = q.pair_comparisons(url, ra.run_id, rb.run_id)
    if saved:
        linked = linked_comparison()
        default = (next((c for c in saved if linked and c["comparison_id"] == linked["comparison_id"]), None)
                   or verdicts.audit_comparison(saved))
        by_id = {c["comparison_id"]: c for c in saved}
        ids = list(by_id)
        if len(ids) > 1:
            cid = st.selectbox(
                f"Comparison ({len(ids)} saved for these runs)", ids, index=ids.index(default["comparison_id"]),
                format_func=lambda i: verdicts.comparison_label(by_id[i]), key=f"{key}_comparison",
                help="Selected by default: the audit's own comparison (made under its gate policy, as in its "
                     "report). Others were made separately, e.g. by `rai-audit compare` with other settings.",
            )
        else:
            cid = ids[0]
            st.caption(md_escape(f"Comparison: {verdicts.comparison_label(by_id[cid])}"))
        comp = q.comparison_dict(url, cid)
        if comp is not None:
            return comp
    try:
        with st.spinner("No saved comparison of these runs: computing one (paired bootstrap, 200 resamples)..."):
            comp = q.computed_comparison(url, ra.run_id, rb.run_id)
    except UserError as e:
        st.error(md_escape(e))
        st.stop()
    st.caption("Computed now (not saved): `rai-audit compare` saves comparisons with 1000 resamples.")
    return comp


AUDIT_POLICY = "(audit)"  # the policy picker's option for the comparison's own policy


def policy_or_audit(comp: dict[str, Any], key: str, container: Any = None) -> str | None:
    """The gate policy picker: the audit's own policy (default), or a bundled policy as an explicit
    what-if. Returns None for the audit's own policy, else the bundled policy's name."""
    stored = comp.get("policy") if isinstance(comp.get("policy"), dict) else None
    own = stored.get("name") if stored else None
    options = [AUDIT_POLICY] + [p for p in verdicts.bundled_policies() if p != (own or "default")]

    def label(o: str) -> str:
        if o == AUDIT_POLICY:
            return f"audit policy: {verdicts.policy_text(stored)}" if stored else "default policy (no audit policy recorded)"
        return f"what-if: {o} policy" if stored else f"{o} policy"

    choice = (container or st).selectbox(
        "Gate verdict under", options, index=0, format_func=label, key=key,
        help="By default the verdict under the policy the audit ran with (stored with its comparison), as "
             "in its report. Another policy gives a what-if verdict, labelled as such.",
    )
    return None if choice == AUDIT_POLICY else choice


def gate_for(comp: dict[str, Any], policy: str | None = None) -> dict[str, Any]:
    """The gate result (dict) of a comparison: under the audit's own policy when ``policy`` is
    None, else a what-if under the bundled policy ``policy`` (:func:`dashboards.verdicts.gate_verdicts`)."""
    try:
        return _gate(comp["comparison_id"], comp["run_a"], comp["run_b"], comp.get("created_at"), policy or AUDIT_POLICY, comp)
    except UserError as e:  # e.g. a policy file that no longer loads: say so, no traceback
        st.error(f"No gate verdict: {md_escape(e)}")
        st.stop()


@st.cache_data(ttl=q.DATA_TTL, show_spinner=False, max_entries=16)
def _gate(cid: str, run_a: str, run_b: str, created: Any, policy: str, _comp: dict[str, Any]) -> dict[str, Any]:
    # keyed by the comparison's identity, not by hashing the whole (large) dict on every rerun
    return verdicts.gate_verdicts(_comp, None if policy == AUDIT_POLICY else policy)


def show_gate(gate: dict[str, Any]) -> None:
    """The verdict as a coloured heading naming its policy (pass green, fail red, inconclusive
    amber), and a note when it is a what-if."""
    st.subheader(verdicts.gate_title_md(gate))
    if gate.get("what_if"):
        st.caption("What-if: this verdict uses another policy than the one the audit ran with; the audit's report "
                   "states the verdict under its own policy.")


def chart(ch: Any, container: Any = None) -> None:
    """Draw an Altair chart without Altair's JSON-schema validation on every rerun (the specs are
    fixed by the ``*_frames`` modules and checked by the tests; validation costs ~0.1 s a chart), at
    its container's width (Vega-Lite autosize "fit": single and layered charts only; a faceted
    chart keeps its natural width and can spill into a neighbouring column)."""
    (container or st).vega_lite_chart(spec=ch.to_dict(validate=False), width="stretch")


def text_block(label: str, text: Any) -> None:
    """Untrusted text, shown verbatim as plain text (never Markdown or HTML)."""
    st.caption(label)
    st.text("" if text is None else str(text))


@st.cache_data(ttl=q.DATA_TTL, show_spinner=False, max_entries=8)
def item_table(url: str | None, run_a: str, run_b: str, probe: str):
    """Both runs' records of a probe joined by item, with each item's flips (both directions)."""
    from rai_audit.comparison import find_flips

    ra, rb = q.get_run(url, run_a), q.get_run(url, run_b)
    recs_a, recs_b = q.records(url, ra, probe), q.records(url, rb, probe)
    by_b = {r["item_id"]: r for r in recs_b}
    pairs = [(x, by_b[x["item_id"]]) for x in recs_a
             if x["item_id"] in by_b and not x.get("error") and not by_b[x["item_id"]].get("error")]
    flipped: dict[str, str] = {}
    for f in find_flips(probe, pairs, scorer_a=ra.scorer, scorer_b=rb.scorer):
        text = f"{f.outcome}: {f.direction}"
        flipped[f.item_id] = f"{flipped[f.item_id]}; {text}" if f.item_id in flipped else text
    return item_frames.items_frame(recs_a, recs_b, flipped)
