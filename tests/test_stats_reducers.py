"""The declared-metric engine (rai_audit/stats/table.py, reducers.py, evaluate.py) on hand-computed
examples, and its vectorised bootstrap / paired test / cluster support against the generic path
(``aggregate`` re-run on every resample's records) on the same seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rai_audit.stats.bootstrap import bootstrap_metrics, cluster_support
from rai_audit.stats.evaluate import Plan, declared
from rai_audit.stats.paired import paired_bootstrap_aggregate
from rai_audit.stats.reducers import (
    AUC,
    Custom,
    Derived,
    Mean,
    Metric,
    Rate,
    RatioOfSums,
    Spread,
    Std,
    grouped,
    roc_auc,
    spread,
)
from rai_audit.stats.table import Groups, ItemTable, valid_rows


def _table(**numbers):
    n = len(next(iter(numbers.values())))
    return ItemTable(np.arange(n), numbers)


def _eval(table, decls, weights):
    """Evaluate with one cluster per row and the given row weights (one resample)."""
    plan = Plan(table, decls, np.arange(table.n_rows), table.n_rows)
    v, n = plan.evaluate(np.asarray(weights, dtype=float).reshape(1, -1))
    return {key: (v[0, j], n[0, j]) for j, key in enumerate(plan.keys)}


def test_weighted_mean_rate_ratio_and_std_by_hand():
    t = _table(x=[1.0, 2.0, 4.0], flag=[1, 0, 1], num=[1.0, 3.0, 5.0], den=[2.0, 2.0, 4.0])
    out = _eval(t, [Metric("mean", Mean("x")), Metric("rate", Rate("flag")), Metric("ratio", RatioOfSums("num", "den")),
                    Metric("std", Std("x")), Metric("mean_where", Mean("x", where="flag"))], [1, 0, 2])
    assert out[("mean", "")] == (pytest.approx((1 + 8) / 3), 3)
    assert out[("rate", "")] == (pytest.approx(1.0), 3)
    assert out[("ratio", "")] == (pytest.approx((1 + 10) / (2 + 8)), 10)
    # population std of {1, 4, 4}: mean 3, squared deviations 4 + 1 + 1 -> sqrt(2)
    assert out[("std", "")][0] == pytest.approx(math.sqrt(2))
    assert out[("mean_where", "")] == (pytest.approx(3.0), 3)


def test_weights_equal_duplicated_rows():
    rng = np.random.default_rng(3)
    x = rng.random(7)
    y = (rng.random(7) > 0.5).astype(float)
    g = Groups.of(["g=a", "g=b", "g=a", None, "g=b", "g=b", "g=a"])
    w = np.array([2, 0, 1, 3, 1, 0, 2])
    decls = [*grouped([("mean", Mean("x")), ("std", Std("x")), ("auc", AUC("x", "y"))], None),
             *grouped([("mean", Mean("x")), ("ratio", RatioOfSums("x", "y"))], ItemTable(np.arange(7), {}, {"g": g}), "g")]
    weighted = _eval(ItemTable(np.arange(7), {"x": x, "y": y}, {"g": g}), decls, w)
    rows = np.repeat(np.arange(7), w)
    dup = _eval(ItemTable(np.arange(len(rows)), {"x": x[rows], "y": y[rows]}, {"g": g.take(rows)}), decls, np.ones(len(rows)))
    assert weighted.keys() == dup.keys()
    for key in weighted:
        assert weighted[key][1] == dup[key][1]
        assert weighted[key][0] == pytest.approx(dup[key][0], rel=1e-12, nan_ok=True), key


def test_auc_with_ties_by_hand_and_against_sklearn():
    assert roc_auc([1, 1, 0, 0], [0.9, 0.4, 0.4, 0.1]) == 0.875  # the tie counts one half: 3.5 / 4
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300), 1)  # many ties
    w = rng.integers(0, 4, 300).astype(float)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert roc_auc(y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), rel=1e-12)
    # exact: the rank formula on duplicated rows gives the same bits
    rows = np.repeat(np.arange(300), w.astype(int))
    assert roc_auc(y, s, w) == roc_auc(y[rows], s[rows])


def test_grouped_subgroups_keys_order_and_nan_when_undefined():
    cat = Groups.of(["category=A", "category=B", "category=A"], names=["category=A", "category=B", "category=C"])
    ctx = Groups.of(["context=x", "context=x", "context=y"], names=["context=x", "context=y"])
    t = ItemTable(np.arange(3), {"correct": [1, 0, 1], "label": [1, 0, 0], "s": [0.9, 0.2, 0.3]},
                  {"category": cat, "cell": cat.cross(ctx)})
    decls = grouped([("accuracy", Mean("correct")), ("auc", AUC("s", "label"))], t, "category")
    decls.append(Metric("accuracy", Mean("correct"), "cell"))
    out = _eval(t, decls, [1, 1, 1])
    assert list(out)[:6] == [("accuracy", "category=A"), ("auc", "category=A"), ("accuracy", "category=B"),
                             ("auc", "category=B"), ("accuracy", "category=C"), ("auc", "category=C")]
    assert out[("accuracy", "category=A")] == (1.0, 2)
    assert out[("auc", "category=A")][0] == 1.0  # positive 0.9 above negative 0.3
    assert math.isnan(out[("auc", "category=B")][0])  # one class only
    assert math.isnan(out[("accuracy", "category=C")][0]) and out[("accuracy", "category=C")][1] == 0
    assert out[("accuracy", "category=A,context=y")] == (1.0, 1)
    assert math.isnan(out[("accuracy", "category=B,context=y")][0])


def test_spread_custom_and_derived_by_hand():
    rng, sd, n = spread(np.array([[0.1, 0.4, 0.2, np.nan], [np.nan] * 4]))
    assert rng[0] == pytest.approx(0.3) and n[0] == 3
    # mean 7/30; squared deviations (4/30)^2 + (5/30)^2 + (1/30)^2 = 42/900, over 3 groups
    assert sd[0] == pytest.approx(math.sqrt(42 / 900 / 3))
    assert math.isnan(rng[1]) and math.isnan(sd[1]) and n[1] == 0
    g = Groups.of(["g=a", "g=b", "g=c", "g=c"])
    t = ItemTable(np.arange(4), {"x": [0.1, 0.4, 0.2, 0.2]}, {"g": g})
    twice = Custom("twice_sum", lambda s: (2 * s["x"], s["1"]), ("x", "1"))
    decls = [Metric("mean", Mean("x"), "g"), Metric("twice", twice, "g", ("g=c",)),
             Spread(["mean"], ["g=a", "g=b", "g=c"], ""),
             Derived(lambda r, t: {("b_minus_a", ""): (r.value(("mean", "g=b")) - r.value(("mean", "g=a")), r.count(("mean", "g=b")))})]
    out = _eval(t, decls, [1, 1, 1, 1])
    assert out[("twice", "g=c")] == (pytest.approx(0.8), 2)
    assert out[("mean_range", "")] == (pytest.approx(0.3), 3)
    assert out[("b_minus_a", "")] == (pytest.approx(0.3), 1)
    assert list(out)[-3:] == [("mean_range", ""), ("mean_between_group_std", ""), ("b_minus_a", "")]


# ----------------------------------------------------------------------------- vectorised vs generic


class _Toy:
    """A declared probe in miniature: mean, ratio and AUC by group, plus a derived difference."""

    from rai_audit.probe import Probe as _P

    aggregate = _P.aggregate

    def table(self, records):
        ok = valid_rows(records)
        rs = [records[i] for i in ok]
        return ItemTable(np.asarray(ok), {"x": [r["x"] for r in rs], "y": [r["y"] for r in rs], "n": [r["n"] for r in rs]},
                         {"g": Groups.of([f"g={r['g']}" for r in rs])})

    def metrics(self, table):
        block = [("mean", Mean("x")), ("ratio", RatioOfSums("y", "n")), ("auc", AUC("x", "y"))]
        labels = table.groups["g"].names
        return [*grouped(block, table), *grouped(block, table, "g"),
                Derived(lambda r, t: {("diff", ""): (r.value(("mean", "g=b")) - r.value(("mean", "g=a")),
                                                     r.count(("mean", "g=a")) + r.count(("mean", "g=b")))}),
                Spread(["mean"], labels, "")]


def _records(n, seed, clusters=7):
    rng = np.random.default_rng(seed)
    return [{"item_id": f"i{i}", "cluster": f"c{i % clusters}", "x": float(rng.random()), "y": float(rng.integers(0, 2)),
             "n": 1.0, "g": "ab"[int(rng.integers(0, 2))], **({"error": "boom"} if i == 5 else {})} for i in range(n)]


def _close(a, b):
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_bootstrap_vectorised_equals_generic():
    toy = _Toy()
    recs = _records(40, 1)
    assert declared(toy.aggregate) is toy and declared(lambda r: toy.aggregate(r)) is None
    fast = bootstrap_metrics(recs, toy.aggregate, n_boot=300, seed=4)
    slow = bootstrap_metrics(recs, lambda r: toy.aggregate(r), n_boot=300, seed=4)
    assert list(fast) == list(slow)
    for key in fast:
        assert fast[key][1] == slow[key][1]
        assert all(_close(a, b) for a, b in zip(fast[key][::2] + fast[key][3:], slow[key][::2] + slow[key][3:])), key


@pytest.mark.parametrize("test", ["permutation", "wald"])
def test_paired_vectorised_equals_generic(test):
    toy = _Toy()
    a, b = _records(40, 1), _records(40, 2)
    for x, y in zip(a, b):
        y["item_id"], y["cluster"], y["g"] = x["item_id"], x["cluster"], x["g"]
    fast = paired_bootstrap_aggregate(a, b, toy.aggregate, n_boot=200, n_perm=300, seed=5, test=test)
    slow = paired_bootstrap_aggregate(a, b, lambda r: toy.aggregate(r), n_boot=200, n_perm=300, seed=5, test=test)
    assert list(fast) == list(slow)
    for key in fast:
        f, s = fast[key], slow[key]
        assert (f.n, f.n_b, f.method, f.extra.get("normal_tail")) == (s.n, s.n_b, s.method, s.extra.get("normal_tail")), key
        for name in ("value_a", "value_b", "diff", "ci_low", "ci_high", "p_value", "se"):
            assert _close(getattr(f, name), getattr(s, name)), (key, name)


def test_paired_exact_permutation_vectorised_equals_generic():
    toy = _Toy()
    a, b = _records(16, 1, clusters=5), _records(16, 2, clusters=5)
    for x, y in zip(a, b):
        y["item_id"], y["cluster"], y["g"] = x["item_id"], x["cluster"], x["g"]
    fast = paired_bootstrap_aggregate(a, b, toy.aggregate, n_boot=50, seed=0, test="permutation")
    slow = paired_bootstrap_aggregate(a, b, lambda r: toy.aggregate(r), n_boot=50, seed=0, test="permutation")
    assert fast[("mean", "")].extra["exact_permutation"]
    for key in fast:
        assert _close(fast[key].p_value, slow[key].p_value), key


def test_cluster_support_vectorised_equals_generic():
    toy = _Toy()
    recs = _records(40, 3)
    assert cluster_support(recs, toy.aggregate) == cluster_support(recs, lambda r: toy.aggregate(r))
