"""The local executor: this process computes the chunks of each probe, one after another.

Each chunk's records are committed in one transaction as soon as they are computed, and a
probe's metrics are written once all its items have records, so a process killed at any moment
leaves complete rows only and a re-run carries on with the items that have no record yet. Needs
nothing beyond the base install (never imports Ray).

It also times each probe: wall seconds (less the model's loading time), work units of the items
it computed and how many answers the model computed (not the cache), returned as the run's
``probe_timing`` so that the next plan of this model can estimate its time
(:mod:`rai_audit.workload`).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from rai_audit.execution import ProbeJob, ProbeRunner, chunks
from rai_audit.executors.base import ExecutionContext
from rai_audit.workload import request_cost


def run_job(work: ProbeRunner, run_id: str, job: ProbeJob, *, chunk_rows: int) -> dict[str, Any]:
    """Compute and commit ``job``'s pending items chunk by chunk, then write its metrics. Returns
    the job's timing: ``wall_s``, ``work`` (work units of the computed items), ``items`` and
    ``computed`` (answers the model computed; 0 when the cache answered everything)."""
    t0, load0 = time.perf_counter(), _load_seconds(work.backend)
    misses0 = getattr(work.backend, "misses", None)
    pending, n_done = work.pending(run_id, job)
    progress = work.progress
    task = progress.add_task(job.name, total=len(job.items), completed=n_done) if progress else None
    units = 0
    if pending:
        reqs = {it.id: job.probe.requests(it) for it in pending}
        units = sum(c[0] + c[2] for rs in reqs.values() for c in map(request_cost, rs))
        for chunk in chunks(pending, reqs, chunk_rows):
            work.commit_chunk(run_id, job, chunk, reqs)
            if progress is not None:
                progress.advance(task, len(chunk))
    work.finish_job(run_id, job)
    misses1 = getattr(work.backend, "misses", None)
    computed = misses1 - misses0 if isinstance(misses0, int) and isinstance(misses1, int) else None
    wall = time.perf_counter() - t0 - (_load_seconds(work.backend) - load0)  # loading the model is not this probe's work
    return {"wall_s": round(max(wall, 0.0), 3), "work": units, "items": len(pending), "computed": computed}


def _load_seconds(backend: Any) -> float:
    """Seconds the run's lazily loaded model took to load so far (0 when not loaded or unknown)."""
    inner = getattr(backend, "backend", backend)  # a CachedBackend over the LazyBackend
    return float(getattr(inner, "load_s", 0.0) or 0.0)


class LocalExecutor:
    """Runs every job in this process (:func:`run_job`); adds each probe's timing to the completed
    event (``probe_timing``)."""

    name = "local"

    def run(self, jobs: Sequence[ProbeJob], ctx: ExecutionContext) -> dict[str, Any]:
        timing = {job.name: run_job(ctx.work, ctx.run_id, job, chunk_rows=ctx.chunk_rows) for job in jobs}
        return {"probe_timing": timing}
