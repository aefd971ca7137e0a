"""Commands on comparisons of two runs: ``compare`` (and the tables it prints), ``gate``,
``report``, and ``verify`` (the store's own integrity, which seals runs and comparisons)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

import typer

from rai_audit.cli.app import app
from rai_audit.cli.common import DB_HELP, db_flag, open_existing_store
from rai_audit.errors import UserError

if TYPE_CHECKING:
    from rai_audit.comparison import Comparison


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
    from rai_audit.comparison import compare_runs, save_comparison

    store = open_existing_store(db)
    a, b = store.get_run(run_a).run_id, store.get_run(run_b).run_id
    comp = compare_runs(store, a, b, n_boot=bootstrap, seed=seed, correction=correction)
    if as_json:
        payload = json.dumps(comp.model_dump(mode="json"), indent=2, default=str)  # rendered before anything is saved
        cid = save_comparison(store, comp)
        typer.echo(payload)
        return
    print_comparison(comp, all_rows)  # rendered before the save: a display bug leaves the store as it was
    cid = save_comparison(store, comp)
    flag = db_flag(store, db)
    typer.echo(f"comparison {cid}  (gate it: rai-audit gate {cid[:12]}{flag}; report: rai-audit report {cid[:12]}{flag})")


def print_comparison(comp: Comparison, all_rows: bool) -> None:
    """The tables `rai-audit compare` prints: per probe its rows (overall and significant subgroup
    rows, or every row with ``all_rows``), confounders, flips, training-data overlap, the
    clean-only headline row and warnings; then what the columns mean."""
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

    Example: rai-audit gate latest --policy my_policy.yaml
    """
    from rai_audit.comparison import load_comparison
    from rai_audit.gate import format_table, gate_for_comparison

    store = open_existing_store(db)
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
    store = open_existing_store(db)
    if run:
        rec = store.get_run(target or "latest")
        data = build_report(store, run_id=rec.run_id, signoff=fields or None)
        stem = f"run-{rec.run_id[:12]}"
    else:
        from rai_audit.comparison import load_comparison
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

    result = verify_store(open_existing_store(db))
    typer.echo(result.format_text())
    raise typer.Exit(0 if result.ok else 1)

