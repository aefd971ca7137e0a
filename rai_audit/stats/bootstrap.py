"""Percentile bootstrap CIs for any probe aggregate, resampling the benchmark's clusters.

Efron & Tibshirani (1993), "An Introduction to the Bootstrap", ch. 13 (percentile interval).
Items that share a template or a prompt are not independent, so we resample whole clusters
(Field & Welsh 2007, "Bootstrapping clustered data"): draw as many clusters as there are, with
replacement, and take every record of each drawn cluster. A record without a ``cluster`` is its
own cluster. The probe's ``aggregate`` is re-evaluated on each resample, so a probe states each
formula exactly once.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

Aggregate = Callable[[Sequence[dict[str, Any]]], Mapping[tuple[str, str], tuple[float, int]]]


def cluster_indices(records: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    """Record indices grouped by cluster, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        key = r.get("cluster")
        key = f"item:{r.get('item_id', i)}" if key in (None, "") else f"cluster:{key}"
        groups.setdefault(key, []).append(i)
    return [np.asarray(v, dtype=np.int64) for v in groups.values()]


def cluster_support(records: Sequence[dict[str, Any]], aggregate: Aggregate) -> dict[tuple[str, str], int]:
    """How many clusters contribute to each (metric, subgroup) key of ``aggregate``.

    A subgroup row's n can count continuations (25 samples of one prompt) while its independent
    evidence is one cluster; minimum-support rules need the cluster count. Asked of the aggregate
    itself, one cluster at a time, so it holds whatever subgroup labels a probe uses.
    """
    support: dict[tuple[str, str], int] = {}
    for members in cluster_indices(records):
        for key, (_value, n) in aggregate([records[i] for i in members]).items():
            if n:
                support[key] = support.get(key, 0) + 1
    return support


def bootstrap_metrics(
    records: Sequence[dict[str, Any]],
    aggregate: Aggregate,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[tuple[str, str], tuple[float, int, float | None, float | None]]:
    """Point estimate, n and percentile CI for every key ``aggregate`` returns.

    Resamples where a metric is undefined (NaN) are dropped for that metric; if fewer than half
    the resamples define it, or the records form fewer than two clusters, its CI is None rather
    than a misleading interval.
    """
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
    out = {}
    for k, (v, n) in point.items():
        vals = draws.get(k, [])
        if v is None or math.isnan(v) or len(vals) < n_boot / 2:
            out[k] = (v, n, None, None)
        else:
            lo, hi = np.quantile(np.asarray(vals), [alpha / 2, 1 - alpha / 2])
            out[k] = (v, n, float(lo), float(hi))
    return out
