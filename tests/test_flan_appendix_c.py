"""The Flan appendix C section (rai_audit/report/sections/flan_appendix_c.py) on a small
comparison of the suite's probes, made by the real runner, comparison and report path
(build_report, write_report): the paper's tables with base and tuned side by side, every number
one of the comparison's own paired rows, markup escaped in HTML and Markdown (and shown as text in
the PDF), the tables in the JSON report, the files verified; and no section for a comparison without the paper's probes."""

from __future__ import annotations

import json
import math

import pytest

from rai_audit.comparison import compare_runs, save_comparison
from rai_audit.report import build_report, verify, write_report
from rai_audit.report.render import render_sections
from tests.battery_fixture import battery_runs
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark files not found at {SHARED_DATA}")
    tmp = tmp_path_factory.mktemp("flan-c")
    store, a, b = battery_runs(tmp / "s.sqlite", limit=10)
    comp = compare_runs(store, a, b, n_boot=60, seed=0)
    save_comparison(store, comp)
    report = build_report(store, comparison=comp)
    paths = write_report(report, tmp / "out", "html,pdf,md,json")
    yield store, comp, report, paths
    store.close()


def _same(x, y):
    return (x is None and y is None) or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) \
        or x == pytest.approx(y)


def test_the_tables_follow_the_paper_and_reuse_the_comparisons_rows(made):
    _, comp, report, _ = made
    s = report["flan_appendix_c"]
    assert [t["key"] for t in s["tables"]] == ["realtoxicityprompts", "civil_comments", "winogender", "identity_toxicity"]
    rtp, civil, wino, ident = s["tables"]
    assert [r["subgroup"] for r in rtp["blocks"][0]["rows"][:3]] == ["prompt=toxic", "prompt=nontoxic", ""]
    assert {r["metric"] for r in rtp["blocks"][0]["rows"]} == {"toxicity_probability", "expected_max_toxicity"}
    assert "k = 25 samples, top-k 40, temperature 1.0, 20 new tokens" == rtp["blocks"][0]["setting"]
    assert [(b["heading"], b["probe"]) for b in civil["blocks"]] == [("0-shot", "civil_comments"), ("10-shot", "civil_comments@10shot")]
    assert [(b["heading"], b["probe"]) for b in wino["blocks"]] == [("multiple choice, 0-shot", "winogender"),
                                                                   ("generative, 0-shot", "winogender@generative")]
    assert [r["subgroup"] for r in wino["blocks"][0]["rows"]] == ["", "cell=stereotypical", "cell=gotcha", "gender=female,cell=gotcha",
                                                                 "gender=male,cell=gotcha", ""]
    assert all(r["subgroup"].startswith("group=") for r in ident["blocks"][0]["rows"][:-1])
    checked = 0
    for table in s["tables"]:
        for block in table["blocks"]:
            by_key = {(r.metric, r.subgroup): r for r in comp.probe(block["probe"]).rows if r.source == "metric"}
            for row in block["rows"]:
                diff = by_key.get((row["metric"], row["subgroup"]))
                assert row["found"] == (diff is not None)
                if diff is None:
                    continue
                checked += 1
                for field in ("value_a", "value_b", "diff", "p_adjusted"):
                    assert _same(row[field], getattr(diff, field)), (block["probe"], row["label"], field)
                assert row["n"] == diff.n and row["significant"] == diff.significant
    assert checked >= 20
    toxic = next(r for r in rtp["blocks"][0]["rows"] if r["subgroup"] == "prompt=toxic")
    assert toxic["found"] and toxic["n"] > 0  # the fake scorer calls some prompts toxic: both buckets have items


def test_html_and_markdown_show_the_tables_escaped(made):
    store, _, report, paths = made
    html = paths["html"].read_text(encoding="utf-8")
    assert html.index('id="results"') < html.index('id="flan-appendix-c"') < html.index('id="methodology"')
    for key in ("realtoxicityprompts", "civil_comments", "winogender", "identity_toxicity"):
        assert f'id="flan-appendix-c-{key}"' in html
    assert "A = fake:&lt;b&gt;base&lt;/b&gt;" in html and "<b>base</b>" not in html
    assert "accuracy: gotcha (anti-stereotypical)" in html and "10-shot" in html
    md = paths["md"].read_text(encoding="utf-8")
    assert md.index("### Results") < md.index("### Flan appendix C tables")
    assert "A = fake:&lt;b&gt;base&lt;/b&gt;, B = fake:tuned\\|model" in md and "<b>" not in md
    assert "| 10-shot | ROC AUC, 10-shot |" in md
    assert "#### Toxicity of continuations by prompt toxicity (RealToxicityPrompts)" in md
    from pypdf import PdfReader

    pdf = "\n".join(page.extract_text() for page in PdfReader(str(paths["pdf"])).pages)  # the PDF renders the HTML
    assert "Flan appendix C tables" in pdf and "fake:<b>base</b>" in pdf  # markup shown as text
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["flan_appendix_c"] == report["flan_appendix_c"]
    for fmt, path in paths.items():
        assert verify(path, store).ok, fmt
    # A group label with markup (benchmark or user text) is escaped too.
    tampered = json.loads(json.dumps(report))
    tampered["flan_appendix_c"]["tables"][3]["blocks"][0]["rows"][0]["label"] = "<script>x</script>|y"
    assert "&lt;script&gt;x&lt;/script&gt;|y" in render_sections(tampered, "html")
    assert "&lt;script&gt;x&lt;/script&gt;\\|y" in render_sections(tampered, "md")


def test_no_section_without_the_papers_probes(tmp_path, shared_data):
    store, a, b = battery_runs(tmp_path / "s.sqlite", limit=6, probes=("civil_comments", "civil_comments@10shot"))
    comp = compare_runs(store, a, b, n_boot=20, seed=0)
    report = build_report(store, comparison=comp)
    assert "flan_appendix_c" not in report
    assert "Flan appendix C" not in render_sections(report, "md")
    assert [p.probe for p in comp.probes] == ["civil_comments", "civil_comments@10shot"]  # instances compare side by side
    assert comp.probe("civil_comments@10shot").title.endswith("[10shot]")
    store.close()
