"""The executor interface: where a run's chunks are computed.

The runner resolves the model, prepares the jobs, finds or creates the run and then hands the
jobs to an executor with an :class:`ExecutionContext`. An executor must, for every job, compute
and commit the records of the items that have none yet (:meth:`ProbeRunner.pending`,
:func:`~rai_audit.execution.chunks`, :meth:`ProbeRunner.commit_chunk` or
:meth:`ProbeRunner.records_for_chunk`) and then write the probe's metrics
(:meth:`ProbeRunner.finish_job`), updating ``ctx.work.counts``. It returns extra fields for the
run's "completed" event (``{}`` when it has none). Executors import :mod:`rai_audit.execution`,
never the runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from rai_audit.backend import Backend, ModelInfo
from rai_audit.execution import ProbeJob, ProbeRunner


@dataclass
class ExecutionContext:
    """What an executor gets besides the jobs.

    ``work``: the driver's :class:`ProbeRunner` (store, cached backend, scorer cache and identity,
    seed, bootstrap settings, progress bar, counts). ``model`` / ``backend_loader``: the resolved model
    and the loader that builds its backend (from the backend registry unless the caller gave one),
    for executors that load models elsewhere. ``scorer``: a scorer object the caller gave (shipped
    as is); ``scorer_config``: the configured scorer, for executors that build their own.
    ``chunk_rows``: model rows per chunk (the runner's ``CHUNK_ROWS``).
    """

    run_id: str
    work: ProbeRunner
    model: ModelInfo
    backend_loader: Callable[[ModelInfo], Backend]
    chunk_rows: int
    scorer: Any = None
    scorer_config: Any = None


@runtime_checkable
class Executor(Protocol):
    """Runs prepared probe jobs of one run; see the module docstring for the contract."""

    name: str

    def run(self, jobs: Sequence[ProbeJob], ctx: ExecutionContext) -> dict[str, Any]: ...
