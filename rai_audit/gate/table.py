"""The plain-text verdict ``rai-audit gate`` (and an audit run) prints: the table of rule rows and
the one-line verdict."""

from __future__ import annotations

from rai_audit.display import fmt_ci
from rai_audit.gate.result import ROW_VERDICTS, GateResult


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:+.4f}"


def verdict_line(result: GateResult) -> str:
    c = result.counts
    return (f"Gate verdict: {result.verdict.upper()} [{result.label}, sha256 {result.policy_sha256[:12]}]; "
            f"{c.get('fail', 0)} failing, {c.get('inconclusive', 0)} inconclusive, {c.get('pass', 0)} passing, "
            f"{c.get('insufficient', 0)} insufficient-data row(s); {result.errors} error(s), {result.max_errors} allowed "
            f"(exit {result.exit_code})")


def format_table(result: GateResult, *, only_not_passed: bool = False) -> str:
    """A plain-text table of the rule rows (what ``rai-audit gate`` prints). Insufficient-data rows
    are counted, not listed, unless ``only_not_passed`` is False and they are all there is; with
    ``only_not_passed`` passing rows are counted instead of listed too."""
    header = ("verdict", "probe", "metric", "subgroup", "n", "A", "B", "change", "95% CI", "MDE", "limit", "rule")
    lines = [header]
    hidden = {"insufficient"} | ({"pass"} if only_not_passed else set())
    shown = [r for r in result.rows if r.verdict not in hidden and r.source != "contamination"]
    overlap = [f"{r.verdict.upper()}  {r.probe}: {r.reason}" for r in result.rows if r.source == "contamination"
               and r.verdict not in hidden]
    order = {v: i for i, v in enumerate(ROW_VERDICTS)}
    shown.sort(key=lambda r: (order[r.verdict], not r.headline, r.probe, r.metric, r.subgroup))
    for r in shown:
        limit = "-" if r.limit is None else f"{r.bad_direction} <= {r.limit:.4f}"
        a = "-" if r.value_a is None else f"{r.value_a:.4f}"
        b = "-" if r.value_b is None else f"{r.value_b:.4f}"
        mde = "-" if r.mde is None else f"{r.mde:.4f}"
        lines.append((r.verdict.upper(), r.probe, r.metric, r.subgroup or "overall", "-" if r.n is None else str(r.n), a, b,
                      _fmt(r.value), fmt_ci(r.ci_low, r.ci_high, r.n, r.clusters, signed=True), mde, limit, r.rule))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    if shown:
        text = "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
    elif not result.rows:
        text = "No rule rows: the policy's rules matched no metric of these runs."
    else:  # every row is hidden: say what is missing, not that nothing was found
        text = "No failing or inconclusive rows." if only_not_passed else "No row with enough data to judge."
    notes = []
    if only_not_passed and result.counts.get("pass"):
        notes.append(f"{result.counts['pass']} passing row(s) not listed; --all lists them")
    if result.counts.get("insufficient"):
        notes.append(f"{result.counts['insufficient']} row(s) with insufficient data (fewer than {result.min_items} items or "
                     f"{result.min_clusters} clusters, or undefined on these items) not listed; `--json` has them")
    note = "".join(f"\n({n})" for n in notes)
    if overlap:
        note += "\nTraining-data overlap (contamination):\n" + "\n".join(overlap)
    power = "\nMDE: the smallest change detectable at alpha 0.05 with power 0.8 at the row's n." if shown else ""
    power += "".join(f"\nwarning: {w}" for w in result.warnings)
    return f"{text}{note}{power}\n\n{verdict_line(result)}"
