"""Pure helpers the pages share: run labels and states, and the data frames behind every table
and chart (built here, not in the pages, so tests can check the numbers without a browser).

Generated text goes only into data frames and ``st.text``/``st.code`` (plain text); nothing here
produces Markdown or HTML from store content.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import altair as alt
import pandas as pd

from rai_audit.store import MetricRow, RunRecord

STATUS_TEXT = {
    "running": "running",
    "completed": "complete",
    "completed_with_errors": "complete with errors",
    "failed": "failed",
    "interrupted": "interrupted",
}
COMPLETE = ("completed", "completed_with_errors")


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md_escape(text: Any) -> str:
    """Backslash-escape Markdown syntax so store text inside a Streamlit label or message (which
    Streamlit renders as Markdown) is shown literally."""
    return _MD_SPECIAL.sub(r"\\\1", "" if text is None else str(text))


def short(run_id: str) -> str:
    return run_id[:8]


def audit_name(run: RunRecord) -> str:
    name = (run.config or {}).get("name") if isinstance(run.config, Mapping) else None
    return str(name) if name else ""


def error_count(run: RunRecord, metric_rows: Sequence[MetricRow] | None = None) -> int | None:
    """Error records of a run: the count its final event recorded, else the ``items_errored``
    metrics the runner writes per probe, else None (unknown, e.g. still running)."""
    detail = run.status_detail or {}
    if isinstance(detail.get("error_count"), (int, float)):
        return int(detail["error_count"])
    if metric_rows:
        errs = [m.value for m in metric_rows if m.name == "items_errored" and m.subgroup == ""]
        if errs:
            return int(sum(v for v in errs if not math.isnan(v)))
    return None


def is_probe_run(run: RunRecord) -> bool:
    """A run with probe results (kind "probe"), as opposed to a finetune (training) run."""
    return (getattr(run, "kind", None) or "probe") == "probe"


def failure_message(run: RunRecord) -> str:
    """Why a failed or interrupted run stopped, as its last event recorded it: probe runs write
    ``{"message": ...}`` (rai_audit.runner), finetune runs ``{"error": "<Type>: <message>"}``
    (finetune/run.py), interrupted finetune runs ``{"detail": ...}``; "" when none is recorded."""
    detail = run.status_detail or {}
    for key in ("message", "error", "detail"):
        text = detail.get(key)
        if text:
            return str(text)
    return ""


def status_text(run: RunRecord, errors: int | None = None) -> str:
    text = STATUS_TEXT.get(run.status, run.status)
    if run.status == "completed_with_errors" and errors:
        text += f" ({errors} error{'s' if errors != 1 else ''})"
    return text


def run_label(run: RunRecord) -> str:
    """How a run is named in pickers: short id, role, model, audit and time."""
    bits = [short(run.run_id)]
    if run.role:
        bits.append(run.role)
    bits.append(run.model_reference or run.model_id or "?")
    if audit_name(run):
        bits.append(f"[{audit_name(run)}]")
    bits.append(f"{run.created_at:%Y-%m-%d %H:%M}")
    if run.status not in COMPLETE:
        bits.append(f"({STATUS_TEXT.get(run.status, run.status)})")
    return " ".join(bits)


def errors_cell(run: RunRecord, errors: int | None) -> str:
    """The Runs table's errors column (text): why a failed run failed (its recorded message), else
    the number of error records ("" while unknown, e.g. still running)."""
    if run.status == "failed":
        return failure_message(run) or "failed (no message recorded)"
    return "" if errors is None else str(int(errors))


def runs_frame(runs: Sequence[RunRecord], errors: Mapping[str, int | None]) -> pd.DataFrame:
    rows = []
    for r in runs:
        rows.append({
            "run": short(r.run_id),
            "kind": r.kind or "probe",
            "model": r.model_reference or r.model_id or "",
            "role": r.role or "",
            "audit": audit_name(r),
            "probes": ", ".join(r.probes),
            "status": status_text(r, errors.get(r.run_id)),
            "errors": errors_cell(r, errors.get(r.run_id)),
            "started": r.created_at,
            "finished": r.finished_at,
            "run_id": r.run_id,
        })
    cols = ["run", "kind", "model", "role", "audit", "probes", "status", "errors", "started", "finished", "run_id"]
    return pd.DataFrame(rows, columns=cols)


def filter_runs(runs: Sequence[RunRecord], models: Iterable[str] = (), probes: Iterable[str] = (),
                start: Any = None, end: Any = None) -> list[RunRecord]:
    """Runs matching every given filter (empty filter = all); dates are inclusive calendar days."""
    models, probes = set(models), set(probes)
    out = []
    for r in runs:
        if models and (r.model_reference or r.model_id or "") not in models:
            continue
        if probes and not probes.intersection(r.probes):
            continue
        day = r.created_at.date()
        if start is not None and day < start:
            continue
        if end is not None and day > end:
            continue
        out.append(r)
    return out


def default_pair(runs: Sequence[RunRecord], comparisons: Sequence[Mapping[str, Any]] = ()) -> tuple[str, str] | None:
    """The latest base/tuned pair of one audit (both complete); else the newest saved comparison's
    runs; else the two newest complete runs; None when fewer than two complete runs exist. Only
    probe runs count (a finetune run has no probe results to compare)."""
    done = [r for r in runs if r.status in COMPLETE and is_probe_run(r)]
    by_audit: dict[str, dict[str, RunRecord]] = {}
    for r in done:  # newest first, so the first of each role wins
        if r.audit_id and r.role in ("base", "tuned"):
            by_audit.setdefault(r.audit_id, {}).setdefault(r.role, r)
    best = None
    for roles in by_audit.values():
        if "base" in roles and "tuned" in roles:
            newest = max(roles["base"].created_at, roles["tuned"].created_at)
            if best is None or newest > best[0]:
                best = (newest, roles["base"].run_id, roles["tuned"].run_id)
    if best:
        return best[1], best[2]
    ids = {r.run_id for r in done}
    for c in comparisons:
        if c["run_a"] in ids and c["run_b"] in ids:
            return c["run_a"], c["run_b"]
    if len(done) >= 2:
        return done[1].run_id, done[0].run_id
    return None


# ------------------------------------------------------------------------------ comparisons and verdicts


def comparison_summary(comparison_id: str, run_a: str, run_b: str, created_at: Any, settings: Mapping[str, Any] | None,
                       result: Any) -> dict[str, Any]:
    """What the pickers need of a stored comparison (its result left out: it is big): ids, time,
    settings, the audit policy it was made under (name and sha256; None for an ad-hoc
    ``rai-audit compare``), and whether the result is in the shape the pages read."""
    result = result if isinstance(result, Mapping) else {}
    settings = dict(settings or result.get("settings") or {})
    policy = next((p for p in (result.get("policy"), settings.get("policy")) if isinstance(p, Mapping)), None)
    return {
        "comparison_id": comparison_id, "run_a": run_a, "run_b": run_b, "created_at": created_at,
        "settings": {k: v for k, v in settings.items() if k != "policy"},
        "policy": {"name": str(policy.get("name") or "?"), "sha256": str(policy.get("sha256") or "")} if policy else None,
        "valid": "probes" in result and "run_a" in result,
    }


def audit_comparison(comparisons: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The audit's own comparison among those of one pair (newest first): the newest whose
    result records a policy; else the newest (an ad-hoc comparison); None when there is none."""
    if not comparisons:
        return None
    return next((c for c in comparisons if c.get("policy")), comparisons[0])


def policy_text(policy: Mapping[str, Any] | None) -> str:
    """ "demo (sha256 abcd1234)", or "none" for an ad-hoc comparison."""
    if not policy:
        return "none"
    sha = str(policy.get("sha256") or "")
    return f"{policy.get('name') or '?'}" + (f" (sha256 {sha[:8]})" if sha else "")


def comparison_label(c: Mapping[str, Any]) -> str:
    """How a comparison is named in the picker: whose it is, its settings, policy and time."""
    cfg = c.get("settings") or {}
    who = "audit's comparison" if c.get("policy") else "ad-hoc comparison"
    bits = [who, f"policy {policy_text(c.get('policy'))}", f"n_boot {cfg.get('n_boot', '?')}", f"seed {cfg.get('seed', '?')}",
            f"correction {cfg.get('correction', '?')}"]
    created = c.get("created_at")
    bits.append(when(created) if isinstance(created, datetime) else str(created or "-"))
    bits.append(f"id {str(c['comparison_id'])[:8]}")
    return " · ".join(bits)


VERDICTS = ("fail", "error", "inconclusive", "insufficient", "pass")
VERDICT_COLOR = {  # Streamlit's named Markdown colours (":green[PASS]")
    "pass": "green", "fail": "red", "error": "red", "inconclusive": "orange", "insufficient": "gray", "skipped": "gray",
}
VERDICT_CELL = {  # table cells: background and text colour
    "pass": "background-color: #d7f0dd; color: #14532d",
    "fail": "background-color: #fbd5d5; color: #7f1d1d",
    "error": "background-color: #fbd5d5; color: #7f1d1d",
    "inconclusive": "background-color: #fde8c4; color: #7c4a03",
    "insufficient": "background-color: #ececec; color: #4b4b4b",
    "skipped": "background-color: #ececec; color: #4b4b4b",
}


def verdict_color(verdict: Any) -> str:
    """pass green, fail and error red, inconclusive amber (orange), insufficient grey."""
    return VERDICT_COLOR.get(str(verdict).lower(), "gray")


def verdict_cell_style(verdict: Any) -> str:
    return VERDICT_CELL.get(str(verdict).lower(), "")


def style_verdicts(frame: pd.DataFrame, digits: int = 4) -> Any:
    """A table with its verdict cells ("gate"/"verdict" columns) coloured by verdict, numbers to
    ``digits`` decimals (a pandas Styler; the values themselves are unchanged)."""
    cols = [c for c in ("gate", "verdict") if c in frame.columns]
    if frame.empty or not cols:
        return frame
    return frame.style.map(verdict_cell_style, subset=cols).format(precision=digits, na_rep="")


def row_verdict(verdicts: Iterable[str]) -> str:
    """One verdict for a table row judged by several rules: the worst (fail, error, inconclusive,
    insufficient, then pass; "skipped" from older gates counts as insufficient); "-" if none."""
    got = {"insufficient" if v == "skipped" else v for v in verdicts}
    return next((v for v in VERDICTS if v in got), "-")


def gate_title(gate: Mapping[str, Any]) -> str:
    """ "Gate: PASS — audit policy: demo (sha256 abcd1234)" (plain text)."""
    sha = str(gate.get("policy_sha256") or "")
    label = str(gate.get("label") or "")
    return f"Gate: {str(gate['verdict']).upper()} — {label}" + (f" (sha256 {sha[:8]})" if sha else "")


def gate_title_md(gate: Mapping[str, Any]) -> str:
    """:func:`gate_title` as Markdown: the verdict in its colour, the rest escaped (the policy
    name comes from the store)."""
    verdict = str(gate["verdict"]).upper()
    rest = gate_title(gate)[len(f"Gate: {verdict}"):]
    return f"Gate: :{verdict_color(gate['verdict'])}[{md_escape(verdict)}]{md_escape(rest)}"


def counts_text(gate: Mapping[str, Any]) -> str:
    c = gate.get("counts") or {}
    return ", ".join(f"{c.get(v, 0)} {v}" for v in ("pass", "fail", "inconclusive", "insufficient", "error"))


def gate_verdicts(comp: Mapping[str, Any], policy: str | None = None) -> dict[str, Any]:
    """The gate result (dict) of a comparison: under the audit's own policy when ``policy`` is
    None, else under the bundled or file policy ``policy``, labelled a what-if
    (:func:`rai_audit.gate.gate_for_comparison`)."""
    from rai_audit.gate import gate_for_comparison

    return gate_for_comparison(comp, policy).to_dict()


def bundled_policies() -> list[str]:
    """Names of the policies bundled under data/policies/."""
    from rai_audit.gate import bundled_policy_names

    return bundled_policy_names()


# ------------------------------------------------------------------------------ compare


def _too_few(n: Any, clusters: Any = None) -> str | None:
    """ "n/a (n=1)" / "n/a (1 cluster)" where a CI would rest on fewer than two items or
    clusters, else None (:func:`rai_audit.display.ci_unavailable`; NaN counts are unknown)."""
    from rai_audit.display import ci_unavailable

    def count(k: Any) -> int | None:
        return None if k is None or (isinstance(k, float) and math.isnan(k)) else int(k)

    return ci_unavailable(count(n), count(clusters))


def ci_shown(lo: Any, hi: Any, n: Any, clusters: Any = None) -> tuple[float | None, float | None]:
    """A 95% CI as tables and charts show it: none from fewer than two items or clusters (an
    "interval" from one item, e.g. [0.686, 0.686], reads like certainty)."""
    if _too_few(n, clusters) is not None:
        return None, None
    return _f(lo), _f(hi)


def ci_text(lo: Any, hi: Any, n: Any, clusters: Any = None) -> str:
    """The CI of a change as text, as the CLI and reports print it: "[+0.0100, +0.2000]"; "n/a (n=1)"
    from fewer than two items or clusters; "-" when undefined."""
    few = _too_few(n, clusters)
    if few is not None:
        return few
    lo, hi = _f(lo), _f(hi)
    if lo is None or hi is None:
        return "-"
    return f"[{lo:+.4f}, {hi:+.4f}]"  # rai_audit.display.fmt_ci(..., signed=True) prints the same


def is_zero_change(diff: Any, digits: int = 4) -> bool:
    """A change that shows as zero at the shown precision: neutral (no arrow, no colour)."""
    f = _f(diff)
    return f is not None and round(f, digits) == 0


def delta_args(diff: Any, better: str, digits: int = 4) -> dict[str, Any]:
    """``st.metric`` delta arguments for a change B - A: coloured by whether it is better or worse
    for the metric; a zero change is neutral (grey, no arrow); undefined: no delta."""
    f = _f(diff)
    if f is None:
        return {"delta": None}
    if is_zero_change(f, digits):
        return {"delta": f"{0:.{digits}f}", "delta_color": "off", "delta_arrow": "off"}
    return {"delta": f"{f:+.{digits}f}", "delta_color": {"lower": "inverse", "higher": "normal"}.get(better, "off")}


def _f(v: Any) -> float | None:
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def num(v: Any, digits: int = 4) -> str:
    """A number as the dashboard prints it ("-" when undefined)."""
    f = _f(v)
    return "-" if f is None else f"{f:.{digits}f}"


def overall_metrics(rows: Sequence[MetricRow], probe: str) -> dict[str, MetricRow]:
    return {m.name: m for m in rows if m.probe == probe and m.subgroup == "" and m.name != "items_errored"}


def side_by_side(comp: Mapping[str, Any], probe: str, metrics_a: Sequence[MetricRow], metrics_b: Sequence[MetricRow],
                 gate_rows: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """Per overall metric of ``probe``: A and B with their CIs (from each run's stored metrics),
    the paired difference B - A with CI, p-values and the gate verdict."""
    pc = next((p for p in comp["probes"] if p["probe"] == probe), None)
    ma, mb = overall_metrics(metrics_a, probe), overall_metrics(metrics_b, probe)
    verdicts: dict[tuple[str, str], list[str]] = {}
    for g in gate_rows:
        if g["probe"] == probe:
            verdicts.setdefault((g["metric"], g["subgroup"]), []).append(g["verdict"])
    headline = (pc or {}).get("headline") or ""
    out = []
    for row in (pc or {}).get("rows", []):
        if row["subgroup"] != "":
            continue
        a, b = ma.get(row["metric"]), mb.get(row["metric"])
        a_lo, a_hi = ci_shown(a.ci_low, a.ci_high, a.n) if a else (None, None)
        b_lo, b_hi = ci_shown(b.ci_low, b.ci_high, b.n) if b else (None, None)
        d_lo, d_hi = ci_shown(row["ci_low"], row["ci_high"], row["n"], row.get("clusters"))
        out.append({
            "metric": row["metric"],
            "source": row["source"],
            "headline": bool(headline) and row["metric"] == headline and row["source"] == "metric",
            "n": row["n"],
            "A": _f(row["value_a"]),
            "A CI low": a_lo,
            "A CI high": a_hi,
            "B": _f(row["value_b"]),
            "B CI low": b_lo,
            "B CI high": b_hi,
            "diff (B-A)": _f(row["diff"]),
            "diff CI low": d_lo,
            "diff CI high": d_hi,
            "diff CI": ci_text(row["ci_low"], row["ci_high"], row["n"], row.get("clusters")),
            "MDE": _f(row.get("mde")),
            "p": _f(row["p_value"]),
            "p adjusted": _f(row["p_adjusted"]),
            "significant": bool(row["significant"]),
            "better": row.get("better", "none"),
            "gate": row_verdict(verdicts.get((row["metric"], ""), [])) if row["source"] == "metric" else "-",
            "method": row["method"],
        })
    return pd.DataFrame(out)


def bar_frame(side: pd.DataFrame) -> pd.DataFrame:
    """Long form of the metric rows for the bar chart: one bar per metric and model, with CI."""
    rows = []
    for _, r in side[side["source"] == "metric"].iterrows() if len(side) else []:
        for model in ("A", "B"):
            rows.append({"metric": r["metric"], "model": model, "value": r[model],
                         "ci_low": r[f"{model} CI low"], "ci_high": r[f"{model} CI high"]})  # side_by_side blanked CIs of n < 2
    return pd.DataFrame(rows, columns=["metric", "model", "value", "ci_low", "ci_high"])


BARS_PER_ROW = 4  # metric bar charts per row on the Compare page (like the metric cards above them)
MODEL_COLORS = alt.Scale(domain=["A", "B"], range=["#4c78a8", "#f58518"])  # A blue, B orange


def bar_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """One metric's A and B with 95% CIs (``frame``: that metric's rows of :func:`bar_frame`).
    The page draws one such chart per metric, each in its own column at the column's width
    (Vega-Lite autosize "fit"), so no chart can grow past its column into a neighbour, as one
    faceted chart of every metric (natural width = metrics x panel width) did."""
    base = alt.Chart(frame)
    bars = base.mark_bar().encode(
        x=alt.X("model:N", title=None, axis=alt.Axis(labelAngle=0)), y=alt.Y("value:Q", title=None, axis=alt.Axis(format="~g")),
        color=alt.Color("model:N", scale=MODEL_COLORS, legend=None),
        tooltip=["metric", "model", "value", "ci_low", "ci_high"],
    )
    err = base.mark_errorbar().encode(x="model:N", y=alt.Y("ci_low:Q", title=None), y2="ci_high:Q")
    return alt.layer(bars, err, data=frame).properties(height=160)


def forest_frame(comp: Mapping[str, Any], probe: str, metric: str, source: str = "metric") -> pd.DataFrame:
    """Subgroup deltas (B - A) of one metric with CIs, overall first."""
    pc = next((p for p in comp["probes"] if p["probe"] == probe), {"rows": []})
    rows = [
        {"subgroup": r["subgroup"] or "overall", "n": r["n"], "diff": _f(r["diff"]),
         **dict(zip(("ci_low", "ci_high"), ci_shown(r["ci_low"], r["ci_high"], r["n"], r.get("clusters")))),
         "CI": ci_text(r["ci_low"], r["ci_high"], r["n"], r.get("clusters")), "p adjusted": _f(r["p_adjusted"]),
         "significant": bool(r["significant"])}
        for r in pc["rows"] if r["metric"] == metric and r["source"] == source
    ]
    return pd.DataFrame(rows, columns=["subgroup", "n", "diff", "ci_low", "ci_high", "CI", "p adjusted", "significant"])


def forest_plot(frame: pd.DataFrame) -> alt.LayerChart:
    order = list(frame["subgroup"])
    y = alt.Y("subgroup:N", sort=order, title=None)
    points = alt.Chart(frame).mark_point(filled=True, size=60).encode(
        x=alt.X("diff:Q", title="difference B - A (95% CI)"), y=y,
        color=alt.Color("significant:N", scale=alt.Scale(domain=[False, True], range=["#4c78a8", "#e45756"])),
        tooltip=["subgroup", "n", "diff", "CI", "p adjusted"],
    )
    ci = alt.Chart(frame).mark_rule().encode(x="ci_low:Q", x2="ci_high:Q", y=y)
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="x:Q")
    return alt.layer(ci, points, zero).properties(height=alt.Step(24))  # a readable row per subgroup


def heatmap_frame(comp: Mapping[str, Any], probe: str, source: str = "metric") -> pd.DataFrame:
    """One cell per (subgroup, metric): delta, n, corrected p-value and significance."""
    pc = next((p for p in comp["probes"] if p["probe"] == probe), {"rows": []})
    rows = []
    for r in pc["rows"]:
        if r["source"] != source or r["subgroup"] == "":
            continue
        field, _, value = r["subgroup"].partition("=")
        lo, hi = ci_shown(r["ci_low"], r["ci_high"], r["n"], r.get("clusters"))
        rows.append({"subgroup": r["subgroup"], "field": field if value else "", "value": value or field,
                     "metric": r["metric"], "diff": _f(r["diff"]), "n": r["n"], "ci_low": lo, "ci_high": hi,
                     "CI": ci_text(r["ci_low"], r["ci_high"], r["n"], r.get("clusters")), "p": _f(r["p_value"]),
                     "p adjusted": _f(r["p_adjusted"]), "significant": bool(r["significant"])})
    return pd.DataFrame(rows, columns=["subgroup", "field", "value", "metric", "diff", "n", "ci_low", "ci_high", "CI", "p",
                                       "p adjusted", "significant"])


def heatmap(frame: pd.DataFrame, sort_by: str = "subgroup") -> alt.LayerChart:
    order = list(frame.sort_values(sort_by, ascending=sort_by == "subgroup")["subgroup"].drop_duplicates())
    lim = max(1e-9, float(frame["diff"].abs().max())) if len(frame) and frame["diff"].notna().any() else 1.0
    base = alt.Chart(frame).encode(x=alt.X("metric:N", title=None), y=alt.Y("subgroup:N", sort=order, title=None))
    cells = base.mark_rect().encode(
        color=alt.Color("diff:Q", scale=alt.Scale(scheme="redblue", reverse=True, domain=[-lim, lim]), title="B - A"),
        tooltip=["subgroup", "metric", "diff", "n", "CI", "p adjusted", "significant"],
    )
    text = base.mark_text(fontSize=11).encode(text=alt.Text("label:N")).transform_calculate(
        label="format(datum.diff, '+.3f') + ' (n=' + datum.n + ')' + (datum.significant ? ' *' : '')"
    )
    return alt.layer(cells, text)


# ------------------------------------------------------------------------------ contamination


def contamination_overview(comp: Mapping[str, Any], runs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the Compare page's top says about training-data overlap: the same flags and sentence
    as page 1 of the report (:func:`rai_audit.report.build.contamination_headline`).
    ``runs``: side ("a", "b") -> RunRecord, for the flagged runs' model references."""
    from rai_audit.report.build import contamination_headline

    info = {k: {"model_reference": getattr(r, "model_reference", None)} for k, r in (runs or {}).items()}
    return contamination_headline(comp.get("probes") or [], info or {"a": {}, "b": {}})


def contamination_detail(comp: Mapping[str, Any], probe: str) -> dict[str, Any] | None:
    """One probe's contamination block (:func:`rai_audit.report.build.contamination_detail`);
    None when neither run recorded training data."""
    from rai_audit.report.build import contamination_detail as detail

    pc = next((p for p in comp.get("probes") or [] if p["probe"] == probe), None)
    return None if pc is None else detail(pc)


def overlap_cell(comp: Mapping[str, Any], probe: str) -> str:
    """The summary table's overlap column: "B 50/77 (64.9%)" per contaminated run, "none" when
    checked without overlap, "not checked" when no run recorded training data."""
    d = contamination_detail(comp, probe)
    if d is None:
        return "not checked"
    hits = [f"{s['side'].upper()} {s['overlapping']}/{s['checked']} ({100 * s['fraction']:.1f}%)"
            for s in d["runs"] if s["contaminated"] and s["fraction"] is not None]
    return "; ".join(hits) or "none"


def overlap_frame(detail: Mapping[str, Any]) -> pd.DataFrame:
    """Per run that recorded training data: checked, overlapping, fraction, too short to check,
    and its training data (source, documents, n-gram sizes, fingerprint id)."""
    rows = [{"run": s["side"].upper(), "checked": s["checked"], "overlapping": s["overlapping"], "fraction": _f(s["fraction"]),
             "too short to check": s["unchecked"], "clean-only items": detail.get("clean_n"),
             "training data": s["source"], "documents": s["documents"],
             "n-gram sizes": ", ".join(str(n) for n in s["ngram_sizes"]), "fingerprint": str(s["fingerprint_id"] or "")[:12]}
            for s in detail.get("runs") or []]
    return pd.DataFrame(rows, columns=["run", "checked", "overlapping", "fraction", "too short to check", "clean-only items",
                                       "training data", "documents", "n-gram sizes", "fingerprint"])


def clean_frame(detail: Mapping[str, Any]) -> pd.DataFrame:
    """The probe's overall rows on all paired items beside the same rows on the clean subset
    (items checked and overlapping in neither run), headline first."""
    rows = [{"metric": c["metric"], "headline": c["headline"], "n": c["n"], "A": _f(c["value_a"]), "B": _f(c["value_b"]),
             "diff (B-A)": _f(c["diff"]), "diff CI": c["ci_text"], "significant": c["significant"],
             "n clean": c["clean_n"], "A clean": _f(c["clean_value_a"]), "B clean": _f(c["clean_value_b"]),
             "diff clean": _f(c["clean_diff"]), "diff CI clean": c["clean_ci_text"], "significant clean": c["clean_significant"]}
            for c in detail.get("clean") or []]
    return pd.DataFrame(rows, columns=["metric", "headline", "n", "A", "B", "diff (B-A)", "diff CI", "significant", "n clean",
                                       "A clean", "B clean", "diff clean", "diff CI clean", "significant clean"])


def overlap_examples_frame(detail: Mapping[str, Any]) -> pd.DataFrame:
    """A few overlapping items per run: item id, the first matching n-gram and the start of the
    item's normalised text (plain-text cells)."""
    rows = [{"run": s["side"].upper(), "item_id": e["item_id"], "matching n-gram": e["ngram"], "item text (normalised)": e["text"]}
            for s in detail.get("runs") or [] for e in s.get("examples") or []]
    return pd.DataFrame(rows, columns=["run", "item_id", "matching n-gram", "item text (normalised)"])


# ------------------------------------------------------------------------------ items


def _first(values: Any) -> str:
    if isinstance(values, list):
        return "\n---\n".join(str(v) for v in values)
    return "" if values is None else str(values)


def items_frame(records_a: Sequence[Mapping[str, Any]], records_b: Sequence[Mapping[str, Any]],
                flipped: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per item present in both runs: prompt, both responses, scores, parse outcome,
    subgroup and flip (``flipped``: item id -> flip description)."""
    by_b = {r["item_id"]: r for r in records_b}
    flipped = flipped or {}
    rows = []
    for ra in records_a:
        rb = by_b.get(ra["item_id"])
        if rb is None:
            continue
        subs = ra.get("subgroups") or {}
        rows.append({
            "item_id": str(ra["item_id"]),
            "subgroup": ", ".join(f"{k}={v}" for k, v in sorted(subs.items())),
            "prompt": "" if ra.get("prompt") is None else str(ra.get("prompt")),
            "response A": _first(ra.get("responses", ra.get("response"))),
            "response B": _first(rb.get("responses", rb.get("response"))),
            "max toxicity A": _f(ra.get("max_toxicity")),
            "max toxicity B": _f(rb.get("max_toxicity")),
            "parsed A": None if ra.get("parsed", ra.get("choice")) is None else str(ra.get("parsed", ra.get("choice"))),
            "parsed B": None if rb.get("parsed", rb.get("choice")) is None else str(rb.get("parsed", rb.get("choice"))),
            "outcomes A": ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in (ra.get("outcomes") or {}).items()),
            "outcomes B": ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in (rb.get("outcomes") or {}).items()),
            "error A": ra.get("error") or "",
            "error B": rb.get("error") or "",
            "flip": flipped.get(str(ra["item_id"]), ""),
        })
    cols = ["item_id", "subgroup", "prompt", "response A", "response B", "max toxicity A", "max toxicity B", "parsed A",
            "parsed B", "outcomes A", "outcomes B", "error A", "error B", "flip"]
    return pd.DataFrame(rows, columns=cols)


def filter_items(frame: pd.DataFrame, search: str = "", subgroups: Iterable[str] = (), flipped_only: bool = False,
                 most_toxic_first: bool = False) -> pd.DataFrame:
    out = frame
    if search:
        s = search.lower()
        hay = (out["item_id"] + "\n" + out["prompt"] + "\n" + out["response A"] + "\n" + out["response B"]).str.lower()
        out = out[hay.str.contains(s, regex=False)]
    subgroups = set(subgroups)
    if subgroups:
        out = out[out["subgroup"].map(lambda v: bool(subgroups.intersection(p.strip() for p in v.split(","))))]
    if flipped_only:
        out = out[out["flip"] != ""]
    if most_toxic_first:
        key = out[["max toxicity A", "max toxicity B"]].max(axis=1)
        out = out.assign(_k=key).sort_values("_k", ascending=False, na_position="last").drop(columns="_k")
    return out


# ------------------------------------------------------------------------------ trends


def lineage_key(run: RunRecord, by: str) -> str:
    return audit_name(run) if by == "audit" else (run.model_reference or run.model_id or "")


def trend_frame(runs: Sequence[RunRecord], metric_rows: Mapping[str, Sequence[MetricRow]], probe: str) -> pd.DataFrame:
    """Overall metrics of ``probe`` per complete run over time, with CIs."""
    rows = []
    for r in runs:
        if r.status not in COMPLETE:
            continue
        for m in metric_rows.get(r.run_id, []):
            if m.probe == probe and m.subgroup == "" and m.name != "items_errored":
                lo, hi = ci_shown(m.ci_low, m.ci_high, m.n)
                rows.append({"time": r.created_at, "run": short(r.run_id), "role": r.role or "", "model": r.model_reference or "",
                             "metric": m.name, "value": _f(m.value), "ci_low": lo, "ci_high": hi, "n": m.n})
    frame = pd.DataFrame(rows, columns=["time", "run", "role", "model", "metric", "value", "ci_low", "ci_high", "n"])
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def threshold_frame(trend: pd.DataFrame, max_abs_change: float | None, better: Mapping[str, str]) -> pd.DataFrame:
    """Gate limits drawn on trends: from each metric's first value, the allowed change on the bad side."""
    rows = []
    if max_abs_change is None or trend.empty:
        return pd.DataFrame(rows, columns=["metric", "threshold", "side"])
    for metric, g in trend.groupby("metric", sort=False):
        first = g["value"].dropna()
        if first.empty:
            continue
        v0 = float(first.iloc[0])
        b = better.get(metric, "none")
        sides = {"higher": ["-"], "lower": ["+"]}.get(b, ["-", "+"])
        for s in sides:
            rows.append({"metric": metric, "threshold": v0 + max_abs_change if s == "+" else v0 - max_abs_change,
                         "side": "max" if s == "+" else "min"})
    return pd.DataFrame(rows, columns=["metric", "threshold", "side"])


def trend_chart(frame: pd.DataFrame, thresholds: pd.DataFrame) -> alt.FacetChart:
    x = alt.X("time:T", title=None)
    band = alt.Chart().mark_area(opacity=0.25).encode(x=x, y=alt.Y("ci_low:Q", title="value (95% CI)"), y2="ci_high:Q")
    line = alt.Chart().mark_line(point=True).encode(x=x, y="value:Q", tooltip=["run", "role", "model", "value", "ci_low", "ci_high", "n"])
    layers = [band, line]
    data = frame
    if not thresholds.empty:
        data = pd.concat([frame, thresholds.assign(time=pd.NaT)], ignore_index=True)
        layers.append(alt.Chart().mark_rule(color="red", strokeDash=[6, 3]).encode(y="threshold:Q"))
    return alt.layer(*layers, data=data).facet(row=alt.Row("metric:N", title=None)).resolve_scale(y="independent")


def when(ts: datetime | None) -> str:
    return "-" if ts is None else f"{ts:%Y-%m-%d %H:%M:%S}"
