"""Commands on whole audits: ``run`` (finetune, probe, compare, gate, report), ``demo``,
``dashboard`` and ``schedule``."""

from __future__ import annotations

from typing import Optional

import typer

from rai_audit.cli.app import app, state
from rai_audit.cli.common import DB_HELP, check_store_exists, executor_options, open_store
from rai_audit.errors import UserError


@app.command("run")
def run_cmd(
    config: str = typer.Argument(..., help="Audit YAML: models, probes, scorer, finetune, gate (docs/configuration.md)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    force: bool = typer.Option(False, "--force", help="Re-audit even if the models and config are unchanged."),
    wait: bool = typer.Option(False, "--wait", help="If another invocation holds this audit's lock, wait instead of exiting 2."),
    fmt: str = typer.Option("html,pdf,md,json", "--format", "-f", help="Report formats ('' for none)."),
    notify_hook: Optional[str] = typer.Option(None, "--notify", help="Command (gets JSON on stdin) or http(s) webhook called on gate failure or error."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="At most N items per probe."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Skip probes whose data is unavailable instead of failing (files that differ from their pinned hashes are never skipped: they stop the audit)."),
    allow_modified_data: bool = typer.Option(False, "--allow-modified-data", help="Accept local benchmark files whose sha256 differs from the hash pinned in data/manifests/ (refused with exit 2 otherwise); the run records each such file with its actual and pinned sha256, and its run key differs from a run on the pinned files."),
    executor: str = typer.Option("local", "--executor", help="local or ray (see `rai-audit probe --help`)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address for --executor ray."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray actors for --executor ray."),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", min=0, help="GPUs per Ray actor."),
) -> None:
    """Run the whole audit: optional finetune, probes on base and tuned, compare, gate, report.

    Example: rai-audit run examples/audit.yaml --notify 'mail -s audit ops@example.org'
    """

    from rai_audit import display
    from rai_audit.audit import run_audit
    from rai_audit.config import load_config

    cfg = load_config(config, {"store": db, "limit": limit, "allow_modified_data": True if allow_modified_data else None})
    store = open_store(cfg.store)
    with display.progress_bar(not state["quiet"]) as bar:
        outcome = run_audit(cfg, store=store, progress=bar, force=force,
                            wait=wait, formats=fmt, skip_missing=skip_missing, notify_hook=notify_hook,
                            show_finetune_progress=not state["quiet"], executor=executor,
                            executor_options=executor_options(executor, ray_address, workers, gpus_per_worker))
    print_outcome(outcome)
    raise typer.Exit(outcome.exit_code)


def print_outcome(outcome) -> None:
    for name, why in outcome.skipped_probes.items():
        typer.echo(f"skipped   {name}: {why}", err=True)
    if outcome.gate_table:
        typer.echo(outcome.gate_table)
    if outcome.unchanged:
        typer.echo("unchanged: same models and config as the last audit (use --force to re-run)")
    typer.echo(f"base run   {outcome.base_run}\ntuned run  {outcome.tuned_run}\ncomparison {outcome.comparison_id}")
    for kind, path in outcome.reports.items():
        typer.echo(f"report     {kind:<4} {path}")
    typer.echo(f"verdict    {outcome.verdict.upper() if outcome.verdict else '-'} (exit {outcome.exit_code})")


@app.command()
def demo(
    quick: bool = typer.Option(False, "--quick", help="The small profile (about 3 minutes on 2 CPU cores)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Finetune steps (default: the profile's)."),
    out: str = typer.Option("rai-audit-demo", "--out", "-o", help="Output directory; each profile writes to its own folder OUT/<profile> (reports, tuned model, demo store)."),
    db: Optional[str] = typer.Option(None, "--db", help="Results store (default: OUT/<profile>/results.sqlite)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Benchmark data root (default: RAI_AUDIT_DATA)."),
    force: bool = typer.Option(False, "--force", help="Re-run everything even if an identical demo exists in the store."),
) -> None:
    """End-to-end demo audit on embedded defaults: finetune, probe both models, compare, gate, report.

    Example: rai-audit demo --quick
    """
    import time

    from rai_audit import demo as d
    from rai_audit import display
    from rai_audit.audit import import_run_finetune, run_audit

    t0 = time.perf_counter()
    d.check_embedded_model()
    import_run_finetune()  # fail before any work if the finetune extra is missing
    profile = d.PROFILES["quick" if quick else "default"]
    out_dir = d.output_dir(out, profile)
    for note in d.prepare_environment(data_dir):
        typer.echo(f"note: {note}", err=True)
    scorer, scorer_options = d.demo_scorer()
    cfg = d.demo_config(profile, out_dir, db, data_dir, scorer=scorer, scorer_options=scorer_options)
    typer.echo(f"rai-audit demo ({d.describe_profile(profile)}; scorer {scorer})", err=True)
    store = open_store(cfg.store)
    with display.progress_bar(not state["quiet"]) as bar:
        outcome = run_audit(cfg, store=store, progress=bar, force=force, formats="html,pdf,json,md",
                            skip_missing=True, finetune_steps=steps or profile.finetune_steps,
                            show_finetune_progress=not state["quiet"])
    print_outcome(outcome)
    typer.echo(f"demo finished in {time.perf_counter() - t0:.0f} s")
    for line in d.next_steps(store.display_url, outcome):
        typer.echo(line)


@app.command()
def dashboard(
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback exposes the results to your network."),
    port: int = typer.Option(8501, "--port", help="Port to listen on."),
) -> None:
    """Open the Streamlit dashboard over the results store.

    Example: rai-audit dashboard --db ~/.local/share/rai-audit/results.sqlite --port 8501
    """
    import os

    try:
        from dashboards.launch import run_dashboard
    except ImportError as e:
        raise UserError(f"The dashboard needs the 'dashboard' extra (Streamlit, Altair): {e}. Install: pip install 'rai-audit[dashboard]'.") from None
    if db or os.environ.get("RAI_AUDIT_DB"):
        check_store_exists(db)  # a mistyped --db is an error, not an empty dashboard
    raise typer.Exit(run_dashboard(db, host=host, port=port))


@app.command()
def schedule(
    config: str = typer.Argument(..., help="The audit YAML that `rai-audit run` should execute."),
    cron: str = typer.Option(..., "--cron", help="Cron expression: 5 fields (minute hour day-of-month month day-of-week; lists, ranges, steps, JAN/MON names) or @hourly, @daily, @weekly, @monthly, @yearly; e.g. '0 2 * * *' (02:00 daily)."),
    fmt: str = typer.Option("cron", "--format", help="cron | systemd | kubernetes."),
    name: Optional[str] = typer.Option(None, "--name", help="Unit / job name (default: the config file's stem)."),
    image: str = typer.Option("rai-audit:latest", "--image", help="Container image for --format kubernetes."),
    log_file: Optional[str] = typer.Option(None, "--log", help="cron: append output to this file."),
    install: bool = typer.Option(False, "--install", help="cron: add the line to your crontab; systemd: write user units to ~/.config/systemd/user."),
    wait: bool = typer.Option(False, "--wait", help="Pass --wait to `rai-audit run` (wait for an overlapping run instead of exiting 2)."),
    notify_hook: Optional[str] = typer.Option(None, "--notify", help="Pass --notify HOOK to `rai-audit run`."),
    db: Optional[str] = typer.Option(None, "--db", help="Pass --db URL to `rai-audit run`."),
) -> None:
    """Print (or install) the scheduler entry that runs an audit unattended, and its next run times (on stderr).

    Example: rai-audit schedule audit.yaml --cron "0 2 * * *" --format systemd
    """
    from pathlib import Path

    from rai_audit import schedule as sched

    cfg_path = Path(config)
    if not cfg_path.is_file():
        raise UserError(f"The audit config {config!r} does not exist.")
    unit = name or cfg_path.stem
    extra = (["--wait"] if wait else []) + (["--notify", notify_hook] if notify_hook else []) + (["--db", db] if db else [])
    if fmt == "cron":
        text = sched.crontab(cfg_path, cron, extra, Path(log_file).resolve() if log_file else None)
        if install:
            import subprocess

            current = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
            existing = current.stdout if current.returncode == 0 else ""
            subprocess.run(["crontab", "-"], input=existing + text, text=True, check=True)
            typer.echo("installed in your crontab:")
        typer.echo(text, nl=False)
    elif fmt == "systemd":
        units = sched.systemd(cfg_path, cron, extra, unit)
        if install:
            target = Path.home() / ".config" / "systemd" / "user"
            target.mkdir(parents=True, exist_ok=True)
            for fname, body in units.items():
                (target / fname).write_text(body)
            typer.echo(f"wrote {', '.join(units)} to {target}; enable with: systemctl --user enable --now rai-audit-{unit}.timer")
        else:
            for fname, body in units.items():
                typer.echo(f"# {fname}\n{body}")
    elif fmt == "kubernetes":
        if install:
            raise UserError("--install is not supported for kubernetes; apply the printed manifest with kubectl.")
        typer.echo(sched.kubernetes(cfg_path, cron, extra, unit, image), nl=False)
    else:
        raise UserError(f"--format must be cron, systemd or kubernetes, not {fmt!r}.")
    typer.echo(sched.next_runs_note(cron, utc=fmt == "kubernetes"), err=True)

