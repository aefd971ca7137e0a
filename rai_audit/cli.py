"""The ``rai-audit`` command line.

Exit codes: 0 success (a gate passed), 1 a regression gate failed, 2 a usage, config or input
error (the message names the thing and the fix; no traceback), 3 a gate was inconclusive (the
CIs are too wide to rule a regression in or out), 70 an internal error (a bug: one line names it,
``-v`` shows the traceback), 130 interrupted (re-run the same command to resume). Logs and
progress go to stderr, results to stdout. Heavy modules (torch, transformers, JAX, probes) are imported inside the commands that
need them so that ``rai-audit --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any, Optional

import typer

from rai_audit import __version__
from rai_audit.errors import EXIT_INTERNAL, EXIT_USAGE, INTERRUPTED, UserError

app = typer.Typer(
    name="rai-audit",
    help="Audit a language model's toxicity and social bias before and after instruction finetuning.\n\n"
    "Exit codes: 0 pass/success, 1 gate failed, 2 usage or input error, 3 gate inconclusive, "
    "70 internal error (-v shows the traceback), 130 interrupted (re-run the same command to resume).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Inspect and migrate the results store schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

_state: dict[str, Any] = {"quiet": False, "verbose": False}

DB_HELP = "Results store URL (sqlite:///path, postgresql+psycopg://...) or SQLite path. Default: RAI_AUDIT_DB, else ~/.local/share/rai-audit/results.sqlite."


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rai-audit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars; only warnings and errors on stderr."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging on stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    _state["quiet"] = quiet
    _state["verbose"] = verbose
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "transformers", "alembic", "absl", "jax", "orbax", "datasets",
                  "weasyprint", "fontTools"):  # WeasyPrint logs a line per page at INFO; -v shows them
        logging.getLogger(noisy).setLevel(level if verbose else max(level, logging.WARNING))


def _open_store(url: str | None):
    from rai_audit.store import Store

    return Store.open(url)


def _open_existing_store(url: str | None):
    """The store of a command that only reads: a SQLite file that does not exist is an error
    (exit 2) naming it, never a new empty store created at a mistyped path."""
    _check_store_exists(url)
    return _open_store(url)


def _check_store_exists(url: str | None) -> None:
    import os

    from rai_audit.errors import StoreError
    from rai_audit.store.engine import missing_sqlite_file

    missing = missing_sqlite_file(url)
    if missing is not None:
        given = "--db" if url else ("RAI_AUDIT_DB" if os.environ.get("RAI_AUDIT_DB") else "the default location")
        raise StoreError(
            f"No results store at {missing} (from {given}). Check the path; a store is created by "
            "`rai-audit probe`, `run` or `demo` (the demo prints its --db)."
        )


def _split(csv: str | None) -> list[str] | None:
    return [p.strip() for p in csv.split(",") if p.strip()] if csv else None


def _probe_overrides(cfg_path: str | None, probe_csv: str | None) -> list[dict[str, Any]] | None:
    """``--probe a,b`` replaces the file's probe list but keeps the file's params for a and b."""
    names = _split(probe_csv)
    if names is None:
        return None
    params: dict[str, dict] = {}
    if cfg_path:
        from rai_audit.config import load_config

        for p in load_config(cfg_path).probes:
            params[p.name] = p.params
    return [{"name": n, "params": params.get(n, {})} for n in names]


@app.command()
def probe(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Audit YAML (see docs/configuration.md); flags override it."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model reference: hf:org/name[@rev], a local HF dir, a .gguf file, or 'default'."),
    probe_names: Optional[str] = typer.Option(None, "--probe", "-p", help="Comma-separated probe names, e.g. winogender,bbq."),
    scorer: Optional[str] = typer.Option(None, "--scorer", help="Toxicity scorer: profanity-check, detoxify:<variant>, hf:<ref>."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="At most N items per probe (a seeded sample)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling items, exemplars, generation and bootstrap."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Benchmark data root (default: RAI_AUDIT_DATA, else the Hugging Face hub)."),
    allow_modified_data: bool = typer.Option(False, "--allow-modified-data", help="Accept local benchmark files whose sha256 differs from the hash pinned in data/manifests/ (refused with exit 2 otherwise); the run records each such file with its actual and pinned sha256, and its run key differs from a run on the pinned files."),
    role: Optional[str] = typer.Option(None, "--role", help="With --config: audit the 'base' (default) or 'tuned' model of the file."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N."),
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
        "probes": _probe_overrides(config, probe_names),
        "scorer.name": scorer,
        "limit": limit,
        "store": db,
        "seed": seed,
        "data_dir": data_dir,
        "allow_modified_data": True if allow_modified_data else None,
        "runtime.device": device,
        "runtime.batch_size": batch_size,
        "runtime.bootstrap": bootstrap,
    }
    cfg = load_config(config, overrides)
    if role not in (None, "base", "tuned"):
        raise UserError(f"--role must be 'base' or 'tuned', not {role!r}.")
    ref = model or (cfg.models.tuned if role == "tuned" else cfg.models.base)
    if not ref:
        raise UserError("The config names no tuned model; pass --model or set models.tuned.")
    store = _open_store(cfg.store)
    with display.progress_bar(not _state["quiet"]) as bar:
        outcome = run_probe_suite(cfg, model_ref=ref, store=store, role=role, progress=bar, fresh=fresh,
                                  training_data=training_data or (cfg.models.tuned_training_data if role == "tuned" else None),
                                  executor=executor, executor_options=_executor_options(executor, ray_address, workers, gpus_per_worker))
    run = outcome.run
    if outcome.reused:
        display.stderr.print(f"An identical run is already complete: {run.run_id} (use --fresh to run again).")
    elif outcome.resumed:
        display.stderr.print(f"Resumed run {run.run_id}.")
    _print_run(store, run.run_id)


def _executor_options(executor: str, address: str | None, workers: int | None, gpus: float | None) -> dict[str, Any] | None:
    if executor != "ray":
        if address or workers or gpus:
            raise UserError("--ray-address, --workers and --gpus-per-worker only apply with --executor ray.")
        return None
    opts: dict[str, Any] = {}
    if address:
        opts["address"] = address
    if workers:
        opts["num_workers"] = workers
    if gpus is not None:
        opts["num_gpus_per_worker"] = gpus
    return opts


def _print_run(store, run_id: str) -> None:
    from rai_audit import display

    run = store.get_run(run_id)
    display.stdout.print(display.run_header(run))
    for table in display.metrics_tables(store.metrics(run.run_id), run.scorer):
        display.stdout.print(table)


@app.command()
def runs(
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    model: Optional[str] = typer.Option(None, "--model", help="Only runs of this model reference."),
    probe_name: Optional[str] = typer.Option(None, "--probe", help="Only runs including this probe."),
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

    if not db and not os.environ.get("RAI_AUDIT_DB") and missing_sqlite_file(None) is not None:
        rows = []  # the default store does not exist yet: no runs, and nothing is created
    else:
        rows = _open_existing_store(db).list_runs(model=model, probe=probe_name, kind=kind, limit=limit)
    if as_json:
        typer.echo(json.dumps([_run_json(r) for r in rows], indent=2, default=str))
        return
    if not rows:
        typer.echo("No runs yet. Start one with: rai-audit probe --model default --probe identity_toxicity --limit 20")
        return
    display.stdout.print(display.runs_table(rows))


def _run_json(r) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(r)
    d.pop("events", None)
    return d


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

    store = _open_existing_store(db)
    record = store.get_run(run)
    if as_json:
        payload = {"run": _run_json(record), "metrics": [asdict(m) for m in store.metrics(record.run_id)]}
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    _print_run(store, record.run_id)


@app.command()
def models(
    reference: str = typer.Argument("default", help="Model reference to resolve: hf:org/name[@rev], a local dir, a .gguf file, or 'default'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Resolve a model reference and describe it (path, content hash, architecture, size).

    Example: rai-audit models default
    """
    from rai_audit.models.reference import describe

    info = describe(reference)
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
) -> None:
    """Instruction-tune a model (JAX/Flax) and export a Hugging Face checkpoint plus a manifest.

    Example: rai-audit finetune examples/finetune_demo.yaml --steps 20
    """
    from pathlib import Path

    from rai_audit.audit import import_run_finetune

    run_finetune = import_run_finetune()
    store = _open_store(db)
    result = run_finetune(config, resume=resume, steps=steps, output_dir=Path(output_dir) if output_dir else None,
                          store=store, progress=not _state["quiet"])
    typer.echo(f"model     {result.export_dir or result.output_dir}")
    typer.echo(f"manifest  {result.manifest_path}")
    typer.echo(f"steps     {result.steps}  tokens {result.tokens_seen}  final loss {result.final_loss}  wall {result.wall_s:.1f} s")
    typer.echo(f"audit it: rai-audit probe --model {result.export_dir or result.output_dir} --probe identity_toxicity")


@app.command()
def compare(
    run_a: str = typer.Argument(..., help="The reference run (e.g. the base model's)."),
    run_b: str = typer.Argument(..., help="The run compared against it (e.g. the tuned model's)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    correction: str = typer.Option("holm", "--correction", help="Multiple-comparison correction: holm, bh (Benjamini-Hochberg) or none."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=100, help="Paired bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Seed of the paired bootstrap and permutation tests."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    all_rows: bool = typer.Option(False, "--all", help="Show every subgroup row, not only overall rows and significant ones."),
) -> None:
    """Paired before/after comparison of two runs on the same items, saved in the store.

    Example: rai-audit compare <base-run> <tuned-run> --correction holm
    """
    from rai_audit.compare import compare_runs, save_comparison

    store = _open_existing_store(db)
    a, b = store.get_run(run_a).run_id, store.get_run(run_b).run_id
    comp = compare_runs(store, a, b, n_boot=bootstrap, seed=seed, correction=correction)
    if as_json:
        payload = json.dumps(comp.to_dict(), indent=2, default=str)  # rendered before anything is saved
        cid = save_comparison(store, comp)
        typer.echo(payload)
        return
    _print_comparison(comp, all_rows)  # rendered before the save: a display bug leaves the store as it was
    cid = save_comparison(store, comp)
    db_flag = f" --db {store.display_url}" if db else ""
    typer.echo(f"comparison {cid}  (gate it: rai-audit gate {cid[:12]}{db_flag}; report: rai-audit report {cid[:12]}{db_flag})")


def _print_comparison(comp, all_rows: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from rai_audit import display
    from rai_audit.contamination.describe import NOT_CHECKED, overlap_sentence

    alpha = comp.settings.get("alpha", 0.05)
    power = comp.settings.get("power", 0.8)
    for p in comp.probes:
        t = Table(title=escape(f"{p.probe}: B - A over {p.n_pairs} paired items (errors A={p.errors_a}, B={p.errors_b})"), title_justify="left")
        for col in ("metric", "source", "subgroup", "n", "A", "B", "B-A", "95% CI", "MDE", "p (corr.)", "sig."):
            t.add_column(col, justify="right" if col not in ("metric", "source", "subgroup") else "left")
        hidden = 0
        for r in p.rows:
            if not all_rows and r.subgroup and not r.significant:
                hidden += 1
                continue
            name = f"{r.metric} (headline)" if r.metric == p.headline and not r.subgroup and r.source == "metric" else r.metric
            t.add_row(escape(name), r.source, escape(r.subgroup or "all"), str(r.n), display.fmt(r.value_a), display.fmt(r.value_b),
                      display.fmt(r.diff), display.fmt_ci(r.ci_low, r.ci_high, r.n, r.clusters), display.fmt(r.mde),
                      display.fmt(r.p_adjusted), "*" if r.significant else "")
        display.stdout.print(t)
        if hidden:
            display.stdout.print(f"  ({hidden} subgroup row(s) without a significant change not shown; --all lists them)")
        conf = "; ".join(f"{side}: parse {display.fmt(c.parse_rate)}, empty {display.fmt(c.empty_rate)}, refusal {display.fmt(c.refusal_rate)}, "
                         f"len {display.fmt(c.mean_length_chars, 1)} chars" for side, c in p.confounders.items())
        if conf:
            display.stdout.print(f"  confounders  {conf}")
        if p.flip_counts:
            display.stdout.print("  flips        " + escape(", ".join(f"{k}={v}" for k, v in p.flip_counts.items())))
        for side, found in sorted(p.contamination.items()):
            display.stdout.print(f"  contaminated {escape(overlap_sentence(side, found))}" if found.get("overlapping")
                                 else f"  overlap      {escape(overlap_sentence(side, found))}")
        head = [r for r in p.clean_rows if r.metric == p.headline and not r.subgroup and r.source == "metric"]
        for r in head:
            display.stdout.print(f"  clean-only   {escape(r.metric)} over {r.n} clean items: A {display.fmt(r.value_a)}, "
                                 f"B {display.fmt(r.value_b)}, B-A {display.fmt(r.diff)} "
                                 f"{display.fmt_ci(r.ci_low, r.ci_high, r.n, r.clusters)} (--json has every clean-only row)")
        for w in p.warnings:
            display.stdout.print(f"  warning      {escape(w)}")
    if not any(p.contamination for p in comp.probes):
        display.stdout.print(NOT_CHECKED)
    display.stdout.print(f"source: metric = the probe's aggregate, outcome = a per-item outcome. MDE: the smallest change "
                         f"detectable at alpha {alpha:g} with power {power:g} at the row's n; * = significant after correction.")


@app.command()
def gate(
    comparison: str = typer.Argument("latest", help="Comparison id, unique prefix, or 'latest'."),
    policy: Optional[str] = typer.Option(None, "--policy", "-p", help="Judge by this policy instead (YAML path or bundled name: default, demo); labelled a what-if. Default: the policy the audit used (an ad-hoc comparison: default)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
    all_rows: bool = typer.Option(False, "--all", help="List passing rows too (insufficient-data rows are in --json)."),
) -> None:
    """Apply a regression-gate policy to a comparison. Exit 0 pass, 1 fail, 3 inconclusive, 2 error.

    Without --policy the comparison is judged by the policy its audit stored with it, so
    `gate`, the audit's report and the dashboard give one verdict.

    Example: rai-audit gate latest --policy data/policies/default.yaml
    """
    from rai_audit.compare import load_comparison
    from rai_audit.gate import format_table, gate_for_comparison

    store = _open_existing_store(db)
    result = gate_for_comparison(load_comparison(store, comparison), policy)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        typer.echo(format_table(result, only_not_passed=not all_rows))
    raise typer.Exit(result.exit_code)


@app.command()
def report(
    target: Optional[str] = typer.Argument(None, help="Comparison id/prefix/'latest', or a run id with --run."),
    fmt: str = typer.Option("html,pdf,md,json", "--format", "-f", help="Comma-separated: html, pdf, md, json."),
    out: str = typer.Option("rai-audit-out/reports", "--out", "-o", help="Output directory."),
    run: bool = typer.Option(False, "--run", help="TARGET is a run (single-model report) rather than a comparison."),
    policy: Optional[str] = typer.Option(None, "--policy", help="Comparison reports: judge by this policy instead of the audit's own (labelled a what-if)."),
    verify_file: Optional[str] = typer.Option(None, "--verify", help="Check a report file's embedded sha256 manifest against the store it names (or --db) and exit: 0 verified, 1 a check failed, 2 the store cannot be opened."),
    signoff: Optional[list[str]] = typer.Option(None, "--signoff", help="Fill a sign-off field, e.g. --signoff 'Reviewer=Jane Doe' (repeatable); filled before the manifest is sealed."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Write the compliance report (HTML, PDF, model-card Markdown, JSON), or verify one.

    Example: rai-audit report latest --format html,pdf --out reports/
    """
    from rai_audit.report import build_report, verify, write_report

    fields: dict[str, str] = {}
    for item in signoff or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--signoff takes FIELD=VALUE, not {item!r}.")
        fields[key.strip()] = value.strip()
    if verify_file:  # the report's manifest names its store; --db overrides it
        result = verify(verify_file, None, db_url=db)
        typer.echo(result.format_text())
        raise typer.Exit(result.exit_code)
    store = _open_existing_store(db)
    if run:
        rec = store.get_run(target or "latest")
        data = build_report(store, run_id=rec.run_id, signoff=fields or None)
        stem = f"run-{rec.run_id[:12]}"
    else:
        from rai_audit.compare import load_comparison

        from rai_audit.gate import gate_for_comparison

        comp = load_comparison(store, target or "latest")
        gate_result = gate_for_comparison(comp, policy)
        data = build_report(store, comparison=comp, gate=gate_result, signoff=fields or None)
        stem = f"comparison-{comp.comparison_id[:12]}"
    for kind, path in write_report(data, out, fmt, stem=stem).items():
        typer.echo(f"{kind:<5} {path}")


@app.command()
def verify(
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Check the store's own integrity: every completed run's sealed digests, every comparison's, and the append-only triggers. Exit 0 intact, 1 tampering found.

    Example: rai-audit verify --db sqlite:///rai-audit-demo/quick/results.sqlite
    """
    from rai_audit.store.integrity import verify_store

    result = verify_store(_open_existing_store(db))
    typer.echo(result.format_text())
    raise typer.Exit(0 if result.ok else 1)


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
    store = _open_store(cfg.store)
    with display.progress_bar(not _state["quiet"]) as bar:
        outcome = run_audit(cfg, store=store, progress=bar, force=force,
                            wait=wait, formats=fmt, skip_missing=skip_missing, notify_hook=notify_hook,
                            show_finetune_progress=not _state["quiet"], executor=executor,
                            executor_options=_executor_options(executor, ray_address, workers, gpus_per_worker))
    _print_outcome(outcome)
    raise typer.Exit(outcome.exit_code)


def _print_outcome(outcome) -> None:
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
    store = _open_store(cfg.store)
    with display.progress_bar(not _state["quiet"]) as bar:
        outcome = run_audit(cfg, store=store, progress=bar, force=force, formats="html,pdf,json,md",
                            skip_missing=True, finetune_steps=steps or profile.finetune_steps,
                            show_finetune_progress=not _state["quiet"])
    _print_outcome(outcome)
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
        _check_store_exists(db)  # a mistyped --db is an error, not an empty dashboard
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


@db_app.command("upgrade")
def db_upgrade(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Migrate the store's schema to this version of rai-audit (back it up first).

    Example: rai-audit db upgrade --db postgresql+psycopg://audit@db/rai
    """
    from rai_audit.store import migrate

    before, after = migrate.upgrade(db)
    typer.echo(f"schema {before or 'empty'} -> {after}")


@db_app.command("current")
def db_current(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Print the store's URL and schema revision.

    Example: rai-audit db current
    """
    from rai_audit.store import migrate
    from rai_audit.store.engine import display_url, resolve_url

    url = resolve_url(db)
    rev = migrate.current_revision(url)
    typer.echo(f"{display_url(url)}\nschema {rev or 'empty'} (this rai-audit expects {migrate.head_revision()})")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    # typer 0.29 vendors click; its base classes are exported here as typer.Exit, typer.Abort
    # and the usage errors' common base, typer.BadParameter.__mro__'s ClickException.
    click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    if hasattr(signal, "SIGPIPE"):  # `rai-audit show latest | head` ends quietly, not with exit 1
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        code = app(args=argv, prog_name="rai-audit", standalone_mode=False)
        code = code if isinstance(code, int) else 0
        if code == INTERRUPTED:  # typer turns Ctrl+C into Exit(130) on its own, silently
            _interrupted()
        return code
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
    except typer.Exit as e:
        return e.exit_code
    except click_error as e:  # bad flags or arguments: click's own message, exit 2
        e.show()
        return EXIT_USAGE
    except UserError as e:
        print(f"rai-audit: error: {e}", file=sys.stderr)
        return e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        _interrupted()
        return INTERRUPTED
    except Exception as e:  # noqa: BLE001 - a bug: one line by default, the traceback with -v
        if _state.get("verbose"):
            import traceback

            traceback.print_exc()
        where = _origin(e)
        print(f"rai-audit: internal error: {type(e).__name__}: {e}{where}. This is a bug in rai-audit, not in "
              f"your input; re-run with -v for the traceback and report it (exit {EXIT_INTERNAL}).", file=sys.stderr)
        return EXIT_INTERNAL


def _interrupted() -> None:
    print("rai-audit: interrupted. Completed items are saved; re-run the same command to resume.", file=sys.stderr)


def _origin(e: BaseException) -> str:
    """" (in module.function)" of the frame that raised, for the one-line internal-error message."""
    tb = e.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    module = tb.tb_frame.f_globals.get("__name__", "?")
    return f" (in {module}.{code.co_name})"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
