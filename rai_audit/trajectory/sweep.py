"""The mixture axis: tune with the first 1, 2, 4, ..., all tasks of a mixture and audit each.

Wei et al. (2021, "Finetuned Language Models Are Zero-Shot Learners", fig. 6) and Chung et al.
(2022, "Scaling Instruction-Finetuned Language Models", fig. 4) report how a model changes with
the *number of tasks* in the instruction mixture. ``rai-audit sweep`` draws that axis for a user's
own model, mixture and probes: one finetune per size with the same steps, seed and hyperparameters
(only the task list differs, in the order the mixture lists its tasks; the collection proportions
are renormalised over the collections that remain), each exported model probed on the same items
as the base (position 0) and recorded as a point of a "tasks" trajectory.

Each size has its own output folder (``OUTPUT_DIR/sweep/tasks-NNN``), so a killed sweep resumes:
a size whose model is exported is not re-trained, one with checkpoints continues from them, and
finished probe runs are reused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rai_audit.config import AuditConfig
from rai_audit.hashing import sha256_json
from rai_audit.trajectory.plan import mixture_positions, trajectory_id
from rai_audit.trajectory.run import PointPlan, Say, TrajectoryRun, log, probe_points

if TYPE_CHECKING:
    from rai_audit.store.protocol import ResultsStore

SWEEP_DIR = "sweep"


def subset_mixture(spec: Any, n: int) -> Any:
    """The mixture with its first ``n`` tasks; proportions kept for the collections that remain."""
    tasks = list(spec.tasks)[:n]
    groups = {t.collection or t.name for t in tasks}
    props = {k: v for k, v in (spec.proportions or {}).items() if k in groups}
    if props and sum(props.values()) <= 0:
        props = {}
    return type(spec).model_validate({**spec.model_dump(), "tasks": [t.model_dump() for t in tasks], "proportions": props})


def sweep_positions(cfg: AuditConfig, sizes: list[int | str] | None) -> tuple[Any, list[int]]:
    """(the finetune config, the positions: 0 and each number of tasks)."""
    from finetune.config import load_config

    from rai_audit.errors import UserError

    if not cfg.finetune:
        raise UserError("`rai-audit sweep` tunes the base model on growing mixtures, so the audit config needs `finetune` (a finetune config).")
    sizes = sizes or (cfg.trajectory.mixture_sizes if cfg.trajectory else None)
    if not sizes:
        raise UserError("Give the mixture sizes to sweep: --tasks 1,2,4,all, or trajectory.mixture_sizes in the audit config.")
    ft = load_config(cfg.finetune)
    return ft, mixture_positions(sizes, len(ft.mixture_spec().tasks))


def _finished(out: Path) -> dict[str, Any] | None:
    """The manifest of a finished, exported finetune in ``out`` (None when not finished)."""
    try:
        man = json.loads((out / "finetune_manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return man if (man.get("export") or {}).get("dir") else None


def run_sweep(cfg: AuditConfig, *, store: ResultsStore, sizes: list[int | str] | None = None, steps: int | None = None,
              prepared=None, say: Say = log.info, progress: bool = False,
              probe_kwargs: dict[str, Any] | None = None) -> TrajectoryRun:
    """Tune and probe every mixture size (see the module docstring)."""
    from finetune.run import run_finetune

    ft, positions = sweep_positions(cfg, sizes)
    spec = ft.mixture_spec()
    points = [PointPlan(0, "base", cfg.models.base)]
    for n in positions[1:]:
        out = Path(cfg.output_dir) / SWEEP_DIR / f"tasks-{n:03d}"
        names = [t.name for t in spec.tasks[:n]]
        sub = ft.model_copy(update={"mixture": subset_mixture(spec, n), "output_dir": str(out.resolve())})
        done = _finished(out)
        if done is not None and done.get("steps") == (steps or ft.steps):
            say(f"sweep: {n} task(s) already tuned in {out}")
            run_id = _finetune_run_id(store, out)
            loss = done.get("final_loss")
        else:
            ckpts = out / "checkpoints"
            resume = ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())
            say(f"sweep: tuning on {n} task(s) ({', '.join(names)}){' (resuming)' if resume else ''}")
            result = run_finetune(sub, steps=steps, store=store, progress=progress, resume=resume)
            run_id, loss = result.run_id, result.final_loss
        points.append(PointPlan(n, f"{n} task{'s' * (n != 1)}", str(out / "model"), run_id,
                                {"train_loss": loss, "tasks": names}))
    key = sha256_json({"finetune": ft.model_dump(mode="json", exclude={"output_dir", "base_dir"}), "steps": steps})
    return probe_points(cfg, points, store=store, axis="tasks", prepared=prepared, say=say, probe_kwargs=probe_kwargs,
                        make_id=lambda base_run: trajectory_id(cfg, axis="tasks", finetune_key=key, positions=positions,
                                                               base_run=base_run))


def _finetune_run_id(store: ResultsStore, out: Path) -> str | None:
    """The store's finetune run that exported into ``out`` (from its completed event)."""
    target = str((out / "model").resolve())
    for run in store.list_runs(kind="finetune", limit=200):
        for e in run.events:
            if e.status == "completed" and str(e.detail.get("export_dir") or "") in (target, str(out / "model")):
                return run.run_id
    return None
