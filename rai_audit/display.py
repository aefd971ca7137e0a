"""Terminal rendering of runs and metrics (rich tables on stdout, progress on stderr).

Model outputs never reach these tables, but run labels and references are user input, so rich
markup in them is escaped rather than interpreted.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rai_audit.store.api import MetricRow, RunRecord

# Piped output (CI logs, files) gets a wide fixed width rather than rich's 80-column default.
stdout = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, highlight=False)


def fmt(value: float | None, digits: int = 3) -> str:
    """A metric value with a fixed number of decimals (1.0 prints as 1.000, like its neighbours)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def ci_unavailable(n: int | None = None, clusters: int | None = None) -> str | None:
    """"n/a (n=1)" / "n/a (1 cluster)" where a CI would rest on one item or cluster (an interval
    such as [0.686, 0.686] would read like certainty); None where an interval may be printed."""
    if n is not None and n < 2:
        return f"n/a (n={n})"
    if clusters is not None and clusters < 2:
        return f"n/a ({clusters} cluster)"
    return None


def fmt_ci(lo: float | None, hi: float | None, n: int | None = None, clusters: int | None = None, *,
           signed: bool = False, missing: str = "-") -> str:
    """A CI as text, never an interval from one item or cluster (:func:`ci_unavailable`).
    ``signed``: the CI of a change, as "[+0.0100, -0.2000]" (gate tables, reports)."""
    unavailable = ci_unavailable(n, clusters)
    if unavailable:
        return unavailable
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)) or (isinstance(hi, float) and math.isnan(hi)):
        return missing
    return f"[{lo:+.4f}, {hi:+.4f}]" if signed else f"[{fmt(lo)}, {fmt(hi)}]"


def _when(r: RunRecord) -> str:
    return r.created_at.strftime("%Y-%m-%d %H:%M")


def run_errors(r: RunRecord, width: int = 120) -> str:
    """What went wrong in a run, for a table cell: a failed run's message (probe runs record
    ``message``, finetune runs ``error``), else the count of error records."""
    detail = r.status_detail or {}
    if r.status in ("failed", "interrupted"):
        text = str(detail.get("message") or detail.get("error") or detail.get("detail") or "")
        return text if len(text) <= width else text[: width - 3] + "..."
    errs = detail.get("error_count")
    return "" if errs in (None, 0) else f"{errs} item(s)"


def runs_table(runs: Sequence[RunRecord]) -> Table:
    t = Table(title=f"{len(runs)} run(s)", title_justify="left")
    for col in ("run", "created (UTC)", "kind", "role", "model", "probes", "status", "errors"):
        # identifiers stay whole; long lists and messages wrap at commas and spaces, not mid-word
        t.add_column(col, no_wrap=col in ("run", "created (UTC)", "kind", "role", "status"), overflow="fold" if col == "model" else "ellipsis")
    for r in runs:
        t.add_row(
            r.run_id[:12], _when(r), r.kind, escape(r.role or "-"), escape(r.model_reference or "-"), escape(", ".join(r.probes)),
            r.status, escape(run_errors(r)),
        )
    return t


def run_header(r: RunRecord) -> str:
    lines = [
        f"run       {r.run_id}",
        f"status    {r.status}" + (f" (finished {r.finished_at:%Y-%m-%d %H:%M:%S} UTC)" if r.finished_at else ""),
        f"model     {escape(r.model_reference or '-')}  sha256 {r.model_id or '-'}",
        f"probes    {', '.join(r.probes)}",
        f"created   {r.created_at:%Y-%m-%d %H:%M:%S} UTC   seed {r.seed}",
    ]
    if r.scorer:
        s = r.scorer
        lines.append(
            f"scorer    {escape(s.get('name', '?'))} {escape(str(s.get('version', '')))}  "
            f"toxic if {s.get('primary', 'toxicity')} {s.get('operator', '>=')} {s.get('threshold')}"
            + (f"  checkpoint sha256 {s['checkpoint_sha256'][:16]}" if s.get("checkpoint_sha256") else "")
        )
    detail = r.status_detail or {}
    if detail.get("error_count"):
        lines.append(f"errors    {detail['error_count']} item(s): " + ", ".join(f"{k}={v}" for k, v in detail["errors"].items()))
    if detail.get("message"):
        lines.append(f"message   {escape(str(detail['message']))}")
    if detail.get("skipped_probes"):
        for name, why in detail["skipped_probes"].items():
            lines.append(f"skipped   {name}: {escape(why)}")
    lines += dataset_lines(r) + contamination_lines(r)
    return "\n".join(lines)


def dataset_lines(r: RunRecord) -> list[str]:
    """One line per probe's data: source, revision (a modified-data override shows there, in
    full) and how many files were checked against their pinned sha256."""
    out = []
    for probe, ds in sorted((r.datasets or {}).items()):
        if not isinstance(ds, dict) or probe == "mixture":
            continue
        rev = str(ds.get("revision") or "-")
        flag = "  [MODIFIED DATA]" if rev.startswith("MODIFIED") else ""
        out.append(f"data      {escape(probe)}: {escape(str(ds.get('source') or '-'))} @ {escape(rev)}; "
                   f"{len(ds.get('files') or {})} file(s) hashed{flag}")
    return out


def contamination_lines(r: RunRecord) -> list[str]:
    """The run's train/test overlap per probe, or that it was not checked."""
    from rai_audit.contamination.describe import overlap_sentence

    record = (r.provenance or {}).get("contamination")
    if not record or r.kind != "probe":
        return [] if r.kind != "probe" else ["overlap   not checked (no training data recorded for this model)"]
    return [f"overlap   {escape(p)}: " + escape(overlap_sentence("x", found).replace("run X's", "the model's"))
            for p, found in sorted((record.get("probes") or {}).items())]


def _uses_scorer(probe: str) -> bool:
    try:
        from probes import probe_class

        return bool(probe_class(probe).needs_scorer)
    except Exception:  # noqa: BLE001 - an unknown/removed probe: say nothing rather than guess
        return False


def metrics_tables(metrics: Sequence[MetricRow], scorer: dict | None = None) -> list[Table]:
    """One table per probe: metric, subgroup, value, 95% CI, n."""
    by_probe: dict[str, list[MetricRow]] = {}
    for m in metrics:
        by_probe.setdefault(m.probe, []).append(m)
    tables = []
    for probe, rows in by_probe.items():
        title = probe
        if scorer and _uses_scorer(probe):
            title += f"  (scorer {scorer.get('name')}, toxic if {scorer.get('operator', '>=')} {scorer.get('threshold')})"
        t = Table(title=escape(title), title_justify="left")
        t.add_column("metric")
        t.add_column("subgroup", overflow="fold")
        t.add_column("value", justify="right")
        t.add_column("95% CI", justify="right")
        t.add_column("n", justify="right")
        for m in sorted(rows, key=lambda m: (m.name, m.subgroup)):
            t.add_row(m.name, escape(m.subgroup or "all"), fmt(m.value), fmt_ci(m.ci_low, m.ci_high, m.n), str(m.n))
        tables.append(t)
    return tables


class PlainProgress:
    """Progress for logs (cron, CI): one plain line per task at most every ``interval_s`` seconds
    and when it finishes, with done/total, rate and ETA. A redrawn bar is invisible in a log file
    until each probe ends; these lines show a job is alive and when it will finish."""

    def __init__(self, write=None, interval_s: float = 15.0, clock=None):
        import time

        self._write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self._clock = clock or time.monotonic
        self.interval_s = interval_s
        self._tasks: list[dict] = []

    def add_task(self, description: str, total: int, completed: int = 0) -> int:
        now = self._clock()
        self._tasks.append({"name": description, "total": total, "done": completed, "start_done": completed,
                            "t0": now, "last": None})
        return len(self._tasks) - 1

    def advance(self, task: int, n: int = 1) -> None:
        t = self._tasks[task]
        t["done"] += n
        now = self._clock()
        finished = t["done"] >= t["total"]
        if finished or t["last"] is None or now - t["last"] >= self.interval_s:
            t["last"] = now
            self._write(self.line(t, now))

    @staticmethod
    def line(t: dict, now: float) -> str:
        elapsed = max(now - t["t0"], 1e-9)
        rate = (t["done"] - t["start_done"]) / elapsed
        left = t["total"] - t["done"]
        eta = "done" if left <= 0 else (f"ETA {int(left / rate) // 60}:{int(left / rate) % 60:02d}" if rate > 0 else "ETA ?")
        pct = 100.0 * t["done"] / t["total"] if t["total"] else 100.0
        return f"progress  {t['name']}: {t['done']}/{t['total']} items ({pct:.0f}%), {rate:.2f} items/s, {eta}"


@contextmanager
def progress_bar(enabled: bool) -> Iterator[object | None]:
    """A rich progress bar on stderr with counts and ETA when stderr is a terminal; plain progress
    lines (:class:`PlainProgress`) when it is not; None when disabled."""
    if not enabled:
        yield None
        return
    if not stderr.is_terminal:
        yield PlainProgress()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TextColumn("items"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=stderr, transient=False,
    ) as p:
        yield p
