"""The trend of a metric along K runs on the same items: the OLS slope of the metric on x, with a
cluster-bootstrap CI in which every resample is shared by all K runs.

A trajectory audit probes K checkpoints of one finetune on exactly the same items. Each point's
value is a statistic of the same items, so the K values are strongly dependent; an OLS fit that
treated them as independent observations would misstate the slope's uncertainty. The item
clusters are the unit of independence (Field & Welsh 2007, "Bootstrapping clustered data", JRSS B
69:369; Davison & Hinkley 1997, "Bootstrap Methods and their Application", sec. 3.8): one draw
resamples the clusters with replacement *once* and applies that resample to every point's
records, evaluates the metric at every point, and fits the slope; the percentile interval of the
draws is the CI (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13). The
dependence between points is thereby kept, exactly as the paired comparison keeps it for two runs.

* The slope is ``sum((x - mean x)(y - mean y)) / sum((x - mean x)^2)``, computed as
  ``sum(w (y - y_0))`` with ``w = (x - mean x) / Sxx`` (``sum w = 0``, so subtracting the first
  value changes nothing but makes a constant series exactly 0, not 1e-17).
* The p-value of "slope = 0" is the two-sided bootstrap p-value that inverts the percentile
  interval: ``min(1, 2 min(1 + #{s* <= 0}, 1 + #{s* >= 0}) / (B + 1))`` over the B defined
  draws ``s*`` (the +1s keep it above 0; Davison & Hinkley 1997, sec. 4.4); it is below alpha
  about exactly when the (1 - alpha) percentile interval excludes 0.
* Resamples where the metric is undefined at some point (NaN) are dropped; with fewer than half
  of them defined, or fewer than two clusters, there is no CI (None), as in
  :func:`rai_audit.stats.bootstrap.bootstrap_metrics`.

Two paths draw the same resamples from the same seed: a probe that declares its metrics is
evaluated as cluster counts against one :class:`~rai_audit.stats.evaluate.Plan` per point (all
draws at once); any other ``aggregate(records)`` is called once per draw and point
(the generic path, as :func:`~rai_audit.stats.bootstrap.bootstrap_generic`).

:func:`align_points` lines the K runs' records up by item id and drops items that are errors at
any point (the same items must enter every point's value, or a slope could come from the item
set changing rather than the model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rai_audit.stats.evaluate import count_blocks, declared, plan_for
from rai_audit.stats.paired_draws import pick_keys
from rai_audit.stats.table import cluster_indices

Key = tuple[str, str]
Aggregate = Callable[[Sequence[dict[str, Any]]], Mapping[Key, tuple[float, int]]]
_EPS = 1e-12
_BLOCK_ROWS = 256


@dataclass(frozen=True)
class AlignedPoints:
    """K runs' records of the same items, each list in the same item order."""

    records: list[list[dict[str, Any]]]
    item_ids: list[str]
    errored: list[str] = field(default_factory=list)  # items left out: an error at some point
    missing: list[str] = field(default_factory=list)  # items left out: absent at some point


def align_points(records_per_point: Sequence[Sequence[Mapping[str, Any]]]) -> AlignedPoints:
    """The items every point recorded without an error, in the first point's order."""
    if not records_per_point:
        return AlignedPoints([], [])
    by_id = [{str(r["item_id"]): r for r in recs} for recs in records_per_point]
    first = [str(r["item_id"]) for r in records_per_point[0]]
    common = [i for i in first if all(i in m for m in by_id)]
    missing = sorted(set().union(*(set(m) for m in by_id)) - set(common))
    errored = [i for i in common if any(m[i].get("error") for m in by_id)]
    bad = set(errored)
    keep = [i for i in common if i not in bad]
    return AlignedPoints([[dict(m[i]) for i in keep] for m in by_id], keep, errored, missing)


def ols_weights(x: Sequence[float]) -> np.ndarray | None:
    """``w`` with ``slope = sum(w * y)`` for any y (None when x has fewer than two distinct values)."""
    xs = np.asarray(x, dtype=float)
    if xs.size < 2:
        return None
    dx = xs - xs.mean()
    sxx = float(dx @ dx)
    if sxx <= 0:
        return None
    return dx / sxx


def ols_slope(x: Sequence[float], y: np.ndarray) -> np.ndarray:
    """OLS slope of y on x along y's last axis (length K); NaN where any y is NaN or x is constant."""
    y = np.asarray(y, dtype=float)
    w = ols_weights(x)
    if w is None:
        return np.full(y.shape[:-1], np.nan)
    return (y - y[..., :1]) @ w


@dataclass(frozen=True)
class TrendFit:
    """One metric's slope along the points (per unit of x), with its bootstrap CI and p-value."""

    slope: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    values: tuple[float, ...]  # the metric at each point, on the aligned items
    n_draws: int  # resamples where the slope is defined
    n_clusters: int


class SharedResample:
    """The metric values of K runs on the same items under shared cluster resamples."""

    def __init__(self, aggregate: Aggregate, records_per_point: Sequence[Sequence[dict[str, Any]]],
                 clusters: Sequence[np.ndarray] | None = None):
        self.records = [list(r) for r in records_per_point]
        if len({len(r) for r in self.records}) > 1:
            raise ValueError("every point needs the same items in the same order (align_points)")
        self.aggregate = aggregate
        self.clusters = list(cluster_indices(self.records[0]) if clusters is None and self.records else clusters or [])
        self.k = len(self.clusters)
        self.owner = declared(aggregate)
        self.plans = [plan_for(self.owner, recs, self.clusters) for recs in self.records] if self.owner is not None else None

    def point(self, keys: Sequence[Key]) -> np.ndarray:
        """(K, keys): every point's value with each cluster counted once."""
        if self.plans is not None:
            return np.stack([pick_keys(p.evaluate(np.ones((1, self.k)))[0], p.keys or [], keys)[0] for p in self.plans]) \
                if self.plans else np.zeros((0, len(keys)))
        return np.asarray([[_value(self.aggregate(recs), key) for key in keys] for recs in self.records],
                          dtype=float).reshape(len(self.records), len(keys))

    def draws(self, n_boot: int, seed: int, keys: Sequence[Key]) -> np.ndarray:
        """(n_boot, K, keys): every point's value under each of ``n_boot`` shared resamples
        (``rng.integers(0, k, size=k)`` per resample, the same calls on both paths)."""
        rng = np.random.default_rng(seed)
        K = len(self.records)
        if self.plans is not None:
            rows = min([p.chunk_rows for p in self.plans] + [_BLOCK_ROWS])
            blocks = [np.stack([pick_keys(p.evaluate(c)[0], p.keys or [], keys) for p in self.plans], axis=1)
                      for c in count_blocks(rng, n_boot, self.k, rows)]
            return np.concatenate(blocks) if blocks else np.zeros((0, K, len(keys)))
        out = np.full((n_boot, K, len(keys)), np.nan)
        for b in range(n_boot):
            picks = rng.integers(0, self.k, size=self.k)
            idx = np.concatenate([self.clusters[j] for j in picks])
            for p, recs in enumerate(self.records):
                agg = self.aggregate([recs[i] for i in idx])
                out[b, p] = [_value(agg, key) for key in keys]
        return out


def _value(agg: Mapping[Key, tuple[float, int]], key: Key) -> float:
    v = agg.get(key, (None, 0))[0]
    return float("nan") if v is None else float(v)


def bootstrap_pvalue(draws: np.ndarray) -> float | None:
    """Two-sided bootstrap p-value of "no slope" from the defined draws (module docstring)."""
    d = np.asarray(draws, dtype=float)
    d = d[~np.isnan(d)]
    if not d.size:
        return None
    below = int(np.sum(d <= _EPS))
    above = int(np.sum(d >= -_EPS))
    return float(min(1.0, 2.0 * min(1 + below, 1 + above) / (d.size + 1)))


def fit_trends(aggregate: Aggregate, records_per_point: Sequence[Sequence[dict[str, Any]]], x: Sequence[float],
               keys: Sequence[Key], *, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
               clusters: Sequence[np.ndarray] | None = None) -> dict[Key, TrendFit]:
    """The slope of each of ``keys`` on ``x`` over the points' aligned records (one list per
    point, the same items in the same order: :func:`align_points`), with its shared-resample
    cluster-bootstrap percentile CI and p-value (module docstring)."""
    if len(x) != len(records_per_point):
        raise ValueError(f"{len(x)} x values for {len(records_per_point)} points")
    shared = SharedResample(aggregate, records_per_point, clusters)
    values = shared.point(keys)  # (K, keys)
    slopes = ols_slope(x, values.T) if len(keys) else np.zeros(0)
    can_resample = n_boot > 0 and shared.k >= 2 and ols_weights(x) is not None
    draws = ols_slope(x, np.moveaxis(shared.draws(n_boot, seed, keys), 1, 2)) if can_resample else None  # (B, keys)
    out: dict[Key, TrendFit] = {}
    for j, key in enumerate(keys):
        slope = float(slopes[j])
        lo = hi = p = None
        n_ok = 0
        if draws is not None and not math.isnan(slope):
            col = draws[:, j]
            col = col[~np.isnan(col)]
            n_ok = int(col.size)
            if n_ok and n_ok >= n_boot / 2:
                q_lo, q_hi = np.quantile(col, [alpha / 2, 1 - alpha / 2])
                lo, hi = _snap(float(q_lo)), _snap(float(q_hi))
                p = bootstrap_pvalue(col)
        out[key] = TrendFit(slope=_snap(slope), ci_low=lo, ci_high=hi, p_value=p,
                            values=tuple(float(v) for v in values[:, j]), n_draws=n_ok, n_clusters=shared.k)
    return out


def _snap(v: float) -> float:
    """Rounding noise around an exactly flat series (|v| < 1e-12) is 0."""
    return 0.0 if abs(v) < _EPS else v


__all__ = ["AlignedPoints", "SharedResample", "TrendFit", "align_points", "bootstrap_pvalue", "fit_trends",
           "ols_slope", "ols_weights"]
