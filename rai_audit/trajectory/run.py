"""Running a trajectory: probe every point, record it, in an order that survives a kill -9.

Two axes (docs/trajectories.md):

* **steps** (``trajectory.every`` in the audit config, or ``rai-audit finetune --audit-every``):
  the finetune exports a Hugging Face checkpoint at each audited step
  (:mod:`finetune.checkpoint_exports`); then the base (step 0), each checkpoint and the final
  model are probed with one point config (:func:`rai_audit.trajectory.plan.point_config`).
* **tasks** (``rai-audit sweep``): one finetune per mixture size (the first 1, 2, 4, ... tasks
  of the mixture, same steps and seed), each audited like a checkpoint.

Resume: every piece is idempotent. A finetune resumes from its last Orbax checkpoint and skips
finished exports; a probe run of the same model and config is reused (or resumed item by item);
a point is written with insert-or-ignore. So re-running the same command after a kill re-trains
and re-probes nothing that was finished, and ends with the same results as an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rai_audit.config import AuditConfig
from rai_audit.trajectory.plan import Cost, cost_of, format_duration, point_config, run_seconds

if TYPE_CHECKING:
    from rai_audit.store.protocol import ResultsStore

log = logging.getLogger("rai_audit.trajectory")

Say = Callable[[str], None]


@dataclass
class PointPlan:
    position: int
    label: str
    model_reference: str
    finetune_run: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrajectoryRun:
    trajectory_id: str
    axis: str
    run_ids: dict[int, str]  # position -> probe run
    wall_s: float
    cost: Cost | None = None


def probe_points(cfg: AuditConfig, points: list[PointPlan], *, store: ResultsStore, make_id: Callable[[str], str],
                 axis: str, prepared=None, say: Say = log.info, probe_kwargs: dict[str, Any] | None = None) -> TrajectoryRun:
    """Probe each point (base first, so its time calibrates the estimate) and record it.

    ``make_id(base_run_id)`` names the trajectory: the base's probe run is part of its identity,
    so a re-run that reuses the base (a resume) extends the same trajectory, and a ``--force``
    re-audit, which probes the base afresh, records a new one instead of mixing runs."""
    from rai_audit.runner import run_probe_suite

    pc = point_config(cfg)
    t0 = time.perf_counter()
    cost = cost_of(prepared[0], len(points)) if prepared else None
    run_ids: dict[int, str] = {}
    trajectory_id = ""
    for i, point in enumerate(points):
        started = time.perf_counter()
        outcome = run_probe_suite(pc, model_ref=point.model_reference, store=store, role=_role(point),
                                  audit_id=cfg.name, prepared=prepared, **(probe_kwargs or {}))
        run_id = outcome.run.run_id
        run_ids[point.position] = run_id
        trajectory_id = trajectory_id or make_id(run_id)
        store.add_trajectory_point(trajectory_id, axis=axis, position=point.position, run_id=run_id,
                                   finetune_run=point.finetune_run, audit_id=cfg.name,
                                   meta={"label": point.label, "model_reference": point.model_reference, **point.meta})
        took = run_seconds(outcome.run) if outcome.reused else time.perf_counter() - started
        left = len(points) - i - 1
        state = "reused" if outcome.reused else ("resumed" if outcome.resumed else "probed")
        eta = f"; about {format_duration(took * left)} for the {left} left" if took is not None and left else ""
        say(f"trajectory: {point.label}: {state} (run {run_id[:12]}){eta}")
    return TrajectoryRun(trajectory_id, axis, run_ids, time.perf_counter() - t0, cost)


def _role(point: PointPlan) -> str:
    return "base" if point.position == 0 else ("tuned" if point.meta.get("final") else "checkpoint")


def step_points(cfg: AuditConfig, positions: list[int], *, finetune_dir: Path, tuned_ref: str, finetune_run: str | None,
                losses: list[float]) -> list[PointPlan]:
    """The base, each exported checkpoint and the final model, in step order."""
    from finetune.checkpoint_exports import checkpoint_dir, export_seconds

    final = positions[-1]
    out = []
    for pos in positions:
        loss = losses[pos - 1] if 0 < pos <= len(losses) else None
        if pos == 0:
            out.append(PointPlan(0, "base", cfg.models.base))
        elif pos == final:
            out.append(PointPlan(pos, f"final (step {pos})", tuned_ref, finetune_run, {"train_loss": loss, "final": True}))
        else:
            out.append(PointPlan(pos, f"step {pos}", str(checkpoint_dir(finetune_dir, pos)), finetune_run,
                                 {"train_loss": loss, "export_s": export_seconds(finetune_dir, pos)}))
    return out


def plan_announcement(cost: Cost, axis_words: str, store: ResultsStore, probes: list[str], model_reference: str,
                      runtime: dict[str, Any] | None = None) -> str:
    """The plan line. The estimate uses the rates the store last measured for this model and each
    of these probes (:func:`rai_audit.workload.measured_rates`); when a probe has none it follows
    the base point, which is probed first."""
    from rai_audit.workload import estimate_seconds, measured_rates

    rates = measured_rates(store, model_reference, probes, runtime)
    seconds, missing = estimate_seconds(cost.probe_costs, rates)
    known = bool(rates) and not missing
    return "trajectory plan: " + cost.line(axis_words, seconds if known else None)


def finetune_steps_of(cfg: AuditConfig, steps_override: int | None) -> int:
    """The finetune's total steps (the override, else its config's), read before training so the
    audited positions and the checkpoint exports are known up front."""
    if steps_override is not None:
        return steps_override
    from finetune.config import load_config

    return load_config(cfg.finetune).steps


def run_step_trajectory(cfg: AuditConfig, positions: list[int], *, store: ResultsStore, finetune: dict[str, Any],
                        tuned_ref: str, prepared=None, say: Say = log.info,
                        probe_kwargs: dict[str, Any] | None = None) -> TrajectoryRun:
    """Probe and record every point of a step trajectory whose finetune has run (with exports)."""
    from rai_audit.trajectory.plan import trajectory_id

    ft_run = finetune.get("run_id")
    ft_key = store.get_run(ft_run).run_key if ft_run else str(finetune.get("manifest"))
    losses = list(finetune.get("losses") or [])
    points = step_points(cfg, positions, finetune_dir=Path(finetune["output_dir"]), tuned_ref=tuned_ref,
                         finetune_run=ft_run, losses=losses)
    return probe_points(cfg, points, store=store, axis="step", prepared=prepared, say=say, probe_kwargs=probe_kwargs,
                        make_id=lambda base_run: trajectory_id(cfg, axis="step", finetune_key=ft_key,
                                                               positions=positions, base_run=base_run))


def finetune_base_reference(finetune_config: Path, output_dir: str | None) -> tuple[str, Path]:
    """(the finetune's base model as an audit model reference, the output folder) for
    ``rai-audit finetune --audit-every``: ``default`` and ``hf:`` references stay as they are; a
    local path is made absolute against the finetune config's folder."""
    from finetune.config import load_config, resolve_path

    ft = load_config(finetune_config)
    ref = ft.model
    if ref != "default" and not ref.startswith("hf:"):
        ref = str(resolve_path(ref, ft.base_dir))
    out = Path(output_dir).resolve() if output_dir else ft.output_path
    return ref, out


def finish_trajectory(cfg: AuditConfig, traj: TrajectoryRun, *, store: ResultsStore, policy: Any, say: Say = log.info):
    """Analyse and gate the recorded trajectory, choose the checkpoint to ship, and write the
    analysis as JSON next to the reports (recorded on the final point's run). Returns
    (analysis, the summary an audit outcome carries)."""
    from rai_audit.trajectory.analysis import analyse_trajectory
    from rai_audit.trajectory.gate import choose_checkpoint

    analysis = analyse_trajectory(store, traj.trajectory_id, n_boot=cfg.runtime.bootstrap, seed=cfg.seed, policy=policy)
    selection = choose_checkpoint(analysis, by="latest")
    out_dir = Path(cfg.output_dir) / "reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"trajectory-{traj.trajectory_id[:12]}.json"
    path.write_text(analysis.model_dump_json(indent=2), encoding="utf-8")
    final_run = traj.run_ids[max(traj.run_ids)]
    from rai_audit.hashing import sha256_file

    store.add_artifact(final_run, "trajectory.json", "trajectory", path=str(path), sha256=sha256_file(path),
                       meta={"trajectory_id": traj.trajectory_id})
    gate = analysis.gate or {}
    summary = {
        "trajectory_id": traj.trajectory_id, "axis": traj.axis,
        "points": [{"position": p.position, "label": p.label, "verdict": p.verdict, "run_id": p.run_id,
                    "model_reference": p.model_reference} for p in analysis.points],
        "verdict": gate.get("verdict"), "exit_code": gate.get("exit_code"), "reasons": gate.get("reasons", []),
        "selected": selection.point.label if selection.point else None,
        "selected_model": selection.point.model_reference if selection.point else None,
        "selection_reason": selection.reason, "json": str(path), "wall_s": round(traj.wall_s, 1),
    }
    return analysis, summary
