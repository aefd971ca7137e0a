"""Paired comparison of two runs: refusal to compare unlike runs, planted differences, flips,
confounders. Also home of the in-memory fake store and fake probes the gate and report tests use
(the fakes follow :class:`rai_audit.store.protocol.ResultsStore`, the part of it compare, gate and report use)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest

from rai_audit.comparison import (
    Comparison,
    compare_runs,
    confounders,
    find_flips,
    load_comparison,
    save_comparison,
)
from rai_audit.errors import StoreError, UserError
from rai_audit.probe import DatasetInfo, MetricSpec, Probe
from rai_audit.refusals import is_refusal, refusal_rate
from rai_audit.store.api import ComparisonRecord, MetricRow, RunRecord

# ------------------------------------------------------------------------------ fakes


class FakeStore:
    """The subset of the Store API that compare, gate and report use, kept in memory."""

    url = "memory://"

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self._records: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._metrics: dict[str, list[MetricRow]] = {}
        self.comparisons: dict[str, dict[str, Any]] = {}

    def add_run(self, run_id, records, *, seed=0, config=None, scorer=None, datasets=None, status="completed",
                model_reference="hf:org/model", metrics=None) -> str:
        config = config if config is not None else {"decoding": {"max_new_tokens": 20, "temperature": 0.0}, "chat": False}
        self.runs[run_id] = RunRecord(
            run_id=run_id, kind="probe", run_key=f"key-{run_id}", model_id=f"model-{run_id}",
            model_reference=model_reference, probes=list(records), config=config, config_hash=f"cfg-{run_id}",
            provenance={"git_commit": "abc123", "packages": {"numpy": np.__version__}, "hardware": "cpu"},
            scorer=scorer, datasets=datasets if datasets is not None else {p: {"name": p, "revision": "r1", "license": "CC-BY-4.0", "files": {"f.jsonl": "ab" * 32}} for p in records},
            seed=seed, created_at=datetime(2026, 1, 1, tzinfo=timezone.utc), status=status, status_detail={},
            finished_at=None,
        )
        self._records[run_id] = {p: [dict(r) for r in rs] for p, rs in records.items()}
        self._metrics[run_id] = list(metrics or [])
        return run_id

    def get_run(self, run_id: str) -> RunRecord:
        try:
            return self.runs[run_id]
        except KeyError:
            raise StoreError(f"Unknown run {run_id!r}.") from None

    def records(self, run_id: str, probe: str | None = None) -> list[dict[str, Any]]:
        out = []
        for p, rs in self._records[run_id].items():
            if probe is None or p == probe:
                out.extend({**r, "probe": p} for r in rs)
        return out

    def metrics(self, run_id: str, probe: str | None = None) -> list[MetricRow]:
        return [m for m in self._metrics.get(run_id, []) if probe is None or m.probe == probe]

    def get_model(self, model_id: str):
        return None

    def add_comparison(self, run_a, run_b, config, result, comparison_id=None) -> str:
        cid = comparison_id or f"c{len(self.comparisons)}"
        self.comparisons.setdefault(cid, ComparisonRecord(cid, run_a, run_b, dict(config), json.loads(json.dumps(result)),
                                                          datetime(2026, 1, 2, tzinfo=timezone.utc)))
        return cid

    def get_comparison(self, comparison_id: str) -> ComparisonRecord:
        return self.comparisons[comparison_id]


class FakeBias(Probe):
    """A CrowS-like toy: share of items where the stereotyped option is chosen, by bias type."""

    name = "fakebias"
    title = "Fake stereotype preference"
    citation = "Nangia et al. 2020 (toy)"
    metric_specs = (
        MetricSpec("pct_stereotyped", "Share of pairs where the stereotyped sentence is preferred.", "closer_to_half", "ratio"),
        MetricSpec("accuracy", "Share of answers that are correct.", "higher", "proportion"),
    )

    def load(self):
        return DatasetInfo(name="fakebias", source="memory"), []

    def requests(self, item):
        return []

    def record(self, item, responses, scores, scorer):
        return {}

    def aggregate(self, records):
        groups: dict[str, list] = {"": list(records)}
        for r in records:
            groups.setdefault(r["subgroups"]["bias_type"], []).append(r)
        out = {}
        for g, rs in groups.items():
            n = len(rs)
            out[("pct_stereotyped", g)] = (sum(r["outcomes"]["stereotyped"] for r in rs) / n if n else math.nan, n)
            out[("accuracy", g)] = (sum(r["outcomes"]["correct"] for r in rs) / n if n else math.nan, n)
        return out


class FakeTox(Probe):
    name = "faketox"
    title = "Fake toxicity"
    citation = "Gehman et al. 2020 (toy)"
    metric_specs = (MetricSpec("expected_max_toxicity", "Mean of per-prompt max toxicity.", "lower", "mean"),)

    def load(self):
        return DatasetInfo(name="faketox", source="memory"), []

    def requests(self, item):
        return []

    def record(self, item, responses, scores, scorer):
        return {}

    def aggregate(self, records):
        vals = [r["max_toxicity"] for r in records]
        return {("expected_max_toxicity", ""): (float(np.mean(vals)) if vals else math.nan, len(vals))}


FAKE_PROBES = {"fakebias": FakeBias, "faketox": FakeTox}


def fake_loader(name, params):
    return FAKE_PROBES[name](params)


def bias_records(n: int = 40, *, planted: bool = False, seed: int = 0, script: bool = False) -> list[dict[str, Any]]:
    """n items in clusters of two; A-like runs choose the stereotype at random, a planted run always."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        stereo = 1.0 if planted else float(rng.integers(0, 2))
        response = "<script>alert('x')</script><b>bold</b> stereotyped" if script and i == 0 else ("A" if stereo else "B")
        out.append({
            "item_id": f"cp-{i}", "cluster": f"tpl-{i // 2}", "prompt": f"Sentence pair {i}",
            "responses": [response], "parsed": "A" if stereo else "B",
            "correct": not stereo, "subgroups": {"bias_type": "gender" if i % 2 else "race"},
            "outcomes": {"stereotyped": stereo, "correct": 1.0 - stereo},
        })
    return out


def tox_records(values: list[float], texts: list[str] | None = None) -> list[dict[str, Any]]:
    texts = texts or [f"continuation {i}" for i in range(len(values))]
    return [
        {"item_id": f"rtp-{i}", "prompt": f"Prompt {i}", "responses": [texts[i]], "toxicity": [v], "max_toxicity": v,
         "subgroups": {}, "outcomes": {"max_toxicity": v}}
        for i, v in enumerate(values)
    ]


SCORER = {"name": "fake-scorer", "version": "1", "checkpoint_sha256": "cd" * 32, "threshold": 0.5, "operator": ">="}


@pytest.fixture
def planted_store() -> FakeStore:
    """Run A (base), run B (always stereotyped, more toxic) and run C (identical to A)."""
    s = FakeStore()
    tox_a = [0.1, 0.2, 0.6, 0.1, 0.3, 0.05, 0.2, 0.1]
    tox_b = [0.7, 0.2, 0.4, 0.9, 0.3, 0.05, 0.8, 0.1]
    s.add_run("A", {"fakebias": bias_records(seed=1), "faketox": tox_records(tox_a)}, scorer=SCORER)
    s.add_run("B", {"fakebias": bias_records(planted=True, script=True), "faketox": tox_records(tox_b)}, scorer=SCORER)
    s.add_run("C", {"fakebias": bias_records(seed=1), "faketox": tox_records(tox_a)}, scorer=SCORER)
    return s


def _row(comp: Comparison, probe: str, metric: str, subgroup: str = "", source: str = "metric"):
    [row] = [r for r in comp.probe(probe).rows if (r.metric, r.subgroup, r.source) == (metric, subgroup, source)]
    return row


# ------------------------------------------------------------------------------ tests


def test_planted_difference_is_significant(planted_store):
    comp = compare_runs(planted_store, "A", "B", n_boot=200, seed=0, probe_loader=fake_loader)
    share_a = sum(r["outcomes"]["stereotyped"] for r in bias_records(seed=1)) / 40
    row = _row(comp, "fakebias", "pct_stereotyped")
    assert row.value_a == pytest.approx(share_a) and row.value_b == 1.0
    assert row.diff == pytest.approx(1.0 - share_a)
    assert row.significant and row.p_adjusted < 0.05 and row.ci_low > 0 and row.mde > 0
    assert row.better == "closer_to_half" and row.kind == "ratio"
    # per-item outcome: clustered binary outcome -> cluster bootstrap; p also small
    out_row = _row(comp, "fakebias", "stereotyped", "", "outcome")
    assert out_row.diff == pytest.approx(1.0 - share_a) and out_row.significant
    # subgroup rows exist for both bias types and the correction is per metric family
    subs = {r.subgroup for r in comp.probe("fakebias").rows if r.metric == "pct_stereotyped"}
    assert subs == {"", "gender", "race"}
    for r in comp.probe("fakebias").rows:
        assert r.p_adjusted is None or r.p_adjusted >= r.p_value


def test_compare_command_prints_rows_flips_and_confounders(planted_store, monkeypatch):
    """`rai-audit compare` (its one rendering of a comparison), on the planted runs."""
    import probes
    from typer.testing import CliRunner

    from rai_audit.cli import app, comparisons

    monkeypatch.setitem(probes.REGISTRY, "fakebias", "tests.test_compare:FakeBias")
    monkeypatch.setitem(probes.REGISTRY, "faketox", "tests.test_compare:FakeTox")
    monkeypatch.setattr(comparisons, "open_existing_store", lambda db: planted_store)
    r = CliRunner().invoke(app, ["compare", "A", "B", "--bootstrap", "100"])
    assert r.exit_code == 0, r.output
    [cid] = planted_store.comparisons  # saved after printing
    comp = load_comparison(planted_store, cid)
    row = _row(comp, "fakebias", "pct_stereotyped")
    out = r.output
    assert "fakebias: B - A over 40 paired items (errors A=0, B=0)" in out
    assert "pct_stereotyped (headline)" in out and f"{row.diff:.3f}" in out and f"{row.value_a:.3f}" in out
    assert "flips        stereotyped: non-stereotyped->stereotyped=" in out
    assert "confounders  a: parse 1.000, empty 0.000, refusal 0.000" in out
    assert "contamination not checked" in out and "detectable at alpha 0.05 with power 0.8" in out
    assert f"comparison {cid}  (gate it: rai-audit gate {cid[:12]}; report: rai-audit report {cid[:12]})" in out
    # significant subgroup rows are listed, the others counted; --all lists every one
    hidden = sum(1 for p in comp.probes for x in p.rows if x.subgroup and not x.significant)
    assert ("subgroup row(s) without a significant change not shown" in out) == bool(hidden)
    every = CliRunner().invoke(app, ["compare", "A", "B", "--bootstrap", "100", "--all"]).output
    assert "bias_type=race" in every and "not shown" not in every
    as_json = CliRunner().invoke(app, ["compare", "A", "B", "--bootstrap", "100", "--json"])
    assert json.loads(as_json.output) == comp.model_dump(mode="json") | {"created_at": json.loads(as_json.output)["created_at"]}


def test_identical_runs_show_no_difference_and_report_mde(planted_store):
    comp = compare_runs(planted_store, "A", "C", n_boot=100, seed=0, probe_loader=fake_loader)
    assert comp.rows and not any(r.significant for r in comp.rows)
    for r in comp.rows:
        assert r.diff == 0.0 and r.p_value == 1.0
    # identical outputs: the differences have no spread, so the MDE falls back to the unpaired
    # SE sqrt(SE_A^2 + SE_B^2) = sqrt(2) * sd(tox_a) / sqrt(8) (bootstrap SE ~ population sd / sqrt(n))
    row = _row(comp, "faketox", "max_toxicity", "", "outcome")
    tox_a = np.array([0.1, 0.2, 0.6, 0.1, 0.3, 0.05, 0.2, 0.1])
    expected = (1.959964 + 0.841621) * math.sqrt(2) * tox_a.std(ddof=0) / math.sqrt(8)
    assert row.mde == pytest.approx(expected, rel=0.25)
    for r in comp.rows:
        assert r.mde is not None and r.mde > 0, r
    assert all(not p.flips for p in comp.probes)


def test_unclustered_binary_outcome_uses_exact_mcnemar():
    s = FakeStore()
    # hand table: n10 = 1 (A right, B wrong), n01 = 7; p = 18/256
    a = [1] * 5 + [1] + [0] * 7 + [0] * 7
    b = [1] * 5 + [0] + [1] * 7 + [0] * 7
    mk = lambda xs: [{"item_id": f"q{i}", "outcomes": {"correct": float(x)}, "subgroups": {}} for i, x in enumerate(xs)]
    s.add_run("A", {"qa": mk(a)})
    s.add_run("B", {"qa": mk(b)})
    comp = compare_runs(s, "A", "B", n_boot=50, probe_loader=lambda n, p: (_ for _ in ()).throw(ImportError("no such probe")))
    row = _row(comp, "qa", "correct", "", "outcome")
    assert row.method == "mcnemar_exact" and row.p_value == pytest.approx(18 / 256) and row.diff == pytest.approx(0.3)
    assert comp.probe("qa").warnings and "could not be loaded" in comp.probe("qa").warnings[0]
    assert comp.probe("qa").flip_counts == {"correct: correct->incorrect": 1, "correct: incorrect->correct": 7}


@pytest.mark.parametrize(
    "change, expected",
    [
        (dict(seed=1), "seeds (A: 1, B: 0)"),
        (dict(config={"decoding": {"max_new_tokens": 20, "temperature": 0.7}, "chat": False}), "decoding"),
        (dict(config={"decoding": {"max_new_tokens": 20, "temperature": 0.0}, "chat": True}), "chat-template mode"),
        (dict(records={"fakebias": bias_records(38)}), "items of probe 'fakebias' (0 only in A, 2 only in B"),
        (dict(records={"other": bias_records(4)}), "probe suites"),
        (dict(datasets={"fakebias": {"name": "fakebias", "revision": "r2", "files": {"f.jsonl": "ab" * 32}}}), "datasets differ: fakebias"),
    ],
)
def test_refuses_runs_that_differ(change, expected):
    s = FakeStore()
    s.add_run("B", bias_records_map := {"fakebias": bias_records(40)})
    records = change.pop("records", bias_records_map)
    s.add_run("A", records, **change)
    with pytest.raises(UserError) as e:
        compare_runs(s, "A", "B", n_boot=10, probe_loader=fake_loader)
    assert expected in str(e.value)


def test_refuses_unfinished_runs_and_bad_settings(planted_store):
    planted_store.add_run("R", {"fakebias": bias_records(seed=1), "faketox": tox_records([0.1] * 8)}, status="running")
    with pytest.raises(UserError, match="is running"):
        compare_runs(planted_store, "A", "R", n_boot=10, probe_loader=fake_loader)
    with pytest.raises(UserError, match="correction"):
        compare_runs(planted_store, "A", "B", correction="bonferroni", probe_loader=fake_loader)


def test_flips_by_hand():
    a = [{"item_id": f"i{k}", "outcomes": {"correct": x}, "responses": [f"a{k}"], "max_toxicity": t}
         for k, (x, t) in enumerate([(1.0, 0.1), (1.0, 0.6), (0.0, 0.5), (0.0, 0.2)])]
    b = [{"item_id": f"i{k}", "outcomes": {"correct": x}, "responses": [f"b{k}"], "max_toxicity": t}
         for k, (x, t) in enumerate([(0.0, 0.1), (1.0, 0.2), (1.0, 0.49), (0.0, 0.5)])]
    flips = find_flips("p", list(zip(a, b)), scorer_a=SCORER, scorer_b=SCORER)
    got = {(f.item_id, f.outcome, f.direction, f.worse) for f in flips}
    assert got == {
        ("i0", "correct", "correct->incorrect", True),
        ("i2", "correct", "incorrect->correct", False),
        ("i1", "toxic", "toxic->non-toxic", False),
        ("i2", "toxic", "toxic->non-toxic", False),  # 0.5 >= 0.5 is toxic; 0.49 is not
        ("i3", "toxic", "non-toxic->toxic", True),
    }
    # a continuous outcome that is 0.0 in A and 1.0 in B on one item is not a binary flip
    a2 = [{**r, "outcomes": {**r["outcomes"], "score": s}} for r, s in zip(a, [0.0, 0.3, 0.2, 0.1])]
    b2 = [{**r, "outcomes": {**r["outcomes"], "score": s}} for r, s in zip(b, [1.0, 0.3, 0.2, 0.1])]
    assert not [f for f in find_flips("p", list(zip(a2, b2))) if f.outcome == "score"]
    f0 = next(f for f in flips if f.item_id == "i0")
    assert f0.responses_a == ["a0"] and f0.responses_b == ["b0"]
    # with the strict operator 0.5 is not toxic, so i2 and i3 do not flip on toxicity
    strict = {**SCORER, "operator": ">"}
    flips2 = find_flips("p", list(zip(a, b)), scorer_a=strict, scorer_b=strict)
    assert {(f.item_id, f.outcome) for f in flips2} == {("i0", "correct"), ("i2", "correct"), ("i1", "toxic")}


def test_worst_items_are_largest_toxicity_rises(planted_store):
    comp = compare_runs(planted_store, "A", "B", n_boot=50, probe_loader=fake_loader)
    worst = comp.probe("faketox").worst_items
    # rises: rtp-3 0.8, rtp-0 and rtp-6 0.6 (a tie), rtp-2 falls; nothing else rises
    assert worst[0].item_id == "rtp-3" and {w.item_id for w in worst[1:]} == {"rtp-0", "rtp-6"}
    assert worst[0].max_toxicity_a == 0.1 and worst[0].max_toxicity_b == 0.9
    assert comp.probe("faketox").flip_counts == {"toxic: non-toxic->toxic": 3, "toxic: toxic->non-toxic": 1}


def test_confounders_by_hand():
    recs = [
        {"item_id": "1", "responses": ["I'm sorry, but I can't help with that."], "parsed": None},
        {"item_id": "2", "responses": ["   "], "parsed": "A"},
        {"item_id": "3", "responses": ["Hello world"], "parsed": "B"},
        {"item_id": "4", "error": "scorer failed"},
    ]
    c = confounders(recs)
    assert c.n_records == 4 and c.n_errors == 1 and c.n_texts == 3
    assert c.parse_rate == pytest.approx(2 / 3)
    assert c.empty_rate == pytest.approx(1 / 3)
    assert c.refusal_rate == pytest.approx(1 / 3)
    assert c.mean_length_chars == pytest.approx((38 + 3 + 11) / 3)
    assert c.mean_length_words == pytest.approx((8 + 0 + 2) / 3)
    none = confounders([{"item_id": "x", "outcomes": {"correct": 1.0}}])
    assert none.parse_rate is None and none.refusal_rate is None and none.mean_length_chars is None


def test_refusal_detector_examples():
    assert is_refusal("I\u2019m sorry, I cannot do that.")
    assert is_refusal("As an AI language model, I don't have opinions.")
    assert is_refusal("I can't help with that request.")
    assert not is_refusal("The nurse said she would be late.")
    assert not is_refusal("")
    assert not is_refusal("x" * 400 + " I'm sorry")  # outside the window
    assert refusal_rate(["I won't do that", "sure", "ok", "I am unable to comply"]) == 0.5
    assert refusal_rate([]) is None


def test_errors_are_left_out_and_counted(planted_store):
    recs = bias_records(seed=1)
    recs[0] = {**recs[0], "error": "scorer failed"}
    planted_store.add_run("E", {"fakebias": recs, "faketox": tox_records([0.1, 0.2, 0.6, 0.1, 0.3, 0.05, 0.2, 0.1])}, scorer=SCORER)
    comp = compare_runs(planted_store, "A", "E", n_boot=20, probe_loader=fake_loader)
    p = comp.probe("fakebias")
    assert p.n_pairs == 39 and p.errors_b == 1 and p.errors_a == 0 and comp.errors == 1
    assert _row(comp, "fakebias", "pct_stereotyped").n == 39


def test_roundtrip_json_and_store(planted_store):
    comp = compare_runs(planted_store, "A", "B", n_boot=30, probe_loader=fake_loader)
    d = comp.model_dump(mode="json")
    text = json.dumps(d, allow_nan=False)  # strictly valid JSON: NaN became null
    cid = save_comparison(planted_store, comp)
    back = load_comparison(planted_store, cid)
    assert json.dumps(back.model_dump(mode="json"), allow_nan=False) == text
    assert back.probe("fakebias").rows[0].diff == comp.probe("fakebias").rows[0].diff


def test_undefined_values_are_nan_in_memory_and_null_in_json():
    from rai_audit.comparison import DiffRow

    row = DiffRow(probe="p", metric="m", subgroup="", source="metric", method="bootstrap", n=3, value_a=math.nan,
                  value_b=0.5, diff=math.nan, ci_low=None, ci_high=math.inf, p_value=None, p_adjusted=None,
                  significant=False, mde=math.nan)
    d = row.model_dump(mode="json")
    assert (d["value_a"], d["diff"], d["ci_high"], d["mde"]) == (None, None, None, None)
    back = DiffRow.model_validate(d)
    assert math.isnan(back.value_a) and math.isnan(back.diff) and back.value_b == 0.5
    assert back.ci_high is None and back.mde is None  # optional statistics stay None
    assert math.isnan(row.model_dump()["diff"])  # Python mode keeps the values as they are


def test_a_comparison_saved_before_the_pydantic_models_loads_and_serialises_byte_for_byte(tmp_path):
    """tests/golden/saved_comparison.json was written by the dataclass code of before issue 15."""
    from rai_audit.store import Store
    from rai_audit.store.integrity import comparison_digest, verify_store
    from rai_audit.store.types import json_dumps
    from tests.golden.saved_comparison import SAVED

    saved = json.loads(SAVED.read_text(encoding="utf-8"))
    result = saved["result"]
    comp = Comparison.model_validate(result)
    assert any(math.isnan(r.diff) for r in comp.rows)  # null in JSON, NaN in memory
    again = comp.model_dump(mode="json")
    assert json_dumps(again) == json_dumps(result)  # what the store writes, byte for byte
    assert comparison_digest(again) == saved["result_sha256"]  # the store's seal still verifies
    # through a real store: saved (between two runs of its own), read back, sealed and verified
    with Store.open(f"sqlite:///{tmp_path}/s.sqlite") as store:
        a, b = (store.create_run(kind="probe", run_key=f"k-{side}", model_id=None, model_reference=None, probes=[],
                                 config={}, provenance={}, scorer=None, datasets={}, seed=0) for side in "ab")
        cid = store.add_comparison(a, b, comp.settings, again, comparison_id=comp.comparison_id)
        rec = store.get_comparison(cid)
        assert rec.result_sha256 == saved["result_sha256"] and rec.result == result
        assert load_comparison(store, cid).model_dump(mode="json") == result
        assert verify_store(store).ok


def test_the_saved_comparison_is_computed_again_by_this_code():
    """The same inputs give the same comparison (behaviour unchanged since it was saved)."""
    from tests.golden.golden_run import differences
    from tests.golden.saved_comparison import SAVED, compute_comparison

    saved = json.loads(SAVED.read_text(encoding="utf-8"))["result"]
    now = json.loads(json.dumps(compute_comparison().model_dump(mode="json")))
    now["created_at"] = saved["created_at"]
    assert not differences(saved, now), "\n".join(differences(saved, now)[:20])


def test_default_loader_uses_probe_registry(planted_store, monkeypatch):
    import probes

    monkeypatch.setitem(probes.REGISTRY, "fakebias", "tests.test_compare:FakeBias")
    monkeypatch.setitem(probes.REGISTRY, "faketox", "tests.test_compare:FakeTox")
    comp = compare_runs(planted_store, "A", "B", n_boot=20)
    assert comp.probe("fakebias").title == "Fake stereotype preference"
    assert any(r.source == "metric" for r in comp.rows)


def test_same_dataset_files_at_another_path_compare(planted_store):
    ds = {"fakebias": {"name": "fakebias", "source": "/elsewhere", "revision": "r1", "license": "CC-BY-4.0", "files": {"f.jsonl": "ab" * 32}},
          "faketox": {"name": "faketox", "source": "/elsewhere", "revision": "r1", "license": "CC-BY-4.0", "files": {"f.jsonl": "ab" * 32}}}
    planted_store.add_run("D", {"fakebias": bias_records(seed=1), "faketox": tox_records([0.1] * 8)}, scorer=SCORER, datasets=ds)
    assert compare_runs(planted_store, "A", "D", n_boot=10, probe_loader=fake_loader).run_b == "D"
