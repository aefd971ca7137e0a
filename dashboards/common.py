"""Streamlit pieces every page shares: the store banner, the empty-store state, run pickers, and
getting a comparison (saved, or computed on demand) with its gate verdicts."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards import queries as q
from dashboards import views as v
from rai_audit.errors import StoreError, UserError
from rai_audit.store import RunRecord


def runs_or_stop() -> tuple[str | None, list[RunRecord]]:
    """The store URL and its runs; shows a clear message and stops the page when the store cannot
    be opened or holds no runs."""
    url = q.store_url()
    try:
        runs = q.list_runs(url)
    except StoreError as e:
        st.error(f"Cannot read the results store: {v.md_escape(e)}")
        st.stop()
    if not runs:
        st.info(
            f"The store {v.md_escape(q.display_url(url))} has no runs yet. Run an audit (`rai-audit run audit.yaml`) or point the "
            "dashboard at the store that holds your runs (`rai-audit dashboard --db URL`)."
        )
        st.stop()
    return url, runs


def pick_pair_or_stop(runs: list[RunRecord], key: str) -> tuple[RunRecord, RunRecord]:
    """Two run pickers (A = before, B = after) defaulting to the latest base/tuned pair; shows
    why and stops the page when the picked runs cannot be compared."""
    url = q.store_url()
    by_id = {r.run_id: r for r in runs}
    ids = [r.run_id for r in runs]
    pair = v.default_pair(runs, q.list_comparisons(url))
    if pair is None:
        st.info("A comparison needs two completed runs on the same items; this store has fewer. "
                "Runs still in progress or failed are listed on the Runs page.")
        st.stop()
    c1, c2 = st.columns(2)
    a = c1.selectbox("Run A (before)", ids, index=ids.index(pair[0]), format_func=lambda i: v.run_label(by_id[i]), key=f"{key}_a")
    b = c2.selectbox("Run B (after)", ids, index=ids.index(pair[1]), format_func=lambda i: v.run_label(by_id[i]), key=f"{key}_b")
    ra, rb = by_id[a], by_id[b]
    for side, r in (("A", ra), ("B", rb)):
        if r.status == "running":
            st.warning(f"Run {side} ({v.short(r.run_id)}) is still running; compare it once it has finished. "
                       f"Items recorded so far: {q.progress(url, r.run_id)}.")
            st.stop()
        if r.status == "failed":
            st.error(f"Run {side} ({v.short(r.run_id)}) failed: {v.md_escape(r.status_detail.get('message', 'no message recorded'))}. "
                     "Pick another run.")
            st.stop()
        if r.status == "interrupted":
            st.warning(f"Run {side} ({v.short(r.run_id)}) was interrupted; re-running its audit config resumes it.")
            st.stop()
    if a == b:
        st.warning("Pick two different runs.")
        st.stop()
    return ra, rb


def comparison_or_stop(ra: RunRecord, rb: RunRecord) -> dict[str, Any]:
    """The saved comparison of (A, B), else one computed now (200 bootstrap resamples); shows a
    message and stops the page when the runs cannot be compared."""
    url = q.store_url()
    cid = q.saved_comparison_id(url, ra.run_id, rb.run_id)
    if cid is not None:
        return q.comparison_dict(url, cid)
    try:
        with st.spinner("No saved comparison of these runs: computing one (paired bootstrap, 200 resamples)..."):
            comp = q.computed_comparison(url, ra.run_id, rb.run_id)
    except UserError as e:
        st.error(v.md_escape(e))
        st.stop()
    st.caption("Computed now (not saved): `rai-audit compare` saves comparisons with 1000 resamples.")
    return comp


def gate_for(comp: dict[str, Any], policy: str = "default") -> dict[str, Any]:
    """Gate verdicts of a comparison under a bundled policy (``rai_audit.gate``)."""
    return _gate(comp["comparison_id"], comp["run_a"], comp["run_b"], comp.get("created_at"), policy, comp)


@st.cache_data(ttl=q.DATA_TTL, show_spinner=False, max_entries=16)
def _gate(cid: str, run_a: str, run_b: str, created: Any, policy: str, _comp: dict[str, Any]) -> dict[str, Any]:
    # keyed by the comparison's identity, not by hashing the whole (large) dict on every rerun
    from rai_audit.gate import evaluate_gate, load_policy

    return evaluate_gate(load_policy(policy), _comp).to_dict()


def chart(ch: Any, container: Any = None) -> None:
    """Draw an Altair chart without Altair's JSON-schema validation on every rerun (the specs are
    fixed by :mod:`dashboards.views` and checked by the tests; validation costs ~0.1 s a chart)."""
    (container or st).vega_lite_chart(spec=ch.to_dict(validate=False), width="stretch")


def text_block(label: str, text: Any) -> None:
    """Untrusted text, shown verbatim as plain text (never Markdown or HTML)."""
    st.caption(label)
    st.text("" if text is None else str(text))


@st.cache_data(ttl=q.DATA_TTL, show_spinner=False, max_entries=8)
def item_table(url: str | None, run_a: str, run_b: str, probe: str):
    """Both runs' records of a probe joined by item, with each item's flips (both directions)."""
    from rai_audit.compare import find_flips

    ra, rb = q.get_run(url, run_a), q.get_run(url, run_b)
    recs_a, recs_b = q.records(url, ra, probe), q.records(url, rb, probe)
    by_b = {r["item_id"]: r for r in recs_b}
    pairs = [(x, by_b[x["item_id"]]) for x in recs_a
             if x["item_id"] in by_b and not x.get("error") and not by_b[x["item_id"]].get("error")]
    flipped: dict[str, str] = {}
    for f in find_flips(probe, pairs, scorer_a=ra.scorer, scorer_b=rb.scorer):
        text = f"{f.outcome}: {f.direction}"
        flipped[f.item_id] = f"{flipped[f.item_id]}; {text}" if f.item_id in flipped else text
    return v.items_frame(recs_a, recs_b, flipped)
