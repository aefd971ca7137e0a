"""The aggregate values behind :func:`rai_audit.stats.paired.paired_bootstrap_aggregate`.

Two runs' records of the same items are evaluated on shared cluster resamples (bootstrap) and on
cluster swaps (permutation test). :class:`DeclaredPair` does it vectorised for a probe that
declares its metrics: a resample is a vector of cluster counts applied to both runs' tables, and
a swap pattern is a weighting of the two runs' tables stacked (cluster j of run A counts for the
permuted A when not swapped, cluster j of run B when swapped). :class:`GenericPair` is the slow
path for any other ``aggregate(records)``: it builds every resample's and every permutation's
records and calls ``aggregate`` on them. Both return (draws x keys) arrays, NaN where a key is
undefined or absent, and consume the random generator identically.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from rai_audit.stats.evaluate import Declares, Plan, count_blocks, plan_for

Key = tuple[str, str]
Aggregate = Callable[[Sequence[dict[str, Any]]], Mapping[Key, tuple[float, int]]]


def _as_float(v: Any) -> float:
    return float("nan") if v is None else float(v)


def pick_keys(values: np.ndarray, plan_keys: Sequence[Key], keys: Sequence[Key]) -> np.ndarray:
    """``values`` (draws x plan_keys) re-ordered as ``keys``; NaN for a key the plan lacks."""
    pos = {k: j for j, k in enumerate(plan_keys)}
    out = np.full((values.shape[0], len(keys)), np.nan)
    for j, key in enumerate(keys):
        if key in pos:
            out[:, j] = values[:, pos[key]]
    return out


def pattern_blocks(rng: np.random.Generator, n_perm: int, k: int, exact: bool, rows: int) -> Iterator[np.ndarray]:
    """Swap patterns (patterns x clusters, bool): every one of the 2^k when ``exact``, else
    ``n_perm`` draws of ``rng.integers(0, 2, size=k)``, ``rows`` patterns per block."""
    if exact:
        idx = np.arange(2**k)[:, None]
        yield ((idx >> np.arange(k - 1, -1, -1)[None, :]) & 1).astype(bool)  # itertools.product order
        return
    for start in range(0, n_perm if k else 0, max(1, rows)):
        block = np.empty((min(rows, n_perm - start), k), dtype=bool)
        for r in range(block.shape[0]):
            block[r] = rng.integers(0, 2, size=k).astype(bool)
        yield block


class DeclaredPair:
    """Both runs' declared metrics, evaluated vectorised (module docstring)."""

    block_rows = 256

    def __init__(self, owner: Declares, records_a: Sequence[dict[str, Any]], records_b: Sequence[dict[str, Any]],
                 clusters: Sequence[np.ndarray]):
        self.owner, self.n_a, self.k = owner, len(records_a), len(clusters)
        self.plan_a = plan_for(owner, records_a, clusters)
        self.plan_b = plan_for(owner, records_b, clusters)  # B's records resampled by A's clusters
        self._stacked: Plan | None = None

    def point_a(self) -> Mapping[Key, tuple[float, int]]:
        return self.plan_a.point()

    def point_b(self) -> Mapping[Key, tuple[float, int]]:
        return self.plan_b.point()

    @property
    def rows(self) -> int:
        return min(self.plan_a.chunk_rows, self.plan_b.chunk_rows, self.block_rows)

    def bootstrap(self, rng: np.random.Generator, n_boot: int, keys: Sequence[Key]) -> tuple[np.ndarray, np.ndarray]:
        va, vb = [np.zeros((0, len(keys)))], [np.zeros((0, len(keys)))]
        for counts in count_blocks(rng, n_boot, self.k, self.rows):
            va.append(pick_keys(self.plan_a.evaluate(counts)[0], self.plan_a.keys or [], keys))
            vb.append(pick_keys(self.plan_b.evaluate(counts)[0], self.plan_b.keys or [], keys))
        return np.concatenate(va), np.concatenate(vb)

    def permuted(self, patterns: Iterable[np.ndarray], keys: Sequence[Key]) -> tuple[np.ndarray, np.ndarray]:
        if self._stacked is None:
            a, b = self.plan_a, self.plan_b
            table = a.table.concat(b.table, source_offset=self.n_a)
            self._stacked = Plan(table, self.owner.metrics(table), np.concatenate([a.row_cluster, b.row_cluster + self.k]),
                                 2 * self.k)
        plan = self._stacked
        va, vb = [np.zeros((0, len(keys)))], [np.zeros((0, len(keys)))]
        for swap in patterns:
            s = swap.astype(float)
            va.append(pick_keys(plan.evaluate(np.hstack([1.0 - s, s]))[0], plan.keys or [], keys))
            vb.append(pick_keys(plan.evaluate(np.hstack([s, 1.0 - s]))[0], plan.keys or [], keys))
        return np.concatenate(va), np.concatenate(vb)


class GenericPair:
    """The slow path: ``aggregate`` on every resample's and every permutation's records."""

    rows = 256

    def __init__(self, aggregate: Aggregate, records_a: Sequence[dict[str, Any]], records_b: Sequence[dict[str, Any]],
                 clusters: Sequence[np.ndarray]):
        self.aggregate, self.records_a, self.records_b, self.clusters = aggregate, records_a, records_b, clusters

    def point_a(self) -> Mapping[Key, tuple[float, int]]:
        return self.aggregate(self.records_a)

    def point_b(self) -> Mapping[Key, tuple[float, int]]:
        return self.aggregate(self.records_b)

    def _values(self, agg: Mapping[Key, tuple[float, int]], keys: Sequence[Key]) -> list[float]:
        return [_as_float(agg.get(key, (None, 0))[0]) for key in keys]

    def bootstrap(self, rng: np.random.Generator, n_boot: int, keys: Sequence[Key]) -> tuple[np.ndarray, np.ndarray]:
        k = len(self.clusters)
        va, vb = [], []
        for _ in range(n_boot):
            picks = rng.integers(0, k, size=k)
            idx = np.concatenate([self.clusters[j] for j in picks])
            va.append(self._values(self.aggregate([self.records_a[i] for i in idx]), keys))
            vb.append(self._values(self.aggregate([self.records_b[i] for i in idx]), keys))
        return np.asarray(va, dtype=float).reshape(-1, len(keys)), np.asarray(vb, dtype=float).reshape(-1, len(keys))

    def permuted(self, patterns: Iterable[np.ndarray], keys: Sequence[Key]) -> tuple[np.ndarray, np.ndarray]:
        va, vb = [], []
        for block in patterns:
            for swap in block:
                sa: list[dict[str, Any]] = []
                sb: list[dict[str, Any]] = []
                for j, members in enumerate(self.clusters):
                    src_a, src_b = (self.records_b, self.records_a) if swap[j] else (self.records_a, self.records_b)
                    sa.extend(src_a[i] for i in members)
                    sb.extend(src_b[i] for i in members)
                va.append(self._values(self.aggregate(sa), keys))
                vb.append(self._values(self.aggregate(sb), keys))
        return np.asarray(va, dtype=float).reshape(-1, len(keys)), np.asarray(vb, dtype=float).reshape(-1, len(keys))


__all__ = ["DeclaredPair", "GenericPair", "pattern_blocks"]
