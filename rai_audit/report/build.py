"""Gather everything a report shows into one JSON-able dict.

Every renderer (HTML, PDF, Markdown, JSON) reads this dict and nothing else, so the four formats
cannot disagree about a number. The dict holds: the ``headline`` (what page 1 shows: the verdict
under its named policy, what was audited, a small-sample warning, one row per probe with its
headline metric, the gate rows that did not pass, and the probes whose items overlap a model's
training data, or a sentence that none was checked); the summary verdict and gate table; per-probe
difference rows with CIs (overall and per subgroup), each probe's training-data overlap
(contamination) with its clean-only rows, flips, worst items and confounders; the
runs' own stored metrics; methodology (metric definitions and citations, paired statistics,
decoding, seeds, chat-template mode, scorer identity with threshold and operator, refusal
detector); data sets with revision, checksum and license; known limitations; provenance; a map
of contents to EU AI Act Annex XI and the NIST AI RMF "Measure" function; and sign-off fields.

Generated text is carried verbatim here; renderers escape it. Confidence intervals are carried
as numbers plus ``ci_text``, which is never an interval when a row rests on fewer than two items
or clusters (``"n/a (n=1)"``): an interval from one unit reads like certainty.
"""

from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import rai_audit
from rai_audit.compare import CHAT_PATHS, DECODING_PATHS, Comparison, _lookup, jsonable, confounders, probe_params
from rai_audit.gate import MIN_CLUSTERS, MIN_ITEMS, GateResult, below_support
from rai_audit.refusals import identity as refusal_identity
from rai_audit.report.manifest import input_digests, store_display_url

SCHEMA = "rai-audit-report/1"

STATISTICS_TEXT = [
    "Differences are model B minus model A on the same items, paired by item id; items where either run recorded an error are left out and counted.",
    "Probe metrics (including ratio metrics): paired cluster bootstrap (one resample of the benchmark's clusters applied to both models; percentile 95% CI; Efron & Tibshirani 1993; Field & Welsh 2007) and a paired permutation test swapping the two models' records within whole clusters (for large probes, where that needs too many recomputations, a Wald test with the bootstrap standard error; each row names its method).",
    "Binary per-item outcomes without clusters: exact McNemar test (McNemar 1947) and the Agresti-Min (2005) adjusted-Wald 95% CI of the paired difference in proportions.",
    "Continuous per-item outcomes: paired bootstrap 95% CI of the mean difference and a paired sign-flip permutation test (exact for up to 12 clusters).",
    "p-values are corrected across the subgroups of each metric (one family per probe, source and metric): Holm (1979) by default, or Benjamini-Hochberg (1995).",
    "Every row shows its minimum detectable effect (MDE): the smallest change its n detects with a two-sided test at alpha 0.05 with power 0.8 (Connor 1987 for paired proportions; (z_{1-a/2} + z_{0.8}) x SE otherwise, Bloom 1995). Where a difference is not significant, read the MDE: not significant does not mean no difference.",
    "A 95% CI is never given for a row resting on a single item or cluster ('n/a (n=1)'): its interval would be one point. Rows with fewer items or clusters than the gate policy's minimum support are 'insufficient data' in the gate and flagged on page 1.",
]

LIMITATIONS = [
    "Toxicity classifiers score text that merely mentions some identity groups as more toxic (Dixon et al. 2018, 'Measuring and Mitigating Unintended Bias in Text Classification') and penalise some dialects such as African-American English (Sap et al. 2019, 'The Risk of Racial Bias in Hate Speech Detection'). A toxicity difference can reflect what a model talks about, not how.",
    "Absolute toxicity numbers depend on the classifier, its version and the threshold and operator; only compare numbers produced by the same scorer identity (recorded below). Hosted classifiers change over time (Pozzobon et al. 2023, 'On the Challenges of Using Black-Box APIs for Toxicity Evaluation in Research').",
    "Several fairness benchmarks have documented validity problems: many CrowS-Pairs and StereoSet items are ambiguous, ungrammatical or not about stereotypes (Blodgett et al. 2021, 'Stereotyping Norwegian Salmon'); Winogender and WinoBias are small, use binary gender and US occupation statistics; BBQ reflects US English social contexts.",
    "Benchmarks probe behaviour on benchmark prompts; they do not represent a deployment's users or inputs, and passing them does not show a model is safe or unbiased.",
    "Absence of a significant difference is not evidence of no difference: read the minimum detectable effect. Corrections are applied within each metric's subgroups, not across all metrics and probes.",
    "The refusal rate comes from an English phrase-matching detector: it misses soft refusals and flags some apologies that are not refusals.",
]

EU_AI_ACT = [
    {
        "item": "Annex XI, Section 2, point 1",
        "requirement": "Evaluation strategies and results, on public evaluation protocols and tools or other methodologies, including evaluation criteria, metrics and the method for identifying limitations.",
        "sections": ["Methodology", "Results by probe", "Subgroup deltas", "Known limitations"],
    },
    {
        "item": "Annex XI, Section 2, point 2",
        "requirement": "Where applicable, measures for adversarial testing and model adaptations, including alignment and fine-tuning.",
        "sections": ["Summary", "Results by probe (before/after fine-tuning)", "Provenance (fine-tuning manifest)"],
    },
    {
        "item": "Annex XI, Section 1, point 2(b)",
        "requirement": "Design specifications of the model and training process, including training methodology.",
        "sections": ["Provenance"],
    },
    {
        "item": "Annex XI, Section 1, point 2(c)",
        "requirement": "Information on the data used for training, testing and validation, including provenance.",
        "sections": ["Data sets", "Provenance"],
    },
]

NIST_MEASURE = [
    {"item": "MEASURE 1.1", "requirement": "Approaches and metrics for the identified risks are selected; risks not measured are documented.", "sections": ["Methodology", "Known limitations"]},
    {"item": "MEASURE 2.1", "requirement": "Test sets, metrics and details of the tools used in TEVV are documented.", "sections": ["Data sets", "Methodology", "Provenance"]},
    {"item": "MEASURE 2.5", "requirement": "Validity and reliability are demonstrated; limits of generalisability are documented.", "sections": ["Results by probe (CIs, MDE)", "Known limitations"]},
    {"item": "MEASURE 2.6", "requirement": "The system is evaluated for safety risks.", "sections": ["Results by probe (toxicity)", "Worst items", "Gate"]},
    {"item": "MEASURE 2.11", "requirement": "Fairness and bias are evaluated and results documented.", "sections": ["Results by probe (bias)", "Subgroup deltas"]},
    {"item": "MEASURE 2.13", "requirement": "The effectiveness of the TEVV metrics and processes is evaluated and documented.", "sections": ["Confounders", "Known limitations"]},
    {"item": "MEASURE 3.1", "requirement": "Risks are tracked over time.", "sections": ["Gate", "Provenance (run ids)"]},
]

SIGNOFF_FIELDS = ["prepared_by", "reviewed_by", "approved_by", "date", "decision", "notes"]

#: Minimum support when the report is not gated (rai_audit.gate's policy defaults).
DEFAULT_MIN_ITEMS: int = MIN_ITEMS
DEFAULT_MIN_CLUSTERS: int = MIN_CLUSTERS
DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8
#: Items quoted per probe in the HTML/PDF worst-items section (the JSON report keeps them all).
SHOW_WORST = 3
#: Subgroup rows listed per probe in the appendix (largest effects first; the JSON has all).
SHOW_SUBGROUPS = 10
#: Overlapping items quoted per probe and run in the contamination block (the JSON report keeps
#: every example the run recorded, and the comparison every overlapping id).
SHOW_CONTAMINATION_EXAMPLES = 5
#: Characters of an overlapping item's (normalised) text quoted beside its matching n-gram.
CONTAMINATION_TEXT_CHARS = 160
#: Worst first: the order in which gate row verdicts combine and are listed.
VERDICT_ORDER = ("fail", "error", "inconclusive", "insufficient", "pass")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def ci_text(lo: Any, hi: Any, n: Any = None, clusters: Any = None) -> str:
    """A 95% CI as text: "[+0.0100, +0.2000]", "—" when absent, and "n/a (n=1)" when the row
    rests on fewer than two items or clusters (an interval from one unit reads like certainty)."""
    from rai_audit.display import fmt_ci

    count = lambda v: int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None  # noqa: E731
    return fmt_ci(None if _missing(lo) else lo, None if _missing(hi) else hi, count(n), count(clusters), signed=True, missing="—")


def row_ci_text(row: Mapping[str, Any]) -> str:
    return ci_text(row.get("ci_low"), row.get("ci_high"), row.get("n"), row.get("clusters"))


def mde_text(row: Mapping[str, Any]) -> str:
    """The row's MDE as text: "n/a" where its CI is (one item or cluster), "—" where undefined."""
    if row_ci_text(row).startswith("n/a"):
        return "n/a"
    v = row.get("mde")
    return "—" if _missing(v) else f"{v:.4f}"


def _effect(row: Mapping[str, Any]) -> float:
    d = row.get("diff")
    return -1.0 if _missing(d) else abs(float(d))


def _worst_verdict(verdicts: Sequence[str]) -> str | None:
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    return min(verdicts, key=lambda v: order.get(v, len(order))) if verdicts else None


def _run_info(store: Any, run: Any) -> dict[str, Any]:
    model = None
    if run.model_id and hasattr(store, "get_model"):
        try:
            model = store.get_model(run.model_id)
        except Exception:  # noqa: BLE001 - the model row is optional context
            model = None
    return jsonable({
        "run_id": run.run_id, "label": run.label, "role": run.role, "audit_id": run.audit_id,
        "model_reference": run.model_reference, "model_id": run.model_id, "model": model,
        "status": run.status, "seed": run.seed, "probes": list(run.probes), "config": run.config,
        "config_hash": run.config_hash, "created_at": str(run.created_at), "finished_at": str(run.finished_at) if run.finished_at else None,
        "scorer": run.scorer, "datasets": run.datasets, "provenance": run.provenance,
        "decoding": _lookup(run.config or {}, DECODING_PATHS), "chat": _lookup(run.config or {}, CHAT_PATHS),
    })


def _finetune_runs(store: Any, runs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Finetune runs of the same audit (their config and provenance are the finetune manifest)."""
    audit_ids = {r.get("audit_id") for r in runs.values() if r.get("audit_id")}
    out = []
    for audit_id in sorted(audit_ids):
        try:
            found = store.list_runs(audit_id=audit_id, kind="finetune")
        except Exception:  # noqa: BLE001 - a store without finetune runs: nothing to show
            continue
        for run in found:
            out.append(jsonable({"run_id": run.run_id, "model_reference": run.model_reference, "model_id": run.model_id,
                                 "config_hash": run.config_hash, "config": run.config, "provenance": run.provenance}))
    return out


def _metric_rows(store: Any, run_id: str) -> list[dict[str, Any]]:
    return [jsonable(asdict(m) if is_dataclass(m) else dict(m)) for m in store.metrics(run_id)]


def is_worse(row: Mapping[str, Any]) -> bool | None:
    """Whether B is worse than A on this row by the metric's direction (None: no direction)."""
    a, b, d, better = row.get("value_a"), row.get("value_b"), row.get("diff"), row.get("better")
    if a is None or b is None or d is None:
        return None
    if better == "higher":
        return d < 0
    if better == "lower":
        return d > 0
    if better in ("closer_to_zero", "closer_to_half"):
        t = 0.0 if better == "closer_to_zero" else 0.5
        return abs(b - t) > abs(a - t)
    return None


def _datasets(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out, seen = [], set()
    for run in runs:
        for key, info in (run.get("datasets") or {}).items():
            info = info if isinstance(info, Mapping) else {"name": key, "value": info}
            entry = {
                "probe": key, "name": info.get("name", key), "source": info.get("source"),
                "revision": info.get("revision"), "license": info.get("license"), "citation": info.get("citation"),
                "files": dict(info.get("files") or {}), "dataset_id": info.get("dataset_id"),
            }
            token = repr(sorted(entry.items(), key=lambda kv: kv[0]))
            if token not in seen:
                seen.add(token)
                out.append(entry)
    return out


def _probe_meta(name: str, params: Mapping[str, Any], loader: Callable | None) -> dict[str, Any]:
    try:
        if loader is None:
            import probes

            instance = probes.probe_class(name)(dict(params))
        else:
            instance = loader(name, params)
    except Exception as e:  # noqa: BLE001 - reported in the methodology section
        return {"title": name, "citation": "", "metric_specs": [], "load_error": f"{type(e).__name__}: {e}"}
    return {
        "title": getattr(instance, "title", "") or name,
        "citation": getattr(instance, "citation", "") or "",
        "metric_specs": [
            {"name": s.name, "description": s.description, "better": s.better, "kind": s.kind}
            for s in getattr(instance, "metric_specs", ())
        ],
    }


def _summary(probes: list[dict[str, Any]], gate: Mapping[str, Any] | None) -> dict[str, Any]:
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
            f"(change {r['diff']:+.4f}, 95% CI {row_ci_text(r)}, corrected p {_f(r['p_adjusted'])})."
        )
    return {"verdict": verdict, "lines": lines, "n_rows": len(rows), "n_regressions": len(regressions), "n_improvements": len(improvements)}


def _policy_info(gate: Mapping[str, Any] | None, comp: Mapping[str, Any] | None) -> dict[str, Any]:
    """Name, sha256, label and what-if flag of the policy behind the verdict (the gate result
    names them; an ungated report shows the audit's stored policy, if any)."""
    stored = (comp or {}).get("policy") or {}
    if gate is None:
        return {"gated": False, "name": stored.get("name"), "sha256": stored.get("sha256"), "label": "not gated",
                "what_if": False, "description": (stored.get("content") or {}).get("description", ""),
                "audit_policy": stored.get("name")}
    return {"gated": True, "name": gate["policy_name"], "sha256": gate["policy_sha256"], "label": gate["label"],
            "what_if": bool(gate["what_if"]), "description": (gate.get("policy") or {}).get("description", ""),
            "audit_policy": stored.get("name")}


def _headline_metric(p: Mapping[str, Any], gate_rows: Sequence[Mapping[str, Any]]) -> str | None:
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


def _headline(kind: str, probes: list[dict[str, Any]], gate: Mapping[str, Any] | None, comp: Mapping[str, Any] | None,
              runs: Mapping[str, Mapping[str, Any]], datasets: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
              store_url: str | None) -> dict[str, Any]:
    """Page 1 of every format: verdict and policy, what was audited, one row per probe, gate rows
    that did not pass, a warning where a headline row rests on fewer items/clusters than the
    policy's minimum support, and the contaminated probes (or that none was checked)."""
    policy = _policy_info(gate, comp)
    min_items = (gate or {}).get("min_items") or DEFAULT_MIN_ITEMS
    min_clusters = (gate or {}).get("min_clusters") or DEFAULT_MIN_CLUSTERS
    gate_rows = list((gate or {}).get("rows") or [])
    by_probe_ds = {d["probe"]: d for d in datasets}
    contamination = contamination_headline(probes, runs)
    rows = []
    for p in probes:
        ds = by_probe_ds.get(p["probe"], {})
        flags = [f for f in contamination["flags"] if f["probe"] == p["probe"]]
        base = {"probe": p["probe"], "title": p.get("title") or p["probe"], "dataset": ds.get("name") or p["probe"],
                "revision": ds.get("revision"), "dataset_id": ds.get("dataset_id"), "contaminated": bool(flags),
                "contamination_marks": [f"{f['side'].upper()} {_pct1(f['fraction'])}" for f in flags]}
        if kind != "comparison":
            overall = [m for m in p.get("metrics", []) if m.get("subgroup") == ""]
            names = [s.get("name") for s in (_metric_specs(p) or [])]
            metric = next((n for n in names if any(m["name"] == n for m in overall)), overall[0]["name"] if overall else None)
            m = next((m for m in overall if m["name"] == metric), None) or {}
            rows.append({**base, "metric": metric, "source": "metric", "n": m.get("n"), "clusters": None, "value_a": m.get("value"),
                         "value_b": None, "diff": None, "ci_low": m.get("ci_low"), "ci_high": m.get("ci_high"),
                         "ci_text": ci_text(m.get("ci_low"), m.get("ci_high"), m.get("n")), "mde": None, "p_adjusted": None,
                         "significant": False, "better": None, "worse": None, "verdict": "not gated", "gate_reasons": [],
                         "small_sample": below_support(m.get("n") if isinstance(m.get("n"), int) else None, None,
                                                       min_items, min_clusters)})
            continue
        metric = _headline_metric(p, gate_rows)
        overall = p.get("overall_rows", [])
        r = next((r for r in overall if r["metric"] == metric and r.get("source") == "metric"), None) \
            or next((r for r in overall if r["metric"] == metric), None) or {}
        matched = [g for g in gate_rows if g.get("probe") == p["probe"] and g.get("metric") == metric and not g.get("subgroup")
                   and g.get("source", "metric") == r.get("source", "metric")]
        verdict = _worst_verdict([g["verdict"] for g in matched])
        if verdict is None:
            verdict = "not gated" if gate is None else "no rule"
        n, clusters = r.get("n"), r.get("clusters")
        small = below_support(n if isinstance(n, int) else None, clusters if isinstance(clusters, int) else None,
                              min_items, min_clusters)
        rows.append({
            **base, "metric": metric, "source": r.get("source"), "n": n, "clusters": clusters, "n_pairs": p.get("n_pairs"),
            "errors_a": p.get("errors_a"), "errors_b": p.get("errors_b"),
            "value_a": r.get("value_a"), "value_b": r.get("value_b"), "diff": r.get("diff"),
            "ci_low": r.get("ci_low"), "ci_high": r.get("ci_high"), "ci_text": row_ci_text(r) if r else "—",
            "mde": r.get("mde"), "p_adjusted": r.get("p_adjusted"), "significant": bool(r.get("significant")),
            "better": r.get("better"), "worse": r.get("worse"), "verdict": verdict,
            "gate_reasons": [g.get("reason", "") for g in matched if g.get("verdict") != "pass"],
            "small_sample": bool(small),
        })
    small_rows = [r for r in rows if r["small_sample"]]
    warning = None
    if small_rows:
        worst = min(small_rows, key=lambda r: (r["n"] if isinstance(r["n"], int) else 0))
        warning = (
            f"Small sample: {len(small_rows)} of {len(rows)} headline row(s) rest on fewer than {min_items} items or "
            f"{min_clusters} clusters (smallest: {worst['probe']}, n = {worst['n']}"
            + (f", {worst['clusters']} cluster(s)" if isinstance(worst.get("clusters"), int) else "")
            + "). Their estimates and CIs are unreliable; read the MDE, and do not treat a pass as evidence of no change."
        )
    listed = []
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    for g in gate_rows:
        if g.get("verdict") in ("fail", "inconclusive", "error"):
            listed.append({**g, "ci_text": ci_text(g.get("ci_low"), g.get("ci_high"), g.get("n"), g.get("clusters"))})
    listed.sort(key=lambda g: (order.get(g["verdict"], 99), not g.get("headline"), g.get("probe", ""), g.get("metric", ""), g.get("subgroup", "")))
    audited = {
        "models": [
            {"key": k, "role": r.get("role"), "label": r.get("label"), "model_reference": r.get("model_reference"),
             "model_id": r.get("model_id"), "run_id": r.get("run_id"), "status": r.get("status")}
            for k, r in runs.items()
        ],
        "datasets": [
            {"probe": p["probe"], "name": by_probe_ds.get(p["probe"], {}).get("name") or p["probe"],
             "revision": by_probe_ds.get(p["probe"], {}).get("revision"), "dataset_id": by_probe_ds.get(p["probe"], {}).get("dataset_id"),
             "source": by_probe_ds.get(p["probe"], {}).get("source"),
             "n": p.get("n_pairs") if kind == "comparison" else next((h["n"] for h in rows if h["probe"] == p["probe"]), None)}
            for p in probes
        ],
        "store": store_url,
    }
    return {
        "verdict": gate["verdict"] if gate else "not gated",
        "policy": policy,
        "exit_code": (gate or {}).get("exit_code"),
        "alpha": settings.get("alpha", DEFAULT_ALPHA) if settings else DEFAULT_ALPHA,
        "power": settings.get("power", DEFAULT_POWER) if settings else DEFAULT_POWER,
        "min_items": min_items,
        "min_clusters": min_clusters,
        "small_sample_warning": warning,
        "contamination": contamination,
        "audited": audited,
        "rows": rows,
        "gate": None if gate is None else {
            "counts": {v: int(gate["counts"].get(v, 0)) for v in VERDICT_ORDER},
            "listed": listed,
            "errors": gate.get("errors", 0),
            "max_errors": gate.get("max_errors", 0),
            "exit_code": gate.get("exit_code"),
            "description": policy.get("description", ""),
        },
    }


def _metric_specs(p: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(p.get("metric_specs") or [])


def _subgroup_detail(p: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """Subgroup rows for the appendix: significant rows first, then by |B - A| (largest first);
    at most ``limit`` listed, the rest counted (every row stays in ``rows`` and the JSON)."""
    rows = list(p.get("subgroup_rows", []))
    changed = [r for r in rows if not _missing(r.get("diff")) and (r["diff"] != 0 or r.get("significant"))]
    unchanged = [r for r in rows if not _missing(r.get("diff")) and r["diff"] == 0 and not r.get("significant")]
    undefined = [r for r in rows if _missing(r.get("diff"))]
    ranked = sorted(changed, key=lambda r: (not r.get("significant"), -_effect(r), r["metric"], r["subgroup"]))
    shown = ranked[:limit]
    hidden = ranked[limit:]
    return {
        "shown": [{**r, "ci_text": row_ci_text(r)} for r in shown],
        "n_rows": len(rows),
        "n_changed": len(changed),
        "n_hidden": len(hidden),
        "max_abs_hidden": max((_effect(r) for r in hidden), default=None),
        "n_unchanged": len(unchanged),
        "n_undefined": len(undefined),
        "n_significant": sum(bool(r.get("significant")) for r in rows),
    }


def _f(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.4f}"


# ------------------------------------------------------------------------------ contamination


def _pct1(v: Any) -> str:
    return "n/a" if _missing(v) else f"{100 * float(v):.1f}%"


def _run_contamination(run: Any) -> dict[str, dict[str, Any]]:
    """A single run's recorded overlap per probe, in the comparison's shape (side "a")."""
    rec = (getattr(run, "provenance", None) or {}).get("contamination") or {}
    return {probe: {"a": {**found, "fingerprint": rec.get("fingerprint") or {}}}
            for probe, found in (rec.get("probes") or {}).items() if found}


def overlap_text(side: str, rec: Mapping[str, Any]) -> str:
    """The gate's and the CLI's wording of one run's overlap (:mod:`rai_audit.contamination.describe`)."""
    from rai_audit.contamination.describe import overlap_sentence

    return overlap_sentence(side, rec)


def _clean_pairs(p: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The probe's overall rows on all items beside the same rows on the clean subset (headline
    first; probe-metric rows, or outcome rows where the probe has none)."""
    clean = {(r["metric"], r["source"]): r for r in p.get("clean_rows") or [] if r.get("subgroup") == ""}
    if not clean:
        return []
    full = [r for r in p.get("rows") or [] if r.get("subgroup") == ""]
    shown = [r for r in full if r.get("source") == "metric"] or full
    headline = p.get("headline")
    shown.sort(key=lambda r: not (r["metric"] == headline and r.get("source") == "metric"))
    out = []
    for r in shown:
        c = clean.get((r["metric"], r["source"]))
        if c is None:
            continue
        out.append({
            "metric": r["metric"], "source": r["source"], "headline": r["metric"] == headline and r["source"] == "metric",
            "better": r.get("better"),
            "n": r.get("n"), "value_a": r.get("value_a"), "value_b": r.get("value_b"), "diff": r.get("diff"),
            "ci_text": row_ci_text(r), "significant": bool(r.get("significant")),
            "clean_n": c.get("n"), "clean_value_a": c.get("value_a"), "clean_value_b": c.get("value_b"),
            "clean_diff": c.get("diff"), "clean_ci_low": c.get("ci_low"), "clean_ci_high": c.get("ci_high"),
            "clean_ci_text": row_ci_text(c), "clean_p_adjusted": c.get("p_adjusted"),
            "clean_significant": bool(c.get("significant")), "clean_mde": c.get("mde"),
        })
    return out


def contamination_detail(p: Mapping[str, Any], runs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any] | None:
    """A probe's contamination block: per run that recorded training data, the counts (checked,
    overlapping, fraction, too short to check), the fingerprint (source, documents, n-gram sizes)
    and up to :data:`SHOW_CONTAMINATION_EXAMPLES` examples; and the clean-only rows beside the
    full ones. None when neither run recorded training data ("not checked", never "clean").
    ``p`` is a probe of a comparison dict (``ProbeComparison.to_dict``) or of a report."""
    c = p.get("contamination") or {}
    if not c:
        return None
    runs = runs or {}
    sides = []
    for side in ("a", "b"):
        rec = c.get(side)
        if not rec:
            continue
        fp = rec.get("fingerprint") or {}
        examples = [{"item_id": str(e.get("item_id", "")), "ngram": str(e.get("ngram") or ""),
                     "text": str(e.get("text") or "")[:CONTAMINATION_TEXT_CHARS]
                     + ("…" if len(str(e.get("text") or "")) > CONTAMINATION_TEXT_CHARS else "")}
                    for e in (rec.get("examples") or [])[:SHOW_CONTAMINATION_EXAMPLES]]
        n_over = len(rec.get("overlapping") or [])
        sides.append({
            "side": side, "model_reference": (runs.get(side) or {}).get("model_reference"),
            "checked": int(rec.get("checked") or 0), "overlapping": n_over, "unchecked": len(rec.get("unchecked") or []),
            "fraction": rec.get("fraction"), "contaminated": n_over > 0, "text": overlap_text(side, rec),
            "fingerprint_id": rec.get("fingerprint_id") or fp.get("fingerprint_id"),
            "source": fp.get("source") or fp.get("path") or "", "path": fp.get("path") or "",
            "documents": fp.get("documents"), "ngram_sizes": list(fp.get("ngram_sizes") or []),
            "examples": examples, "n_examples": len(rec.get("examples") or []),
        })
    contaminated = any(s["contaminated"] for s in sides)
    clean = _clean_pairs(p)
    no_clean = contaminated and not clean and "clean_rows" in p  # a single run has no clean-only rows to recompute
    return {"probe": p.get("probe"), "contaminated": contaminated, "runs": sides, "clean": clean,
            "clean_n": clean[0]["clean_n"] if clean else (0 if no_clean else None), "no_clean_items": no_clean}


def contamination_headline(probes: Sequence[Mapping[str, Any]], runs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """What page 1 (and the dashboard's overview) says about contamination: one flag per
    contaminated probe and run, the probes checked, and one sentence for the probes no run
    recorded training data for (all of them: one sentence, not a row per probe)."""
    flags, checked, not_checked, sides = [], [], [], set()
    fingerprints: dict[tuple[str, Any], dict[str, Any]] = {}
    for p in probes:
        d = p.get("contamination_detail") if "contamination_detail" in p else contamination_detail(p, runs)
        if d is None:
            not_checked.append(p["probe"])
            continue
        checked.append(p["probe"])
        for s in d["runs"]:
            sides.add(s["side"])
            fingerprints.setdefault((s["side"], s["fingerprint_id"]), {
                "side": s["side"], "model_reference": s["model_reference"], "fingerprint_id": s["fingerprint_id"],
                "source": s["source"], "path": s["path"], "documents": s["documents"], "ngram_sizes": s["ngram_sizes"]})
            if s["contaminated"]:
                flags.append({"probe": p["probe"], "side": s["side"], "model_reference": s["model_reference"],
                              "overlapping": s["overlapping"], "checked": s["checked"], "unchecked": s["unchecked"],
                              "fraction": s["fraction"], "clean_n": d["clean_n"], "detail": s["text"],
                              "text": f"{p['probe']}: {s['text']}"})
    who = " and ".join(f"run {x.upper()}" for x in sorted(sides)) or "no run"
    how = "rai-audit probe --training-data, or a model exported by rai-audit finetune"
    if not checked:
        sentence = (f"Contamination not checked: the run recorded no training data for its model ({how})."
                    if len(runs or {}) == 1 else
                    f"Contamination not checked: neither run recorded its model's training data ({how}), so whether "
                    "the benchmark items were trained on is unknown.")
    else:
        contaminated = sorted({f["probe"] for f in flags})
        where = "; clean-only rows under Training-data overlap" if len(runs or {}) != 1 else ""
        sentence = f"Contamination checked against {who}'s training data for {len(checked)} of {len(probes)} probe(s): "
        sentence += f"{len(contaminated)} contaminated ({', '.join(contaminated)}{where})." if flags else "no item overlaps it."
        if not_checked:
            sentence += f" Not checked (no training data recorded): {', '.join(not_checked)}."
    # under the headline table, short (page 1 is full): what the flags above it do not already say
    if not checked:
        note = ("Contamination not checked: the run recorded no training data." if len(runs or {}) == 1 else
                "Contamination not checked: neither run recorded its model's training data.")
    elif not flags:
        note = f"Contamination checked against {who}'s training data: no item overlaps it."
    else:
        note = None
    if checked and not_checked:
        note = ((note + " ") if note else "") + f"Contamination not checked for {', '.join(not_checked)} (no training data recorded)."
    return {"checked": checked, "not_checked": not_checked, "flags": flags, "contaminated": sorted({f["probe"] for f in flags}),
            "sentence": sentence, "note": note, "fingerprints": list(fingerprints.values())}


def build_report(
    store: Any,
    *,
    comparison: Comparison | Mapping[str, Any] | None = None,
    run_id: str | None = None,
    gate: GateResult | Mapping[str, Any] | None = None,
    signoff: Mapping[str, str] | None = None,
    title: str | None = None,
    probe_loader: Callable | None = None,
    n_worst: int = 10,
    show_subgroups: int = SHOW_SUBGROUPS,
) -> dict[str, Any]:
    """The report dict of a comparison (``comparison``) or of a single run (``run_id``).

    ``gate`` is the verdict to show (a GateResult or its dict); without one, a comparison's own
    stored verdict (its ``"gate"``, under the audit's policy) is shown, if it has one.
    """
    if (comparison is None) == (run_id is None):
        raise ValueError("give exactly one of comparison or run_id")
    gate_d = gate.to_dict() if isinstance(gate, GateResult) else (jsonable(dict(gate)) if gate else None)
    if comparison is not None:
        comp = comparison.to_dict() if isinstance(comparison, Comparison) else jsonable(dict(comparison))
        if gate_d is None and isinstance(comp.get("gate"), Mapping):
            gate_d = dict(comp["gate"])
        runs = {"a": _run_info(store, store.get_run(comp["run_a"])), "b": _run_info(store, store.get_run(comp["run_b"]))}
        stored = {
            k: {(m["probe"], m["name"], m["subgroup"]): m for m in _metric_rows(store, r["run_id"])} for k, r in runs.items()
        }
        probes = []
        for p in comp["probes"]:
            rows = []
            for r in p["rows"]:
                key = (r["probe"], r["metric"], r["subgroup"])
                own = {  # each run's own CI of its value, as the runner stored it (metric rows)
                    f"ci_{k}": ([stored[k][key]["ci_low"], stored[k][key]["ci_high"]] if r["source"] == "metric" and key in stored[k] else None)
                    for k in ("a", "b")
                }
                rows.append({**r, **own, "ci_text": row_ci_text(r), "worse": is_worse(r), "regression": bool(r["significant"] and is_worse(r))})
            entry = {
                **p,
                "rows": rows,
                "overall_rows": [r for r in rows if r["subgroup"] == ""],
                "subgroup_rows": [r for r in rows if r["subgroup"] != ""],
                "regressions": [r for r in rows if r["regression"]],
            }
            entry["subgroup_detail"] = _subgroup_detail(entry, show_subgroups)
            entry["contamination_detail"] = contamination_detail(entry, runs)
            probes.append(entry)
        kind = "comparison"
        default_title = f"rai-audit comparison: {runs['a']['model_reference']} vs {runs['b']['model_reference']}"
        settings = comp["settings"]
    else:
        run = store.get_run(run_id)
        runs = {"a": _run_info(store, run)}
        comp, settings = None, {}
        probes = []
        overlap = _run_contamination(run)
        for name in run.probes:
            records = store.records(run.run_id, name)
            meta = _probe_meta(name, probe_params(run.config, name), probe_loader)
            worst = sorted(
                (r for r in records if isinstance(r.get("max_toxicity"), (int, float)) and not r.get("error")),
                key=lambda r: -r["max_toxicity"],
            )[:n_worst]
            probes.append({
                "probe": name, **meta,
                "metrics": [m for m in _metric_rows(store, run.run_id) if m["probe"] == name],
                "confounders": {"a": jsonable(asdict(confounders(records)))},
                "worst_items": [
                    {"item_id": r["item_id"], "prompt": r.get("prompt"), "responses_a": list(r.get("responses") or []),
                     "max_toxicity_a": r["max_toxicity"], "subgroups": r.get("subgroups") or {}}
                    for r in worst
                ],
                "contamination": overlap.get(name, {}),
            })
            probes[-1]["contamination_detail"] = contamination_detail(probes[-1], runs)
        kind = "run"
        default_title = f"rai-audit run report: {runs['a']['model_reference']}"

    methodology_metrics = []
    for p in probes:
        meta = p if p.get("metric_specs") or p.get("citation") else _probe_meta(p["probe"], {}, probe_loader)
        for s in meta.get("metric_specs", []):
            methodology_metrics.append({"probe": p["probe"], "title": p.get("title") or p["probe"], "citation": meta.get("citation", ""), **s})
        if not meta.get("metric_specs"):
            methodology_metrics.append({"probe": p["probe"], "title": p.get("title") or p["probe"], "citation": meta.get("citation", ""),
                                        "name": "(probe metadata unavailable)", "description": meta.get("load_error", ""), "better": "none", "kind": ""})

    run_list = list(runs.values())
    datasets = _datasets(run_list)
    store_url = store_display_url(store)
    inputs = input_digests(store, [r["run_id"] for r in run_list], comp["comparison_id"] if comp else None)
    report = {
        "schema": SCHEMA,
        "kind": kind,
        "title": title or default_title,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tool": {"name": "rai-audit", "version": rai_audit.__version__},
        "headline": _headline(kind, probes, gate_d, comp, runs, datasets, settings, store_url),
        "summary": _summary(probes if kind == "comparison" else [], gate_d),
        "gate": gate_d,
        "runs": runs,
        "comparison_id": comp["comparison_id"] if comp else None,
        "comparison_settings": settings,
        "comparison_warnings": comp.get("warnings", []) if comp else [],
        "probes": probes,
        "metrics": {k: _metric_rows(store, r["run_id"]) for k, r in runs.items()},
        "methodology": {
            "statistics": STATISTICS_TEXT,
            "metrics": methodology_metrics,
            "decoding": {k: r["decoding"] for k, r in runs.items()},
            "chat_template": {k: r["chat"] for k, r in runs.items()},
            "seeds": {k: r["seed"] for k, r in runs.items()},
            "scorers": {k: r["scorer"] for k, r in runs.items()},
            "refusal_detector": refusal_identity(),
            "settings": settings,
        },
        "datasets": datasets,
        "limitations": LIMITATIONS + [w for w in (comp.get("warnings", []) if comp else [])],
        "provenance": {
            k: {"run_id": r["run_id"], "model_reference": r["model_reference"], "model_id": r["model_id"],
                "config_hash": r["config_hash"], "provenance": r["provenance"], "model": r["model"]}
            for k, r in runs.items()
        } | {f"finetune-{i + 1}": f for i, f in enumerate(_finetune_runs(store, runs))},
        "compliance": {
            "disclaimer": "A navigation aid from report sections to the items they inform; not legal advice and not a conformity assessment.",
            "eu_ai_act_annex_xi": EU_AI_ACT,
            "nist_ai_rmf_measure": NIST_MEASURE,
        },
        "signoff": {f: (signoff or {}).get(f, "") for f in SIGNOFF_FIELDS},
        "inputs": inputs,
    }
    return jsonable(report)
