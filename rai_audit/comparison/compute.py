"""`compare_runs`: the paired comparison of run B against run A (B - A) on the same items.

For each probe it pairs the two runs' records by ``item_id``, leaves out (and counts) pairs where
either run recorded an error, and computes the rows (:mod:`.rows`), the flips and worst items
(:mod:`.flips`), both models' confounders (:mod:`.confounders`) and, where a run recorded
training-data overlap, the rows again on the clean items only.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping

from rai_audit.comparison.comparability import COMPLETED, check_comparable, probe_params
from rai_audit.comparison.confounders import confounders
from rai_audit.comparison.flips import find_flips, flip_counts, worst_items
from rai_audit.comparison.model import Comparison, DiffRow, ProbeComparison
from rai_audit.comparison.outcomes import OUTCOME_BETTER
from rai_audit.comparison.rows import POWER, probe_rows
from rai_audit.errors import UserError
from rai_audit.hashing import sha256_json
from rai_audit.stats.multiple import CORRECTIONS

if TYPE_CHECKING:
    from rai_audit.store.api import RunRecord
    from rai_audit.store.protocol import ResultsStore

ProbeLoader = Callable[[str, Mapping[str, Any]], Any]


def _default_probe_loader(name: str, params: Mapping[str, Any]) -> Any:
    import probes  # lazily: rai_audit does not import probes at module top level

    return probes.probe_class(name)(dict(params))


def _title(name: str, title: str) -> str:
    """The probe's title; an instance's (``civil_comments@10shot``) names its label."""
    import probes  # lazily, the registry module only

    return probes.instance_title(name, title)


def _spec_dict(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "better": spec.better, "kind": spec.kind}


def _contamination(probe: str, run_a: RunRecord, run_b: RunRecord) -> dict[str, dict[str, Any]]:
    """Each run's recorded overlap for ``probe`` with its fingerprint's summary (runs that have one)."""
    out = {}
    for side, run in (("a", run_a), ("b", run_b)):
        rec = (run.provenance or {}).get("contamination") or {}
        found = (rec.get("probes") or {}).get(probe)
        if found:
            out[side] = {**found, "fingerprint": rec.get("fingerprint") or {}}
    return out


def compare_runs(
    store: ResultsStore,
    run_a: str,
    run_b: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    correction: str = "holm",
    alpha: float = 0.05,
    max_flips: int = 200,
    n_worst: int = 10,
    probe_loader: ProbeLoader | None = None,
    aggregate_test: str = "auto",
    policy: Mapping[str, Any] | None = None,
) -> Comparison:
    """Compare run B against run A (B - A), pairing records by item_id within each probe.

    Raises UserError when the runs are not finished, or differ in items, decoding, seeds or
    chat-template mode (naming which). ``max_flips`` caps the stored flip list per probe (the
    counts are complete). ``probe_loader(name, params)`` returns a probe instance whose
    ``aggregate`` gives the metric rows (default: the ``probes`` registry). ``aggregate_test``
    picks the p-value of metric rows ("auto", "permutation" or "wald"; see
    :func:`~rai_audit.stats.paired.paired_bootstrap_aggregate`). ``policy`` (from
    :func:`rai_audit.gate.policy_identity`) is the audit's gate policy: stored with the comparison
    and part of its id, so the audit's own comparison is never confused with an ad-hoc one.
    """
    if aggregate_test not in ("auto", "permutation", "wald"):
        raise UserError(f"Unknown test {aggregate_test!r} for probe metrics; use auto, permutation or wald.")
    if correction not in CORRECTIONS:
        raise UserError(f"Unknown multiple-comparison correction {correction!r}; use one of {', '.join(CORRECTIONS)}.")
    if n_boot < 1:
        raise UserError(f"--n-boot must be at least 1 (got {n_boot}).")
    ra, rb = store.get_run(run_a), store.get_run(run_b)
    for run in (ra, rb):
        if run.status not in COMPLETED:
            raise UserError(
                f"Run {run.run_id} is {run.status}, not completed; finish it first (re-running its audit "
                "config resumes it) and compare again."
            )
    probe_names = list(dict.fromkeys(ra.probes))
    recs_a = {p: store.records(ra.run_id, p) for p in probe_names}
    recs_b = {p: store.records(rb.run_id, p) for p in dict.fromkeys(rb.probes)}
    check_comparable(ra, rb, recs_a, recs_b)
    loader = probe_loader or _default_probe_loader
    settings = {"n_boot": n_boot, "seed": seed, "correction": correction, "alpha": alpha, "power": POWER,
                "max_flips": max_flips, "aggregate_test": aggregate_test,
                "policy": {"name": policy["name"], "sha256": policy["sha256"]} if policy else None}

    out: list[ProbeComparison] = []
    warnings: list[str] = []
    for i, probe in enumerate(probe_names):
        warnings_p: list[str] = []
        by_id_b = {r["item_id"]: r for r in recs_b[probe]}
        all_pairs = [(r, by_id_b[r["item_id"]]) for r in recs_a[probe]]
        pairs = [(x, y) for x, y in all_pairs if not x.get("error") and not y.get("error")]
        errors_a = sum(bool(x.get("error")) for x, _ in all_pairs)
        errors_b = sum(bool(y.get("error")) for _, y in all_pairs)
        if len(pairs) < len(all_pairs):
            warnings_p.append(f"{len(all_pairs) - len(pairs)} item(s) left out because a run recorded an error for them")

        title, citation, specs, better_map, instance, headline = probe, "", [], dict(OUTCOME_BETTER), None, ""
        try:
            instance = loader(probe, probe_params(ra.config, probe))
            title = _title(probe, getattr(instance, "title", "") or probe)
            citation = getattr(instance, "citation", "") or ""
            specs = [_spec_dict(s) for s in getattr(instance, "metric_specs", ())]
            better_map.update(getattr(instance, "outcome_better", {}) or {})
            headline = getattr(instance, "headline_metric", "") or (specs[0]["name"] if specs else "")
        except Exception as e:  # noqa: BLE001 - reported, never hidden: the metric rows are missing
            warnings_p.append(f"probe {probe!r} could not be loaded ({type(e).__name__}: {e}); only per-item outcome rows are compared")
        spec_by_name = {s["name"]: s for s in specs}

        probe_seed = seed + 1009 * i
        rows = probe_rows(probe, pairs, instance, spec_by_name, better_map, n_boot=n_boot, seed=probe_seed,
                          alpha=alpha, aggregate_test=aggregate_test, correction=correction)
        contamination = _contamination(probe, ra, rb)
        excluded = {i for c in contamination.values() if c["overlapping"] for i in c["overlapping"] + c["unchecked"]}
        clean_rows: list[DiffRow] = []
        if excluded:
            clean = [(x, y) for x, y in pairs if x["item_id"] not in excluded]
            if clean:
                clean_rows = probe_rows(probe, clean, instance, spec_by_name, better_map, n_boot=n_boot,
                                        seed=probe_seed, alpha=alpha, aggregate_test=aggregate_test, correction=correction)
            else:
                warnings_p.append("no clean items: every item overlaps the training data or could not be checked")

        flips = find_flips(probe, pairs, better_map=better_map, scorer_a=ra.scorer, scorer_b=rb.scorer)
        out.append(
            ProbeComparison(
                probe=probe, title=title, citation=citation, metric_specs=specs, n_pairs=len(pairs),
                errors_a=errors_a, errors_b=errors_b, rows=rows, flips=flips[:max_flips], flip_counts=flip_counts(flips),
                confounders={"a": confounders(recs_a[probe]), "b": confounders(recs_b[probe])},
                worst_items=worst_items(probe, pairs, flips, n_worst), warnings=warnings_p,
                headline=headline, contamination=contamination, clean_rows=clean_rows,
            )
        )
        warnings.extend(f"{probe}: {w}" for w in warnings_p)

    comparison_id = sha256_json({"run_a": ra.run_id, "run_b": rb.run_id, "settings": settings})[:32]
    return Comparison(
        comparison_id=comparison_id, run_a=ra.run_id, run_b=rb.run_id,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        settings=settings, probes=out, warnings=warnings, policy=dict(policy) if policy else None,
    )
