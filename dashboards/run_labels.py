"""Runs as the dashboard names and lists them: labels for pickers, states and error counts, the
Runs table, its filters, and the pair of runs a comparison page opens on.

Pure helpers (no Streamlit): tests check them without a browser. Store text goes only into data
frames and plain-text elements; nothing here makes Markdown or HTML from it.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from rai_audit.store import MetricRow, RunRecord


STATUS_TEXT = {
    "running": "running",
    "completed": "complete",
    "completed_with_errors": "complete with errors",
    "failed": "failed",
    "interrupted": "interrupted",
}
COMPLETE = ("completed", "completed_with_errors")


def short(run_id: str) -> str:
    return run_id[:8]


def audit_name(run: RunRecord) -> str:
    name = (run.config or {}).get("name") if isinstance(run.config, Mapping) else None
    return str(name) if name else ""


def error_count(run: RunRecord, metric_rows: Sequence[MetricRow] | None = None) -> int | None:
    """Error records of a run: the count its final event recorded, else the ``items_errored``
    metrics the runner writes per probe, else None (unknown, e.g. still running)."""
    detail = run.status_detail or {}
    if isinstance(detail.get("error_count"), (int, float)):
        return int(detail["error_count"])
    if metric_rows:
        errs = [m.value for m in metric_rows if m.name == "items_errored" and m.subgroup == ""]
        if errs:
            return int(sum(v for v in errs if not math.isnan(v)))
    return None


def is_probe_run(run: RunRecord) -> bool:
    """A run with probe results (kind "probe"), as opposed to a finetune (training) run."""
    return (getattr(run, "kind", None) or "probe") == "probe"


def failure_message(run: RunRecord) -> str:
    """Why a failed or interrupted run stopped, as its last event recorded it: probe runs write
    ``{"message": ...}`` (rai_audit.runner), finetune runs ``{"error": "<Type>: <message>"}``
    (finetune/run.py), interrupted finetune runs ``{"detail": ...}``; "" when none is recorded."""
    detail = run.status_detail or {}
    for key in ("message", "error", "detail"):
        text = detail.get(key)
        if text:
            return str(text)
    return ""


def status_text(run: RunRecord, errors: int | None = None) -> str:
    text = STATUS_TEXT.get(run.status, run.status)
    if run.status == "completed_with_errors" and errors:
        text += f" ({errors} error{'s' if errors != 1 else ''})"
    return text


def run_label(run: RunRecord) -> str:
    """How a run is named in pickers: short id, role, model, audit and time."""
    bits = [short(run.run_id)]
    if run.role:
        bits.append(run.role)
    bits.append(run.model_reference or run.model_id or "?")
    if audit_name(run):
        bits.append(f"[{audit_name(run)}]")
    bits.append(f"{run.created_at:%Y-%m-%d %H:%M}")
    if run.status not in COMPLETE:
        bits.append(f"({STATUS_TEXT.get(run.status, run.status)})")
    return " ".join(bits)


def errors_cell(run: RunRecord, errors: int | None) -> str:
    """The Runs table's errors column (text): why a failed run failed (its recorded message), else
    the number of error records ("" while unknown, e.g. still running)."""
    if run.status == "failed":
        return failure_message(run) or "failed (no message recorded)"
    return "" if errors is None else str(int(errors))


def runs_frame(runs: Sequence[RunRecord], errors: Mapping[str, int | None]) -> pd.DataFrame:
    rows = []
    for r in runs:
        rows.append({
            "run": short(r.run_id),
            "kind": r.kind or "probe",
            "model": r.model_reference or r.model_id or "",
            "role": r.role or "",
            "audit": audit_name(r),
            "probes": ", ".join(r.probes),
            "status": status_text(r, errors.get(r.run_id)),
            "errors": errors_cell(r, errors.get(r.run_id)),
            "started": r.created_at,
            "finished": r.finished_at,
            "run_id": r.run_id,
        })
    cols = ["run", "kind", "model", "role", "audit", "probes", "status", "errors", "started", "finished", "run_id"]
    return pd.DataFrame(rows, columns=cols)


def filter_runs(runs: Sequence[RunRecord], models: Iterable[str] = (), probes: Iterable[str] = (),
                start: Any = None, end: Any = None) -> list[RunRecord]:
    """Runs matching every given filter (empty filter = all); dates are inclusive calendar days."""
    models, probes = set(models), set(probes)
    out = []
    for r in runs:
        if models and (r.model_reference or r.model_id or "") not in models:
            continue
        if probes and not probes.intersection(r.probes):
            continue
        day = r.created_at.date()
        if start is not None and day < start:
            continue
        if end is not None and day > end:
            continue
        out.append(r)
    return out


def default_pair(runs: Sequence[RunRecord], comparisons: Sequence[Mapping[str, Any]] = ()) -> tuple[str, str] | None:
    """The latest base/tuned pair of one audit (both complete); else the newest saved comparison's
    runs; else the two newest complete runs; None when fewer than two complete runs exist. Only
    probe runs count (a finetune run has no probe results to compare)."""
    done = [r for r in runs if r.status in COMPLETE and is_probe_run(r)]
    by_audit: dict[str, dict[str, RunRecord]] = {}
    for r in done:  # newest first, so the first of each role wins
        if r.audit_id and r.role in ("base", "tuned"):
            by_audit.setdefault(r.audit_id, {}).setdefault(r.role, r)
    best = None
    for roles in by_audit.values():
        if "base" in roles and "tuned" in roles:
            newest = max(roles["base"].created_at, roles["tuned"].created_at)
            if best is None or newest > best[0]:
                best = (newest, roles["base"].run_id, roles["tuned"].run_id)
    if best:
        return best[1], best[2]
    ids = {r.run_id for r in done}
    for c in comparisons:
        if c["run_a"] in ids and c["run_b"] in ids:
            return c["run_a"], c["run_b"]
    if len(done) >= 2:
        return done[1].run_id, done[0].run_id
    return None


def when(ts: datetime | None) -> str:
    return "-" if ts is None else f"{ts:%Y-%m-%d %H:%M:%S}"
