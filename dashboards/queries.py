"""Every read the dashboard makes, cached, and only through the store API (no SQL here or in pages).

Why cached with a short TTL: pages rerun on every click, and a store of 50 runs x 10,000 items
would otherwise be re-read each time; but an audit job may be writing to the same store (SQLite
WAL or PostgreSQL), so run lists and statuses expire after ``LIST_TTL`` seconds and new runs
appear without restarting the dashboard. Records, metrics and comparisons of a *finished* run
never change (the store is append-only), so those live longer (``DATA_TTL``); a running run's
records are read with the short TTL.

The store URL comes from ``RAI_AUDIT_DB`` (set by :func:`dashboards.launch.run_dashboard`), or
the store's own default when unset. Functions take the URL as their first argument so the cache
keys on it.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from dashboards.verdicts import comparison_summary
from rai_audit.store import MetricRow, RunRecord, Store
from rai_audit.store.api import TrajectoryPointRecord
from rai_audit.trajectory.model import TrajectoryAnalysis

LIST_TTL = 5  # seconds: run lists and statuses (a job may be writing)
DATA_TTL = 600  # seconds: records/metrics/comparisons of finished runs (immutable)
FINISHED = ("completed", "completed_with_errors", "failed")


def store_url() -> str | None:
    """The URL the dashboard reads (``RAI_AUDIT_DB``), or None for the store's default."""
    return os.environ.get("RAI_AUDIT_DB") or None


@st.cache_resource(show_spinner=False)
def get_store(url: str | None) -> Store:
    """One open store per URL for the whole server (the Store gives each thread its own connection)."""
    return Store.open(url)


def display_url(url: str | None) -> str:
    return get_store(url).display_url


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def list_runs(url: str | None) -> list[RunRecord]:
    """All runs, newest first."""
    return get_store(url).list_runs()


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def get_run(url: str | None, run_id: str) -> RunRecord:
    return get_store(url).get_run(run_id)


def _finished(url: str | None, run: RunRecord | str) -> bool:
    status = run.status if isinstance(run, RunRecord) else get_run(url, run).status
    return status in FINISHED


@st.cache_data(ttl=DATA_TTL, show_spinner=False)
def _metrics_finished(url: str | None, run_id: str) -> list[MetricRow]:
    return get_store(url).metrics(run_id)


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def _metrics_live(url: str | None, run_id: str) -> list[MetricRow]:
    return get_store(url).metrics(run_id)


def metrics(url: str | None, run: RunRecord | str) -> list[MetricRow]:
    """The run's stored aggregates (with CIs); ``run``: a RunRecord (saves a status look-up) or an id."""
    run_id = run.run_id if isinstance(run, RunRecord) else run
    return (_metrics_finished if _finished(url, run) else _metrics_live)(url, run_id)


def records(url: str | None, run: RunRecord | str, probe: str) -> list[dict[str, Any]]:
    """Per-item records of one probe of a run. Not cached here: st.cache_data copies (pickles)
    its values on every hit, which for 10,000 records costs more than it saves; callers cache
    what they derive from them (``common.item_table``)."""
    run_id = run.run_id if isinstance(run, RunRecord) else run
    return get_store(url).records(run_id, probe)


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def progress(url: str | None, run_id: str) -> dict[str, int]:
    """Items recorded so far per probe, for runs still in progress."""
    store = get_store(url)
    run = store.get_run(run_id)
    return {p: len(store.completed_items(run_id, p)) for p in run.probes}


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def list_comparisons(url: str | None) -> list[dict[str, Any]]:
    """Saved comparisons, newest first: id, run ids, time, settings and the audit policy each was
    made under (None for an ad-hoc ``rai-audit compare``); results left out (they are big). See
    :func:`dashboards.verdicts.comparison_summary`."""
    return [
        comparison_summary(c.comparison_id, c.run_a, c.run_b, c.created_at, c.config, c.result)
        for c in get_store(url).list_comparisons()
    ]


@st.cache_data(ttl=DATA_TTL, show_spinner=False, max_entries=32)
def comparison_dict(url: str | None, comparison_id: str) -> dict[str, Any] | None:
    """A saved comparison as ``Comparison.model_dump(mode="json")`` wrote it, or None when
    the stored result is not in that shape (e.g. written by an older tool)."""
    rec = get_store(url).get_comparison(comparison_id)
    result = rec.result if hasattr(rec, "result") else rec
    if isinstance(result, dict) and "probes" in result and "run_a" in result:
        return result
    return None


def pair_comparisons(url: str | None, run_a: str, run_b: str) -> list[dict[str, Any]]:
    """The saved comparisons of exactly (A, B) that the pages can read, newest first."""
    return [c for c in list_comparisons(url) if c["run_a"] == run_a and c["run_b"] == run_b and c.get("valid", True)]


@st.cache_data(ttl=DATA_TTL, show_spinner=False, max_entries=8)
def computed_comparison(url: str | None, run_a: str, run_b: str, n_boot: int = 200) -> dict[str, Any]:
    """Compare two finished runs now (when no saved comparison exists); UserError if they cannot
    be compared (the page shows its message)."""
    from rai_audit.comparison import compare_runs

    return compare_runs(get_store(url), run_a, run_b, n_boot=n_boot, seed=0).model_dump(mode="json")


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def list_trajectories(url: str | None) -> list[list[TrajectoryPointRecord]]:
    """Every trajectory audit's points, newest trajectory first (a job may still be adding points)."""
    return get_store(url).list_trajectories()


@st.cache_data(ttl=DATA_TTL, show_spinner=False, max_entries=8)
def trajectory_analysis(url: str | None, trajectory_id: str, n_points: int) -> TrajectoryAnalysis:
    """A trajectory's analysis (:func:`rai_audit.trajectory.analysis.analyse_trajectory`: each
    checkpoint paired with the base under the audit's recorded policy, trends with bootstrap CIs),
    computed once per trajectory and number of points (a point added by a running audit makes a
    new entry). Like ``rai-audit trajectory show`` it reuses the comparisons the audit saved (its
    resamples and seed) and saves those it had to make, so a point's comparison can be opened.
    UserError when the trajectory cannot be analysed (the page shows its message)."""
    from rai_audit.trajectory.analysis import analyse_trajectory

    return analyse_trajectory(get_store(url), trajectory_id)


def clear() -> None:
    """Forget cached reads (the sidebar's Refresh button)."""
    st.cache_data.clear()
