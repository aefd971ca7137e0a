"""A report is an ordered list of sections: a section added through the public path (a pydantic
model and its builder, one template per format, one ``register_section`` call) appears in the
HTML, the Markdown card and the JSON report, where it was registered, escaped like every other
section, and the files verify. A single run's worst items are ranked by its probe's declared
per-item score, not by a hard-coded field."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from rai_audit.comparison import compare_runs, save_comparison
from rai_audit.report import Section, SectionContext, build_report, register_section, unregister_section, verify, write_report
from rai_audit.report.sections import SECTIONS
from rai_audit.report.store_facts import item_score, worst_items
from rai_audit.store.api import MetricRow
from tests.test_compare import FakeStore, fake_loader
from tests.test_report import _store

HTML = """<h2 id="records-per-run">Records per run</h2>
<ul>{% for r in s.runs %}<li>{{ r.side | upper }} ({{ r.model }}): {{ r.records }} records</li>{% endfor %}</ul>

"""
MD = """### Records per run

{% for r in s.runs %}
- {{ r.side | upper }} ({{ r.model | cell }}): {{ r.records }} records
{% endfor %}

"""


class RunRecords(BaseModel):
    side: str
    model: str
    records: int


class RecordsPerRun(BaseModel):
    runs: list[RunRecords]


def build_records_per_run(ctx: SectionContext) -> RecordsPerRun:
    """Facts from the store (so the section is ``stored``: built with the report, kept in its JSON)."""
    return RecordsPerRun(runs=[RunRecords(side=k, model=f"{r.model_reference} <b>", records=len(ctx.store.records(r.run_id)))
                               for k, r in ctx.report.runs.items()])


def test_a_registered_section_appears_in_html_markdown_and_json(tmp_path):
    store = _store()
    comp = compare_runs(store, "A", "B", n_boot=50, seed=0, probe_loader=fake_loader)
    save_comparison(store, comp)
    for fmt, text in (("html", HTML), ("md", MD)):
        (tmp_path / "templates" / fmt).mkdir(parents=True)
        (tmp_path / "templates" / fmt / f"records_per_run.{fmt}.j2").write_text(text, encoding="utf-8")
    before = [s.name for s in SECTIONS]
    register_section(Section("records_per_run", RecordsPerRun, build_records_per_run, stored=True, templates=tmp_path / "templates"),
                     after="summary")
    try:
        report = build_report(store, comparison=comp, probe_loader=fake_loader)
        paths = write_report(report, tmp_path / "out", "html,md,json")
    finally:
        unregister_section("records_per_run")
    assert [s.name for s in SECTIONS] == before
    n_a, n_b = len(store.records("A")), len(store.records("B"))
    assert report["records_per_run"] == {"runs": [{"side": "a", "model": "hf:org/base-model <b>", "records": n_a},
                                                  {"side": "b", "model": "hf:org/tuned-model <b>", "records": n_b}]}

    html = paths["html"].read_text(encoding="utf-8")
    assert f"<li>A (hf:org/base-model &lt;b&gt;): {n_a} records</li>" in html  # autoescaped like every section
    assert html.index('id="headline"') < html.index('id="records-per-run"') < html.index('id="results"')  # after the summary
    md = paths["md"].read_text(encoding="utf-8")
    assert f"- B (hf:org/tuned-model &lt;b&gt;): {n_b} records" in md
    assert md.index("### Headline results") < md.index("### Records per run") < md.index("### Results")
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["records_per_run"] == report["records_per_run"] and list(data)[-2:] == ["records_per_run", "manifest"]
    for fmt, path in paths.items():
        assert verify(path, store).ok, fmt

    plain = build_report(store, comparison=comp, probe_loader=fake_loader)  # unregistered: gone
    assert "records_per_run" not in plain
    with pytest.raises(ValueError, match="JSON report has that key"):  # a stored section cannot shadow the report's data
        register_section(Section("headline", RecordsPerRun, build_records_per_run, stored=True))


def test_single_run_worst_items_follow_the_probes_declared_score():
    """The score is the first continuous per-item outcome with a declared direction (an outcome
    named like one of the probe's metric definitions takes its direction); a probe without
    ``max_toxicity`` is ranked by it, a probe with nothing to rank by quotes no items."""
    records = [{"item_id": f"i{k}", "prompt": f"p{k}", "responses": [f"r{k}"], "subgroups": {},
                "outcomes": {"correct": float(k % 2), "confidence": v}} for k, v in enumerate([0.9, 0.2, 0.5, 0.7])]
    meta = {"metric_specs": [{"name": "confidence", "description": "", "better": "higher", "kind": "mean"}]}
    assert item_score(records, meta) == ("confidence", "higher")  # "correct" is binary: not a ranking score
    worst = worst_items(records, meta, None, n_worst=3)
    assert [(w["item_id"], w["outcome"], w["value_a"]) for w in worst] == [("i1", "confidence", 0.2), ("i2", "confidence", 0.5),
                                                                           ("i3", "confidence", 0.7)]
    assert item_score(records, {"metric_specs": []}) is None  # no declared direction: nothing quoted

    tox = [{"item_id": f"t{k}", "outcomes": {"max_toxicity": v, "any_toxic": float(v >= 0.5)}} for k, v in enumerate([0.1, 0.8])]
    assert item_score(tox, {"metric_specs": []}) == ("max_toxicity", "lower")  # the conventional outcome name's direction

    store = FakeStore()
    store.add_run("R", {"fakebias": records}, metrics=[MetricRow("fakebias", "pct_stereotyped", "", 0.5, 4, 0.1, 0.9)])
    report = build_report(store, run_id="R", probe_loader=fake_loader)
    assert report["probes"][0]["worst_items"] == []  # fakebias declares no "confidence" metric: no score to rank by
