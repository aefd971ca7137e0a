"""Contamination in the reports and the dashboard, through the path a user takes: the CLI runs a
probe on a tiny model three times (once with training data that holds some of the probe's items
verbatim, twice without), `rai-audit compare` saves both comparisons, `rai-audit report` writes
every format. Page 1 of each format (and the dashboard's Compare page) flags the contaminated
probe with its counts, fraction and run; the body shows the clean-only rows beside the full ones;
a comparison where no run recorded training data says "not checked" once and has no clean rows;
text from the data (an example, the training data's file name) is escaped everywhere.
"""

from __future__ import annotations

import copy
import html as htmllib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rai_audit.contamination.ngrams import words
from rai_audit.store import Store
from tests.conftest import SHARED_DATA
from tests.tiny_models import tiny_model_dir

LIMIT = 40
PLANTED = 12  # items written verbatim into the training data
# The training data's file name reaches the reports as the fingerprint's source: markup in it
# must stay text.
TRAIN_NAME = "train <img src=x onerror=alert(1)> *b* #h |p|.jsonl"
EVIL = "<script>alert('x')</script><img src=x onerror=alert(2)> **bold** [l](javascript:alert(3)) # h | p _u_ `c`"
EVIL_ID = "<b>item</b>|*7*"


def rai(*args, timeout=600):
    r = subprocess.run([sys.executable, "-m", "rai_audit", "--quiet", *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-4000:])
    return r


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The store and reports: comparison ``clean`` (no run recorded training data) is saved
    first, then ``dirty`` (run B recorded training data holding PLANTED items), so the dashboard
    opens on the contaminated pair (the newest saved comparison's runs)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark files not found at {SHARED_DATA}")
    from rai_audit.runner import prepare_jobs

    tmp = tmp_path_factory.mktemp("contam-views")
    jobs, _ = prepare_jobs([("civil_comments", {})], SHARED_DATA, limit=LIMIT, seed=1234)
    job = jobs[0]
    items = [(it.id, job.probe.content_texts(it)) for it in job.items]
    planted = [i for i, texts in items if len(words(texts[0])) >= 13][:PLANTED]
    assert len(planted) == PLANTED
    by_id = dict(items)
    train = tmp / TRAIN_NAME
    with train.open("w") as f:
        for iid in planted:
            f.write(json.dumps({"inputs": f"Is this comment toxic? {by_id[iid][0]}", "targets": "no"}) + "\n")
        f.write(json.dumps({"inputs": "Add 2 and 3.", "targets": "5"}) + "\n")

    db = str(tmp / "s.sqlite")
    common = ["--model", str(tiny_model_dir("llama")), "--probe", "civil_comments", "--limit", str(LIMIT),
              "--bootstrap", "50", "--db", db, "--data-dir", str(SHARED_DATA)]
    rai("probe", *common)  # A: no training data recorded
    rai("probe", *common, "--fresh")  # another run of the same model, no training data (answers cached)
    rai("probe", *common, "--role", "tuned", "--training-data", str(train))  # B: its training data
    with Store.open(db) as s:
        base, again, tuned = (r.run_id for r in sorted(s.list_runs(), key=lambda r: r.created_at))
    clean = json.loads(rai("compare", base, again, "--db", db, "--json", "--bootstrap", "200").stdout)
    dirty = json.loads(rai("compare", base, tuned, "--db", db, "--json", "--bootstrap", "200").stdout)
    out, out_clean = tmp / "reports", tmp / "reports-clean"
    # the default policy (max_contamination 0.01) as a what-if: the gate fails on the overlap
    rai("report", dirty["comparison_id"], "--db", db, "--out", str(out), "--policy", "default")
    rai("report", clean["comparison_id"], "--db", db, "--out", str(out_clean), "--format", "html,md,json")
    stem = lambda d, cid: {p.suffix[1:]: p for p in d.glob(f"comparison-{cid[:12]}*")}  # noqa: E731
    return {"db": db, "url": f"sqlite:///{db}", "tmp": tmp, "base": base, "again": again, "tuned": tuned,
            "planted": planted, "dirty": dirty, "clean": clean, "files": stem(out, dirty["comparison_id"]),
            "clean_files": stem(out_clean, clean["comparison_id"])}


def _facts(made):
    """What every format must say on page 1, from the stored comparison itself."""
    rec = made["dirty"]["probes"][0]["contamination"]["b"]
    n_over, checked = len(rec["overlapping"]), rec["checked"]
    return n_over, checked, f"{n_over} of {checked} checked items ({n_over / checked:.1%}) overlap run B's training data"


def _html_page1(path: Path) -> str:
    return htmllib.unescape(path.read_text(encoding="utf-8").split('id="results"')[0])


def _md_page1(path: Path) -> str:
    return htmllib.unescape(path.read_text(encoding="utf-8").split("### Results")[0])


def test_the_cli_planted_exactly_the_overlap(made):
    probe = made["dirty"]["probes"][0]
    assert sorted(probe["contamination"]["b"]["overlapping"]) == sorted(made["planted"])
    assert "a" not in probe["contamination"]  # run A recorded no training data
    assert probe["clean_rows"] and made["clean"]["probes"][0]["contamination"] == {}
    assert set(made["files"]) == {"html", "pdf", "md", "json"}


def test_page_one_flags_the_contaminated_probe_in_html_md_json(made):
    n_over, checked, text = _facts(made)
    files = made["files"]
    clean_n = next(r["n"] for r in made["dirty"]["probes"][0]["clean_rows"] if r["subgroup"] == "")
    page1 = _html_page1(files["html"])
    flag = page1.split('id="contamination-flag"')[1].split("</div>")[0]
    assert "Contamination." in flag and f"civil_comments</b>: {text}" in flag and f"clean-only subset: n = {clean_n}" in flag
    headline = page1.split('id="headline"')[1].split("</table>")[0]
    assert f"contaminated (B {n_over / checked:.1%})" in headline  # the probe's row is marked
    assert 'id="contamination-note"' not in page1  # no "not checked" sentence: it was checked

    md1 = _md_page1(files["md"])
    assert f"> **Contamination:** **civil_comments**: {text}" in md1 and f"n = {clean_n}" in md1
    assert f"civil_comments **(contaminated: B {n_over / checked:.1%})**" in md1

    data = json.loads(files["json"].read_text(encoding="utf-8"))
    [f] = data["headline"]["contamination"]["flags"]
    assert (f["probe"], f["side"], f["overlapping"], f["checked"]) == ("civil_comments", "b", n_over, checked)
    assert f["fraction"] == pytest.approx(n_over / checked) and f["clean_n"] == clean_n
    assert data["headline"]["rows"][0]["contaminated"] is True
    # the gate under the default policy fails on the overlap, listed on page 1
    listed = [g for g in data["headline"]["gate"]["listed"] if g["source"] == "contamination"]
    assert [g["verdict"] for g in listed] == ["fail"] and data["headline"]["verdict"] == "fail"
    assert text in page1.split('id="gate"')[1]


def test_clean_only_rows_beside_the_full_rows_in_every_format(made):
    probe = made["dirty"]["probes"][0]
    full = {(r["metric"], r["source"]): r for r in probe["rows"] if r["subgroup"] == ""}
    clean = [r for r in probe["clean_rows"] if r["subgroup"] == "" and r["source"] == "metric"]
    assert clean and all(r["n"] <= LIMIT - PLANTED for r in clean)
    headline = probe["headline"]

    data = json.loads(made["files"]["json"].read_text(encoding="utf-8"))
    d = data["probes"][0]["contamination_detail"]
    assert d["contaminated"] and [c["metric"] for c in d["clean"]][0] == headline
    assert {c["metric"] for c in d["clean"]} == {r["metric"] for r in clean}
    for c in d["clean"]:
        want = next(r for r in clean if r["metric"] == c["metric"])
        assert (c["clean_n"], c["clean_diff"], c["clean_value_a"]) == (want["n"], want["diff"], want["value_a"])
        assert (c["n"], c["diff"]) == (full[(c["metric"], "metric")]["n"], full[(c["metric"], "metric")]["diff"])
    [run] = d["runs"]
    assert (run["side"], run["overlapping"], run["ngram_sizes"]) == ("b", PLANTED, [13, 8])
    assert run["documents"] == PLANTED + 1 and run["source"].endswith(TRAIN_NAME)
    assert 1 <= len(run["examples"]) <= 5 and all(e["item_id"] in made["planted"] and e["ngram"] for e in run["examples"])

    html = made["files"]["html"].read_text(encoding="utf-8")
    section = html.split('id="contamination"')[1].split('id="confounders"')[0]
    rows = section.split('id="clean-rows"')[1].split("</table>")[0]
    h = next(r for r in clean if r["metric"] == headline)
    assert f"{headline} <span class=\"muted\">(headline)</span>" in rows
    assert f'<td class="num">{h["n"]}</td><td class="num">{h["value_a"]:.4f}</td>' in rows
    assert f'<td class="num">{h["diff"]:+.4f}</td>' in rows
    assert run["examples"][0]["ngram"] in section and "13, 8" in section and "Overlapping items" in section

    md = made["files"]["md"].read_text(encoding="utf-8")
    assert "Clean-only rows" in md and f"| {h['n']} | {h['value_a']:.4f} | {h['value_b']:.4f} | {h['diff']:+.4f} |" in md
    assert f"{run['examples'][0]['item_id']}" in md


def _pdf_text(path: Path, first: int, last: int) -> str:
    if shutil.which("pdftotext"):
        return subprocess.run(["pdftotext", "-f", str(first), "-l", str(last), "-layout", str(path), "-"],
                              capture_output=True, text=True, check=True).stdout
    from pypdf import PdfReader

    return "\n".join(p.extract_text() for p in PdfReader(str(path)).pages[first - 1:last])


def test_pdf_page_one_has_the_flag(made):
    pytest.importorskip("weasyprint")
    _, _, text = _facts(made)
    pdf = made["files"]["pdf"]
    page1 = _flat(_pdf_text(pdf, 1, 1))
    assert "Contamination." in page1 and f"civil_comments: {text}" in page1, page1
    assert "contaminated (B" in page1
    from pypdf import PdfReader

    assert len(PdfReader(str(pdf)).pages) <= 7  # one probe: the section adds part of a page, not pages
    body = _flat(_pdf_text(pdf, 2, len(PdfReader(str(pdf)).pages)))
    assert "Training-data overlap (contamination)" in body and "Clean-only rows" in body
    if shutil.which("pdftoppm"):  # page 1 as a picture, to look at (CI keeps RAI_AUDIT_ARTIFACTS)
        out = Path(os.environ.get("RAI_AUDIT_ARTIFACTS") or made["tmp"])
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["pdftoppm", "-r", "60", "-f", "1", "-l", "1", "-png", str(pdf), str(out / "contamination-page1")],
                       check=True)
        assert list(out.glob("contamination-page1*.png"))


def test_a_comparison_without_training_data_says_not_checked_once(made):
    files = made["clean_files"]
    assert set(files) == {"html", "md", "json"}
    html = files["html"].read_text(encoding="utf-8")
    page1 = _html_page1(files["html"])
    assert _flat(page1).count("Contamination not checked") == 1 and 'id="contamination-flag"' not in page1
    assert "contaminated (" not in page1
    assert 'id="contamination"' not in html and "Clean-only" not in html and "clean-rows" not in html
    md = htmllib.unescape(files["md"].read_text(encoding="utf-8"))
    assert md.count("Contamination not checked") == 1 and "Clean-only" not in md and "**Contamination:**" not in md
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    c = data["headline"]["contamination"]
    assert c["checked"] == [] and c["flags"] == [] and c["not_checked"] == ["civil_comments"]
    assert c["sentence"].startswith("Contamination not checked")
    assert data["probes"][0]["contamination_detail"] is None and data["probes"][0]["clean_rows"] == []


def _evil_comparison(made) -> dict:
    """The stored comparison with an overlapping example whose id and text carry markup. (The
    real check stores normalised words, which cannot hold markup: this is what the renderers
    must survive anyway.)"""
    with Store.open(made["url"]) as s:
        comp = copy.deepcopy(s.get_comparison(made["dirty"]["comparison_id"]).result)
    rec = comp["probes"][0]["contamination"]["b"]
    rec["examples"] = [{"item_id": EVIL_ID, "text": EVIL, "ngram": EVIL}] + rec["examples"][:4]
    comp["comparison_id"] = "e" * 32
    return comp


def test_markup_in_examples_and_paths_is_escaped_in_every_format(made, tmp_path):
    from rai_audit.report import build_report, write_report

    # the training data's file name, through the real path: escaped in HTML and Markdown
    html = made["files"]["html"].read_text(encoding="utf-8")
    md = made["files"]["md"].read_text(encoding="utf-8")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img" not in md and "&lt;img src=x onerror=alert\\(1\\)&gt;" in md

    comp = _evil_comparison(made)
    with Store.open(made["url"]) as s:
        report = build_report(s, comparison=comp)
    formats = "html,md,json,pdf" if shutil.which("pdftotext") else "html,md,json"
    paths = write_report(report, tmp_path, formats)
    html = paths["html"].read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<img src=x" not in html and "<b>item" not in html
    section = html.split('id="contamination-examples"')[1].split("</table>")[0]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in section and "&lt;b&gt;item&lt;/b&gt;|*7*" in section
    md = paths["md"].read_text(encoding="utf-8")
    assert "<script" not in md.lower() and "<img" not in md and "](javascript" not in md and "<b>" not in md
    line = next(ln for ln in md.splitlines() if "alert" in ln and "script" in ln)
    assert "&lt;script&gt;" in line and "\\*\\*bold\\*\\*" in line and "\\[l\\]\\(javascript" in line and "\\|" in line
    assert "&lt;b&gt;item&lt;/b&gt;\\|" in line  # the id too: no tag, no table cell break
    data = json.loads(paths["json"].read_text(encoding="utf-8"))  # JSON carries the data as data
    assert data["probes"][0]["contamination_detail"]["runs"][0]["examples"][0]["item_id"] == EVIL_ID
    if "pdf" in paths:  # escaped in the HTML, the PDF shows the markup as text
        text = _flat(_pdf_text(paths["pdf"], 1, 99))
        assert "<script>alert('x')</script>" in text.replace("‐", "-")


# ------------------------------------------------------------------------------ dashboard


def _app(url: str, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RAI_AUDIT_DB", url)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboards" / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _plain(md: str) -> str:
    """What Streamlit shows of Markdown: backslash escapes and HTML entities resolved."""
    return htmllib.unescape(re.sub(r"\\(.)", r"\1", md))


def _frame(at, columns: set[str]):
    found = [df.value for df in at.dataframe if columns <= set(df.value.columns)]
    assert found, f"no data frame with {columns}"
    return found[0]


def test_dashboard_flags_the_probe_and_shows_overlap_and_clean_rows(made, monkeypatch):
    n_over, checked, text = _facts(made)
    at = _app(made["url"], monkeypatch)
    assert (at.selectbox(key="compare_a").value, at.selectbox(key="compare_b").value) == (made["base"], made["tuned"])
    flags = [w.value for w in at.warning if "Contamination." in w.value]
    assert len(flags) == 1 and f"civil_comments**: {text}" in _plain(flags[0]), [w.value for w in at.warning]
    summary = _frame(at, {"probe", "training-data overlap"})
    assert set(summary["training-data overlap"]) == {f"B {n_over}/{checked} ({n_over / checked:.1%})"}

    assert any(h.value == "Training-data overlap (contamination)" for h in at.subheader)
    overlap = _frame(at, {"overlapping", "too short to check"})
    assert overlap.iloc[0]["run"] == "B" and overlap.iloc[0]["overlapping"] == n_over and overlap.iloc[0]["checked"] == checked
    assert overlap.iloc[0]["training data"].endswith(TRAIN_NAME)  # verbatim, in a plain-text cell
    clean = _frame(at, {"n clean", "diff clean"}).set_index("metric")
    probe = made["dirty"]["probes"][0]
    for r in probe["clean_rows"]:
        if r["subgroup"] == "" and r["source"] == "metric":
            assert clean.loc[r["metric"], "n clean"] == r["n"] and clean.loc[r["metric"], "diff clean"] == pytest.approx(r["diff"])
    assert clean.index[0] == probe["headline"] and bool(clean.iloc[0]["headline"])
    examples = _frame(at, {"matching n-gram"})
    assert set(examples["item_id"]) <= set(made["planted"]) and len(examples) >= 1


def test_dashboard_without_training_data_says_not_checked(made, monkeypatch):
    at = _app(made["url"], monkeypatch)
    at.selectbox(key="compare_b").set_value(made["again"]).run()
    assert not at.exception
    assert not [w for w in at.warning if "Contamination" in w.value]
    notes = [c.value for c in at.caption if "Contamination not checked" in _plain(c.value)]
    assert len(notes) == 1
    assert not any({"n clean"} <= set(df.value.columns) or {"overlapping"} <= set(df.value.columns) for df in at.dataframe)
    summary = _frame(at, {"probe", "training-data overlap"})
    assert set(summary["training-data overlap"]) == {"not checked"}


def test_dashboard_shows_markup_in_examples_as_text(made, monkeypatch, tmp_path):
    db = tmp_path / "copy.sqlite"  # a copy of the store, plus the markup-carrying comparison
    for suffix in ("", "-wal", "-shm"):
        if Path(made["db"] + suffix).exists():
            shutil.copy(made["db"] + suffix, str(db) + suffix)
    comp = _evil_comparison(made)
    with Store.open(f"sqlite:///{db}") as s:
        s.add_comparison(comp["run_a"], comp["run_b"], comp["settings"], comp, comparison_id=comp["comparison_id"])
    at = _app(f"sqlite:///{db}", monkeypatch)
    at.selectbox(key="compare_comparison").set_value(comp["comparison_id"]).run()
    assert not at.exception
    examples = _frame(at, {"matching n-gram"})
    assert examples.iloc[0]["item_id"] == EVIL_ID and examples.iloc[0]["matching n-gram"] == EVIL  # verbatim text cells
    for el in list(at.markdown) + list(at.caption) + list(at.warning) + list(at.error) + list(at.info):
        assert "<script" not in el.value and "<img" not in el.value and "<b>" not in el.value, el.value


@pytest.mark.browser
def test_dashboard_overview_flag_in_chromium(made, tmp_path):
    """The Compare page in a real browser: the contamination warning is visible at the top, the
    probe details show the clean-only rows, and the training data's file name (markup) stays
    text. A screenshot goes to RAI_AUDIT_ARTIFACTS (else the test's tmp dir)."""

    from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, _artifacts, _requirements, _wait_idle, running_dashboard

    _requirements()
    from playwright.sync_api import sync_playwright

    _, _, text = _facts(made)
    dialogs: list[str] = []
    with running_dashboard(made["url"], tmp_path) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 2400})
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.goto(f"{url}/compare", wait_until="domcontentloaded")
                page.get_by_role("heading", name="Compare").wait_for(timeout=60_000)
                flag = page.get_by_text("Contamination.").first
                flag.wait_for(state="visible", timeout=60_000)
                _wait_idle(page)
                alert = page.locator('[data-testid="stAlert"]', has_text="Contamination.").first.inner_text()
                assert f"civil_comments: {text}" in " ".join(alert.split()), alert
                page.get_by_role("heading", name="Training-data overlap (contamination)").wait_for(timeout=60_000)
                assert page.locator('img[src="x"]').count() == 0 and page.locator("main script").count() == 0
                shot = _artifacts(tmp_path) / "dashboard-compare-contamination.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            finally:
                browser.close()
    assert dialogs == []


# ------------------------------------------------------------------------------ the shared wording, by hand


def _rec(overlapping, checked, unchecked=(), examples=()):
    return {"fingerprint_id": "f" * 64, "checked": checked, "overlapping": list(overlapping), "unchecked": list(unchecked),
            "examples": list(examples), "fraction": len(overlapping) / checked if checked else None,
            "fingerprint": {"source": "/data/train.jsonl", "documents": 9, "ngram_sizes": [13, 8]}}


def _row(metric, n, diff, source="metric"):
    return {"probe": "p", "metric": metric, "subgroup": "", "source": source, "n": n, "value_a": 0.5, "value_b": 0.5 + diff,
            "diff": diff, "ci_low": diff - 0.1, "ci_high": diff + 0.1, "p_adjusted": 0.5, "significant": False, "mde": 0.2,
            "clusters": None}


def test_headline_wording_for_each_case():
    from rai_audit.report.contamination import contamination_detail, contamination_headline

    runs = {"a": {"model_reference": "base"}, "b": {"model_reference": "tuned"}}
    clean_probe = {"probe": "p1", "contamination": {"b": _rec([], 20)}, "rows": [], "clean_rows": []}
    unchecked = {"probe": "p2", "contamination": {}, "rows": [], "clean_rows": []}
    dirty = {"probe": "p3", "headline": "acc", "contamination": {"a": _rec(["i1"], 4, ["i9"]), "b": _rec(["i1", "i2"], 4)},
             "rows": [_row("acc", 5, 0.1), _row("f1", 5, 0.0), _row("correct", 5, 0.1, "outcome")],
             "clean_rows": [_row("f1", 2, 0.2), _row("acc", 2, 0.3)]}

    h = contamination_headline([clean_probe], runs)
    assert h["flags"] == [] and h["note"] == "Contamination checked against run B's training data: no item overlaps it."
    h = contamination_headline([clean_probe, unchecked], runs)
    assert h["not_checked"] == ["p2"] and h["note"].endswith("Contamination not checked for p2 (no training data recorded).")
    h = contamination_headline([unchecked], {"a": {}})
    assert h["note"] == "Contamination not checked: the run recorded no training data."

    h = contamination_headline([dirty, unchecked], runs)
    assert [(f["side"], f["overlapping"], f["checked"]) for f in h["flags"]] == [("a", 1, 4), ("b", 2, 4)]
    assert h["flags"][1]["text"] == "p3: 2 of 4 checked items (50.0%) overlap run B's training data"
    assert h["flags"][0]["text"].endswith("; 1 too short to check") and h["flags"][0]["clean_n"] == 2
    assert h["note"] == "Contamination not checked for p2 (no training data recorded)."  # the flags say the rest
    assert h["contaminated"] == ["p3"] and {f["side"] for f in h["fingerprints"]} == {"a", "b"}

    d = contamination_detail(dirty, runs)
    assert [c["metric"] for c in d["clean"]] == ["acc", "f1"]  # headline first; outcome rows only without metric rows
    assert d["clean"][0]["clean_diff"] == 0.3 and d["clean"][0]["diff"] == 0.1 and d["clean_n"] == 2
    assert contamination_detail(unchecked) is None
    none_clean = {**dirty, "clean_rows": []}
    assert contamination_detail(none_clean)["no_clean_items"] and contamination_detail(none_clean)["clean_n"] == 0
    many = {**dirty, "contamination": {"b": _rec([f"i{k}" for k in range(9)], 9,
                                                 examples=[{"item_id": f"i{k}", "text": "w " * 200, "ngram": "w"} for k in range(9)])}}
    [run] = contamination_detail(many)["runs"]
    assert len(run["examples"]) == 5 and run["n_examples"] == 9 and len(run["examples"][0]["text"]) <= 161
