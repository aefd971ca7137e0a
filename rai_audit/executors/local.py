"""The local executor: this process computes the chunks of each probe, one after another.

Each chunk's records are committed in one transaction as soon as they are computed, and a
probe's metrics are written once all its items have records, so a process killed at any moment
leaves complete rows only and a re-run carries on with the items that have no record yet. Needs
nothing beyond the base install (never imports Ray).
"""

from __future__ import annotations

from typing import Any, Sequence

from rai_audit.execution import ProbeJob, ProbeRunner, chunks
from rai_audit.executors.base import ExecutionContext


def run_job(work: ProbeRunner, run_id: str, job: ProbeJob, *, chunk_rows: int) -> None:
    """Compute and commit ``job``'s pending items chunk by chunk, then write its metrics."""
    pending, n_done = work.pending(run_id, job)
    progress = work.progress
    task = progress.add_task(job.name, total=len(job.items), completed=n_done) if progress else None
    if pending:
        reqs = {it.id: job.probe.requests(it) for it in pending}
        for chunk in chunks(pending, reqs, chunk_rows):
            work.commit_chunk(run_id, job, chunk, reqs)
            if progress is not None:
                progress.advance(task, len(chunk))
    work.finish_job(run_id, job)


class LocalExecutor:
    """Runs every job in this process (:func:`run_job`); adds nothing to the completed event."""

    name = "local"

    def run(self, jobs: Sequence[ProbeJob], ctx: ExecutionContext) -> dict[str, Any]:
        for job in jobs:
            run_job(ctx.work, ctx.run_id, job, chunk_rows=ctx.chunk_rows)
        return {}
