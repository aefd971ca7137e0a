"""What several commands share: the --db option's help, opening the store, and the option
parsing and printing more than one command does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rai_audit.errors import UserError

if TYPE_CHECKING:
    from rai_audit.store import Store
    from rai_audit.store.api import RunRecord
    from rai_audit.store.protocol import ResultsStore

DB_HELP = "Results store URL (sqlite:///path, postgresql+psycopg://...) or SQLite path. Default: RAI_AUDIT_DB, else ~/.local/share/rai-audit/results.sqlite."


def open_store(url: str | None) -> Store:
    from rai_audit.store import Store

    return Store.open(url)


def open_existing_store(url: str | None) -> Store:
    """The store of a command that only reads: a SQLite file that does not exist is an error
    (exit 2) naming it, never a new empty store created at a mistyped path."""
    check_store_exists(url)
    return open_store(url)


def check_store_exists(url: str | None) -> None:
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


def split_csv(csv: str | None) -> list[str] | None:
    return [p.strip() for p in csv.split(",") if p.strip()] if csv else None


def probe_overrides(cfg_path: str | None, probe_csv: str | None) -> list[dict[str, Any]] | None:
    """``--probe a,b`` replaces the file's probe list but keeps the file's params for a and b."""
    names = split_csv(probe_csv)
    if names is None:
        return None
    params: dict[str, dict] = {}
    if cfg_path:
        from rai_audit.config import load_config

        for p in load_config(cfg_path).probes:
            params[p.name] = p.params
    if not params:
        return [{"name": n, "params": {}} for n in names]
    from probes import canonical_name  # an lm-eval alias keeps the file's params of its probe

    return [{"name": n, "params": params.get(canonical_name(n), {})} for n in names]


def executor_options(executor: str, address: str | None, workers: int | None, gpus: float | None) -> dict[str, Any] | None:
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


def db_flag(store: ResultsStore, db: str | None) -> str:
    """`` --db URL`` for the commands a command prints when it was given --db, so they work as
    printed from anywhere (quoted for a shell); "" when the store came from the default."""
    import shlex

    return f" --db {shlex.quote(store.display_url)}" if db else ""


def print_run(store: ResultsStore, run_id: str, db: str | None = None) -> None:
    """A run's header, its trajectories and its metric tables; ``db`` (the --db given, if any)
    goes into the commands printed, so they work as printed."""
    from rai_audit import display

    run = store.get_run(run_id)
    display.stdout.print(display.run_header(run))
    flag = db_flag(store, db)
    for point in store.trajectories_of_run(run.run_id):
        display.stdout.print(f"trajectory {point.trajectory_id[:12]}: {display.escape(point.label)} ({point.axis} axis)"
                             + (f", tuned by finetune run {point.finetune_run[:12]}" if point.finetune_run else "")
                             + display.escape(f"; see: rai-audit trajectory show {point.trajectory_id[:12]}{flag}"),
                             soft_wrap=True)  # one line, however long the store's path: a command to paste
    for table in display.metrics_tables(store.metrics(run.run_id), run.scorer):
        display.stdout.print(table)


def run_json(r: RunRecord) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(r)
    d.pop("events", None)
    return d
