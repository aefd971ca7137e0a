"""The whole audit: optional finetune, probes on base and tuned, paired comparison, gate, report.

This is what ``rai-audit run audit.yaml`` executes and what schedulers call. Why it is shaped so:

* **Same conditions for both models.** Base and tuned runs are made from one config, so they
  share items, decoding, seeds and chat-template mode; ``compare_runs`` re-checks that and
  names any difference.
* **Idempotent.** The probe runner reuses a finished run of the same model hash and config, and
  resumes an interrupted one; a finetune whose exported model already exists for the same config
  is not repeated. So a nightly job on an unchanged checkpoint costs a comparison and a report,
  and with nothing new at all (both runs reused and already compared) it stops early unless
  ``force``.
* **One audit at a time.** The audit's advisory lock in the store keeps two overlapping
  invocations (cron + a manual run) from doing the same work twice.
* **One verdict.** The gate policy (name and content hash) is stored with the comparison and
  its verdict, so ``gate``, ``report`` and the dashboard judge this audit by the same policy.
* **Honest exit codes.** 0 pass, 1 a gate failed, 3 inconclusive, 2 a usage or input error; the
  notification hook hears about everything but a pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rai_audit.config import AuditConfig
from rai_audit.errors import EXIT_INTERNAL, EXIT_OK, UserError
from rai_audit.memory import return_freed_memory

if TYPE_CHECKING:
    from rai_audit.store.protocol import ResultsStore

log = logging.getLogger("rai_audit.audit")

NO_TUNED_MODEL = ("The audit config names no tuned model: set models.tuned (--tuned REF), or finetune (--finetune FILE, "
                  "a finetune config) to tune the base model first.")


@dataclass
class AuditOutcome:
    exit_code: int
    base_run: str
    tuned_run: str
    comparison_id: str | None
    verdict: str | None
    reports: dict[str, str] = field(default_factory=dict)
    skipped_probes: dict[str, str] = field(default_factory=dict)
    unchanged: bool = False
    gate_table: str = ""
    finetune: dict[str, Any] | None = None
    trajectory: dict[str, Any] | None = None  # id, points, verdict, selected checkpoint

    def summary(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "base_run": self.base_run,
            "tuned_run": self.tuned_run,
            "comparison_id": self.comparison_id,
            "reports": self.reports,
            "skipped_probes": self.skipped_probes,
            "unchanged": self.unchanged,
            "finetune": self.finetune,
            **({"trajectory": self.trajectory} if self.trajectory else {}),
        }


def import_run_finetune():
    """The finetune stage's entry point, or a UserError saying which extra to install.

    JAX and Flax are an optional extra, imported only here so that the rest of the CLI never
    pays for them.
    """
    try:
        from finetune.run import run_finetune
    except ImportError as e:  # JAX/Flax missing
        raise UserError(
            f"The finetune stage needs the 'finetune' extra (JAX, Flax, Optax, Orbax): {e}. "
            "Install it with: pip install 'rai-audit[finetune]'."
        ) from None
    return run_finetune


def check_tuned_model(cfg: AuditConfig) -> None:
    """UserError (exit 2) when the audit has neither a tuned model nor a finetune to make one."""
    if cfg.models.tuned is None and not cfg.finetune:
        raise UserError(NO_TUNED_MODEL)


def run_finetune_step(cfg: AuditConfig, *, store: ResultsStore, steps: int | None, progress: bool,
                      export_steps: list[int] | None = None) -> tuple[str, dict[str, Any], list[float]]:
    """Tune the base model as ``cfg.finetune`` says (exporting ``export_steps`` for a trajectory);
    returns (tuned model reference, summary, the loss of every step)."""
    run_finetune = import_run_finetune()
    ft_path = Path(cfg.finetune)
    out_dir = Path(cfg.output_dir) / "finetune"
    ckpts = out_dir / "checkpoints"
    resume = ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())  # a killed audit continues
    result = run_finetune(ft_path, steps=steps, output_dir=out_dir, store=store, progress=progress, resume=resume,
                          export_steps=export_steps or ())
    return_freed_memory("the finetune step")  # the probes after it need not carry the train state's heap
    tuned = result.export_dir or result.output_dir
    summary = {
        "config": str(ft_path), "model_dir": str(tuned), "manifest": str(result.manifest_path),
        "steps": result.steps, "tokens_seen": result.tokens_seen, "final_loss": result.final_loss,
        "wall_s": round(result.wall_s, 1), "run_id": result.run_id, "output_dir": str(result.output_dir),
    }
    return str(tuned), summary, list(result.losses)


def run_audit(
    cfg: AuditConfig,
    *,
    store: ResultsStore,
    progress=None,
    force: bool = False,
    wait: bool = False,
    formats: str = "html,pdf,md,json",
    skip_missing: bool = False,
    finetune_steps: int | None = None,
    notify_hook: str | None = None,
    show_finetune_progress: bool = True,
    backend_loader=None,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
    say=None,
) -> AuditOutcome:
    """Run the whole audit described by ``cfg`` (see the module docstring).

    ``backend_loader`` replaces the transformers loader (tests); ``executor`` /
    ``executor_options`` say where the probes run (:func:`rai_audit.runner.run_probe_suite`).
    With ``trajectory.every`` in the config, the finetune exports checkpoints and every point is
    probed, recorded and analysed (:mod:`rai_audit.trajectory`); ``say`` prints its plan and
    progress lines (the CLI passes stderr).
    """
    from rai_audit.notify import notify

    try:
        check_tuned_model(cfg)  # before loading any data
        prepared = check_inputs(cfg, skip_missing)  # bad data or training data: exit 2 before the store is touched
        point_jobs = _point_jobs(cfg, prepared, skip_missing) if cfg.trajectory and cfg.trajectory.every else None
        with store.audit_lock(cfg.name, wait=wait):
            outcome = _run_locked(cfg, store=store, progress=progress, force=force, prepared=prepared, point_jobs=point_jobs,
                                  say=say,
                                  formats=formats, skip_missing=skip_missing, finetune_steps=finetune_steps,
                                  show_finetune_progress=show_finetune_progress, backend_loader=backend_loader,
                                  executor=executor, executor_options=executor_options)
    except UserError as e:
        notify(notify_hook, {"audit": cfg.name, "verdict": "error", "exit_code": e.exit_code, "message": str(e)})
        raise
    except Exception as e:
        notify(notify_hook, {"audit": cfg.name, "verdict": "error", "exit_code": EXIT_INTERNAL, "message": f"{type(e).__name__}: {e}"})
        raise
    if outcome.exit_code != EXIT_OK:
        notify(notify_hook, {"audit": cfg.name, **outcome.summary()})
    return outcome


def check_inputs(cfg: AuditConfig, skip_missing: bool) -> tuple[list, dict[str, str]]:
    """Load every probe's data (pinned checksums included) and the tuned model's training data
    once up front, so an input error stops the audit before the finetune step or the base run
    writes anything to the store. Returns the prepared probe jobs, which both runs reuse."""
    from rai_audit.contamination import load_training_data
    from rai_audit.data_root import resolve_data_root
    from rai_audit.runner import prepare_jobs

    prepared = prepare_jobs([(p.name, p.params) for p in cfg.probes], resolve_data_root(cfg.data_dir),
                            limit=cfg.limit, seed=cfg.seed, skip_missing=skip_missing,
                            allow_modified_data=cfg.allow_modified_data)
    if cfg.models.tuned_training_data:
        load_training_data(cfg.models.tuned_training_data)
    return prepared


def _point_jobs(cfg: AuditConfig, prepared, skip_missing: bool):
    """The prepared jobs of a trajectory's points: the audit's own when the trajectory keeps its
    probes and limit, else loaded (and checked) now, before anything is written."""
    from rai_audit.data_root import resolve_data_root
    from rai_audit.runner import prepare_jobs
    from rai_audit.trajectory.plan import point_config

    pc = point_config(cfg)
    if [p.model_dump() for p in pc.probes] == [p.model_dump() for p in cfg.probes] and pc.limit == cfg.limit:
        return prepared
    return prepare_jobs([(p.name, p.params) for p in pc.probes], resolve_data_root(cfg.data_dir), limit=pc.limit,
                        seed=cfg.seed, skip_missing=skip_missing, allow_modified_data=cfg.allow_modified_data)


def _run_locked(cfg: AuditConfig, *, store: ResultsStore, progress, force, formats, skip_missing, finetune_steps,
                show_finetune_progress, backend_loader=None, executor="local", executor_options=None,
                prepared=None, point_jobs=None, say=None) -> AuditOutcome:
    from rai_audit.comparison import compare_runs, save_comparison
    from rai_audit.gate import format_table, gate_for_comparison, load_policy, policy_identity
    from rai_audit.report import build_report, parse_formats, write_report
    from rai_audit.runner import run_probe_suite

    formats_list = parse_formats(formats) if formats else []
    policy_source = cfg.gate or "default"  # load_config resolved a file path; a bundled name stays a name
    policy = policy_identity(policy_source, load_policy(policy_source))  # a bad policy fails before any work

    finetune_summary = None
    say = say or log.info
    from rai_audit.audit_progress import announce_plan

    progress = announce_plan(cfg, prepared[0] if prepared else [], store, progress, say)  # before any work
    positions = None
    if point_jobs is not None:
        from rai_audit.trajectory.plan import cost_of, step_positions
        from rai_audit.trajectory.run import finetune_steps_of, plan_announcement

        positions = step_positions(finetune_steps_of(cfg, finetune_steps), cfg.trajectory.every)
        say(plan_announcement(cost_of(point_jobs[0], len(positions)), "steps " + ", ".join(map(str, positions)), store,
                              [j.name for j in point_jobs[0]], cfg.models.base, cfg.runtime.model_dump()))
    tuned_ref = cfg.models.tuned
    losses: list[float] = []
    if tuned_ref is None:
        if not cfg.finetune:
            raise UserError(NO_TUNED_MODEL)
        tuned_ref, finetune_summary, losses = run_finetune_step(cfg, store=store, steps=finetune_steps,
                                                               progress=show_finetune_progress,
                                                               export_steps=positions[1:-1] if positions else None)
    elif positions is not None:
        raise UserError("trajectory.every probes the checkpoints of the audit's own finetune, but models.tuned is set. "
                        "Remove models.tuned to tune with `finetune`, or remove trajectory.every.")

    where = {"executor": executor, "executor_options": executor_options, "prepared": prepared}
    base = run_probe_suite(cfg, model_ref=cfg.models.base, store=store, role="base", audit_id=cfg.name,
                           progress=progress, skip_missing=skip_missing, fresh=force, backend_loader=backend_loader, **where)
    if base.reused and hasattr(progress, "skip_run"):  # nothing computed: off the ETA's plan
        progress.skip_run()
    tuned = run_probe_suite(cfg, model_ref=tuned_ref, store=store, role="tuned", audit_id=cfg.name,
                            progress=progress, skip_missing=skip_missing, fresh=force, backend_loader=backend_loader,
                            training_data=cfg.models.tuned_training_data, **where)
    skipped = dict(base.counts.get("skipped_probes") or {})
    base_id, tuned_id = base.run.run_id, tuned.run.run_id
    traj_run = None
    if positions is not None:  # before the "unchanged" shortcut: a killed trajectory must be finished
        from rai_audit.trajectory.run import run_step_trajectory

        traj_run = run_step_trajectory(cfg, positions, store=store, finetune={**finetune_summary, "losses": losses},
                                       tuned_ref=tuned_ref, prepared=point_jobs, say=say,
                                       probe_kwargs={"progress": progress, "skip_missing": skip_missing, "fresh": force,
                                                     "backend_loader": backend_loader, "executor": executor,
                                                     "executor_options": executor_options})

    def trajectory_summary():  # after the audit's comparison is saved, so the final point reuses it
        if traj_run is None:
            return None
        from rai_audit.trajectory.run import finish_trajectory

        return finish_trajectory(cfg, traj_run, store=store, policy=policy_source, say=say)[1]

    if base.reused and tuned.reused and not force:
        previous = store.list_comparisons(run_id=tuned_id)
        previous = [c for c in previous if (c.run_a, c.run_b) == (base_id, tuned_id)
                    and ((c.result or {}).get("policy") or {}).get("sha256") == policy["sha256"]]
        if previous:
            log.info("models and config unchanged since comparison %s; nothing to do (use --force to re-audit)",
                     previous[0].comparison_id)
            from rai_audit.comparison import load_comparison

            comp = load_comparison(store, previous[0].comparison_id)
            gate = gate_for_comparison(comp)
            reports = {a.name.split(".", 1)[1]: a.path for a in store.artifacts(tuned_id, kind="report")
                       if a.meta.get("comparison_id") == comp.comparison_id and a.path and Path(a.path).exists()}
            return AuditOutcome(gate.exit_code, base_id, tuned_id, comp.comparison_id, gate.verdict,
                                reports=reports, unchanged=True, gate_table=format_table(gate, only_not_passed=True), skipped_probes=skipped,
                                finetune=finetune_summary, trajectory=trajectory_summary())

    comparison = compare_runs(store, base_id, tuned_id, n_boot=cfg.runtime.bootstrap, seed=cfg.seed, policy=policy)
    gate = gate_for_comparison(comparison)
    comparison.gate = gate.to_dict()  # the verdict is stored with the comparison, under the audit's policy
    comparison_id = save_comparison(store, comparison)
    traj_summary = trajectory_summary()
    reports: dict[str, str] = {}
    if formats_list:
        report = build_report(store, comparison=comparison, gate=gate, title=f"rai-audit: {cfg.name}")
        out_dir = Path(cfg.output_dir) / "reports"
        reports = {k: str(v) for k, v in write_report(report, out_dir, formats_list, stem=f"comparison-{comparison_id[:12]}").items()}
        for fmt, path in reports.items():
            store.add_artifact(tuned_id, f"report.{fmt}", "report", path=path, meta={"comparison_id": comparison_id})
    return AuditOutcome(gate.exit_code, base_id, tuned_id, comparison_id, gate.verdict, reports=reports,
                        skipped_probes=skipped, gate_table=format_table(gate, only_not_passed=True), finetune=finetune_summary,
                        trajectory=traj_summary)
