"""Percentile bootstrap CIs for any probe aggregate, resampling the benchmark's clusters.

Efron & Tibshirani (1993), "An Introduction to the Bootstrap", ch. 13 (percentile interval).
Items that share a template or a prompt are not independent, so we resample whole clusters
(Field & Welsh 2007, "Bootstrapping clustered data"): draw as many clusters as there are, with
replacement, and take every record of each drawn cluster. A record without a ``cluster`` is its
own cluster.

Two paths compute the same draws. A probe that declares its metrics (``Probe.table`` and
``Probe.metrics``, :mod:`rai_audit.stats.evaluate`) has every resample evaluated at once as a
vector of cluster counts over its table's columns. Any other ``aggregate(records)`` callable
takes the generic path (:func:`bootstrap_generic`): ``aggregate`` re-run on each resample's
records. Both draw the resamples with the same random calls, so a seed gives the same clusters.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rai_audit.stats.evaluate import Plan, cluster_support_declared, count_blocks, declared, plan_for
from rai_audit.stats.table import cluster_indices

Aggregate = Callable[[Sequence[dict[str, Any]]], Mapping[tuple[str, str], tuple[float, int]]]
Estimates = dict[tuple[str, str], tuple[float, int, float | None, float | None]]

__all__ = ["Aggregate", "bootstrap_generic", "bootstrap_metrics", "bootstrap_values", "cluster_indices",
           "cluster_support"]


def cluster_support(records: Sequence[dict[str, Any]], aggregate: Aggregate) -> dict[tuple[str, str], int]:
    """How many clusters contribute to each (metric, subgroup) key of ``aggregate``.

    A subgroup row's n can count continuations (25 samples of one prompt) while its independent
    evidence is one cluster; minimum-support rules need the cluster count. Asked of the aggregate
    itself, one cluster at a time, so it holds whatever subgroup labels a probe uses.
    """
    owner = declared(aggregate)
    if owner is not None:
        return cluster_support_declared(owner, records)
    support: dict[tuple[str, str], int] = {}
    for members in cluster_indices(records):
        for key, (_value, n) in aggregate([records[i] for i in members]).items():
            if n:
                support[key] = support.get(key, 0) + 1
    return support


def _percentiles(point: Mapping[tuple[str, str], tuple[float, int]], draws: Mapping[tuple[str, str], np.ndarray],
                 n_boot: int, alpha: float) -> Estimates:
    out: Estimates = {}
    for k, (v, n) in point.items():
        vals = draws.get(k, np.zeros(0))
        if v is None or math.isnan(v) or len(vals) < n_boot / 2:
            out[k] = (v, n, None, None)
        else:
            lo, hi = np.quantile(np.asarray(vals), [alpha / 2, 1 - alpha / 2])
            out[k] = (v, n, float(lo), float(hi))
    return out


def bootstrap_metrics(
    records: Sequence[dict[str, Any]],
    aggregate: Aggregate,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> Estimates:
    """Point estimate, n and percentile CI for every key ``aggregate`` returns.

    Resamples where a metric is undefined (NaN) are dropped for that metric; if fewer than half
    the resamples define it, or the records form fewer than two clusters, its CI is None rather
    than a misleading interval. ``aggregate`` may be a declared probe's ``aggregate`` (vectorised)
    or any callable (:func:`bootstrap_generic`).
    """
    owner = declared(aggregate)
    if owner is None:
        return bootstrap_generic(records, aggregate, n_boot=n_boot, seed=seed, alpha=alpha)
    clusters = cluster_indices(records)
    plan = plan_for(owner, records, clusters)
    point = plan.point()
    if n_boot <= 0 or len(clusters) < 2:  # one cluster: resampling it says nothing
        return {k: (v, n, None, None) for k, (v, n) in point.items()}
    values = bootstrap_values(plan, n_boot, seed)
    draws = {}
    for j, key in enumerate(plan.keys or ()):
        col = values[:, j]
        draws[key] = col[~np.isnan(col)]
    return _percentiles(point, draws, n_boot, alpha)


def bootstrap_values(plan: Plan, n_boot: int, seed: int) -> np.ndarray:
    """Every key's value (resamples x keys, NaN where undefined) on ``n_boot`` cluster resamples."""
    rng = np.random.default_rng(seed)
    blocks = [plan.evaluate(c)[0] for c in count_blocks(rng, n_boot, plan.k, plan.chunk_rows)]
    return np.concatenate(blocks) if blocks else np.zeros((0, len(plan.keys or ())))


def bootstrap_generic(
    records: Sequence[dict[str, Any]],
    aggregate: Aggregate,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> Estimates:
    """The generic (slow) path: ``aggregate`` re-run on every resample's records, for probes that
    only implement ``aggregate(records)``."""
    point = aggregate(records)
    clusters = cluster_indices(records)
    if n_boot <= 0 or len(clusters) < 2:  # one cluster: resampling it says nothing
        return {k: (v, n, None, None) for k, (v, n) in point.items()}
    rng = np.random.default_rng(seed)
    draws: dict[tuple[str, str], list[float]] = {k: [] for k in point}
    n_clusters = len(clusters)
    for _ in range(n_boot):
        picks = rng.integers(0, n_clusters, size=n_clusters)
        idx = np.concatenate([clusters[j] for j in picks])
        sample = [records[i] for i in idx]
        for k, (v, _n) in aggregate(sample).items():
            if k in draws and v is not None and not math.isnan(v):
                draws[k].append(v)
    return _percentiles(point, {k: np.asarray(v) for k, v in draws.items()}, n_boot, alpha)
