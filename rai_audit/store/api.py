"""Value types the results store hands out and takes in.

Kept apart from the SQLAlchemy code so that the runner, the comparison code and the dashboard
can name these types without importing the database layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

RunStatus = Literal["running", "completed", "completed_with_errors", "failed", "interrupted"]
TERMINAL_STATUSES = ("completed", "completed_with_errors", "failed")


@dataclass(frozen=True)
class MetricRow:
    """One aggregate: a metric of a probe for a subgroup ("" = overall) with n and 95% CI."""

    probe: str
    name: str
    subgroup: str
    value: float
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunEvent:
    at: datetime
    status: RunStatus
    detail: dict[str, Any]


@dataclass(frozen=True)
class RunRecord:
    """A run as the store knows it: its immutable row plus the latest of its status events.

    Status changes are appended as events (the runs table is append-only like every result
    table); ``status`` is the latest event's.
    """

    run_id: str
    kind: str  # "probe" | "finetune"
    run_key: str  # hash of (config, model hash, probe suite, datasets); a rerun resumes by it
    model_id: str | None
    model_reference: str | None
    probes: list[str]
    config: dict[str, Any]
    config_hash: str
    provenance: dict[str, Any]
    scorer: dict[str, Any] | None
    datasets: dict[str, Any]
    seed: int
    created_at: datetime
    status: RunStatus
    status_detail: dict[str, Any]
    finished_at: datetime | None
    audit_id: str | None = None  # groups the base and tuned runs of one audit
    role: str | None = None  # "base" | "tuned" | None
    label: str | None = None
    events: list[RunEvent] = field(default_factory=list)


@dataclass(frozen=True)
class ArtifactRecord:
    """A file a run produced: an exported model, a report, a finetune manifest, ..."""

    run_id: str
    name: str
    kind: str  # "model" | "report" | "manifest" | ... (free text, for filtering)
    path: str | None
    sha256: str | None
    meta: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ComparisonRecord:
    """A stored comparison of two runs on the same items (``result`` as the compare code wrote it)."""

    comparison_id: str
    run_a: str
    run_b: str
    config: dict[str, Any]
    result: dict[str, Any]
    created_at: datetime
    result_sha256: str | None = None  # sealed when saved; `rai-audit verify` recomputes it


@dataclass(frozen=True)
class TrajectoryPointRecord:
    """One point of a trajectory: a probe run at a position on the trajectory's axis.

    ``axis`` is "step" (checkpoints of one finetune run; position 0 is the base model) or "tasks"
    (one finetune per mixture size; position 0 is the base model). ``finetune_run`` is the
    finetune run that produced the point's model (None for the base).
    """

    trajectory_id: str
    audit_id: str | None
    axis: str
    position: int
    run_id: str
    finetune_run: str | None
    meta: dict[str, Any]
    created_at: datetime

    @property
    def label(self) -> str:
        return str(self.meta.get("label") or (f"step {self.position}" if self.axis == "step" else f"{self.position} tasks"))
