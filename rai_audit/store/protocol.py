"""The results store's contract: what callers may use of a store, as typing protocols.

Callers annotate a store parameter with :class:`ResultsStore`, or with the one part they use
(a response cache only needs :class:`ResponseCache`), instead of ``Any``; the concrete
:class:`rai_audit.store.Store` satisfies every one of them (``tests/test_store.py`` checks the
member names and signatures), and so can an in-memory fake of the part a test needs. The parts
follow the store's mixins (:mod:`rai_audit.store.store`).

Importing this module costs nothing at run time: annotate under ``TYPE_CHECKING`` or with
``from __future__ import annotations``. The protocols are ``runtime_checkable``, so
``isinstance(store, ResultsStore)`` checks that the members exist (not their signatures).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from rai_audit.backend import ModelInfo
    from rai_audit.probe import DatasetInfo, Item
    from rai_audit.store.api import ArtifactRecord, ComparisonRecord, MetricRow, RunRecord, RunStatus, TrajectoryPointRecord

__all__ = [
    "ArtifactStore",
    "AuditLocks",
    "Catalog",
    "ComparisonStore",
    "ResponseCache",
    "ResultsStore",
    "RunResults",
    "RunStore",
    "ScoreCache",
    "StoreConnection",
]


@runtime_checkable
class StoreConnection(Protocol):
    """Where the store is and how its calls are grouped (:mod:`rai_audit.store.base`)."""

    url: str  # with the password: reopen the store by it (workers), never print it
    dialect: str  # "sqlite" | "postgresql"
    engine: Engine

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for messages."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Store calls of this thread inside the block commit together (nested: a savepoint)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Catalog(Protocol):
    """Content-addressed models, data sets and items (:mod:`rai_audit.store.catalog`)."""

    def add_model(self, info: ModelInfo) -> None: ...

    def get_model(self, model_id: str) -> dict[str, Any] | None: ...

    def add_dataset(self, info: DatasetInfo) -> None: ...

    def get_dataset(self, dataset_id: str) -> DatasetInfo | None: ...

    def add_items(self, dataset_id: str, probe: str, items: Sequence[Item]) -> None: ...

    def items(self, probe: str, dataset_id: str | None = None) -> list[Item]: ...


@runtime_checkable
class RunStore(Protocol):
    """Runs and their status events (:mod:`rai_audit.store.runs`)."""

    def create_run(
        self,
        *,
        kind: str,
        run_key: str,
        model_id: str | None,
        model_reference: str | None,
        probes: Sequence[str],
        config: dict[str, Any],
        provenance: dict[str, Any],
        scorer: dict[str, Any] | None,
        datasets: dict[str, Any],
        seed: int,
        audit_id: str | None = None,
        role: str | None = None,
        label: str | None = None,
    ) -> str: ...

    def find_run_by_key(self, run_key: str) -> RunRecord | None: ...

    def add_event(self, run_id: str, status: RunStatus, detail: dict[str, Any] | None = None) -> None: ...

    def get_run(self, run_id: str) -> RunRecord:
        """A full id, a unique prefix or "latest"; StoreError if unknown."""
        ...

    def list_runs(
        self, *, model: str | None = None, probe: str | None = None, kind: str | None = None,
        audit_id: str | None = None, limit: int | None = None, status: str | None = None,
        role: str | None = None, label: str | None = None,
    ) -> list[RunRecord]: ...


@runtime_checkable
class ResponseCache(Protocol):
    """Model answers by request key (:mod:`rai_audit.store.caches`)."""

    def get_responses(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def add_responses(self, rows: Sequence[dict[str, Any]]) -> None: ...


@runtime_checkable
class ScoreCache(Protocol):
    """Toxicity scores by scorer and text (:mod:`rai_audit.store.caches`)."""

    def get_scores(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def add_scores(self, rows: Sequence[dict[str, Any]]) -> None: ...


@runtime_checkable
class RunResults(Protocol):
    """A run's per-item records and metrics (:mod:`rai_audit.store.results`)."""

    def completed_items(self, run_id: str, probe: str) -> set[str]: ...

    def add_records(self, run_id: str, probe: str, records: Sequence[dict[str, Any]]) -> None: ...

    def records(self, run_id: str, probe: str | None = None) -> list[dict[str, Any]]: ...

    def add_metrics(self, run_id: str, metrics: Sequence[MetricRow]) -> None: ...

    def metrics(self, run_id: str, probe: str | None = None) -> list[MetricRow]: ...


@runtime_checkable
class ArtifactStore(Protocol):
    """Files runs produced (:mod:`rai_audit.store.artifacts`)."""

    def add_artifact(
        self, run_id: str, name: str, kind: str, path: str | os.PathLike | None = None,
        sha256: str | None = None, meta: dict[str, Any] | None = None,
    ) -> None: ...

    def artifacts(self, run_id: str | None = None, kind: str | None = None) -> list[ArtifactRecord]: ...


@runtime_checkable
class ComparisonStore(Protocol):
    """Saved comparisons (:mod:`rai_audit.store.comparisons`)."""

    def add_comparison(
        self, run_a: str, run_b: str, config: dict[str, Any], result: dict[str, Any],
        comparison_id: str | None = None,
    ) -> str: ...

    def get_comparison(self, comparison_id: str) -> ComparisonRecord:
        """A full id, a unique prefix or "latest"; StoreError if unknown or ambiguous."""
        ...

    def list_comparisons(self, run_id: str | None = None, limit: int | None = None) -> list[ComparisonRecord]: ...


@runtime_checkable
class TrajectoryStore(Protocol):
    """Trajectory points (:mod:`rai_audit.store.trajectories`)."""

    def add_trajectory_point(
        self, trajectory_id: str, *, axis: str, position: int, run_id: str, finetune_run: str | None = None,
        audit_id: str | None = None, meta: dict[str, Any] | None = None,
    ) -> None: ...

    def trajectory_points(self, trajectory_id: str) -> list[TrajectoryPointRecord]: ...

    def list_trajectories(self, audit_id: str | None = None) -> list[list[TrajectoryPointRecord]]: ...

    def trajectories_of_run(self, run_id: str) -> list[TrajectoryPointRecord]: ...


@runtime_checkable
class AuditLocks(Protocol):
    """One audit at a time (:mod:`rai_audit.store.audit_locks`)."""

    def audit_lock(
        self, name: str, wait: bool = False, timeout: float | None = None, poll: float = 0.25,
    ) -> AbstractContextManager[None]: ...


@runtime_checkable
class ResultsStore(
    StoreConnection, Catalog, RunStore, ResponseCache, ScoreCache, RunResults, ArtifactStore, ComparisonStore,
    TrajectoryStore, AuditLocks, Protocol,
):
    """Everything a results store offers: what :class:`rai_audit.store.Store` implements."""
