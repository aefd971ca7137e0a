"""Commands on models: ``models`` (resolve and describe a model reference) and ``finetune``
(instruction-tune one)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from rai_audit.cli.app import app, state
from rai_audit.cli.common import DB_HELP, open_store


@app.command()
def models(
    reference: str = typer.Argument("default", help="Model reference to resolve: hf:org/name[@rev], a local dir, a .gguf file, or 'default'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Resolve a model reference and describe it (path, content hash, architecture, size).

    Example: rai-audit models default
    """
    from rai_audit.models.reference import describe
    from rai_audit.models.registry import resolve_model

    info = describe(reference, resolve_model(reference))
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    width = max(len(k) for k in info)
    for k, v in info.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items()) or "-"
        typer.echo(f"{k:<{width}}  {v}")


@app.command()
def finetune(
    config: str = typer.Argument(..., help="Finetune YAML (see examples/finetune_demo.yaml)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Override the number of training steps."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "-o", help="Where checkpoints and the exported model go."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in the output directory."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    audit_every: Optional[int] = typer.Option(None, "--audit-every", min=1, help="Trajectory audit: probe the base (step 0), a checkpoint every N steps and the final model on the same items, pair each with the base, and gate the trajectory (docs/trajectories.md). The finetune then writes to OUTPUT_DIR/finetune and reports to OUTPUT_DIR/reports."),
    audit_probes: str = typer.Option("identity_toxicity", "--audit-probes", help="Probes for --audit-every, comma-separated."),
    audit_limit: Optional[int] = typer.Option(None, "--audit-limit", min=1, help="Items per probe at each point for --audit-every (a seeded sample, the same at every point)."),
    gate_policy: Optional[str] = typer.Option(None, "--policy", help="Gate policy for --audit-every (bundled name or YAML path; default 'default')."),
) -> None:
    """Instruction-tune a model (JAX/Flax) and export a Hugging Face checkpoint plus a manifest.

    With --audit-every N it is a trajectory audit: the same probes at step 0, every N steps and
    the final step, each checkpoint paired with the base; then `rai-audit trajectory select`
    names the latest checkpoint that still passes the gate.

    Example: rai-audit finetune examples/finetune_demo.yaml --steps 20 --audit-every 10 --audit-probes identity_toxicity,winogender
    """
    from pathlib import Path

    from rai_audit.audit import import_run_finetune

    run_finetune = import_run_finetune()
    if audit_every is not None:
        from rai_audit.cli.audits import run_finetune_trajectory

        run_finetune_trajectory(config, steps=steps, output_dir=output_dir, resume=resume, db=db, every=audit_every,
                                probes=audit_probes, limit=audit_limit, policy=gate_policy)
        return
    store = open_store(db)
    result = run_finetune(config, resume=resume, steps=steps, output_dir=Path(output_dir) if output_dir else None,
                          store=store, progress=not state["quiet"])
    typer.echo(f"model     {result.export_dir or result.output_dir}")
    typer.echo(f"manifest  {result.manifest_path}")
    typer.echo(f"steps     {result.steps}  tokens {result.tokens_seen}  final loss {result.final_loss}  wall {result.wall_s:.1f} s")
    typer.echo(f"audit it: rai-audit probe --model {result.export_dir or result.output_dir} --probe identity_toxicity")

