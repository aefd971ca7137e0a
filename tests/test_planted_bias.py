"""A planted stereotype preference on real CrowS-Pairs items reaches a tiny corrected p-value with
the comparison's default settings (1,000 resamples, Holm over the subgroup rows), and identical
models stay non-significant (issue: "let strong effects reach significance").

The items are the real CrowS-Pairs release under RAI_AUDIT_DATA; the two "models" are synthetic
log-likelihoods, so the size of the planted effect is known exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rai_audit.comparison import compare_runs
from rai_audit.requests import LoglikResult
from tests.test_compare import FakeStore

DATA = Path(os.environ.get("RAI_AUDIT_DATA", "../shared/data"))
pytestmark = pytest.mark.skipif(not (DATA / "crows_pairs").is_dir(), reason="CrowS-Pairs data not available (RAI_AUDIT_DATA)")

N_ITEMS = 750
PLANTED = 0.18


def _records(probe, items, diffs):
    return [probe.record(it, [LoglikResult(-10.0 + d, 12, False), LoglikResult(-10.0, 12, False)], [], None)
            for it, d in zip(items, diffs)]


@pytest.fixture(scope="module")
def planted():
    from probes.crows_pairs import CrowsPairs

    probe = CrowsPairs({"limit": N_ITEMS}, data_root=DATA)
    _, items = probe.load()
    assert len(items) == N_ITEMS
    rng = np.random.default_rng(7)
    diff_a = rng.normal(0.2, 1.0, size=len(items))  # model A prefers the stereotyping sentence ~58% of the time
    diff_b = diff_a.copy()
    not_stereo = np.flatnonzero(diff_a <= 0)
    flip = rng.choice(not_stereo, size=round(PLANTED * len(items)), replace=False)
    diff_b[flip] = np.abs(diff_b[flip]) + 0.5  # B now prefers it on 135 more pairs: +0.18
    store = FakeStore()
    for run_id, diffs in (("A", diff_a), ("B", diff_b), ("C", diff_a)):
        store.add_run(run_id, {"crows_pairs": _records(probe, items, diffs)}, config={"probes": [{"name": "crows_pairs", "params": {"limit": N_ITEMS}}]})
    return store


def test_planted_preference_reaches_corrected_p_below_0001(planted):
    comp = compare_runs(planted, "A", "B")  # the defaults a user gets: 1,000 resamples, Holm
    rows = [r for r in comp.probe("crows_pairs").rows if r.metric == "stereotype_score" and r.source == "metric"]
    overall = next(r for r in rows if r.subgroup == "")
    assert overall.diff == pytest.approx(PLANTED, abs=0.002)
    assert len(rows) >= 10  # the Holm family: overall plus nine bias types and two directions
    assert overall.p_adjusted < 0.001, overall
    assert overall.significant and overall.mde is not None and 0 < overall.mde < PLANTED
    # the exact McNemar row of the per-item outcome agrees
    outcome = next(r for r in comp.probe("crows_pairs").rows if r.metric == "stereotypical" and r.subgroup == "")
    assert outcome.p_adjusted < 1e-10
    smallest = min(r.p_adjusted for r in comp.probe("crows_pairs").rows if r.p_adjusted is not None)
    print(f"smallest corrected p-value: {smallest:.3g}; stereotype_score overall corrected p: {overall.p_adjusted:.3g}")


def test_identical_models_stay_non_significant(planted):
    comp = compare_runs(planted, "A", "C")
    rows = comp.probe("crows_pairs").rows
    assert not any(r.significant for r in rows)
    assert all(r.p_adjusted is None or r.p_adjusted > 0.5 for r in rows)
