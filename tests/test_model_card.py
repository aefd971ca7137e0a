"""The Markdown report's front matter is valid Hugging Face model-card metadata: huggingface_hub's
own card helpers (offline: ModelCard parsing, ModelCardData, model_index_to_eval_results and back)
read the model-index the report writes, with the audited model's Hub id and one metric per
defined overall value."""

from __future__ import annotations

import math

import pytest
import yaml

from rai_audit.comparison import compare_runs, save_comparison
from rai_audit.gate import evaluate_gate, load_policy
from rai_audit.report import build_report, write_report
from rai_audit.report.markdown import card_data, card_model_name, hub_id, render_markdown
from tests.test_compare import fake_loader
from tests.test_report import _store


@pytest.fixture(scope="module")
def comparison_card(tmp_path_factory):
    store = _store()
    comp = compare_runs(store, "A", "B", n_boot=100, seed=0, probe_loader=fake_loader)
    save_comparison(store, comp)
    report = build_report(store, comparison=comp, gate=evaluate_gate(load_policy("demo"), comp), probe_loader=fake_loader)
    path = write_report(report, tmp_path_factory.mktemp("card"), "md")["md"]
    return comp, report, path.read_text(encoding="utf-8")


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_model_index_round_trips_through_huggingface_hub(comparison_card):
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

    comp, _, text = comparison_card
    card = ModelCard(text)  # parses the front matter as the Hub does; no network
    meta = card.data.to_dict()
    assert meta == _front_matter(text)
    [entry] = meta["model-index"]
    assert entry["name"] == "org/tuned-model" == card.data.model_name  # the hf: reference's Hub id
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == "org/tuned-model"
    assert eval_results_to_model_index(name, results) == meta["model-index"]
    again = ModelCardData(model_name=name, eval_results=results, tags=meta["tags"]).to_dict()
    assert again["model-index"] == meta["model-index"]
    for result in entry["results"]:
        assert result["task"]["type"] == "text-generation"
        assert set(result["dataset"]) >= {"name", "type"}
        for metric in result["metrics"]:
            assert set(metric) >= {"type", "value", "name"} and isinstance(metric["value"], float)
    want = {(r.probe, r.metric): r.value_b for r in comp.rows
            if r.subgroup == "" and r.source == "metric" and not math.isnan(r.value_b)}
    got = {(e.dataset_type, e.metric_type): e.metric_value for e in results}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-6)
    assert "Responsible-AI audit" in card.text  # the section follows the metadata


def test_hub_id_and_card_name():
    assert hub_id("hf:org/name@0123abc") == "org/name" and hub_id("hf:org/name") == "org/name"
    assert hub_id("/models/tuned") is None and hub_id("default") is None and hub_id(None) is None
    run = {"runs": {"a": {"model_reference": "./tuned", "label": "my tuned model"}}, "kind": "run"}
    assert card_model_name(run) == "my tuned model"
    run["runs"]["a"] = {"model_reference": "hf:org/x@main", "label": "my label"}
    assert card_model_name(run) == "org/x"
    run["runs"]["a"] = {"model_reference": "./tuned", "label": None}
    assert card_model_name(run) == "./tuned"


def test_a_hostile_label_stays_one_string_and_undefined_values_are_left_out():
    from huggingface_hub import ModelCard

    hostile = "evil\n---\nlicense: mit\nmodel-index: []\n"
    report = {
        "kind": "run",
        "runs": {"a": {"model_reference": "./m", "label": hostile}},
        "datasets": [{"probe": "p", "revision": "r1"}],
        "probes": [{"probe": "p", "title": "P: a probe", "metrics": [
            {"name": "good", "subgroup": "", "value": 0.25},
            {"name": "undefined", "subgroup": "", "value": float("nan")},
            {"name": "none", "subgroup": "", "value": None},
            {"name": "good", "subgroup": "g=1", "value": 0.5},
        ]}],
    }
    card = ModelCard(f"---\n{card_data(report).to_yaml()}\n---\n\ntext\n")  # the metadata model_card() writes
    meta = card.data.to_dict()
    assert set(meta) == {"tags", "model-index"}  # the label added no key
    assert meta["model-index"][0]["name"] == hostile
    [result] = meta["model-index"][0]["results"]
    assert result["metrics"] == [{"type": "good", "value": 0.25, "name": "good (rai-audit p)"}]
    assert result["dataset"] == {"name": "P: a probe", "type": "p", "revision": "r1"}


def test_single_run_card(tmp_path):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    store = _store()
    report = build_report(store, run_id="A", probe_loader=fake_loader)
    card = ModelCard(render_markdown(report))
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "org/base-model"
    assert {(e.dataset_type, e.metric_type): e.metric_value for e in results}[("fakebias", "pct_stereotyped")] == 0.45
