"""The rows of a comparison: one per metric (or per-item outcome) and subgroup, with the paired
difference B - A, its CI, p-value, multiplicity-corrected p-value and minimum detectable effect.

Two sources of rows: ``metric`` rows come from the probe's own ``aggregate`` (paired cluster
bootstrap and cluster permutation test, so ratio metrics work) and ``outcome`` rows from the
per-item ``outcomes`` (exact McNemar for 0/1 outcomes, paired bootstrap + sign-flip test for
continuous ones). The correction family is one (probe, source, metric) across all its
subgroups, overall included.
"""

from __future__ import annotations

from typing import Any, Mapping

from rai_audit.comparison.model import DiffRow
from rai_audit.comparison.outcomes import binary_value, finite_number
from rai_audit.stats.bootstrap import cluster_support
from rai_audit.stats.multiple import adjust
from rai_audit.stats.paired import (
    PairedDiff,
    paired_binary,
    paired_bootstrap_aggregate,
    paired_continuous,
    permutations_for_family,
)
from rai_audit.stats.power import mde_paired, mde_paired_binary, mde_paired_continuous

#: The power at which minimum detectable effects are stated (alpha is the comparison's).
POWER = 0.8

Pair = tuple[dict, dict]


def _subgroup_labels(record: Mapping[str, Any]) -> list[str]:
    sub = record.get("subgroups") or {}
    return [""] + [f"{k}={v}" for k, v in sorted(sub.items()) if v not in (None, "")]


def _outcome_row(
    probe: str, key: str, subgroup: str, pairs: list[Pair], better: str, *, binary: bool,
    n_boot: int, n_perm: int, seed: int, alpha: float,
) -> DiffRow:
    """One outcome in one subgroup. ``binary`` is decided over the whole probe, so every
    subgroup of an outcome is tested the same way."""
    a = [float(ra["outcomes"][key]) for ra, _ in pairs]
    b = [float(rb["outcomes"][key]) for _, rb in pairs]
    clusters = [ra.get("cluster") or f"item:{ra['item_id']}" for ra, _ in pairs]
    clustered = len(set(clusters)) < len(clusters)
    if binary and not clustered:
        res = paired_binary(a, b, alpha=alpha)
        mde = mde_paired_binary(res.n, res.extra.get("discordant", 0.0), alpha=alpha) if res.n else None
        kind = "proportion"
    else:
        res = paired_continuous(a, b, clusters=clusters if clustered else None, n_boot=n_boot, n_perm=n_perm, seed=seed, alpha=alpha)
        sd = res.extra.get("sd_diff", 0.0)
        if clustered or not sd:
            mde = mde_paired(res.se, res.extra.get("se_a"), res.extra.get("se_b"), alpha=alpha)
        else:
            mde = mde_paired_continuous(res.n, sd, alpha=alpha)
        kind = "proportion" if binary else "mean"
    return _row(probe, key, subgroup, "outcome", res, mde, better, kind, clusters=len(set(clusters)))


def _row(probe: str, metric: str, subgroup: str, source: str, res: PairedDiff, mde: float | None, better: str, kind: str,
         clusters: int | None = None) -> DiffRow:
    if (clusters is not None and clusters < 2) or res.n < 2:
        mde = None  # one cluster or item says nothing about what could be detected
    return DiffRow(
        probe=probe, metric=metric, subgroup=subgroup, source=source, method=res.method, n=res.n,
        value_a=res.value_a, value_b=res.value_b, diff=res.diff, ci_low=res.ci_low, ci_high=res.ci_high,
        p_value=res.p_value, p_adjusted=None, significant=False, mde=mde, better=better, kind=kind, se=res.se,
        clusters=clusters,
    )


def outcome_rows(probe: str, pairs: list[Pair], better_map: Mapping[str, str], **kw) -> list[DiffRow]:
    """Rows of every per-item outcome, overall and per subgroup (uncorrected)."""
    keys: list[str] = []
    for ra, rb in pairs:
        for k in list((ra.get("outcomes") or {})) + list((rb.get("outcomes") or {})):
            if k not in keys:
                keys.append(k)
    rows = []
    for key in keys:
        usable = [
            (ra, rb) for ra, rb in pairs
            if finite_number((ra.get("outcomes") or {}).get(key)) and finite_number((rb.get("outcomes") or {}).get(key))
        ]
        groups: dict[str, list[Pair]] = {}
        for ra, rb in usable:
            for label in _subgroup_labels(ra):
                groups.setdefault(label, []).append((ra, rb))
        binary = all(binary_value(r["outcomes"][key]) is not None for pair in usable for r in pair)
        n_perm = permutations_for_family(kw["n_boot"], len(groups), kw["alpha"])
        for label, members in groups.items():
            rows.append(_outcome_row(probe, key, label, members, better_map.get(key, "none"), binary=binary, n_perm=n_perm, **kw))
    return rows


def apply_correction(rows: list[DiffRow], method: str, alpha: float) -> None:
    """Set ``p_adjusted`` and ``significant`` of every row, one family per (probe, source, metric)."""
    families: dict[tuple[str, str, str], list[DiffRow]] = {}
    for r in rows:
        families.setdefault((r.probe, r.source, r.metric), []).append(r)
    for members in families.values():
        adjusted = adjust([r.p_value for r in members], method)
        for r, p in zip(members, adjusted):
            r.p_adjusted = p
            r.significant = p is not None and p < alpha


def probe_rows(probe: str, pairs: list[Pair], instance: Any, spec_by_name: Mapping[str, dict],
               better_map: Mapping[str, str], *, n_boot: int, seed: int, alpha: float, aggregate_test: str,
               correction: str) -> list[DiffRow]:
    """The probe's metric rows (its own aggregate, paired bootstrap) and outcome rows, corrected."""
    rows = outcome_rows(probe, pairs, better_map, n_boot=n_boot, seed=seed, alpha=alpha)
    if instance is not None:
        agg = paired_bootstrap_aggregate(
            [x for x, _ in pairs], [y for _, y in pairs], instance.aggregate, n_boot=n_boot, seed=seed, alpha=alpha,
            test=aggregate_test,  # type: ignore[arg-type]
        )
        support = cluster_support([x for x, _ in pairs], instance.aggregate)
        metric_rows = []
        for (metric, subgroup), res in agg.items():
            spec = spec_by_name.get(metric, {})
            metric_rows.append(
                _row(probe, metric, subgroup, "metric", res, mde_paired(res.se, res.extra.get("se_a"), res.extra.get("se_b"), alpha=alpha),
                     spec.get("better", "none"), spec.get("kind", "mean"),
                     clusters=support.get((metric, subgroup)))
            )
        rows = metric_rows + rows
    apply_correction(rows, correction, alpha)
    return rows
