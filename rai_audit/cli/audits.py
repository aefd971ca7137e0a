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
    config: Optional[str] = typer.Argument(None, help="Audit YAML: models, probes, scorer, finetune, gate (docs/configuration.md). With --suite, optional: it adds its settings but not probes to the suite's."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Run a bundled battery by name, e.g. flan-appendix-c (every probe of Flan's appendix C on every local item; docs/battery.md). `rai-audit suites` (or --suite list) lists them."),
    model: Optional[str] = typer.Option(None, "--model", help="Base model reference (sets models.base): hf:org/name@revision, a local directory, a .gguf file or 'default'."),
    tuned: Optional[str] = typer.Option(None, "--tuned", help="Tuned model reference (sets models.tuned), audited beside the base."),
    finetune: Optional[str] = typer.Option(None, "--finetune", help="Finetune config (YAML) that tunes the base model first (sets finetune); instead of --tuned."),
    continuation_tokens: Optional[int] = typer.Option(None, "--continuation-tokens", min=1, help="Tokens per sampled continuation of realtoxicityprompts, identity_toxicity, bold and toxigen (their max_new_tokens), e.g. 128 for the PaLM/Flan paper's length."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Model precision: auto (float32 on CPU, the model's own 16-bit type on CUDA), float32, or bfloat16/float16, the fast mode: faster on GPUs and on CPUs with AMX or AVX512-BF16 (several times slower on others), keyed apart from float32 in the store and recorded in the run's settings."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    force: bool = typer.Option(False, "--force", help="Re-audit even if the models and config are unchanged."),
    wait: bool = typer.Option(False, "--wait", help="If another invocation holds this audit's lock, wait instead of exiting 2."),
    fmt: str = typer.Option("html,pdf,md,json", "--format", "-f", help="Report formats ('' for none)."),
    notify_hook: Optional[str] = typer.Option(None, "--notify", help="Command (gets JSON on stdin) or http(s) webhook called on gate failure or error."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="At most N items per probe."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Skip probes whose data is unavailable instead of failing (files that differ from their pinned hashes are never skipped: they stop the audit)."),
    allow_modified_data: bool = typer.Option(False, "--allow-modified-data", help="Accept local benchmark files whose sha256 differs from the hash pinned in rai-audit's dataset manifests (rai_audit/assets/manifests/) (refused with exit 2 otherwise); the run records each such file with its actual and pinned sha256, and its run key differs from a run on the pinned files."),
    executor: str = typer.Option("local", "--executor", help="local or ray (see `rai-audit probe --help`)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address for --executor ray."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray actors for --executor ray."),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", min=0, help="GPUs per Ray actor."),
    plan_only: bool = typer.Option(False, "--plan", help="Print the plan and its estimate, then stop: no model is loaded and nothing is written."),
) -> None:
    """Run the whole audit: optional finetune, probes on base and tuned, compare, gate, report.

    Prints its plan first (per probe: items x samples x tokens; totals; estimated time), then the audit's progress and time left after each probe.

    Example: rai-audit run examples/audit.yaml --notify 'mail -s audit ops@example.org'

    Example: rai-audit run --suite flan-appendix-c --tuned hf:org/tuned-model
    """

    from rai_audit import display
    from rai_audit.audit import run_audit
    from rai_audit.config import load_config
    from rai_audit.suites import suite_config, with_continuation_tokens

    if suite == "list":
        suites_cmd()
        return
    overrides = {"store": db, "limit": limit, "allow_modified_data": True if allow_modified_data else None,
                 "models.base": model, "models.tuned": tuned, "finetune": finetune,
                 "runtime.dtype": dtype}
    if suite:
        cfg = suite_config(suite, config, overrides)
    elif config:
        cfg = load_config(config, overrides)
    else:
        raise UserError("Give an audit config (rai-audit run audit.yaml) or a bundled suite (rai-audit run --suite "
                        "flan-appendix-c --tuned REF); `rai-audit suites` lists the suites.")
    cfg = with_continuation_tokens(cfg, continuation_tokens)
    if plan_only:
        _print_plan(cfg, skip_missing)
        return
    from rai_audit.audit import check_tuned_model

    check_tuned_model(cfg)  # a usage error leaves the store as it was (not even created)
    store = open_store(cfg.store)
    with display.progress_bar(not state["quiet"]) as bar:
        outcome = run_audit(cfg, store=store, progress=bar, force=force,
                            wait=wait, formats=fmt, skip_missing=skip_missing, notify_hook=notify_hook,
                            show_finetune_progress=not state["quiet"], executor=executor,
                            executor_options=executor_options(executor, ray_address, workers, gpus_per_worker),
                            say=_say)
    print_outcome(outcome, store.display_url)
    raise typer.Exit(outcome.exit_code)


def _say(line: str) -> None:
    typer.echo(line, err=True)


def _print_plan(cfg, skip_missing: bool) -> None:
    """``run --plan``: the plan the run would print first, from an existing store's rates (a
    missing store file is not created: there is no rate to read from it)."""
    from rai_audit.audit import check_inputs
    from rai_audit.audit_progress import announce_plan
    from rai_audit.errors import StoreError

    jobs, skipped = check_inputs(cfg, skip_missing)
    try:
        check_store_exists(cfg.store)
        store = open_store(cfg.store)
    except StoreError:
        store = None
    announce_plan(cfg, jobs, store, None, _say)
    for name, why in skipped.items():
        typer.echo(f"skipped   {name}: {why}", err=True)


@app.command("suites")
def suites_cmd() -> None:
    """List the bundled audit suites (`rai-audit run --suite NAME`).

    Example: rai-audit suites
    """
    from rai_audit.suites import describe_suites

    for name, title, n in describe_suites():
        typer.echo(f"{name:<20} {n:>2} probe instances  {title}")


def run_finetune_trajectory(config: str, *, steps, output_dir, resume, db, every, probes, limit, policy) -> None:
    """``rai-audit finetune --audit-every``: an audit whose config is made from the finetune's
    (its model as the base, its file as the finetune step) with a step trajectory."""
    from pathlib import Path

    from rai_audit import display
    from rai_audit.audit import run_audit
    from rai_audit.config import parse_config
    from rai_audit.trajectory.run import finetune_base_reference

    ft = Path(config).resolve()
    base, out = finetune_base_reference(ft, output_dir)
    if resume:
        _say("note: --resume is implied with --audit-every: a re-run continues the finetune and the trajectory it started")
    cfg = parse_config({"name": f"finetune-{ft.stem}", "models": {"base": base}, "finetune": str(ft),
                        "probes": probes, "limit": limit, "output_dir": str(out), "store": db, "gate": policy,
                        "trajectory": {"every": every}}, "The --audit-* options")
    store = open_store(cfg.store)
    with display.progress_bar(not state["quiet"]) as bar:
        outcome = run_audit(cfg, store=store, progress=bar, finetune_steps=steps, say=_say,
                            show_finetune_progress=not state["quiet"], formats="html,md,json")
    print_outcome(outcome, store.display_url)
    raise typer.Exit(outcome.exit_code)


@app.command()
def sweep(
    config: str = typer.Argument(..., help="Audit YAML with `finetune` (and optionally trajectory.mixture_sizes, trajectory.probes, trajectory.limit)."),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Mixture sizes, comma-separated numbers of tasks or 'all' (e.g. 1,2,4,all); default trajectory.mixture_sizes."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Finetune steps for every size (default: the finetune config's)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    policy: Optional[str] = typer.Option(None, "--policy", help="Gate policy for each point vs the base (default: the config's gate, else 'default')."),
) -> None:
    """The number-of-tasks axis: tune on the first 1, 2, 4, ... tasks of the mixture (same steps,
    same seed) and audit each model against the base on the same items (docs/trajectories.md).

    Costs one finetune and one probe run per size; re-running the same command resumes.

    Example: rai-audit sweep examples/audit.yaml --tasks 1,2,all --steps 8
    """
    from rai_audit import display
    from rai_audit.audit import import_run_finetune
    from rai_audit.config import load_config
    from rai_audit.trajectory.plan import cost_of, point_config
    from rai_audit.trajectory.run import finish_trajectory, plan_announcement
    from rai_audit.trajectory.sweep import run_sweep, sweep_positions

    import_run_finetune()
    cfg = load_config(config, {"store": db})
    sizes = [s.strip() if s.strip() == "all" else _size(s) for s in tasks.split(",")] if tasks else None
    _, positions = sweep_positions(cfg, sizes)
    pc = point_config(cfg)
    from rai_audit.data_root import resolve_data_root
    from rai_audit.runner import prepare_jobs

    prepared = prepare_jobs([(p.name, p.params) for p in pc.probes], resolve_data_root(cfg.data_dir), limit=pc.limit,
                            seed=cfg.seed, allow_modified_data=cfg.allow_modified_data)
    store = open_store(cfg.store)
    _say(plan_announcement(cost_of(prepared[0], len(positions)), "tasks " + ", ".join(map(str, positions)), store,
                           [j.name for j in prepared[0]], cfg.models.base, cfg.runtime.model_dump()))
    with store.audit_lock(f"sweep:{cfg.name}"), display.progress_bar(not state["quiet"]) as bar:
        traj = run_sweep(cfg, store=store, sizes=sizes, steps=steps, prepared=prepared, say=_say,
                         progress=not state["quiet"], probe_kwargs={"progress": bar})
        _, summary = finish_trajectory(cfg, traj, store=store, policy=policy or cfg.gate or "default", say=_say)
    from rai_audit.demo import cli_prog
    from rai_audit.trajectory.describe import outcome_lines

    for line in outcome_lines(summary, store.display_url, cli_prog()):
        typer.echo(line)
    raise typer.Exit(summary.get("exit_code") or 0)


def _size(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--tasks takes numbers of tasks or 'all', comma-separated (e.g. 1,2,4,all); got {text!r}.") from None


def print_outcome(outcome, db_url: str | None = None) -> None:
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
    if outcome.trajectory:
        from rai_audit.demo import cli_prog
        from rai_audit.trajectory.describe import outcome_lines

        for line in outcome_lines(outcome.trajectory, db_url, cli_prog()):
            typer.echo(line)


@app.command()
def demo(
    quick: bool = typer.Option(False, "--quick", help="The small profile (about 2 minutes on 2 CPU cores; the default takes about 8)."),
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
    cfg = d.demo_config(profile, out_dir, db, data_dir, scorer=scorer, scorer_options=scorer_options,
                        steps=steps or profile.finetune_steps)
    typer.echo(f"rai-audit demo ({d.describe_profile(profile)}; scorer {scorer})", err=True)
    store = open_store(cfg.store)
    with display.progress_bar(not state["quiet"]) as bar:
        outcome = run_audit(cfg, store=store, progress=bar, force=force, formats="html,pdf,json,md",
                            skip_missing=True, finetune_steps=steps or profile.finetune_steps,
                            show_finetune_progress=not state["quiet"], say=_say)
    print_outcome(outcome, store.display_url)
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

