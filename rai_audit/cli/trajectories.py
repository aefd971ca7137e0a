"""``rai-audit trajectory``: trajectory audits (the same probes at several checkpoints of one
finetune, or at several mixture sizes) in the store: list them, show one (each checkpoint against
the base, the headline series and their trends), gate one and select the checkpoint to ship.

``gate`` and ``select`` exit as ``rai-audit gate`` does: 0 pass (or a checkpoint chosen), 1 fail
(none qualifies), 3 inconclusive, 2 a bad id or policy.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Optional

import typer

from rai_audit.cli.app import app
from rai_audit.cli.common import DB_HELP, open_existing_store

if TYPE_CHECKING:
    from rai_audit.trajectory.model import TrajectoryAnalysis

trajectory_app = typer.Typer(help="Trajectory audits: each checkpoint of a finetune against the base, trends, gate, selection.",
                             no_args_is_help=True)
app.add_typer(trajectory_app, name="trajectory")

TRAJ_HELP = "Trajectory id, unique prefix, or 'latest'."
POLICY_HELP = ("Gate policy (YAML path or bundled name: default, demo). Default: the policy recorded with the trajectory, "
               "else the bundled default.")
BOOTSTRAP_HELP = ("Bootstrap resamples (comparisons and trends). Default: those the trajectory's audit used (its stored "
                  "comparisons are reused), else 1000.")
SEED_HELP = "Seed of the bootstraps and permutation tests. Default: the audit's, else 0."


def _analyse(traj: str, db: str | None, policy: str | None, bootstrap: int | None, seed: int | None) -> TrajectoryAnalysis:
    from rai_audit.trajectory.analysis import analyse_trajectory

    return analyse_trajectory(open_existing_store(db), traj, n_boot=bootstrap, seed=seed, policy=policy)


def _signed(v: float | None, digits: int = 4) -> str:
    from rai_audit import display

    return display.fmt(v) if v is None or math.isnan(v) else f"{v:+.{digits}f}"


@trajectory_app.command("list")
def list_(
    audit: Optional[str] = typer.Option(None, "--audit", help="Only the trajectories of this audit (its name)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print them as JSON."),
) -> None:
    """List the trajectories in the store, newest first.

    Example: rai-audit trajectory list --audit nightly
    """
    from rich.markup import escape
    from rich.table import Table

    from rai_audit import display

    every = open_existing_store(db).list_trajectories(audit_id=audit)
    rows = [{"trajectory_id": pts[0].trajectory_id, "audit_id": pts[0].audit_id, "axis": pts[0].axis,
             "positions": [p.position for p in pts], "labels": [p.label for p in pts], "runs": [p.run_id for p in pts],
             "created_at": max(p.created_at for p in pts).isoformat(timespec="seconds")} for pts in every]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    t = Table(title=f"{len(rows)} trajectory(ies)", title_justify="left")
    for col in ("trajectory", "audit", "axis", "points", "positions", "last point (UTC)"):
        t.add_column(col, no_wrap=col in ("trajectory", "last point (UTC)"))
    for r in rows:
        t.add_row(r["trajectory_id"][:12], escape(r["audit_id"] or "-"), r["axis"], str(len(r["positions"])),
                  ", ".join(map(str, r["positions"])), r["created_at"].replace("T", " ")[:16])
    display.stdout.print(t)


@trajectory_app.command("show")
def show(
    traj: str = typer.Argument("latest", help=TRAJ_HELP),
    policy: Optional[str] = typer.Option(None, "--policy", "-p", help=POLICY_HELP),
    bootstrap: int | None = typer.Option(None, "--bootstrap", min=100, help=BOOTSTRAP_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the whole analysis as JSON."),
) -> None:
    """Show a trajectory: each checkpoint against the base, the headline metrics and their trends.

    Example: rai-audit trajectory show latest
    """
    analysis = _analyse(traj, db, policy, bootstrap, seed)
    if as_json:
        typer.echo(json.dumps(analysis.model_dump(mode="json"), indent=2, default=str))
        return
    print_analysis(analysis)


def print_analysis(a: TrajectoryAnalysis) -> None:
    """The header, the points, one headline table per probe, the trends and the gate's verdict."""
    from rich.markup import escape
    from rich.table import Table

    from rai_audit import display

    pol = a.policy or {}
    display.stdout.print(f"trajectory {a.trajectory_id}  axis {a.axis}  audit {escape(a.audit_id or '-')}  base run {a.base_run[:12]}\n"
                         f"policy     {escape(str(pol.get('name')))} (sha256 {str(pol.get('sha256'))[:12]})")
    t = Table(title="points (each checkpoint paired with the base)", title_justify="left")
    for col in ("position", "label", "run", "model", "train loss", "verdict"):
        t.add_column(col, justify="right" if col in ("position", "train loss") else "left")
    for p in a.points:
        t.add_row(str(p.position), escape(p.label), p.run_id[:12], escape(p.model_reference or "-"),
                  display.fmt(p.train_loss, 4), p.verdict or "(base)")
    display.stdout.print(t)
    for probe in dict.fromkeys(h.probe for h in a.headline):
        hs = [h for h in a.headline if h.probe == probe]
        t = Table(title=escape(f"{probe}: {hs[0].metric} (headline)"), title_justify="left")
        for col in ("position", "label", "value", "95% CI", "n", "B-A", "95% CI (B-A)", "p (traj.)", "verdict"):
            t.add_column(col, justify="left" if col in ("label", "verdict") else "right")
        for h in hs:
            t.add_row(str(h.position), escape(h.label), display.fmt(h.value), display.fmt_ci(h.ci_low, h.ci_high, h.n), str(h.n),
                      _signed(h.diff), display.fmt_ci(h.diff_ci_low, h.diff_ci_high, signed=True),
                      display.fmt(h.p_trajectory, 4), h.verdict or "")
        display.stdout.print(t)
    if a.trends:
        t = Table(title=f"trends (OLS slope on {a.trends[0].x}; cluster bootstrap shared by all points)", title_justify="left")
        for col in ("probe", "metric", "better", "slope", "95% CI", "p", "per", "points", "items", "worsening"):
            t.add_column(col, justify="right" if col in ("slope", "95% CI", "p", "points", "items") else "left")
        for tr in a.trends:
            t.add_row(escape(tr.probe), escape(tr.metric), tr.better, _signed(tr.slope), display.fmt_ci(tr.ci_low, tr.ci_high, signed=True),
                      display.fmt(tr.p_value, 4), tr.per, str(tr.n_points), str(tr.n_items),
                      {True: "yes", False: "no"}.get(tr.worsening, "n/a"))
        display.stdout.print(t)
    for w in a.warnings:
        display.stdout.print(f"warning  {escape(w)}")
    if a.gate:
        _print_verdict(a.gate)


def _print_verdict(gate: dict[str, Any]) -> None:
    from rich.markup import escape

    from rai_audit import display

    for reason in gate.get("reasons", []):
        display.stdout.print(f"  - {escape(reason)}")
    display.stdout.print(f"trajectory gate: {gate['verdict'].upper()} (checkpoints: {gate['checkpoints']} -> "
                         f"{gate['checkpoint_verdict']}; trend: {gate['trend']} -> {gate['trend_verdict']}; "
                         f"exit {gate['exit_code']})")


@trajectory_app.command("gate")
def gate(
    traj: str = typer.Argument("latest", help=TRAJ_HELP),
    policy: Optional[str] = typer.Option(None, "--policy", "-p", help=POLICY_HELP),
    bootstrap: int | None = typer.Option(None, "--bootstrap", min=100, help=BOOTSTRAP_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Gate a trajectory: no checkpoint worse than the base beyond the policy's margins, no
    worsening headline trend. Exit 0 pass, 1 fail, 3 inconclusive, 2 error.

    Example: rai-audit trajectory gate latest --policy default
    """
    from rich.markup import escape

    from rai_audit import display

    a = _analyse(traj, db, policy, bootstrap, seed)
    result = dict(a.gate or {})
    if as_json:
        points = [{"position": p.position, "label": p.label, "verdict": p.verdict, "comparison_id": p.comparison_id,
                   "reasons": p.gate_reasons} for p in a.points]
        typer.echo(json.dumps({**result, "trajectory_id": a.trajectory_id, "points": points}, indent=2, default=str))
    else:
        display.stdout.print(f"trajectory {a.trajectory_id}  policy {escape(str((a.policy or {}).get('name')))}")
        for p in a.points[1:]:
            display.stdout.print(f"  {a.axis} {p.position:>6}  {escape(p.label):<20} {p.verdict}  comparison {(p.comparison_id or '-')[:12]}")
        for tr in a.trends:
            display.stdout.print(f"  trend {escape(tr.probe)} {escape(tr.metric)}: slope {_signed(tr.slope)} {tr.per}, "
                                 f"95% CI {display.fmt_ci(tr.ci_low, tr.ci_high, signed=True)}"
                                 + ("  WORSENING" if tr.worsening else ""))
        _print_verdict(result)
    raise typer.Exit(int(result.get("exit_code", 0)))


@trajectory_app.command("select")
def select(
    traj: str = typer.Argument("latest", help=TRAJ_HELP),
    policy: Optional[str] = typer.Option(None, "--policy", "-p", help=POLICY_HELP),
    by: str = typer.Option("latest", "--by", help="latest: the latest passing checkpoint; loss: the passing one with the lowest training loss."),
    bootstrap: int | None = typer.Option(None, "--bootstrap", min=100, help=BOOTSTRAP_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the selection as JSON."),
) -> None:
    """Choose the checkpoint to ship: the latest (or lowest-loss) one whose comparison with the
    base passes the policy. Exit 0 chosen, 1 none passes, 3 none passes but some are inconclusive.

    Example: rai-audit trajectory select latest --by loss
    """
    from rich.markup import escape

    from rai_audit import display
    from rai_audit.errors import UserError
    from rai_audit.trajectory.gate import choose_checkpoint

    if by not in ("latest", "loss"):
        raise UserError(f"Unknown selection {by!r}; use --by latest or --by loss.")
    a = _analyse(traj, db, policy, bootstrap, seed)
    sel = choose_checkpoint(a, by=by)
    if as_json:
        typer.echo(json.dumps({**sel.to_dict(), "trajectory_id": a.trajectory_id, "axis": a.axis}, indent=2, default=str))
    elif sel.point is None:
        display.stdout.print(f"no checkpoint selected: {escape(sel.reason)} (exit {sel.exit_code})")
    else:
        p = sel.point
        display.stdout.print(f"selected   {escape(p.label)}\n{a.axis:<10} {p.position}\nmodel      {escape(p.model_reference or '-')}\n"
                             f"run        {p.run_id}\ncomparison {p.comparison_id}\ntrain loss {display.fmt(p.train_loss, 4)}\n"
                             f"why        {escape(sel.reason)}")
    raise typer.Exit(sel.exit_code)
