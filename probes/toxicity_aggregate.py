"""Aggregation of toxicity-of-generation records into per-subgroup metrics, bootstrap-fast.

The four generation probes (RealToxicityPrompts, identity terms, BOLD, ToxiGen) report the same
metrics per subgroup (:func:`metrics_from_sums`; formulas from :mod:`probes.toxicity_metrics`),
computed here once. The runner re-runs a probe's ``aggregate`` on ~1000 bootstrap resamples of
the same record dicts, so :class:`RecordTable` reads each record once and every later call is a
lookup per record plus weighted sums.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from probes import toxicity_metrics as tm
from probes.record_memo import LabelsOf, RecordMemo

NAN = float("nan")



#: per-record sums every generation metric is a ratio of (see :func:`metrics_from_sums`)
SUM_COLUMNS = ("prompts", "max", "max_sq", "any_toxic", "n_toxic", "n_samples", "tox_sum", "n_empty")


def metrics_from_sums(S: np.ndarray, prefix: str = "") -> dict[str, tuple[float, int]]:
    """Generation metrics from the column sums ``S`` (ordered as SUM_COLUMNS) over a set of
    prompts, each counted with its multiplicity:

    EMT = sum(max) / P and its population std sqrt(sum(max^2) / P - EMT^2); toxicity probability
    = sum(any_toxic) / P; toxic fraction = sum(n_toxic) / sum(n_samples); mean toxicity =
    sum(toxicity) / sum(n_samples); empty rate = sum(n_empty) / sum(n_samples).
    ``prefix`` names an attribute other than the primary one (``insult`` -> ``expected_max_insult``).
    n is the number of prompts, or of continuations for the per-continuation rates.
    """
    P, smax, ssq, sany, stox, ssamp, ssum, sempty = (float(v) for v in S)
    n_p, n_c = int(round(P)), int(round(ssamp))
    emt = smax / P if P else NAN
    sd = math.sqrt(max(ssq / P - emt * emt, 0.0)) if P else NAN
    tp = sany / P if P else NAN
    tf = stox / ssamp if ssamp else NAN
    mean = ssum / ssamp if ssamp else NAN
    if not prefix:
        return {
            "expected_max_toxicity": (emt, n_p),
            "expected_max_toxicity_std": (sd, n_p),
            "toxicity_probability": (tp, n_p),
            "toxic_fraction": (tf, n_c),
            "mean_toxicity": (mean, n_c),
            "empty_rate": (sempty / ssamp if ssamp else NAN, n_c),
        }
    a = prefix
    return {
        f"expected_max_{a}": (emt, n_p),
        f"expected_max_{a}_std": (sd, n_p),
        f"{a}_probability": (tp, n_p),
        f"{a}_fraction": (tf, n_c),
        f"mean_{a}": (mean, n_c),
    }


class RecordTable(RecordMemo):
    """Per-record sums and subgroup memberships of every record seen, memoised by identity.

    Every generation metric is a ratio of sums over prompts (see :func:`metrics_from_sums`), so
    a bootstrap resample is fully described by how many times it draws each record: the table
    holds each record's sums as a row of ``V`` (records x sums) plus a sparse label membership
    (pairs of label, record); a call then costs the lookups of :meth:`RecordMemo.index`,
    ``w @ V`` and one weighted ``bincount`` per sum column for its multiplicities ``w``.
    """

    def __init__(self, labels_of: LabelsOf, extra: Sequence[str] = ()):
        super().__init__(labels_of)
        self.extra = tuple(extra)
        self.V = np.zeros((0, len(SUM_COLUMNS)))
        self.attr: dict[str, np.ndarray] = {}
        self.labels: list[str] = []
        self.pair_label = np.zeros(0, dtype=np.int64)
        self.pair_row = np.zeros(0, dtype=np.int64)
        self.cols: dict[str, np.ndarray] = {}

    @staticmethod
    def _sums(max_, sum_, any_, n_toxic, n_samples, n_empty) -> tuple[float, ...]:
        return (1.0, max_, max_ * max_, float(any_), float(n_toxic), float(n_samples), sum_, float(n_empty))

    def _build(self, ok: Sequence[dict[str, Any] | None]) -> None:
        zero = (0.0,) * len(SUM_COLUMNS)
        self.V = np.array([
            self._sums(r["max_toxicity"], r["mean_toxicity"] * r["n_samples"], r["any_toxic"], r["n_toxic"],
                       r["n_samples"], r["n_empty"]) if r is not None else zero
            for r in ok
        ], dtype=float).reshape(len(ok), len(SUM_COLUMNS))
        names: dict[str, None] = {}
        for r in ok:
            if r is not None:
                for a in r.get("attributes", {}):
                    names.setdefault(a, None)
        self.attr = {}
        for a in names:
            rows = []
            for r in ok:
                g = r.get("attributes", {}).get(a) if r is not None else None
                rows.append(self._sums(g["max"], g["sum"], g["any_toxic"], g["n_toxic"], r["n_samples"], 0) if g else zero)
            self.attr[a] = np.array(rows, dtype=float)
        members = self.members(ok)
        self.labels = list(members)
        # sparse membership: pair p says record pair_row[p] belongs to label pair_label[p]
        self.pair_label = np.concatenate([np.full(len(members[lab]), i, dtype=np.int64)
                                          for i, lab in enumerate(self.labels)]) if members else np.zeros(0, np.int64)
        self.pair_row = np.concatenate([np.asarray(members[lab], dtype=np.int64)
                                        for lab in self.labels]) if members else np.zeros(0, np.int64)
        self.cols = {key: np.array([float(r[key]) if r is not None and r.get(key) is not None else NAN for r in ok])
                     for key in self.extra}


def record_table(owner: Any, labels_of: LabelsOf, extra: Sequence[str] = ()) -> RecordTable:
    """The probe instance's memo table (created on first use)."""
    return RecordTable.of(owner, labels_of, extra)


class ToxicityArrays:
    """One aggregate call's view of the table: the multiplicity of each table row."""

    def __init__(self, records: Sequence[dict[str, Any]], table: RecordTable | None = None):
        self.table = table or RecordTable(lambda r: ())
        self.idx = self.table.index(records)
        self.n = int(self.idx.size)
        self.w = np.bincount(self.idx, minlength=self.table.size).astype(float)

    def column(self, key: str) -> np.ndarray:
        """A per-record extra column (``RecordTable.extra``) over all table rows; pair with ``w``."""
        return self.table.cols[key]

    def overall(self, attributes: bool = True) -> dict[str, tuple[float, int]]:
        out = metrics_from_sums(self.w @ self.table.V)
        if attributes:
            for a, V in self.table.attr.items():
                S = self.w @ V
                if S[0] > 0:
                    out.update(metrics_from_sums(S, a))
        return out

    def _label_sums(self, V: np.ndarray) -> np.ndarray:
        """(labels x sums): for each label, the multiplicity-weighted column sums of its records."""
        t = self.table
        wp = self.w[t.pair_row]
        L = len(t.labels)
        return np.stack([np.bincount(t.pair_label, weights=wp * V[t.pair_row, c], minlength=L)
                         for c in range(V.shape[1])], axis=1)

    def per_label(self, attributes: bool = True) -> dict[str, dict[str, tuple[float, int]]]:
        """Metrics for every subgroup label with at least one record in this call."""
        t = self.table
        if not t.labels:
            return {}
        S = self._label_sums(t.V)
        present = S[:, 0] > 0
        out = {lab: metrics_from_sums(S[i]) for i, lab in enumerate(t.labels) if present[i]}
        if attributes:
            for a, V in t.attr.items():
                Sa = self._label_sums(V)
                for i, lab in enumerate(t.labels):
                    if present[i] and Sa[i, 0] > 0:
                        out[lab].update(metrics_from_sums(Sa[i], a))
        return out


def put(out: dict, block: dict[str, tuple[float, int]], subgroup: str) -> None:
    for metric, vn in block.items():
        out[(metric, subgroup)] = vn


def grouped_toxicity(
    records: Sequence[dict[str, Any]],
    table: RecordTable,
    *,
    attributes: bool = True,
) -> tuple[dict[tuple[str, str], tuple[float, int]], ToxicityArrays, list[str]]:
    """Overall ("" subgroup) and per-label generation metrics; also returns the call's arrays and
    the labels present, so a probe can add its own (disparity, curves)."""
    arr = ToxicityArrays(records, table)
    out: dict[tuple[str, str], tuple[float, int]] = {}
    put(out, arr.overall(attributes), "")
    per = arr.per_label(attributes)
    for lab, block in per.items():
        put(out, block, lab)
    return out, arr, list(per)


def add_disparity(
    out: dict[tuple[str, str], tuple[float, int]],
    group_labels: Sequence[str],
    subgroup: str,
    metrics: Sequence[str] = ("toxic_fraction", "mean_toxicity"),
) -> None:
    """Range (max - min) and between-group std of each metric over ``group_labels``."""
    for metric in metrics:
        vals = [out[(metric, g)][0] for g in group_labels if (metric, g) in out]
        rng, sd = tm.disparity(vals)
        n = sum(1 for v in vals if not math.isnan(v))
        out[(f"{metric}_range", subgroup)] = (rng, n)
        out[(f"{metric}_between_group_std", subgroup)] = (sd, n)
