"""Paired tests and MDEs against hand-computed values, and bootstrap coverage on synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rai_audit.stats.paired import (
    mcnemar_exact,
    paired_binary,
    paired_bootstrap_aggregate,
    paired_continuous,
    permutations_for_family,
    sign_flip_pvalue,
)
from rai_audit.stats.power import (
    mcnemar_sample_size,
    mde_paired,
    mde_from_se,
    mde_paired_binary,
    mde_paired_continuous,
)


def test_mcnemar_exact_small_table():
    # b = 1 (A right, B wrong), c = 7: P(X <= 1 | Bin(8, 1/2)) = (1 + 8) / 256; two-sided doubles it.
    assert mcnemar_exact(1, 7) == pytest.approx(18 / 256)
    assert mcnemar_exact(7, 1) == pytest.approx(18 / 256)
    # b = 0, c = 5: 2 * (1/32) = 1/16.
    assert mcnemar_exact(0, 5) == pytest.approx(1 / 16)
    # symmetric table and no discordant pairs: no evidence at all.
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_paired_binary_difference_and_agresti_min_ci():
    # 2x2 table, n = 20: n11 = 5, n10 = 1 (A=1, B=0), n01 = 7 (A=0, B=1), n00 = 7.
    a = [1] * 5 + [1] * 1 + [0] * 7 + [0] * 7
    b = [1] * 5 + [0] * 1 + [1] * 7 + [0] * 7
    r = paired_binary(a, b)
    assert r.n == 20
    assert r.value_a == pytest.approx(6 / 20)
    assert r.value_b == pytest.approx(12 / 20)
    assert r.diff == pytest.approx(0.3)
    assert r.p_value == pytest.approx(18 / 256)
    # Agresti-Min by hand: n* = 22, p10* = 1.5/22, p01* = 7.5/22, d* = 6/22 = 0.272727;
    # var = (9/22 - (6/22)^2) / 22 = 0.0152141, se = 0.123345; d* -+ 1.959964 * se.
    assert r.ci_low == pytest.approx(0.030975, abs=1e-5)
    assert r.ci_high == pytest.approx(0.514479, abs=1e-5)
    assert r.extra["n10"] == 1 and r.extra["n01"] == 7


def test_paired_binary_rejects_non_binary_and_handles_empty():
    with pytest.raises(ValueError):
        paired_binary([0, 0.5], [1, 0])
    r = paired_binary([], [])
    assert r.n == 0 and r.p_value is None and math.isnan(r.diff)


def test_sign_flip_exact_enumeration():
    # d = [1, 2, 3]: mean 2; of the 8 sign patterns only +++ and --- reach |mean| >= 2.
    p = sign_flip_pvalue(np.array([1.0, 2.0, 3.0]), 3.0, n_perm=100, rng=np.random.default_rng(0))
    assert p == pytest.approx(2 / 8)


def test_paired_continuous_point_and_identical_runs():
    a = [0.1, 0.2, 0.3, 0.4]
    b = [0.2, 0.4, 0.3, 0.8]
    r = paired_continuous(a, b, n_boot=200, seed=1)
    assert r.diff == pytest.approx((0.1 + 0.2 + 0.0 + 0.4) / 4)
    assert r.ci_low <= r.diff <= r.ci_high
    same = paired_continuous(a, a, n_boot=200, seed=1)
    assert same.diff == 0.0 and same.ci_low == 0.0 and same.ci_high == 0.0 and same.p_value == 1.0


def test_paired_continuous_detects_shift_and_clusters_widen_ci():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, size=200)
    b = a + 0.5 + rng.normal(0, 0.5, size=200)
    r = paired_continuous(a, b, n_boot=500, seed=0)
    assert r.p_value < 0.01 and r.ci_low > 0.3 and r.ci_high < 0.7
    # 10 clusters with a shared cluster effect: the clustered CI must be wider than the naive one.
    clusters = np.repeat(np.arange(10), 20)
    shift = rng.normal(0, 1, size=10)[clusters]
    b2 = a + 0.2 + shift
    naive = paired_continuous(a, b2, n_boot=500, seed=0)
    clustered = paired_continuous(a, b2, clusters=clusters.tolist(), n_boot=500, seed=0)
    assert (clustered.ci_high - clustered.ci_low) > 2 * (naive.ci_high - naive.ci_low)


def test_paired_bootstrap_coverage_on_synthetic_data():
    """Repeated simulations with a known true difference: the 95% CI covers it about 95% of
    the time (binomial tolerance for 200 simulations: 0.95 +- 3.1 SE ~ [0.90, 0.99])."""
    true_diff = 0.3
    rng = np.random.default_rng(12345)
    covered = 0
    sims = 200
    for s in range(sims):
        a = rng.normal(0, 1, size=60)
        b = a + true_diff + rng.normal(0, 1, size=60)
        r = paired_continuous(a, b, n_boot=400, n_perm=1, seed=s)
        covered += r.ci_low <= true_diff <= r.ci_high
    assert 0.90 <= covered / sims <= 0.99


def _share_aggregate(records):
    """Toy ratio metric: share of stereotyped choices overall and per group, with n."""
    out = {}
    groups = {"": records}
    for r in records:
        groups.setdefault(r["subgroups"]["group"], []).append(r)
    for g, rs in groups.items():
        n = len(rs)
        out[("pct_stereotyped", g)] = (sum(r["outcomes"]["stereotyped"] for r in rs) / n if n else float("nan"), n)
    return out


def _rec(i, stereo, group, cluster=None):
    return {"item_id": f"i{i}", "cluster": cluster, "outcomes": {"stereotyped": float(stereo)}, "subgroups": {"group": group}}


def test_paired_bootstrap_aggregate_planted_difference():
    n = 60
    rng = np.random.default_rng(0)
    a = [_rec(i, rng.integers(0, 2), "x" if i % 2 else "y", cluster=f"t{i // 3}") for i in range(n)]
    b = [_rec(i, 1, "x" if i % 2 else "y", cluster=f"t{i // 3}") for i in range(n)]
    res = paired_bootstrap_aggregate(a, b, _share_aggregate, n_boot=200, n_perm=200, seed=0)
    overall = res[("pct_stereotyped", "")]
    share_a = sum(r["outcomes"]["stereotyped"] for r in a) / n
    assert overall.value_a == pytest.approx(share_a)
    assert overall.value_b == 1.0
    assert overall.diff == pytest.approx(1.0 - share_a)
    assert overall.ci_low > 0.2 and overall.p_value < 0.01
    assert set(res) == {("pct_stereotyped", ""), ("pct_stereotyped", "x"), ("pct_stereotyped", "y")}
    same = paired_bootstrap_aggregate(a, a, _share_aggregate, n_boot=50, n_perm=50, seed=0)
    assert all(v.diff == 0 and v.ci_low == 0 and v.ci_high == 0 and v.p_value == 1.0 for v in same.values())


def test_paired_bootstrap_aggregate_exact_permutation_small():
    # 3 items, each its own cluster; A all 0, B all 1: swapping patterns give |diff| = 1 only for
    # the identity and the full swap -> exact p = 2/8.
    a = [_rec(i, 0, "x") for i in range(3)]
    b = [_rec(i, 1, "x") for i in range(3)]
    res = paired_bootstrap_aggregate(a, b, _share_aggregate, n_boot=50, n_perm=100, seed=0)
    assert res[("pct_stereotyped", "")].p_value == pytest.approx(2 / 8)
    assert res[("pct_stereotyped", "")].extra["exact_permutation"]


def test_mde_continuous_and_se():
    # (1.959964 + 0.841621) * 1 / sqrt(100) = 0.2801585
    assert mde_paired_continuous(100, 1.0) == pytest.approx(0.2801585, abs=1e-6)
    assert mde_from_se(0.1) == pytest.approx(0.2801585, abs=1e-6)
    assert mde_from_se(None) is None and mde_paired_continuous(1, 1.0) is None


def test_mde_binary_connor_roundtrip_and_hand_value():
    # Connor (1987): psi = 0.2, delta = 0.1 -> n = (1.959964*sqrt(.2) + 0.841621*sqrt(.19))^2 / .01
    hand = (1.959964 * math.sqrt(0.2) + 0.841621 * math.sqrt(0.19)) ** 2 / 0.01
    assert mcnemar_sample_size(0.1, 0.2) == pytest.approx(hand, rel=1e-5)
    assert hand == pytest.approx(155.0, abs=0.5)
    d = mde_paired_binary(int(round(hand)), 0.2)
    assert d == pytest.approx(0.1, abs=0.002)
    assert mde_paired_binary(2, 0.2) is None  # even a complete flip needs > 2 pairs
    assert mde_paired_binary(1000, 0.2) < mde_paired_binary(100, 0.2)


def test_mde_paired_falls_back_to_unpaired_se_without_spread():
    z = 1.959964 + 0.841621
    assert mde_paired(0.1) == pytest.approx(z * 0.1, abs=1e-6)
    assert mde_paired(0.0, 0.03, 0.04) == pytest.approx(z * 0.05, abs=1e-6)  # sqrt(.03^2 + .04^2) = .05
    assert mde_paired(0.0, 0.0, 0.0) is None and mde_paired(None) is None


def test_aggregate_wald_test_and_auto_choice():
    rng = np.random.default_rng(0)
    a = [_rec(i, rng.integers(0, 2), "x", cluster=f"t{i // 3}") for i in range(60)]
    b = [_rec(i, 1, "x", cluster=f"t{i // 3}") for i in range(60)]
    wald = paired_bootstrap_aggregate(a, b, _share_aggregate, n_boot=300, seed=0, test="wald")[("pct_stereotyped", "")]
    assert wald.method.endswith("+wald") and wald.se > 0
    from scipy.stats import norm

    assert wald.p_value == pytest.approx(2 * norm.sf(abs(wald.diff) / wald.se))
    assert wald.p_value < 0.001
    same = paired_bootstrap_aggregate(a, a, _share_aggregate, n_boot=50, seed=0, test="wald")
    assert all(v.p_value == 1.0 for v in same.values())
    small = paired_bootstrap_aggregate(a, b, _share_aggregate, n_boot=50, seed=0)
    big = paired_bootstrap_aggregate(a, b, _share_aggregate, n_boot=50, seed=0, permutation_budget=10)
    assert "+permutation" in small[("pct_stereotyped", "")].method
    assert big[("pct_stereotyped", "")].method.endswith("+wald")


def test_permutation_count_lets_corrected_pvalues_reach_alpha():
    # min Monte Carlo p = 1/(n+1); times a family of 60 it must fall below 0.025: n >= 2400
    assert permutations_for_family(1000, 60) == 2400
    assert permutations_for_family(1000, 3) == 1000
    assert permutations_for_family(5000, 3) == 5000


def test_cluster_support_counts_clusters_per_key_by_hand():
    from rai_audit.stats.bootstrap import cluster_support

    def mean_by_group(records):
        out = {("m", ""): (float(np.mean([r["x"] for r in records])), len(records))}
        for g in sorted({r["g"] for r in records}):
            sub = [r["x"] for r in records if r["g"] == g]
            out[("m", f"g={g}")] = (float(np.mean(sub)), len(sub))
        return out

    # cluster t1 holds three samples of group a; t2 one of group b; item 9 (no cluster) one of group a
    recs = [{"item_id": i, "cluster": "t1", "g": "a", "x": 1.0} for i in range(3)]
    recs += [{"item_id": 3, "cluster": "t2", "g": "b", "x": 0.0}, {"item_id": 9, "cluster": None, "g": "a", "x": 0.0}]
    assert cluster_support(recs, mean_by_group) == {("m", ""): 3, ("m", "g=a"): 2, ("m", "g=b"): 1}
