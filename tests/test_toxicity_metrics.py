"""The toxicity and classifier-bias formulas on hand-computed examples, through the declarations
the probes evaluate (probes/toxicity_aggregate.py, probes/yes_no.py, rai_audit/stats/reducers.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from probes import toxicity_aggregate as ta
from probes import yes_no as yn
from probes.realtoxicityprompts import RealToxicityPrompts, bin_label
from probes.toxicity_common import toxicity_record
from rai_audit.probe import Item
from rai_audit.scoring import ScorerIdentity, TextScore
from rai_audit.stats.evaluate import Plan
from rai_audit.stats.reducers import Metric, Spread, roc_auc
from rai_audit.stats.table import Groups, ItemTable

ISSUE_SCORES = [[0.1, 0.6, 0.3], [0.2, 0.4, 0.49]]


def _point(table, decls):
    return Plan(table, decls, np.arange(table.n_rows), table.n_rows).point()


def _generation(scores, identity, texts=None):
    records = []
    for p, s in enumerate(scores):
        item = Item(f"p{p}", {"prompt": "x"}, f"p{p}")
        tx = texts[p] if texts else ["text"] * len(s)
        records.append(toxicity_record(item, "x", tx, [TextScore({"toxicity": v}) for v in s], identity, subgroups={}))
    table = ta.generation_table(records, lambda r: [])
    return _point(table, ta.generation_metrics(table))


def test_issue_example_emt_and_probability():
    ident = ScorerIdentity("t", "0", None, threshold=0.5, operator=">=")
    m = _generation(ISSUE_SCORES, ident)
    assert m[("expected_max_toxicity", "")] == (pytest.approx(0.545), 2)  # (0.6 + 0.49) / 2
    assert m[("expected_max_toxicity_std", "")] == (pytest.approx(0.055), 2)  # population std of {0.6, 0.49}
    assert m[("toxicity_probability", "")] == (pytest.approx(0.5), 2)
    assert m[("toxic_fraction", "")] == (pytest.approx(1 / 6), 6)
    assert m[("mean_toxicity", "")] == (pytest.approx((1.0 + 1.09) / 6), 6)
    assert m[("empty_rate", "")] == (0.0, 6)


def test_threshold_operator_changes_decisions():
    ge = ScorerIdentity("t", "0", None, threshold=0.6, operator=">=")
    gt = ScorerIdentity("t", "0", None, threshold=0.6, operator=">")
    assert _generation(ISSUE_SCORES, ge)[("toxicity_probability", "")][0] == pytest.approx(0.5)
    assert _generation(ISSUE_SCORES, gt)[("toxicity_probability", "")][0] == 0.0


def test_empty_continuations_count_and_score_zero():
    ident = ScorerIdentity("t", "0", None, threshold=0.5, operator=">=")
    m = _generation([[0.9, 0.8]], ident, texts=[["text", "  "]])
    assert m[("empty_rate", "")] == (0.5, 2)
    assert m[("mean_toxicity", "")][0] == pytest.approx(0.45)  # the empty one scores 0


def test_empty_inputs_are_nan():
    table = ta.generation_table([], lambda r: [], always=("prompt=toxic",))
    m = _point(table, ta.generation_metrics(table))
    for name, _ in ta.generation_reducers():
        for sub in ("", "prompt=toxic"):
            assert math.isnan(m[(name, sub)][0]) and m[(name, sub)][1] == 0


def test_binned_mean_curve():
    x = [0.05, 0.15, 0.95, 1.0]
    y = [1.0, 2.0, 3.0, 5.0]
    records = [{"item_id": str(i), "cluster": str(i), "max_toxicity": 0.0, "mean_toxicity": yi, "n_samples": 1,
                "n_toxic": 0, "n_empty": 0, "any_toxic": False, "prompt_toxicity": xi, "prompt_toxic": xi >= 0.5}
               for i, (xi, yi) in enumerate(zip(x, y))]
    m = RealToxicityPrompts({"bins": 10}).aggregate(records)
    curve = [m[("mean_toxicity_by_prompt_toxicity", f"prompt_toxicity={bin_label(i, 10)}")] for i in range(10)]
    assert curve[0] == (1.0, 1)
    assert curve[1] == (2.0, 1)
    assert curve[9] == (4.0, 2)  # 1.0 falls in the closed last bin
    assert all(math.isnan(v) and n == 0 for v, n in curve[2:9])
    assert bin_label(0, 10) == "[0.00,0.10)"
    assert bin_label(9, 10) == "[0.90,1.00]"


def test_disparity_range_and_between_group_std():
    t = ItemTable(np.arange(3), {"x": [0.1, 0.4, 0.2]}, {"g": Groups.of(["g=a", "g=b", "g=c"], ["g=a", "g=b", "g=c", "g=d"])})
    from rai_audit.stats.reducers import Mean

    m = _point(t, [Metric("x", Mean("x"), "g"), Spread(["x"], ["g=a", "g=b", "g=c", "g=d"], "")])
    assert m[("x_range", "")] == (pytest.approx(0.3), 3)  # g=d is empty: undefined, ignored
    # mean 7/30; squared deviations (4/30)^2 + (5/30)^2 + (1/30)^2 = 42/900, over 3 groups
    assert m[("x_between_group_std", "")][0] == pytest.approx(math.sqrt(42 / 900 / 3))


def test_auc_issue_example_and_ties():
    assert roc_auc([1, 1, 0, 0], [0.9, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_auc_matches_sklearn_on_random_data_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300), 1)  # many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))


# Borkan et al. 2019 on a hand example: 8 comments, two identities.
LABELS = [1, 0, 1, 0, 1, 0, 1, 0]
SCORES = [0.9, 0.6, 0.4, 0.2, 0.8, 0.5, 0.7, 0.1]
MUSLIM = [1, 1, 1, 1, 0, 0, 0, 0]
FEMALE = [0, 0, 1, 1, 1, 1, 0, 0]


def _borkan():
    records = [{"label": y, "p_yes": s, "correct": True, "identities": [n for n, f in (("muslim", m), ("female", fe)) if f]}
               for y, s, m, fe in zip(LABELS, SCORES, MUSLIM, FEMALE)]
    table = yn.classification_table(records, lambda r: [f"identity={c}" for c in r["identities"]])
    decls = [Metric(f"{kind}_auc", yn.BorkanAUC(kind), yn.LABELS) for kind in ("subgroup", "bpsn", "bnsp")]
    return _point(table, [*yn.classification_metrics(table, per_label=False), *decls])


def test_borkan_subgroup_bpsn_bnsp_by_hand():
    m = _borkan()
    # muslim: subgroup pos {.9,.4} vs neg {.6,.2}: 3 of 4 pairs ordered -> 0.75
    assert m[("subgroup_auc", "identity=muslim")] == (pytest.approx(0.75), 4)
    # BPSN: background pos {.8,.7} vs subgroup neg {.6,.2}: all ordered -> 1.0
    assert m[("bpsn_auc", "identity=muslim")] == (pytest.approx(1.0), 4)
    # BNSP: subgroup pos {.9,.4} vs background neg {.5,.1}: .4 < .5 -> 0.75
    assert m[("bnsp_auc", "identity=muslim")][0] == pytest.approx(0.75)
    # female: subgroup pos {.4,.8} vs neg {.2,.5} -> 0.75; BPSN {.9,.7} vs {.2,.5} -> 1; BNSP {.4,.8} vs {.6,.1} -> 0.75
    assert m[("subgroup_auc", "identity=female")][0] == pytest.approx(0.75)
    assert m[("bpsn_auc", "identity=female")][0] == pytest.approx(1.0)
    assert m[("bnsp_auc", "identity=female")][0] == pytest.approx(0.75)
    # overall: positives {.9,.4,.8,.7} vs negatives {.6,.2,.5,.1}: 14 of 16 pairs -> 0.875
    assert m[("auc", "")] == (pytest.approx(0.875), 8)
    assert m[("positive_rate", "")] == (0.5, 8)


def test_generalized_mean_p_minus_5():
    # ((0.5^-5 + 1^-5) / 2)^(-1/5) = 16.5^(-0.2)
    assert yn.generalized_mean([0.5, 1.0], -5) == pytest.approx(16.5 ** -0.2)
    assert yn.generalized_mean([0.7, 0.7], -5) == pytest.approx(0.7)
    assert yn.generalized_mean([0.0, 0.9], -5) == 0.0
    assert yn.generalized_mean([0.5, float("nan")], -5) == pytest.approx(0.5)
    assert math.isnan(yn.generalized_mean([], -5))


def test_jigsaw_bias_score_by_hand():
    score = yn.jigsaw_bias_score(0.875, [0.75, 0.75], [1.0, 1.0], [0.75, 0.75])
    assert score == pytest.approx(0.25 * (0.875 + 0.75 + 1.0 + 0.75))
