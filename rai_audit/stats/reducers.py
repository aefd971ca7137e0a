"""Metric declarations: what a probe computes from its :class:`~rai_audit.stats.table.ItemTable`.

A probe declares a list of :class:`Metric` (a name, a :class:`Reducer`, and the subgroups it is
reported for) and :class:`Derived` metrics (computed from other metrics' values: differences,
spreads across groups, correlations). Reducers work on *weighted* rows: a weight is how many
times a resample draws the row's record (1 for the point estimate), so the bootstrap, the paired
permutation test and the point estimate are one computation (:mod:`rai_audit.stats.evaluate`),
for many weightings at once. A weight of 2 is exactly the same as the row appearing twice.

Reducers (every value is NaN where it is undefined, e.g. an empty subgroup):

* :class:`Mean` ``sum(w x) / sum(w)`` over the subgroup's rows (optionally those where a 0/1
  column ``where`` is 1); n = ``sum(w)``. :class:`Rate` is the same for a 0/1 column.
* :class:`RatioOfSums` ``sum(w num) / sum(w den)``; n = ``sum(w den)`` (or another column's sum).
* :class:`Std` the population standard deviation ``sqrt(max(sum(w x^2)/P - mean^2, 0))`` with
  mean = ``sum(w x)/P``, P = ``sum(w)`` (or the sum of a 0/1 ``count`` column); n = P.
* :class:`AUC` ROC AUC of a score against a 0/1 label: the Mann-Whitney statistic, ties counting
  one half, with every pair weighted by the product of its rows' weights; n = ``sum(w)``.
* :class:`Custom` any function of weighted column sums (a named formula such as BBQ's bias score).
* A subclass of :class:`Reducer` for anything else that needs the row weights themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rai_audit.stats.table import ItemTable

MetricKey = tuple[str, str]  # (metric name, subgroup label; "" for overall)
Values = tuple[np.ndarray, np.ndarray]  # (values, n), each (resamples,) or (resamples, subgroups)
NAN = float("nan")


class RowWeights:
    """What a reducer sees besides its sums: the table, the subgroup masks it is evaluated on
    (rows x subgroups) and, computed on first use, the weight of every row (resamples x rows)."""

    def __init__(self, table: ItemTable, masks: np.ndarray, weights: Callable[[], np.ndarray]):
        self.table = table
        self.masks = masks
        self._weights = weights

    @property
    def weights(self) -> np.ndarray:
        return self._weights()


class Reducer(ABC):
    """How one metric reduces a subgroup's weighted rows to a value and an n."""

    #: ItemTable column expressions whose weighted sums over each subgroup :meth:`reduce` needs
    #: (``"1"`` is the weighted row count, ``"a*b"`` a product of columns).
    columns: tuple[str, ...] = ()

    @abstractmethod
    def reduce(self, sums: Mapping[str, np.ndarray], rows: RowWeights) -> Values:
        """(values, n), each (resamples, subgroups), from ``sums[c]`` (resamples, subgroups)."""


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, NAN)
    np.divide(num, den, out=out, where=den != 0)
    return out


@dataclass(frozen=True)
class Mean(Reducer):
    column: str
    where: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        w = self.where or "1"
        return (w, self.column if w == "1" else f"{self.column}*{w}")

    def reduce(self, sums, rows):
        den, num = (sums[c] for c in self.columns)
        return _ratio(num, den), den


@dataclass(frozen=True)
class Rate(Mean):
    """The share of rows (weighted) whose 0/1 column is 1."""


@dataclass(frozen=True)
class RatioOfSums(Reducer):
    num: str
    den: str
    count: str | None = None  # the column whose sum is n (default: ``den``)

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.num, self.den, self.count or self.den)

    def reduce(self, sums, rows):
        return _ratio(sums[self.num], sums[self.den]), sums[self.count or self.den]


@dataclass(frozen=True)
class Std(Reducer):
    column: str
    count: str = "1"  # the column whose sum is P (a 0/1 column: only the rows where it is 1 count)

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.count, self.column, f"{self.column}*{self.column}")

    def reduce(self, sums, rows):
        p, s, q = (sums[c] for c in self.columns)
        mean = _ratio(s, p)
        var = np.maximum(_ratio(q, p) - mean * mean, 0.0)
        return np.where(p != 0, np.sqrt(var), NAN), p


@dataclass(frozen=True)
class AUC(Reducer):
    score: str
    label: str
    columns = ("1",)

    def reduce(self, sums, rows):
        t = rows.table
        return weighted_auc(t.column(self.score), t.column(self.label) > 0.5, rows.masks, rows.weights), sums["1"]


@dataclass(frozen=True, eq=False)
class Custom(Reducer):
    """A named formula of weighted column sums: ``fn({column: sums})`` returns (values, n)."""

    name: str
    fn: Callable[[Mapping[str, np.ndarray]], Values]
    columns: tuple[str, ...] = ()

    def reduce(self, sums, rows):
        return self.fn(sums)


def weighted_auc(score: np.ndarray, label: np.ndarray, keep: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of ``score`` against the bool ``label`` over the rows of each column of ``keep``
    (rows x subgroups), for each row of ``weights`` (resamples x rows): sum over (positive,
    negative) pairs of w_pos * w_neg * (1 if s_pos > s_neg, 1/2 if equal) / (W_pos * W_neg).
    NaN unless both classes have weight. With integer weights every partial sum is exact, so the
    value equals the rank (Mann-Whitney) formula on the duplicated rows to the last bit."""
    keep = keep[:, None] if keep.ndim == 1 else keep
    out = np.full((weights.shape[0], keep.shape[1]), NAN)
    for g in range(keep.shape[1]):
        idx = np.flatnonzero(keep[:, g])
        if idx.size == 0:
            continue
        order = np.argsort(score[idx], kind="mergesort")
        rows = idx[order]
        s, y = score[rows], label[rows]
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        w = weights[:, rows]
        neg = np.add.reduceat(np.where(y, 0.0, w), starts, axis=1)
        pos = np.add.reduceat(np.where(y, w, 0.0), starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        u = np.sum(pos * (below + 0.5 * neg), axis=1)
        denom = pos.sum(axis=1) * neg.sum(axis=1)
        out[:, g] = _ratio(u, denom)
    return out


def roc_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
            weights: Sequence[float] | np.ndarray | None = None) -> float:
    """ROC AUC = P(score of a random positive > score of a random negative), ties one half
    (Mann-Whitney U / (n_pos * n_neg)); NaN unless both classes occur. ``weights`` count rows."""
    s = np.asarray(scores, dtype=float)
    w = np.ones((1, s.size)) if weights is None else np.asarray(weights, dtype=float).reshape(1, -1)
    return float(weighted_auc(s, np.asarray(labels, dtype=bool), np.ones((s.size, 1), dtype=bool), w)[0, 0])


# ----------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Metric:
    """``reducer`` reported as ``name`` overall (``by`` None, subgroup "") or for the labels of the
    table's group ``by`` (all of them in the group's order, or ``labels``)."""

    name: str
    reducer: Reducer
    by: str | None = None
    labels: tuple[str, ...] | None = None

    def subgroups(self, table: ItemTable) -> list[tuple[str | None, str]]:
        """(group, label) of each key, in order; (None, "") is the overall row."""
        if self.by is None:
            return [(None, "")]
        labels = self.labels if self.labels is not None else table.groups[self.by].names
        return [(self.by, lab) for lab in labels]


class Results(dict):
    """Metric values computed so far: key -> (values, n), each (resamples,)."""

    def __init__(self, size: int, *args: Any):
        super().__init__(*args)
        self.size = size

    def value(self, key: MetricKey) -> np.ndarray:
        return self[key][0] if key in self else np.full(self.size, NAN)

    def count(self, key: MetricKey) -> np.ndarray:
        return self[key][1] if key in self else np.zeros(self.size)


class Derived:
    """Metrics computed from other metrics' values, declared after those: ``fn(results, table)``
    returns {key: (values, n)} with arrays over resamples (:class:`Results`)."""

    def __init__(self, fn: Callable[[Results, ItemTable], Mapping[MetricKey, Values]], name: str = ""):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "derived")

    def compute(self, results: Results, table: ItemTable) -> Mapping[MetricKey, Values]:
        return self.fn(results, table)


def spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range (max - min), population std and count of the defined (non-NaN) values of each row of
    ``values`` (resamples x groups); NaN for a row without any."""
    ok = ~np.isnan(values)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        hi = np.where(ok, values, -np.inf).max(axis=1, initial=-np.inf)
        lo = np.where(ok, values, np.inf).min(axis=1, initial=np.inf)
        mean = np.where(ok, values, 0.0).sum(axis=1) / n
        dev = np.where(ok, values - mean[:, None], 0.0)
        std = np.sqrt((dev * dev).sum(axis=1) / n)
    rng = np.where(n > 0, hi - lo, NAN)
    return rng, np.where(n > 0, std, NAN), n.astype(float)


class Spread(Derived):
    """For each metric, its range and between-group population std over ``labels`` (undefined
    groups ignored), reported as ``<metric>_range`` / ``<metric>_between_group_std`` for
    ``subgroup``; n = the number of groups where the metric is defined."""

    def __init__(self, metrics: Sequence[str], labels: Sequence[str], subgroup: str):
        self.metrics, self.labels, self.subgroup = tuple(metrics), tuple(labels), subgroup
        super().__init__(self._compute, f"spread({subgroup})")

    def _compute(self, results: Results, table: ItemTable) -> dict[MetricKey, Values]:
        out: dict[MetricKey, Values] = {}
        for m in self.metrics:
            vals = np.stack([results.value((m, lab)) for lab in self.labels], axis=1) if self.labels \
                else np.full((results.size, 0), NAN)
            rng, sd, n = spread(vals)
            out[(f"{m}_range", self.subgroup)] = (rng, n)
            out[(f"{m}_between_group_std", self.subgroup)] = (sd, n)
        return out


Declaration = Metric | Derived


def grouped(metrics: Sequence[tuple[str, Reducer]], table: ItemTable, by: str | None = None,
            labels: Sequence[str] | None = None) -> list[Metric]:
    """Every metric for each subgroup of ``by`` (all its labels, or ``labels``), subgroup by
    subgroup, the order reports list them in; overall ("") when ``by`` is None."""
    if by is None:
        return [Metric(name, red) for name, red in metrics]
    labels = table.groups[by].names if labels is None else labels
    return [Metric(name, red, by, (lab,)) for lab in labels for name, red in metrics]
