"""The trend statistics of a trajectory (rai_audit/stats/trend.py) on hand-computed examples: the
OLS slope, the shared cluster resample, the bootstrap p-value and the alignment of items."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rai_audit.probe import DatasetInfo, Probe
from rai_audit.stats import ItemTable, Mean, Metric
from rai_audit.stats.table import valid_rows
from rai_audit.stats.trend import SharedResample, align_points, bootstrap_pvalue, fit_trends, ols_slope, ols_weights


class Score(Probe):
    """Declared metric: the mean of ``y`` (the vectorised path)."""

    name = "trend_score"

    def load(self):
        return DatasetInfo(name="trend_score", source="memory"), []

    def requests(self, item):
        return []

    def record(self, item, responses, scores, scorer):
        return {}

    def table(self, records):
        ok = valid_rows(records)
        return ItemTable(np.asarray(ok, dtype=np.int64), {"y": [records[i]["y"] for i in ok]})

    def metrics(self, table):
        return [Metric("score", Mean("y"))]


def generic_mean(records):
    """The same metric as an aggregate-only callable (the generic path)."""
    ys = [r["y"] for r in records]
    return {("score", ""): (float(np.mean(ys)) if ys else math.nan, len(ys))}


# 3 points x 4 items; x is unevenly spaced. Point means: 0.5, 0.75, 0.75.
X = (0.0, 2.0, 6.0)
Y = ((0.0, 1.0, 0.0, 1.0), (1.0, 1.0, 0.0, 1.0), (1.0, 1.0, 1.0, 0.0))
KEY = ("score", "")


def points(y=Y):
    return [[{"item_id": f"i{j}", "cluster": None, "y": v} for j, v in enumerate(row)] for row in y]


def test_the_slope_is_the_hand_computed_one():
    # mean x = 8/3, dx = (-8/3, -2/3, 10/3), Sxx = 56/3; mean y = 2/3, dy = (-1/6, 1/12, 1/12);
    # sum dx*dy = 4/9 - 1/18 + 5/18 = 2/3; slope = (2/3) / (56/3) = 1/28.
    fit = fit_trends(Score().aggregate, points(), X, [KEY], n_boot=2000, seed=3)[KEY]
    assert fit.slope == pytest.approx(1 / 28, rel=1e-12)
    assert fit.values == pytest.approx((0.5, 0.75, 0.75))
    assert fit.ci_low is not None and fit.ci_low <= 1 / 28 <= fit.ci_high
    assert fit.n_clusters == 4 and fit.n_draws > 1000
    assert 0 < fit.p_value <= 1


def test_one_resample_is_shared_by_every_point():
    """A draw picks the clusters once (rng.integers(0, k, size=k)) and applies the same counts to
    every point: recompute draw 0 by hand."""
    seed = 11
    picks = np.random.default_rng(seed).integers(0, 4, size=4)
    by_hand = [np.mean([Y[p][j] for j in picks]) for p in range(3)]
    draws = SharedResample(Score().aggregate, points()).draws(5, seed, [KEY])
    assert draws.shape == (5, 3, 1)
    assert draws[0, :, 0] == pytest.approx(by_hand)
    slope0 = ols_slope(X, draws[0, :, 0])
    assert slope0 == pytest.approx(float(np.polyfit(X, by_hand, 1)[0]))


def test_declared_and_generic_paths_draw_the_same_resamples():
    declared = fit_trends(Score().aggregate, points(), X, [KEY], n_boot=300, seed=5)[KEY]
    generic = fit_trends(generic_mean, points(), X, [KEY], n_boot=300, seed=5)[KEY]
    assert declared.slope == pytest.approx(generic.slope, rel=1e-12)
    assert declared.ci_low == pytest.approx(generic.ci_low) and declared.ci_high == pytest.approx(generic.ci_high)
    assert declared.p_value == pytest.approx(generic.p_value)


def test_clusters_are_resampled_whole():
    """Two items per cluster: a resample draws both or neither (draw values are multiples of 1/2)."""
    pts = [[{"item_id": f"i{j}", "cluster": f"c{j // 2}", "y": float(j % 2)} for j in range(4)] for _ in range(2)]
    draws = SharedResample(generic_mean, pts).draws(50, 0, [KEY])
    assert np.allclose(draws, 0.5)  # each cluster holds a 0 and a 1


def test_a_flat_series_has_slope_exactly_zero_and_no_worsening_ci():
    flat = (((0.1, 0.7, 0.3, 0.9),) * 3)
    fit = fit_trends(Score().aggregate, points(flat), X, [KEY], n_boot=200, seed=0)[KEY]
    assert fit.slope == 0.0 and fit.ci_low == 0.0 and fit.ci_high == 0.0 and fit.p_value == 1.0


def test_ols_helpers():
    assert ols_slope([0, 1, 2], np.array([1.0, 3.0, 5.0])) == pytest.approx(2.0)
    assert math.isnan(ols_slope([4, 4, 4], np.array([1.0, 2.0, 3.0])))
    assert ols_weights([1]) is None
    assert math.isnan(ols_slope([0, 1], np.array([1.0, math.nan])))


def test_bootstrap_pvalue_inverts_the_percentile_interval():
    assert bootstrap_pvalue(np.ones(999)) == pytest.approx(2 / 1000)  # every draw above 0
    assert bootstrap_pvalue(-np.ones(99)) == pytest.approx(2 / 100)
    assert bootstrap_pvalue(np.zeros(10)) == 1.0
    d = np.r_[-np.ones(30), np.ones(70)]  # 30 of 100 at or below 0: p = 2 * 31 / 101
    assert bootstrap_pvalue(d) == pytest.approx(62 / 101)
    assert bootstrap_pvalue(np.array([math.nan])) is None


def test_align_points_drops_items_that_error_anywhere():
    pts = points()
    pts[1][2] = {"item_id": "i2", "cluster": None, "error": "scorer timed out"}
    pts[2] = list(reversed(pts[2]))  # another order at another point
    pts[0].append({"item_id": "extra", "cluster": None, "y": 1.0})
    aligned = align_points(pts)
    assert aligned.item_ids == ["i0", "i1", "i3"]
    assert aligned.errored == ["i2"] and aligned.missing == ["extra"]
    assert [[r["y"] for r in recs] for recs in aligned.records] == [[0.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]


def test_too_few_clusters_or_points_give_no_ci():
    one = [[{"item_id": "i0", "cluster": None, "y": v}] for v in (0.0, 1.0, 1.0)]
    fit = fit_trends(generic_mean, one, X, [KEY], n_boot=100)[KEY]
    assert fit.slope == pytest.approx(float(np.polyfit(X, [0, 1, 1], 1)[0])) and fit.ci_low is None and fit.p_value is None
    fit = fit_trends(generic_mean, points()[:1], X[:1], [KEY], n_boot=100)[KEY]
    assert math.isnan(fit.slope) and fit.ci_low is None
