"""The data types of a trajectory audit: what the analysis computes, the gate judges, and the
report and the dashboard show. Pydantic models with the comparison's JSON conventions
(:mod:`rai_audit.comparison.model`: undefined values are NaN in memory and null in JSON).

A trajectory is an ordered series of probe runs on the same items, decoding and seeds: position
0 is the base model; the other positions are training steps (axis "step") or numbers of mixture
tasks (axis "tasks"). Each non-base point is paired with the base exactly as ``rai-audit
compare`` pairs two runs (its comparison is saved in the store, so a click on a point opens it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from rai_audit.comparison.model import DiffRow, JsonDict, Stat, Value

Axis = Literal["step", "tasks"]


class PointSummary(BaseModel):
    """One point of the trajectory and its verdict against the base."""

    position: int  # training step, or number of mixture tasks; 0 = the base model
    label: str  # "base", "step 6", "final (step 12)", "2 tasks"
    run_id: str
    model_reference: str | None = None
    finetune_run: str | None = None
    comparison_id: str | None = None  # this point vs the base (None for the base itself)
    verdict: str | None = None  # the policy's verdict for this point vs the base: pass | fail | inconclusive
    gate_reasons: list[str] = Field(default_factory=list)  # the failing or inconclusive rules, one line each
    train_loss: Stat = None  # training loss at this step (quality proxy for selection)
    export_s: Stat = None  # seconds spent exporting this checkpoint


class PointRow(BaseModel):
    """A checkpoint-vs-base row of one metric, with the trajectory-wide correction."""

    position: int
    row: DiffRow  # as the point's comparison computed it (its p_adjusted is within that comparison)
    p_trajectory: Stat = None  # Holm over every checkpoint and every row of the trajectory
    significant_trajectory: bool = False


class HeadlinePoint(BaseModel):
    """One probe's headline metric at one point, for the plot: value with CI, and the paired
    difference from the base with its CI."""

    probe: str
    metric: str
    position: int
    label: str
    value: Value
    ci_low: Stat = None
    ci_high: Stat = None
    n: int = 0
    diff: Value = float("nan")  # point - base (NaN at the base)
    diff_ci_low: Stat = None
    diff_ci_high: Stat = None
    p_trajectory: Stat = None
    verdict: str | None = None  # the point's gate verdict (None at the base)


class Trend(BaseModel):
    """A headline metric's trend along the axis: the OLS slope of the metric on x (x = step for
    the step axis, log2(number of tasks) for the tasks axis, base included at x = 0 / excluded
    from the log axis as documented in docs/metrics.md), with a cluster-bootstrap CI."""

    probe: str
    metric: str
    better: str  # "higher" | "lower" | "none" (the metric's declared direction)
    x: str  # "step" | "log2_tasks"
    slope: Value
    ci_low: Stat = None
    ci_high: Stat = None
    p_value: Stat = None
    n_points: int = 0
    n_items: int = 0
    worsening: bool | None = None  # the whole CI lies on the worse side (None: no direction or undefined)
    per: str = ""  # the unit of the slope, in words ("per 1,000 steps", "per doubling of tasks")


class TrajectoryAnalysis(BaseModel):
    """Everything about one trajectory: its points, the checkpoint-vs-base rows, the headline
    series and trends, and (when a policy was given) the trajectory gate's verdict."""

    trajectory_id: str
    audit_id: str | None = None
    axis: Axis
    base_run: str
    points: list[PointSummary]
    rows: list[PointRow] = Field(default_factory=list)
    headline: list[HeadlinePoint] = Field(default_factory=list)
    trends: list[Trend] = Field(default_factory=list)
    settings: JsonDict = Field(default_factory=dict)  # n_boot, seed, alpha, correction
    policy: JsonDict | None = None  # name, sha256 (and content) of the policy the points were gated with
    gate: JsonDict | None = None  # the trajectory gate's result (rai_audit.trajectory.gate), when judged
    warnings: list[str] = Field(default_factory=list)

    def point(self, position: int) -> PointSummary:
        for p in self.points:
            if p.position == position:
                return p
        raise KeyError(position)

    def summary(self) -> dict[str, Any]:
        return {"trajectory_id": self.trajectory_id, "axis": self.axis, "points": [p.label for p in self.points],
                "verdict": (self.gate or {}).get("verdict")}
