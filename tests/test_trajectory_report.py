"""The report's trajectory section on the shared trajectory fixture (tests/trajectory_fixture.py),
analysed by the real ``analyse_trajectory``: a report of the comparison whose tuned run is the
trajectory's final point carries the section in HTML (after the results, not on page 1), in the
Markdown card and in the JSON report, with the analysis' numbers; ``build_report(trajectory=...)``
puts it in any report; hostile labels and probe titles are escaped; a report of a run that ends
no trajectory has no such section; and the PDF stays short."""

from __future__ import annotations

import json

import pytest

from rai_audit.comparison import Comparison
from rai_audit.report import build_report, verify, write_report
from rai_audit.trajectory.analysis import analyse_trajectory
from tests.trajectory_fixture import POLICY_NAME, build_trajectory, registered

DRIFT = {4: 0.02, 8: 0.08, 12: 0.3}  # step 4 passes, step 8 is inconclusive, the final step fails
N_BOOT = 200
HOSTILE = "<script>alert('pwned')</script> **bold** [x](javascript:alert(1)) # heading | pipe"



@pytest.fixture(scope="module", autouse=True)
def _probes_registered():
    """The fixture's probes in the registry for this module only (other tests compare the registry
    with the shipped probes)."""
    with registered():
        yield


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """A trajectory audit's store: the checkpoints' comparisons saved under the audit's policy."""
    fx = build_trajectory(tmp_path_factory.mktemp("trajrep") / "t.sqlite", drift=DRIFT)
    analysis = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT)  # the recorded policy
    yield fx, analysis
    fx.store.close()


def comparison_of(fx, analysis, position: int) -> Comparison:
    return Comparison.model_validate(fx.store.get_comparison(analysis.point(position).comparison_id).result)


@pytest.fixture(scope="module")
def made(audit, tmp_path_factory):
    fx, analysis = audit
    comp = comparison_of(fx, analysis, 12)  # base vs the final point: the audit's own comparison
    report = build_report(fx.store, comparison=comp)
    paths = write_report(report, tmp_path_factory.mktemp("out"), "html,pdf,md,json", stem="report")
    return report, paths


def test_report_of_the_final_point_has_the_trajectory_in_every_format(audit, made):
    fx, analysis = audit
    report, paths = made
    sec = report["trajectory"]
    # JSON: the analysis the store gives, point by point and probe by probe
    assert sec["trajectory_id"] == fx.trajectory_id and sec["axis"] == "step" and sec["base_run"] == fx.runs[0]
    assert sec["verdict"] == analysis.gate["verdict"] == "fail" and sec["policy"] == POLICY_NAME
    assert [p["position"] for p in sec["points"]] == [0, 4, 8, 12]
    assert [p["verdict"] for p in sec["points"]] == ["base", "pass", "inconclusive", "fail"]
    assert [p["comparison_id"] for p in sec["points"]] == [p.comparison_id for p in analysis.points]
    heads = {(h.probe, h.position): h for h in analysis.headline}
    for p in sec["points"]:
        for cell in p["cells"]:
            h = heads[(cell["probe"], p["position"])]
            assert cell["value"] == pytest.approx(h.value)
            assert cell["value_text"] == f"{h.value:.4f} [{h.ci_low:.4f}, {h.ci_high:.4f}]"
            if p["position"]:
                assert cell["diff_text"] == f"{h.diff:+.4f} [{h.diff_ci_low:+.4f}, {h.diff_ci_high:+.4f}]"
    tox = next(t for t in analysis.trends if t.probe == "trajtox")
    row = next(t for t in sec["probes"] if t["probe"] == "trajtox")
    assert row["worsening"] is True and row["title"] == "Toy toxicity probe (trajectory)"
    assert row["slope_text"] == f"{tox.slope:+.4f} [{tox.ci_low:+.4f}, {tox.ci_high:+.4f}] {tox.per}"
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["trajectory"] == sec

    html = paths["html"].read_text(encoding="utf-8")
    start = html.index('<h2 id="trajectory"')
    assert html.index('<h2 id="results"') < start  # after the results, in the body
    section = html[start:html.index("<h2", start + 1)]
    assert section.count("<img ") == 1 and 'src="data:image/svg+xml;base64,' in section  # one plot
    # two compact tables in long format (they fit any number of probes and points): the points with
    # their verdicts; then, per probe, its headline value and change at each point and its trend
    assert section.count('<table class="small"') == 2
    n_points, n_probes = len(sec["points"]), len(sec["probes"])
    assert section.count("<tr class=") == n_points + n_probes * (n_points + 1)
    assert f"{row['slope_text']}: worsening" in section and "final (step 12)" in section
    for verdict in ("PASS", "INCONCLUSIVE", "FAIL"):
        assert f">{verdict}</td>" in section

    md = paths["md"].read_text(encoding="utf-8")
    assert md.index("### Results") < md.index("### Trajectory during tuning")
    assert "| 12 | final \\(step 12\\) | FAIL |" in md and row["slope_text"] in md
    for fmt, path in paths.items():
        assert verify(path, fx.store).ok, fmt


def test_trajectory_section_is_not_on_page_one_and_the_pdf_stays_short(audit, made, tmp_path):
    from pypdf import PdfReader

    fx, analysis = audit
    _, paths = made
    pages = [p.extract_text() for p in PdfReader(str(paths["pdf"])).pages]
    assert "Trajectory during tuning" not in pages[0]  # page 1 stays the verdict summary
    assert any("Trajectory during tuning" in p for p in pages[1:])
    # the same comparison without the trajectory: at most one page more
    plain = build_report(fx.store, comparison=comparison_of(fx, analysis, 12), trajectory=None)
    plain.pop("trajectory")
    without = write_report(plain, tmp_path, "pdf", stem="plain")["pdf"]
    n_without = len(PdfReader(str(without)).pages)
    assert len(pages) <= n_without + 1 and len(pages) <= 7, (len(pages), n_without)


def test_given_analysis_is_shown_and_hostile_text_is_escaped(audit, tmp_path):
    fx, analysis = audit
    hostile = analysis.model_copy(deep=True)
    hostile.points[1].label = HOSTILE
    for h in hostile.headline:
        if h.position == hostile.points[1].position:
            h.label = HOSTILE
    comp = comparison_of(fx, analysis, 8).model_dump(mode="json")  # a middle point: no trajectory of its own
    comp["probes"][0]["title"] = HOSTILE  # a probe title from the store
    report = build_report(fx.store, comparison=comp, trajectory=hostile)
    assert report["trajectory"]["points"][1]["label"] == HOSTILE  # the JSON keeps the text as it is
    assert report["trajectory"]["probes"][0]["title"] == HOSTILE
    paths = write_report(report, tmp_path, "html,md", stem="hostile")
    html = paths["html"].read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    md = paths["md"].read_text(encoding="utf-8")
    section = md[md.index("### Trajectory during tuning"):]
    assert "<script" not in section and "](javascript" not in section and "\n# heading" not in section
    assert "&lt;script&gt;alert\\(&#x27;pwned&#x27;\\)&lt;/script&gt;" in section
    table = [ln for ln in section.splitlines() if ln.startswith("| 4 |")]
    assert len(table) == 1 and table[0].count(" | ") == section.splitlines()[4].count(" | ")  # the pipe cannot add a column


def test_no_trajectory_no_section(audit, tmp_path):
    fx, analysis = audit
    report = build_report(fx.store, comparison=comparison_of(fx, analysis, 8))  # step 8 ends no trajectory
    assert "trajectory" not in report
    paths = write_report(report, tmp_path, "html,md", stem="none")
    assert 'id="trajectory"' not in paths["html"].read_text(encoding="utf-8")
    assert "Trajectory during tuning" not in paths["md"].read_text(encoding="utf-8")
    run_report = build_report(fx.store, run_id=fx.runs[12])  # a single run's report: no comparison, no section
    assert "trajectory" not in run_report


def test_tasks_trajectory_section(tmp_path):
    fx = build_trajectory(tmp_path / "tasks.sqlite", axis="tasks", positions=(0, 1, 2, 4), drift={1: 0.02, 2: 0.08, 4: 0.3})
    try:
        analysis = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT)  # the recorded policy
        report = build_report(fx.store, comparison=comparison_of(fx, analysis, 4))
        sec = report["trajectory"]
        assert sec["axis"] == "tasks" and sec["axis_title"] == "number of mixture tasks"
        assert [p["label"] for p in sec["points"]] == ["base", "1 task", "2 tasks", "4 tasks"]
        assert next(t for t in sec["probes"] if t["probe"] == "trajtox")["slope_text"].endswith("per doubling of tasks")
        html = write_report(report, tmp_path, "html", stem="tasks")["html"].read_text(encoding="utf-8")
        assert 'id="trajectory"' in html and 'src="data:image/svg+xml;base64,' in html[html.index('id="trajectory"'):]
    finally:
        fx.store.close()
