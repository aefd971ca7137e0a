"""Commands on runs: ``probe`` (run a probe suite on a model), ``runs`` (list them) and
``show`` (one run)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from rai_audit.cli.app import app, state
from rai_audit.cli.common import (
    DB_HELP,
    executor_options,
    open_existing_store,
    open_store,
    print_run,
    probe_overrides,
    run_json,
)
from rai_audit.errors import UserError


@app.command()
def probe(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Audit YAML (see docs/configuration.md); flags override it."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model reference: hf:org/name[@rev], a local HF dir, a .gguf file, or 'default'."),
    probe_names: Optional[str] = typer.Option(None, "--probe", "-p", help="Comma-separated probe names, e.g. winogender,bbq; lm-evaluation-harness aliases (crows_pairs_english, winogender_all, bbq_generate) run their probe, recorded under its own name."),
    scorer: Optional[str] = typer.Option(None, "--scorer", help="Toxicity scorer: profanity-check, detoxify:<variant>, hf:<ref>."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="At most N items per probe (a seeded sample)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling items, exemplars, generation and bootstrap."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Benchmark data root (default: RAI_AUDIT_DATA, else the Hugging Face hub)."),
    allow_modified_data: bool = typer.Option(False, "--allow-modified-data", help="Accept local benchmark files whose sha256 differs from the hash pinned in rai-audit's dataset manifests (rai_audit/assets/manifests/) (refused with exit 2 otherwise); the run records each such file with its actual and pinned sha256, and its run key differs from a run on the pinned files."),
    role: Optional[str] = typer.Option(None, "--role", help="With --config: audit the 'base' (default) or 'tuned' model of the file."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Model precision: auto (float32 on CPU, the model's own 16-bit type on CUDA), float32, or bfloat16/float16, the fast mode: faster on GPUs and on CPUs with AMX or AVX512-BF16 (several times slower on others), keyed apart from float32 in the store and recorded in the run's settings."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Requests per model batch (automatic by default)."),
    bootstrap: Optional[int] = typer.Option(None, "--bootstrap", min=0, help="Bootstrap resamples for CIs (default 1000)."),
    fresh: bool = typer.Option(False, "--fresh", help="Start a new run even if an identical one exists (answers still come from the cache)."),
    executor: str = typer.Option("local", "--executor", help="local (this process) or ray (shards on Ray actors; needs rai-audit[ray])."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to use with --executor ray ('auto', HEAD:6379, ray://HEAD:10001); default RAY_ADDRESS or a local instance."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray actors (each holds a loaded model); default: one per available CPU/GPU slot."),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", min=0, help="GPUs each Ray actor reserves (e.g. 1 for one model per GPU)."),
    training_data: Optional[str] = typer.Option(None, "--training-data", help="The model's training data (JSONL, JSON, text lines, or a training_fingerprint.npz): the run records which items of each probe overlap it (13-gram contamination). Models exported by `rai-audit finetune` carry their own."),
) -> None:
    """Run a probe suite on one model and store per-item records and metrics.

    Example: rai-audit probe --model default --probe winogender,bbq --limit 200
    """
    from rai_audit import display
    from rai_audit.config import load_config
    from rai_audit.runner import run_probe_suite

    overrides = {
        "probes": probe_overrides(config, probe_names),
        "scorer.name": scorer,
        "limit": limit,
        "store": db,
        "seed": seed,
        "data_dir": data_dir,
        "allow_modified_data": True if allow_modified_data else None,
        "runtime.device": device,
        "runtime.dtype": dtype,
        "runtime.batch_size": batch_size,
        "runtime.bootstrap": bootstrap,
    }
    cfg = load_config(config, overrides)
    if role not in (None, "base", "tuned"):
        raise UserError(f"--role must be 'base' or 'tuned', not {role!r}.")
    ref = model or (cfg.models.tuned if role == "tuned" else cfg.models.base)
    if not ref:
        raise UserError("The config names no tuned model; pass --model or set models.tuned.")
    store = open_store(cfg.store)
    with display.progress_bar(not state["quiet"]) as bar:
        outcome = run_probe_suite(cfg, model_ref=ref, store=store, role=role, progress=bar, fresh=fresh,
                                  training_data=training_data or (cfg.models.tuned_training_data if role == "tuned" else None),
                                  executor=executor, executor_options=executor_options(executor, ray_address, workers, gpus_per_worker))
    run = outcome.run
    if outcome.reused:
        display.stderr.print(f"An identical run is already complete: {run.run_id} (use --fresh to run again).")
    elif outcome.resumed:
        display.stderr.print(f"Resumed run {run.run_id}.")
    print_run(store, run.run_id, db)



@app.command()
def runs(
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    model: Optional[str] = typer.Option(None, "--model", help="Only runs of this model reference."),
    probe_name: Optional[str] = typer.Option(None, "--probe", help="Only runs including this probe (a probe name or an lm-evaluation-harness alias)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="probe or finetune."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Show at most N runs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List runs in the store, newest first.

    Example: rai-audit runs --probe bbq -n 10
    """
    from rai_audit import display

    import os

    from rai_audit.store.engine import missing_sqlite_file

    if probe_name:
        from probes import canonical_name  # an lm-eval alias finds the runs of its probe

        probe_name = canonical_name(probe_name)
    if not db and not os.environ.get("RAI_AUDIT_DB") and missing_sqlite_file(None) is not None:
        rows = []  # the default store does not exist yet: no runs, and nothing is created
    else:
        rows = open_existing_store(db).list_runs(model=model, probe=probe_name, kind=kind, limit=limit)
    if as_json:
        typer.echo(json.dumps([run_json(r) for r in rows], indent=2, default=str))
        return
    if not rows:
        typer.echo("No runs yet. Start one with: rai-audit probe --model default --probe identity_toxicity --limit 20")
        return
    display.stdout.print(display.runs_table(rows))



@app.command()
def show(
    run: str = typer.Argument("latest", help="Run id, unique id prefix, or 'latest'."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the run and its metrics as JSON."),
) -> None:
    """Show a run's status, provenance summary and metric tables with 95% CIs.

    Example: rai-audit show latest
    """
    from dataclasses import asdict

    store = open_existing_store(db)
    record = store.get_run(run)
    if as_json:
        payload = {"run": run_json(record), "metrics": [asdict(m) for m in store.metrics(record.run_id)]}
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    print_run(store, record.run_id, db)

