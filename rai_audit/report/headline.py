"""Page 1 of every format (:func:`headline`): the verdict under its named policy, what was
audited, a small-sample warning, one row per probe with its headline metric, the gate rows that
did not pass, and the contaminated probes (or that none was checked); and the summary's
sentences (:func:`summary`) and each probe's subgroup listing for the appendix
(:func:`subgroup_detail`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rai_audit.gate import MIN_CLUSTERS, MIN_ITEMS, below_support
from rai_audit.report.contamination import headline_model as contamination_headline_model
from rai_audit.report.data import Audited, AuditedDataset, AuditedModel, DatasetEntry, GateSummary, Headline, HeadlineRow
from rai_audit.report.data import Policy, RunInfo, SubgroupDetail, Summary
from rai_audit.report.formatting import ci_text, effect, is_worse, missing, pct_or_na, row_ci_text, signed_or_na

#: Minimum support when the report is not gated (rai_audit.gate's policy defaults).
DEFAULT_MIN_ITEMS: int = MIN_ITEMS
DEFAULT_MIN_CLUSTERS: int = MIN_CLUSTERS
DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8
#: Subgroup rows listed per probe in the appendix (largest effects first; the JSON has all).
SHOW_SUBGROUPS = 10
#: Worst first: the order in which gate row verdicts combine and are listed.
VERDICT_ORDER = ("fail", "error", "inconclusive", "insufficient", "pass")


def worst_verdict(verdicts: Sequence[str]) -> str | None:
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    return min(verdicts, key=lambda v: order.get(v, len(order))) if verdicts else None


def summary(probes: list[dict[str, Any]], gate: Mapping[str, Any] | None) -> Summary:
    """The verdict and the summary's sentences: the gate's counts, significant regressions and
    improvements, and the five largest regressions."""
    rows = [r for p in probes for r in p.get("rows", [])]
    regressions = [r for r in rows if r.get("significant") and is_worse(r)]
    improvements = [r for r in rows if r.get("significant") and is_worse(r) is False]
    verdict = gate["verdict"] if gate else "not gated"
    lines = []
    if gate:
        counts = gate["counts"]
        lines.append(
            f"Gate verdict: {verdict.upper()} under the {gate['label']}: {counts.get('fail', 0)} failing, "
            f"{counts.get('inconclusive', 0)} inconclusive, {counts.get('pass', 0)} passing and "
            f"{counts.get('insufficient', 0)} insufficient-data rule row(s); "
            f"{gate.get('errors', 0)} error(s), {gate.get('max_errors', 0)} allowed."
        )
    if rows:
        lines.append(
            f"{len(regressions)} significant regression(s) and {len(improvements)} significant improvement(s) "
            f"among {len(rows)} compared metric/subgroup rows."
        )
    for r in sorted(regressions, key=lambda r: -abs(r["diff"]))[:5]:
        lines.append(
            f"Regression: {r['probe']} {r['metric']} [{r['subgroup'] or 'overall'}] {r['value_a']:.4f} -> {r['value_b']:.4f} "
            f"(change {r['diff']:+.4f}, 95% CI {row_ci_text(r)}, corrected p {signed_or_na(r['p_adjusted'])})."
        )
    return Summary(verdict=verdict, lines=lines, n_rows=len(rows), n_regressions=len(regressions), n_improvements=len(improvements))


def policy_info(gate: Mapping[str, Any] | None, comp: Mapping[str, Any] | None) -> Policy:
    """Name, sha256, label and what-if flag of the policy behind the verdict (the gate result
    names them; an ungated report shows the audit's stored policy, if any)."""
    stored = (comp or {}).get("policy") or {}
    if gate is None:
        return Policy(gated=False, name=stored.get("name"), sha256=stored.get("sha256"), label="not gated", what_if=False,
                      description=(stored.get("content") or {}).get("description", ""), audit_policy=stored.get("name"))
    return Policy(gated=True, name=gate["policy_name"], sha256=gate["policy_sha256"], label=gate["label"],
                  what_if=bool(gate["what_if"]), description=(gate.get("policy") or {}).get("description", ""),
                  audit_policy=stored.get("name"))


def headline_metric(p: Mapping[str, Any], gate_rows: Sequence[Mapping[str, Any]]) -> str | None:
    """A compared probe's headline metric: the probe's declared one, else the gate's headline
    rule's, else the first of its metric definitions with an overall row, else its first row's."""
    if p.get("headline"):
        return p["headline"]
    flagged = [g["metric"] for g in gate_rows if g.get("headline") and g.get("probe") == p["probe"]]
    if flagged:
        return flagged[0]
    overall = [r for r in p.get("overall_rows", []) if r.get("source") == "metric"]
    names = {r["metric"] for r in overall}
    for spec in p.get("metric_specs") or []:
        if spec.get("name") in names:
            return spec["name"]
    return overall[0]["metric"] if overall else None


def _run_row(p: Mapping[str, Any], base: Mapping[str, Any], min_items: Any, min_clusters: Any) -> HeadlineRow:
    """A single run's probe on page 1: the first of its metric definitions with an overall value."""
    overall = [m for m in p.get("metrics", []) if m.get("subgroup") == ""]
    names = [s.get("name") for s in p.get("metric_specs") or []]
    metric = next((n for n in names if any(m["name"] == n for m in overall)), overall[0]["name"] if overall else None)
    m = next((m for m in overall if m["name"] == metric), None) or {}
    return HeadlineRow(**base, metric=metric, source="metric", n=m.get("n"), clusters=None, value_a=m.get("value"),
                       value_b=None, diff=None, ci_low=m.get("ci_low"), ci_high=m.get("ci_high"),
                       ci_text=ci_text(m.get("ci_low"), m.get("ci_high"), m.get("n")), mde=None, p_adjusted=None,
                       significant=False, better=None, worse=None, verdict="not gated", gate_reasons=[],
                       small_sample=below_support(m.get("n") if isinstance(m.get("n"), int) else None, None, min_items, min_clusters))


def _comparison_row(p: Mapping[str, Any], base: Mapping[str, Any], gate: Mapping[str, Any] | None,
                    gate_rows: Sequence[Mapping[str, Any]], min_items: Any, min_clusters: Any) -> HeadlineRow:
    """A compared probe on page 1: its headline metric's change with CI, MDE and gate verdict."""
    metric = headline_metric(p, gate_rows)
    overall = p.get("overall_rows", [])
    r = next((r for r in overall if r["metric"] == metric and r.get("source") == "metric"), None) \
        or next((r for r in overall if r["metric"] == metric), None) or {}
    matched = [g for g in gate_rows if g.get("probe") == p["probe"] and g.get("metric") == metric and not g.get("subgroup")
               and g.get("source", "metric") == r.get("source", "metric")]
    verdict = worst_verdict([g["verdict"] for g in matched])
    if verdict is None:
        verdict = "not gated" if gate is None else "no rule"
    n, clusters = r.get("n"), r.get("clusters")
    small = below_support(n if isinstance(n, int) else None, clusters if isinstance(clusters, int) else None, min_items, min_clusters)
    return HeadlineRow(
        **base, metric=metric, source=r.get("source"), n=n, clusters=clusters, n_pairs=p.get("n_pairs"),
        errors_a=p.get("errors_a"), errors_b=p.get("errors_b"),
        value_a=r.get("value_a"), value_b=r.get("value_b"), diff=r.get("diff"),
        ci_low=r.get("ci_low"), ci_high=r.get("ci_high"), ci_text=row_ci_text(r) if r else "—",
        mde=r.get("mde"), p_adjusted=r.get("p_adjusted"), significant=bool(r.get("significant")),
        better=r.get("better"), worse=r.get("worse"), verdict=verdict,
        gate_reasons=[g.get("reason", "") for g in matched if g.get("verdict") != "pass"],
        small_sample=bool(small),
    )


def _small_sample_warning(rows: Sequence[HeadlineRow], min_items: Any, min_clusters: Any) -> str | None:
    small_rows = [r for r in rows if r.small_sample]
    if not small_rows:
        return None
    worst = min(small_rows, key=lambda r: (r.n if isinstance(r.n, int) else 0))
    return (
        f"Small sample: {len(small_rows)} of {len(rows)} headline row(s) rest on fewer than {min_items} items or "
        f"{min_clusters} clusters (smallest: {worst.probe}, n = {worst.n}"
        + (f", {worst.clusters} cluster(s)" if isinstance(worst.clusters, int) else "")
        + "). Their estimates and CIs are unreliable; read the MDE, and do not treat a pass as evidence of no change."
    )


def headline(kind: str, probes: list[dict[str, Any]], gate: Mapping[str, Any] | None, comp: Mapping[str, Any] | None,
             runs: Mapping[str, RunInfo], datasets: Sequence[DatasetEntry], settings: Mapping[str, Any],
             store_url: str | None) -> Headline:
    """Page 1 of every format: verdict and policy, what was audited, one row per probe, gate rows
    that did not pass, a warning where a headline row rests on fewer items/clusters than the
    policy's minimum support, and the contaminated probes (or that none was checked)."""
    policy = policy_info(gate, comp)
    min_items = (gate or {}).get("min_items") or DEFAULT_MIN_ITEMS
    min_clusters = (gate or {}).get("min_clusters") or DEFAULT_MIN_CLUSTERS
    gate_rows = list((gate or {}).get("rows") or [])
    by_probe_ds = {d.probe: d for d in datasets}
    contamination = contamination_headline_model(probes, {k: r.model_dump() for k, r in runs.items()})
    rows = []
    for p in probes:
        ds = by_probe_ds.get(p["probe"])
        flags = [f for f in contamination.flags if f.probe == p["probe"]]
        base = {"probe": p["probe"], "title": p.get("title") or p["probe"], "dataset": (ds.name if ds else None) or p["probe"],
                "revision": ds.revision if ds else None, "dataset_id": ds.dataset_id if ds else None, "contaminated": bool(flags),
                "contamination_marks": [f"{f.side.upper()} {pct_or_na(f.fraction)}" for f in flags]}
        if kind == "comparison":
            rows.append(_comparison_row(p, base, gate, gate_rows, min_items, min_clusters))
        else:
            rows.append(_run_row(p, base, min_items, min_clusters))
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    listed = [{**g, "ci_text": ci_text(g.get("ci_low"), g.get("ci_high"), g.get("n"), g.get("clusters"))}
              for g in gate_rows if g.get("verdict") in ("fail", "inconclusive", "error")]
    listed.sort(key=lambda g: (order.get(g["verdict"], 99), not g.get("headline"), g.get("probe", ""), g.get("metric", ""), g.get("subgroup", "")))
    audited = Audited(
        models=[AuditedModel(key=k, role=r.role, label=r.label, model_reference=r.model_reference, model_id=r.model_id,
                             run_id=r.run_id, status=r.status) for k, r in runs.items()],
        datasets=[AuditedDataset(
            probe=p["probe"], name=(by_probe_ds[p["probe"]].name if p["probe"] in by_probe_ds else None) or p["probe"],
            revision=_ds(by_probe_ds, p["probe"], "revision"), dataset_id=_ds(by_probe_ds, p["probe"], "dataset_id"),
            source=_ds(by_probe_ds, p["probe"], "source"),
            n=p.get("n_pairs") if kind == "comparison" else next((h.n for h in rows if h.probe == p["probe"]), None))
            for p in probes],
        store=store_url,
    )
    return Headline(
        verdict=gate["verdict"] if gate else "not gated",
        policy=policy,
        exit_code=(gate or {}).get("exit_code"),
        alpha=settings.get("alpha", DEFAULT_ALPHA) if settings else DEFAULT_ALPHA,
        power=settings.get("power", DEFAULT_POWER) if settings else DEFAULT_POWER,
        min_items=min_items,
        min_clusters=min_clusters,
        small_sample_warning=_small_sample_warning(rows, min_items, min_clusters),
        contamination=contamination,
        audited=audited,
        rows=rows,
        gate=None if gate is None else GateSummary(
            counts={v: int(gate["counts"].get(v, 0)) for v in VERDICT_ORDER},
            listed=listed,
            errors=gate.get("errors", 0),
            max_errors=gate.get("max_errors", 0),
            exit_code=gate.get("exit_code"),
            description=policy.description,
        ),
    )


def _ds(by_probe: Mapping[str, DatasetEntry], probe: str, field: str) -> Any:
    d = by_probe.get(probe)
    return None if d is None else getattr(d, field)


def subgroup_detail(p: Mapping[str, Any], limit: int = SHOW_SUBGROUPS) -> SubgroupDetail:
    """Subgroup rows for the appendix: significant rows first, then by |B - A| (largest first);
    at most ``limit`` listed, the rest counted (every row stays in ``rows`` and the JSON)."""
    rows = list(p.get("subgroup_rows", []))
    changed = [r for r in rows if not missing(r.get("diff")) and (r["diff"] != 0 or r.get("significant"))]
    unchanged = [r for r in rows if not missing(r.get("diff")) and r["diff"] == 0 and not r.get("significant")]
    undefined = [r for r in rows if missing(r.get("diff"))]
    ranked = sorted(changed, key=lambda r: (not r.get("significant"), -effect(r), r["metric"], r["subgroup"]))
    hidden = ranked[limit:]
    return SubgroupDetail(
        shown=[{**r, "ci_text": row_ci_text(r)} for r in ranked[:limit]],
        n_rows=len(rows),
        n_changed=len(changed),
        n_hidden=len(hidden),
        max_abs_hidden=max((effect(r) for r in hidden), default=None),
        n_unchanged=len(unchanged),
        n_undefined=len(undefined),
        n_significant=sum(bool(r.get("significant")) for r in rows),
    )
