"""The one item sampler (rai_audit.selection): its rule, and that the same N picks the same items
wherever the limit was set (audit-level ``limit``, a probe's ``limit``, the ``n`` sample sizes)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from probes import toxicity_common as tc
from probes.fewshot import limit_by_cluster
from rai_audit.probe import Item
from rai_audit.runner import prepare_jobs
from rai_audit.selection import PAIR_MAX, select_indices, select_items

N = 12
SEED = 1234


def _items(sizes: list[int]) -> list[Item]:
    return [Item(id=f"c{c}-{k}", data={}, cluster=f"c{c}") for c, size in enumerate(sizes) for k in range(size)]


def test_seeded_and_independent_of_input_order():
    items = _items([2] * 10 + [7] * 3 + [1] * 5)
    a = select_items(items, 9, seed=3)
    assert [it.id for it in select_items(items, 9, seed=3)] == [it.id for it in a]
    assert sorted(it.id for it in select_items(items[::-1], 9, seed=3)) == sorted(it.id for it in a)
    assert select_items(items, 9, seed=4) != a
    assert [it.id for it in a] == [it.id for it in items if it in a]  # original order kept


def test_pairs_are_kept_whole_and_large_clusters_spread():
    items = _items([2] * 10 + [PAIR_MAX] * 3 + [50] * 4)
    chosen = select_items(items, 30, seed=0)
    size = Counter(it.cluster for it in items)
    per = Counter(it.cluster for it in chosen)
    assert len(chosen) <= 30
    assert all(per[c] == size[c] for c in per if size[c] <= PAIR_MAX)  # small clusters whole or absent
    assert {c for c in per if size[c] == 50} == {c for c in size if size[c] == 50}  # every large one present
    assert max(per[c] for c in per if size[c] == 50) - min(per[c] for c in per if size[c] == 50) <= 1


def test_no_limit_or_a_large_one_keeps_everything():
    items = _items([3, 1, 5])
    assert select_items(items, None, seed=0) == items
    assert select_items(items, len(items), seed=0) == items
    assert select_indices([("a", None), ("b", None)], None, seed=0) == [0, 1]


def test_the_probe_helpers_are_the_same_sampler():
    items = _items([2] * 8 + [6] * 4 + [1] * 9)
    want = [it.id for it in select_items(items, 10, SEED)]
    assert [it.id for it in limit_by_cluster(items, 10, SEED)] == want
    assert [it.id for it in tc.seeded_sample(items, 10, SEED)] == want
    # a row carrying its item's id is that item (in a cluster of its own)
    singles = [Item(id=f"r{i}", data={}, cluster=f"r{i}") for i in range(30)]
    rows = [{"id": f"r{i}", "text": "x"} for i in range(30)]
    assert [r["id"] for r in tc.seeded_sample(rows, 7, SEED)] == [it.id for it in select_items(singles, 7, SEED)]
    # per stratum: what the same limit picks from that stratum alone
    strata = tc.stratified_sample(items, lambda it: it.cluster[:2], 3, SEED)
    for s in {it.cluster[:2] for it in items}:
        alone = select_items([it for it in items if it.cluster[:2] == s], 3, SEED)
        assert [it.id for it in strata if it.cluster[:2] == s] == [it.id for it in alone]


def _ids(name: str, params: dict, limit: int | None, shared_data: Path) -> list[str]:
    jobs, _ = prepare_jobs([(name, params)], shared_data, limit=limit, seed=SEED)
    return [it.id for it in jobs[0].items]


# winobias: pro/anti pairs; bbq: large templates; crows_pairs: limited in load(); RTP / civil: `n`
@pytest.mark.parametrize("name, per_probe", [
    ("winobias", {"limit": N}), ("bbq", {"limit": N}), ("crows_pairs", {"limit": N}),
    ("realtoxicityprompts", {"limit": N}), ("realtoxicityprompts", {"n": N}), ("civil_comments", {"n": N}),
], ids=["winobias-limit", "bbq-limit", "crows_pairs-limit", "rtp-limit", "rtp-n", "civil_comments-n"])
def test_the_same_n_picks_the_same_items_globally_or_per_probe(name, per_probe, shared_data):
    globally = _ids(name, {}, N, shared_data)
    assert 0 < len(globally) <= N
    assert _ids(name, per_probe, None, shared_data) == globally


def test_a_probe_limit_uses_the_probes_seed_and_wins_over_the_audit_limit(shared_data):
    own_seed = _ids("winogender", {"limit": 6, "seed": 9}, None, shared_data)
    jobs, _ = prepare_jobs([("winogender", {})], shared_data, limit=6, seed=9)
    assert own_seed == [it.id for it in jobs[0].items]
    assert _ids("winogender", {"limit": 6}, 20, shared_data) == _ids("winogender", {}, 6, shared_data)
