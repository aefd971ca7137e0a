"""Reports: untrusted text neutralised in HTML and Markdown, PDF text and page-1 rendering, every
number in the JSON, required sections, and manifest verification catching tampering."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess

import pytest

from rai_audit.comparison import compare_runs, save_comparison
from rai_audit.errors import UserError
from rai_audit.gate import evaluate_gate, load_policy
from rai_audit.report import build_report, parse_formats, verify, write_report
from rai_audit.report.escaping import md_text
from rai_audit.store.api import MetricRow
from tests.test_compare import SCORER, FakeStore, bias_records, fake_loader, tox_records

EVIL = "<script>alert('pwned')</script><img src=x onerror=alert(1)> [click](javascript:alert(1)) # heading"


def _store() -> FakeStore:
    s = FakeStore()
    tox_a = [0.1, 0.2, 0.6, 0.1, 0.3, 0.05, 0.2, 0.1]
    tox_b = [0.7, 0.2, 0.4, 0.9, 0.3, 0.05, 0.8, 0.1]
    metrics_a = [MetricRow("fakebias", "pct_stereotyped", "", 0.45, 40, 0.3125, 0.6017), MetricRow("faketox", "expected_max_toxicity", "", 0.20625, 8, 0.1, 0.33)]
    metrics_b = [MetricRow("fakebias", "pct_stereotyped", "", 1.0, 40, 1.0, 1.0), MetricRow("faketox", "expected_max_toxicity", "", 0.43125, 8, 0.2, 0.66)]
    s.add_run("A", {"fakebias": bias_records(seed=1), "faketox": tox_records(tox_a)}, scorer=SCORER, metrics=metrics_a,
              model_reference="hf:org/base-model")
    s.add_run("B", {"fakebias": bias_records(planted=True, script=True),
                    "faketox": tox_records(tox_b, texts=[EVIL] + [f"text {i}" for i in range(1, 8)])},
              scorer=SCORER, metrics=metrics_b, model_reference="hf:org/tuned-model")
    return s


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    store = _store()
    comp = compare_runs(store, "A", "B", n_boot=200, seed=0, probe_loader=fake_loader)
    save_comparison(store, comp)
    gate = evaluate_gate(load_policy("demo"), comp)
    report = build_report(store, comparison=comp, gate=gate, probe_loader=fake_loader, signoff={"prepared_by": "Ada <b>L</b>"})
    out = tmp_path_factory.mktemp("report")
    paths = write_report(report, out, "html,pdf,md,json")
    return store, comp, gate, report, paths


def _overall(comp, probe, metric):
    return next(r for r in comp.probe(probe).rows if r.metric == metric and r.subgroup == "" and r.source == "metric")


def test_html_neutralises_generated_text(made):
    _, comp, _, _, paths = made
    html = paths["html"].read_text(encoding="utf-8")
    assert "<script" not in html.lower()  # neither the model's script nor any of our own
    assert "onerror=alert" not in html.replace("&#39;", "'") or "<img src=x" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "Ada &lt;b&gt;L&lt;/b&gt;" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "Content warning" in html
    assert 'src="data:image/svg+xml;base64,' in html  # charts embedded, nothing remote
    assert "http://" not in html.split("<body>")[0] and 'src="http' not in html
    diff = _overall(comp, "fakebias", "pct_stereotyped").diff
    assert f"{diff:+.4f}" in html
    assert "[+0.3125, +0.6017]" in html  # run A's own stored CI beside its value


def test_markdown_neutralises_and_carries_eval_results(made):
    from huggingface_hub import ModelCard

    _, comp, _, _, paths = made
    md = paths["md"].read_text(encoding="utf-8")
    assert "<script" not in md.lower() and "<img" not in md and "](javascript" not in md
    assert "&lt;script&gt;" in md
    assert "\n# heading" not in md and "\\# heading" in md
    card = ModelCard(md)
    results = {(e.dataset_type, e.metric_type): e.metric_value for e in card.data.eval_results}
    assert results[("fakebias", "pct_stereotyped")] == 1.0
    assert results[("faketox", "expected_max_toxicity")] == pytest.approx(_overall(comp, "faketox", "expected_max_toxicity").value_b)
    assert "Responsible-AI audit" in card.text and "Verdict: FAIL" in card.text


def test_md_text_by_hand():
    assert md_text("<b>x</b>\n# h") == "&lt;b&gt;x&lt;/b&gt; \\# h"
    assert md_text("a" * 10, limit=4) == "aaaa […]"
    assert md_text(None) == ""


def test_pdf_text_and_page_one_png(made, tmp_path):
    from pypdf import PdfReader

    _, comp, _, _, paths = made
    reader = PdfReader(str(paths["pdf"]))
    text = "\n".join(page.extract_text() for page in reader.pages)
    row = _overall(comp, "fakebias", "pct_stereotyped")
    for needle in ("FAIL", f"{row.diff:+.4f}", f"{row.value_a:.4f}", "hf:org/tuned-model", "Annex XI", "MEASURE 2.11", "Sign-off"):
        assert needle in text, needle
    assert "<script>alert('pwned')</script>" in text  # shown as text, which is what escaping means
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils, see .ci/report_deps.txt) is not installed")
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", "-singlefile", str(paths["pdf"]), str(tmp_path / "page1")], check=True)
    png = (tmp_path / "page1.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > height > 100  # A4 landscape


def test_json_has_every_number(made):
    store, comp, gate, _, paths = made
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    by_probe = {p["probe"]: p for p in data["probes"]}
    fields = ("n", "value_a", "value_b", "diff", "ci_low", "ci_high", "p_value", "p_adjusted", "mde", "se")
    for p in comp.probes:
        got = by_probe[p.probe]["rows"]
        assert len(got) == len(p.rows)
        for want, row in zip(comp.model_dump(mode="json")["probes"][[x.probe for x in comp.probes].index(p.probe)]["rows"], got):
            assert {k: row[k] for k in fields} == {k: want[k] for k in fields}
        assert by_probe[p.probe]["flip_counts"] == p.flip_counts
        for key in ("a", "b"):
            assert by_probe[p.probe]["confounders"][key]["refusal_rate"] == p.confounders[key].refusal_rate
    assert [g["value"] for g in data["gate"]["rows"]] == [g.value for g in gate.rows]
    assert [g["limit"] for g in data["gate"]["rows"]] == [g.limit for g in gate.rows]
    assert data["gate"]["exit_code"] == 1
    assert [m["value"] for m in data["metrics"]["b"]] == [m.value for m in store.metrics("B")]
    assert [m["ci_low"] for m in data["metrics"]["a"]] == [m.ci_low for m in store.metrics("A")]
    assert data["methodology"]["scorers"]["b"]["threshold"] == 0.5 and data["methodology"]["scorers"]["b"]["operator"] == ">="


def test_report_sections(made):
    _, _, _, report, paths = made
    html = paths["html"].read_text(encoding="utf-8")
    for heading in ("Summary", "Gate", "Results by probe", "Subgroup deltas", "Item flips", "Worst items", "Confounders",
                    "Methodology", "Data sets", "Known limitations", "Provenance", "EU AI Act", "NIST AI RMF", "Sign-off"):
        assert heading in html, heading
    assert "CC-BY-4.0" in html and "ab" * 32 in html  # license and file checksum
    assert "Nangia et al. 2020 (toy)" in html and "stereotyped sentence is preferred" in html  # definition + citation
    assert "Dixon et al. 2018" in html
    assert report["signoff"]["prepared_by"] == "Ada <b>L</b>" and set(report["signoff"]) >= {"reviewed_by", "approved_by", "date"}


def test_decoding_set_per_probe_is_said_so_not_printed_as_null(tmp_path):
    """Audit configs set decoding per probe (k, top_k, chat are probe parameters), so a run has no
    run-wide decoding; the methodology table showed `null` and `None` there (a new user's trial)."""
    store = FakeStore()
    per_probe = {"probes": [{"name": "faketox", "params": {"k": 3, "max_new_tokens": 10}}]}
    for run_id, tox in (("A", [0.1, 0.2, 0.6, 0.1]), ("B", [0.7, 0.2, 0.4, 0.9])):
        store.add_run(run_id, {"faketox": tox_records(tox)}, scorer=SCORER, config=per_probe,
                      metrics=[MetricRow("faketox", "expected_max_toxicity", "", sum(tox) / 4, 4, 0.0, 1.0)])
    comp = compare_runs(store, "A", "B", n_boot=200, seed=0, probe_loader=fake_loader)
    report = build_report(store, comparison=comp, gate=evaluate_gate(load_policy("demo"), comp), probe_loader=fake_loader)
    html = write_report(report, tmp_path, "html")["html"].read_text(encoding="utf-8")
    table = html[html.index("Decoding, seeds and chat template"):html.index("<h3>Scorer")]
    assert "<code>null</code>" not in table and "<td>None</td>" not in table, table
    assert table.count("set per probe (no run-wide setting)") == 2 and table.count("its <code>chat</code> parameter") == 2


def test_every_format_verifies(made):
    store, _, _, _, paths = made
    for fmt, path in paths.items():
        result = verify(path, store)
        assert result.ok, (fmt, result.format_text())
        assert result.format == fmt and len(result.checks) == 1 + 2 * 3 + 1


def test_verify_detects_tampering(made, tmp_path):
    store, comp, _, _, paths = made
    diff = f"{_overall(comp, 'fakebias', 'pct_stereotyped').diff:+.4f}"
    html = paths["html"].read_text(encoding="utf-8")
    (tmp_path / "t.html").write_text(html.replace(diff, "+0.0100"), encoding="utf-8")
    assert not verify(tmp_path / "t.html", store).ok
    (tmp_path / "t2.html").write_text(html + "<p>added</p>\n", encoding="utf-8")
    assert not verify(tmp_path / "t2.html", store).ok
    (tmp_path / "t3.html").write_text(html.split("\n<!-- rai-audit-manifest")[0], encoding="utf-8")
    assert not verify(tmp_path / "t3.html", store).ok

    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    data["probes"][0]["rows"][0]["diff"] = 0.0
    (tmp_path / "t.json").write_text(json.dumps(data), encoding="utf-8")
    assert not verify(tmp_path / "t.json", store).ok

    md = paths["md"].read_text(encoding="utf-8")
    (tmp_path / "t.md").write_text(md.replace("Verdict: FAIL", "Verdict: PASS"), encoding="utf-8")
    assert not verify(tmp_path / "t.md", store).ok

    pdf = paths["pdf"].read_bytes()
    i = verify(paths["pdf"], store).manifest["content_length"] // 2  # flip a byte inside the document
    (tmp_path / "t.pdf").write_bytes(pdf[:i] + bytes([pdf[i] ^ 0x01]) + pdf[i + 1:])
    assert not verify(tmp_path / "t.pdf", store).ok
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(io.BytesIO(pdf), incremental=True)  # an appended update that redraws a page
    writer.pages[0].merge_page(PdfReader(io.BytesIO(pdf)).pages[1])
    buf = io.BytesIO()
    writer.write(buf)
    (tmp_path / "t2.pdf").write_bytes(buf.getvalue())
    res = verify(tmp_path / "t2.pdf", store)
    assert not res.ok and "appended" in res.format_text()


def test_verify_detects_store_drift(made, tmp_path):
    _, _, _, _, paths = made
    drifted = _store()
    drifted._records["B"]["faketox"][0]["max_toxicity"] = 0.01  # the results changed since
    res = verify(paths["html"], drifted)
    assert not res.ok
    failed = {c.name for c in res.checks if c.ok is False}
    assert failed == {"run B records_sha256", next(c.name for c in res.checks if c.name.startswith("comparison"))}
    with pytest.raises(UserError):
        verify(tmp_path / "missing.html", drifted)


def test_single_run_report_and_formats(tmp_path):
    store = _store()
    report = build_report(store, run_id="A", probe_loader=fake_loader)
    assert report["kind"] == "run" and report["summary"]["verdict"] == "not gated"
    paths = write_report(report, tmp_path, ["html", "md", "json"])
    html = paths["html"].read_text(encoding="utf-8")
    assert "0.4500" in html and "expected_max_toxicity" in html
    assert verify(paths["json"], store).ok
    with pytest.raises(UserError, match="docx"):
        parse_formats("html,docx")


def test_finetune_manifest_in_provenance(tmp_path):
    store = _store()
    store.runs["A"] = store.runs["A"].__class__(**{**store.runs["A"].__dict__, "audit_id": "audit-1"})
    store.add_run("F", {}, config={"finetune": {"learning_rate": 0.000123, "mixture": "demo"}})
    finetune = store.runs["F"].__class__(**{**store.runs["F"].__dict__, "kind": "finetune", "audit_id": "audit-1"})
    store.list_runs = lambda **kw: [finetune] if kw == {"audit_id": "audit-1", "kind": "finetune"} else []
    report = build_report(store, run_id="A", probe_loader=fake_loader)
    assert report["provenance"]["finetune-1"]["run_id"] == "F"
    html = write_report(report, tmp_path, "html")["html"].read_text(encoding="utf-8")
    assert "Fine-tuning run" in html and "config.finetune.learning_rate" in html and "0.000123" in html
