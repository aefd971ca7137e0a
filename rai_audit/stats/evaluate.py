"""Evaluate a probe's declared metrics for many weightings of its table's rows at once.

A bootstrap resample draws whole clusters with replacement; all it changes is how many times each
cluster counts. So a resample is a vector of cluster counts, and every linear sum a metric needs
is ``counts @ S`` where ``S`` holds the per-cluster sums of that column in each subgroup,
computed once. :class:`Plan` does this for a matrix of counts (resamples x clusters): one matrix
product for all sums of all metrics, then each reducer's formula on the (resamples x subgroups)
sums, then the derived metrics. The point estimate is the same computation with every count 1,
so point estimates, bootstrap draws, paired permutations and per-cluster support all come from
one code path (:mod:`rai_audit.stats.reducers` states the formulas).

A probe opts in by implementing ``table(records)`` and ``metrics(table)`` and inheriting the
derived ``aggregate`` (marked with :func:`derived_aggregate`); :func:`declared` tells the
bootstrap and the paired tests whether an ``aggregate`` they were given is such a one.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np

from rai_audit.stats.reducers import Declaration, Derived, Metric, MetricKey, Reducer, Results, RowWeights, Values
from rai_audit.stats.table import ItemTable, cluster_codes, cluster_indices

#: Bound on the elements of one (resamples x rows) or (resamples x clusters) block.
CHUNK_ELEMENTS = 4_000_000
_MARK = "_derived_from_declarations"
F = TypeVar("F", bound=Callable[..., Any])


@runtime_checkable
class Declares(Protocol):
    """What a probe with declared metrics provides (``rai_audit.probe.Probe``)."""

    def table(self, records: Sequence[Mapping[str, Any]]) -> ItemTable: ...

    def metrics(self, table: ItemTable) -> Sequence[Declaration]: ...


def derived_aggregate(fn: F) -> F:
    """Marks ``Probe.aggregate``: it only evaluates the declarations, so callers may evaluate them
    vectorised instead of calling it once per resample."""
    setattr(fn, _MARK, True)
    return fn


def declared(aggregate: Any) -> Declares | None:
    """The probe behind ``aggregate`` (a bound ``aggregate`` method, or the probe itself) when its
    class inherits the derived aggregate; None for any other callable (the generic path)."""
    owner = getattr(aggregate, "__self__", aggregate)
    fn = getattr(type(owner), "aggregate", None)
    if not getattr(fn, _MARK, False):
        return None
    if aggregate is not owner and getattr(aggregate, "__func__", None) is not fn:
        return None
    return owner


class Plan:
    """Declared metrics compiled against one table and its rows' clusters (module docstring)."""

    def __init__(self, table: ItemTable, declarations: Sequence[Declaration], row_cluster: np.ndarray, n_clusters: int):
        self.table, self.k = table, int(n_clusters)
        self.row_cluster = np.asarray(row_cluster, dtype=np.int64)
        self.declarations = list(declarations)
        self._base: list[tuple[MetricKey, Reducer, tuple[str | None, str]]] = []
        for d in self.declarations:
            if isinstance(d, Metric):
                self._base += [((d.name, label), d.reducer, (group, label)) for group, label in d.subgroups(table)]
        order = np.argsort(self.row_cluster, kind="stable")
        self._order = order
        rc = self.row_cluster[order]
        self._starts = np.flatnonzero(np.r_[True, rc[1:] != rc[:-1]]) if rc.size else np.zeros(0, np.int64)
        self._present = rc[self._starts]
        # batches: one per distinct reducer, over the stack of its subgroups' masks
        by_reducer: dict[Reducer, list[int]] = {}
        for i, (_key, red, _ref) in enumerate(self._base):
            by_reducer.setdefault(red, []).append(i)
        self._sums: dict[tuple[str, tuple], tuple[int, int]] = {}
        parts: list[np.ndarray] = []
        width = 0
        self._batches = []
        for red, members in by_reducer.items():
            refs = tuple(dict.fromkeys(self._base[i][2] for i in members))
            col_of = {ref: j for j, ref in enumerate(refs)}
            masks = np.stack([table.mask(g, lab) for g, lab in refs], axis=1) if refs else np.zeros((table.n_rows, 0), bool)
            for col in red.columns:
                if (col, refs) not in self._sums:
                    block = self._cluster_sums(table.column(col)[:, None] * masks)
                    self._sums[(col, refs)] = (width, block.shape[1])
                    parts.append(block)
                    width += block.shape[1]
            self._batches.append((red, refs, masks, [(i, col_of[self._base[i][2]]) for i in members]))
        self._S = np.concatenate(parts, axis=1) if parts else np.zeros((self.k, 0))
        self.keys: list[MetricKey] | None = None

    def _cluster_sums(self, y: np.ndarray) -> np.ndarray:
        out = np.zeros((self.k, y.shape[1]))
        if self._starts.size:
            out[self._present] = np.add.reduceat(y[self._order], self._starts, axis=0)
        return out

    @property
    def chunk_rows(self) -> int:
        """Resamples per block, keeping (resamples x max(rows, clusters, sums)) within CHUNK_ELEMENTS."""
        return max(1, CHUNK_ELEMENTS // max(1, self.k, self.table.n_rows, self._S.shape[1]))

    def evaluate(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values and n of every key (``self.keys``), each (resamples, keys), for ``counts``
        (resamples x clusters, how many times each cluster is drawn)."""
        counts = np.asarray(counts, dtype=float)
        counts = counts[None, :] if counts.ndim == 1 else counts
        if counts.shape[1] != self.k:
            raise ValueError(f"counts has {counts.shape[1]} clusters, the plan {self.k}")
        vals, ns = [], []
        step = self.chunk_rows
        for start in range(0, counts.shape[0], step):
            v, n = self._evaluate(counts[start:start + step])
            vals.append(v)
            ns.append(n)
        if not vals:
            self._evaluate(np.ones((1, self.k)))  # fixes self.keys
            return np.zeros((0, len(self.keys or ()))), np.zeros((0, len(self.keys or ())))
        return np.concatenate(vals), np.concatenate(ns)

    def _evaluate(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = counts.shape[0]
        sums = counts @ self._S
        cache: list[np.ndarray] = []

        def row_weights() -> np.ndarray:
            if not cache:
                cache.append(counts[:, self.row_cluster])
            return cache[0]

        computed: list[Values | None] = [None] * len(self._base)
        for red, refs, masks, members in self._batches:
            named = {}
            for col in red.columns:
                start, width = self._sums[(col, refs)]
                named[col] = sums[:, start:start + width]
            values, n = red.reduce(named, RowWeights(self.table, masks, row_weights))
            values = np.broadcast_to(values, (size, len(refs)))
            n = np.broadcast_to(n, (size, len(refs)))
            for i, j in members:
                computed[i] = (values[:, j], n[:, j])
        results = Results(size)
        out: dict[MetricKey, Values] = {}
        pos = 0
        for d in self.declarations:
            if isinstance(d, Metric):
                for _ in d.subgroups(self.table):
                    key = self._base[pos][0]
                    results[key] = out[key] = computed[pos]  # type: ignore[assignment]
                    pos += 1
            elif isinstance(d, Derived):
                for key, (v, n) in d.compute(results, self.table).items():
                    pair = (np.broadcast_to(np.asarray(v, dtype=float), (size,)), np.broadcast_to(np.asarray(n, dtype=float), (size,)))
                    results[key] = out[key] = pair
            else:  # pragma: no cover - a typing error in a probe
                raise TypeError(f"not a metric declaration: {d!r}")
        keys = list(out)
        if self.keys is None:
            self.keys = keys
        elif keys != self.keys:  # pragma: no cover - declarations must not depend on the weights
            raise RuntimeError("declared metrics gave different keys for different weights")
        if not keys:
            return np.zeros((size, 0)), np.zeros((size, 0))
        return np.stack([out[k][0] for k in keys], axis=1), np.stack([out[k][1] for k in keys], axis=1)

    def point(self) -> dict[MetricKey, tuple[float, int]]:
        """Every key's value and n with each cluster counted once (the probe's aggregate)."""
        v, n = self.evaluate(np.ones((1, self.k)))
        return {key: (float(v[0, j]), int(round(float(n[0, j])))) for j, key in enumerate(self.keys or ())}


def count_blocks(rng: np.random.Generator, n_boot: int, k: int, rows: int) -> Iterator[np.ndarray]:
    """Bootstrap draws as cluster counts (resamples x clusters), ``rows`` resamples per block. Each
    resample is ``rng.integers(0, k, size=k)``, called in the same order as the generic path calls
    it, so a seed draws the same clusters on both paths."""
    for start in range(0, n_boot, max(1, rows)):
        block = np.empty((min(rows, n_boot - start), k))
        for r in range(block.shape[0]):
            block[r] = np.bincount(rng.integers(0, k, size=k), minlength=k)
        yield block


def plan_for(owner: Declares, records: Sequence[Mapping[str, Any]], clusters: Sequence[np.ndarray] | None = None) -> Plan:
    """``owner``'s declared metrics over ``records``, with clusters as :func:`cluster_indices`
    defines them (or ``clusters``: record indices per cluster)."""
    clusters = cluster_indices(records) if clusters is None else clusters
    table = owner.table(records)
    return Plan(table, owner.metrics(table), cluster_codes(len(records), clusters)[table.source], len(clusters))


def aggregate_declared(owner: Declares, records: Sequence[Mapping[str, Any]]) -> dict[MetricKey, tuple[float, int]]:
    """Point estimate and n of every declared metric: what ``Probe.aggregate`` returns."""
    return plan_for(owner, records).point()


def cluster_support_declared(owner: Declares, records: Sequence[Mapping[str, Any]]) -> dict[MetricKey, int]:
    """How many clusters have n > 0 for each key when evaluated alone (see
    :func:`rai_audit.stats.bootstrap.cluster_support`), a block of clusters at a time."""
    clusters = cluster_indices(records)
    table = owner.table(records)
    decls = owner.metrics(table)
    rc = cluster_codes(len(records), clusters)[table.source]
    order = np.argsort(rc, kind="stable")
    bounds = np.searchsorted(rc[order], np.arange(len(clusters) + 1))
    support: np.ndarray | None = None
    keys: list[MetricKey] = []
    j = 0
    while j < len(clusters):
        end, rows = j, 0
        while end < len(clusters) and (end == j or (end - j + 1) * (rows + bounds[end + 1] - bounds[end]) <= CHUNK_ELEMENTS):
            rows += bounds[end + 1] - bounds[end]
            end += 1
        sel = order[bounds[j]:bounds[end]]
        plan = Plan(table.take(sel), decls, rc[sel] - j, end - j)
        _, n = plan.evaluate(np.eye(end - j))
        hits = (n > 0).sum(axis=0)
        support = hits if support is None else support + hits
        keys = plan.keys or []
        j = end
    if support is None:
        return {}
    return {key: int(s) for key, s in zip(keys, support) if s}
