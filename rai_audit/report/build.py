"""Build the report's data from the store: :func:`build_report` returns the JSON report, the
dump of :class:`~rai_audit.report.data.ReportData`, which every format renders
(:mod:`rai_audit.report.render`), so the four formats cannot disagree about a number.

The data holds: the ``headline`` (page 1: the verdict under its named policy, what was audited,
a small-sample warning, one row per probe with its headline metric, the gate rows that did not
pass, and the probes whose items overlap a model's training data, or a sentence that none was
checked); the summary verdict and gate table; per-probe difference rows with CIs (overall and
per subgroup), each probe's training-data overlap (contamination) with its clean-only rows,
flips, worst items and confounders; the runs' own stored metrics; methodology (metric
definitions and citations, paired statistics, decoding, seeds, chat-template mode, scorer
identity with threshold and operator, refusal detector); data sets with revision, checksum and
license; known limitations; provenance; a map of contents to EU AI Act Annex XI and the NIST AI
RMF "Measure" function; sign-off fields; and what sections registered with ``stored=True`` add
(the trajectory of a tuned run that is the final point of a trajectory audit, or of the
``trajectory`` analysis given).

Generated text is carried verbatim here; renderers escape it. Confidence intervals are carried
as numbers plus ``ci_text``, which is never an interval when a row rests on fewer than two items
or clusters (``"n/a (n=1)"``): an interval from one unit reads like certainty.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import rai_audit
from rai_audit.comparison import Comparison
from rai_audit.gate import GateResult
from rai_audit.jsonable import jsonable
from rai_audit.refusals import identity as refusal_identity
from rai_audit.report import headline as page1
from rai_audit.report import store_facts
from rai_audit.report.contamination import contamination_detail
from rai_audit.report.data import SCHEMA, Compliance, Methodology, ReportData, RunInfo, Tool
from rai_audit.report.formatting import is_worse, row_ci_text
from rai_audit.report.headline import SHOW_SUBGROUPS
from rai_audit.report.manifest import input_digests, store_display_url
from rai_audit.report.wording import COMPLIANCE_DISCLAIMER, EU_AI_ACT, LIMITATIONS, NIST_MEASURE, SIGNOFF_FIELDS, STATISTICS_TEXT


def _comparison_probes(store: Any, comp: Mapping[str, Any], runs: Mapping[str, RunInfo], show_subgroups: int) -> list[dict[str, Any]]:
    """A comparison's probes with the report's fields: each row's own-run CIs (as the runner
    stored them), CI text, direction and regression flag; overall/subgroup splits; the subgroup
    listing for the appendix; and the contamination block."""
    stored = {k: {(m["probe"], m["name"], m["subgroup"]): m for m in store_facts.metric_rows(store, r.run_id)} for k, r in runs.items()}
    runs_d = {k: r.model_dump() for k, r in runs.items()}
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
        entry["subgroup_detail"] = page1.subgroup_detail(entry, show_subgroups).model_dump(mode="json")
        entry["contamination_detail"] = contamination_detail(entry, runs_d)
        probes.append(entry)
    return probes


def _methodology_metrics(probes: list[dict[str, Any]], probe_loader: Callable | None) -> list[dict[str, Any]]:
    """Each probe's metric definitions with its title and citation (or why they are missing)."""
    out = []
    for p in probes:
        meta = p if p.get("metric_specs") or p.get("citation") else store_facts.probe_meta(p["probe"], {}, probe_loader)
        head = {"probe": p["probe"], "title": p.get("title") or p["probe"], "citation": meta.get("citation", "")}
        for s in meta.get("metric_specs", []):
            out.append({**head, **s})
        if not meta.get("metric_specs"):
            out.append({**head, "name": "(probe metadata unavailable)", "description": meta.get("load_error", ""), "better": "none", "kind": ""})
    return out


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
    trajectory: Any = None,
) -> dict[str, Any]:
    """The report (the JSON report's dict) of a comparison (``comparison``) or of a single run
    (``run_id``).

    ``gate`` is the verdict to show (a GateResult or its dict); without one, a comparison's own
    stored verdict (its ``"gate"``, under the audit's policy) is shown, if it has one.
    ``trajectory``: a :class:`~rai_audit.trajectory.model.TrajectoryAnalysis` (or its dict) for the
    trajectory section; without one, a comparison whose tuned run is the final point of a
    trajectory in the store gets that trajectory's analysis.
    """
    if (comparison is None) == (run_id is None):
        raise ValueError("give exactly one of comparison or run_id")
    gate_d = gate.to_dict() if isinstance(gate, GateResult) else (jsonable(dict(gate)) if gate else None)
    if comparison is not None:
        comp = comparison.model_dump(mode="json") if isinstance(comparison, Comparison) else jsonable(dict(comparison))
        if gate_d is None and isinstance(comp.get("gate"), Mapping):
            gate_d = dict(comp["gate"])
        runs = {"a": store_facts.run_info(store, store.get_run(comp["run_a"])), "b": store_facts.run_info(store, store.get_run(comp["run_b"]))}
        probes = _comparison_probes(store, comp, runs, show_subgroups)
        kind = "comparison"
        default_title = f"rai-audit comparison: {runs['a'].model_reference} vs {runs['b'].model_reference}"
        settings = comp["settings"]
    else:
        run = store.get_run(run_id)
        runs = {"a": store_facts.run_info(store, run)}
        comp, settings = None, {}
        probes = store_facts.run_probes(store, run, runs, probe_loader, n_worst)
        kind = "run"
        default_title = f"rai-audit run report: {runs['a'].model_reference}"

    datasets = store_facts.datasets(list(runs.values()))
    warnings = list(comp.get("warnings", [])) if comp else []
    data = ReportData(
        schema=SCHEMA,
        kind=kind,
        title=title or default_title,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tool=Tool(name="rai-audit", version=rai_audit.__version__),
        headline=page1.headline(kind, probes, gate_d, comp, runs, datasets, settings, store_display_url(store)),
        summary=page1.summary(probes if kind == "comparison" else [], gate_d),
        gate=gate_d,
        runs=runs,
        comparison_id=comp["comparison_id"] if comp else None,
        comparison_settings=settings,
        comparison_warnings=warnings,
        probes=probes,
        metrics={k: store_facts.metric_rows(store, r.run_id) for k, r in runs.items()},
        methodology=Methodology(
            statistics=STATISTICS_TEXT,
            metrics=_methodology_metrics(probes, probe_loader),
            decoding={k: r.decoding for k, r in runs.items()},
            chat_template={k: r.chat for k, r in runs.items()},
            seeds={k: r.seed for k, r in runs.items()},
            scorers={k: r.scorer for k, r in runs.items()},
            refusal_detector=refusal_identity(),
            settings=settings,
        ),
        datasets=datasets,
        limitations=LIMITATIONS + warnings,
        provenance={
            k: {"run_id": r.run_id, "model_reference": r.model_reference, "model_id": r.model_id,
                "config_hash": r.config_hash, "provenance": r.provenance, "model": r.model}
            for k, r in runs.items()
        } | {f"finetune-{i + 1}": f for i, f in enumerate(store_facts.finetune_runs(store, runs))},
        compliance=Compliance(disclaimer=COMPLIANCE_DISCLAIMER, eu_ai_act_annex_xi=EU_AI_ACT, nist_ai_rmf_measure=NIST_MEASURE),
        signoff={f: (signoff or {}).get(f, "") for f in SIGNOFF_FIELDS},
        inputs=input_digests(store, [r.run_id for r in runs.values()], comp["comparison_id"] if comp else None),
    )
    data.supply(trajectory=trajectory, probe_loader=probe_loader)
    return _with_stored_sections(data, store).to_json_dict()


def _with_stored_sections(data: ReportData, store: Any) -> ReportData:
    """The report data with what sections registered with ``stored=True`` built from the store,
    each under its name; a section with nothing to show (its builder returns None, e.g. the
    trajectory of a run that ends none) adds no key."""
    from rai_audit.report.sections import SECTIONS, SectionContext

    for section in SECTIONS:
        if section.stored:
            model = section.build(SectionContext(report=data, store=store))
            if model is not None:
                setattr(data, section.name, model.model_dump(mode="json"))
    return data
