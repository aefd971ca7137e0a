"""What a trajectory audit will do, before it does it: the positions it probes, the id it records
them under, the per-point audit config, and the cost line the CLI prints first.

Probing K checkpoints costs about K single runs of the same probes (docs/trajectories.md), so the
plan line states points x probes x items (and model requests) and, once one point has been
measured (or the store holds the base model's measured rate for these probes), the estimated
time. Costs and rates are :mod:`rai_audit.workload`'s, shared with the audit's own plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from rai_audit.config import AuditConfig
from rai_audit.errors import UserError
from rai_audit.hashing import sha256_json
from rai_audit.workload import ProbeCost, costs_of, format_duration

__all__ = ["Cost", "cost_of", "format_duration", "mixture_positions", "point_config", "run_seconds", "step_positions",
           "trajectory_id"]


def step_positions(total_steps: int, every: int) -> list[int]:
    """0 (the base), every ``every`` steps, and the final step."""
    if every < 1 or total_steps < 1:
        raise UserError(f"trajectory.every ({every}) and the finetune's steps ({total_steps}) must both be at least 1.")
    return sorted({0, *range(every, total_steps, every), total_steps})


def mixture_positions(sizes: Sequence[int | str], n_tasks: int) -> list[int]:
    """0 (the base) and each requested number of tasks ("all" = every task of the mixture)."""
    out = {0}
    for s in sizes:
        n = n_tasks if s == "all" else int(s)
        if n < 1:
            raise UserError(f"Mixture sizes are numbers of tasks, at least 1 (or 'all'); got {s!r}.")
        if n > n_tasks:
            raise UserError(f"trajectory.mixture_sizes asks for {n} tasks, but the mixture has only {n_tasks}. "
                            f"Use sizes up to {n_tasks}, or 'all'.")
        out.add(n)
    return sorted(out)


def point_config(cfg: AuditConfig) -> AuditConfig:
    """The audit config every point of the trajectory is probed with: the trajectory's probes and
    limit (else the audit's), no trajectory section. Base and checkpoints share it, so they are
    probed on the same items, decoding and seeds, and a point whose probes and limit equal the
    audit's is the audit's own run (reused, not probed twice)."""
    t = cfg.trajectory
    update: dict[str, Any] = {"trajectory": None}
    if t is not None and t.probes:
        update["probes"] = t.probes
    if t is not None and t.limit is not None:
        update["limit"] = t.limit
    return cfg.model_copy(update=update)


def trajectory_id(cfg: AuditConfig, *, axis: str, finetune_key: str, positions: Sequence[int], base_run: str) -> str:
    """A content id: the same audit, axis, finetune, probes and base run give the same trajectory,
    so a re-run after a crash extends the trajectory it started instead of beginning another."""
    pc = point_config(cfg).model_dump(mode="json")
    return sha256_json({"audit": cfg.name, "axis": axis, "finetune": finetune_key, "positions": list(positions),
                        "probes": pc["probes"], "limit": pc["limit"], "seed": pc["seed"], "scorer": pc["scorer"],
                        "base": cfg.models.base, "base_run": base_run})


@dataclass
class Cost:
    points: int
    probes: int
    items: int  # per point, all probes together
    requests: int  # model requests per point (a generation request for n samples counts n times)
    probe_costs: tuple[ProbeCost, ...] = ()  # per probe, one point (rai_audit.workload)

    def line(self, axis_words: str, seconds_per_point: float | None = None) -> str:
        what = (f"{self.points} point{'s' * (self.points != 1)} ({axis_words}) x {self.probes} probe{'s' * (self.probes != 1)} "
                f"({self.items} items in all) = {self.points * self.items:,} item evaluations ({self.points * self.requests:,} model requests); "
                f"each point costs about one probe run of this size")
        if seconds_per_point is None or not math.isfinite(seconds_per_point):
            return what + "; time estimate after the base point is measured."
        return what + f"; estimated {format_duration(seconds_per_point * self.points)} at {format_duration(seconds_per_point)} per point."


def cost_of(jobs: Sequence[Any], points: int) -> Cost:
    """The plan's numbers from the prepared probe jobs (rai_audit.execution.ProbeJob), through
    :func:`rai_audit.workload.costs_of`, the cost every plan uses."""
    costs = costs_of(jobs)
    return Cost(points=points, probes=len(jobs), items=sum(c.items for c in costs),
                requests=sum(c.loglik + c.samples for c in costs), probe_costs=tuple(costs))


def run_seconds(run: Any) -> float | None:
    """Wall seconds a finished run took (its first event to its completion), from the store."""
    if run is None or getattr(run, "finished_at", None) is None:
        return None
    started = min((e.at for e in run.events), default=run.created_at)
    return max((run.finished_at - started).total_seconds(), 0.0)
