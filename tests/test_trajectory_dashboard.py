"""The Trajectory page under Streamlit's AppTest, on the shared trajectory fixture
(tests/trajectory_fixture.py) analysed by the real ``analyse_trajectory``: a step trajectory and
a tasks trajectory render with every point's verdict as the analysis computes it, the chart's
data and the table of points carry the numbers of the analysis, a point's links open its
comparison on the Compare page (``?comparison=<id>``), hostile labels reach the page only as
text, and a store without trajectories says what to do.

The audit's policy is recorded with the trajectory (the fixture's ``FIXTURE_POLICY``), and the
checkpoints' comparisons are saved under it by analysing once, as a trajectory audit does at its
end; the page analyses with no policy given and must show the same verdicts under that policy."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("altair")

from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboards import trajectory_frames as tf  # noqa: E402
from rai_audit.store import Store  # noqa: E402
from rai_audit.trajectory.analysis import analyse_trajectory  # noqa: E402
from tests.dashboard_fixture import build_empty_store  # noqa: E402
from tests.trajectory_fixture import POLICY_NAME, build_trajectory, registered  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "dashboards" / "app.py")
#: Drift of the toxicity probe per point: step 4 passes, step 8 is inconclusive, the final step fails.
DRIFT = {4: 0.02, 8: 0.08, 12: 0.3}
TASK_DRIFT = {1: 0.02, 2: 0.08, 4: 0.3}
HOSTILE = "<img src=x onerror=alert(1)> **bold** [x](javascript:alert(1))"
N_BOOT = 200



@pytest.fixture(scope="module", autouse=True)
def _probes_registered():
    """The fixture's probes in the registry for this module only (other tests compare the registry
    with the shipped probes)."""
    with registered():
        yield


def audited(path: Path, **kwargs):
    """A trajectory in a store, with its checkpoints' comparisons saved under the audit's policy
    (what a trajectory audit leaves behind). Returns (fixture, that analysis)."""
    fx = build_trajectory(path, **kwargs)
    analysis = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT)  # under the policy recorded with the trajectory
    assert analysis.policy["name"] == POLICY_NAME
    return fx, analysis


@pytest.fixture(scope="module")
def step(tmp_path_factory):
    fx, analysis = audited(tmp_path_factory.mktemp("traj") / "step.sqlite", drift=DRIFT)
    yield fx, analysis
    fx.store.close()


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    fx, analysis = audited(tmp_path_factory.mktemp("traj") / "tasks.sqlite", axis="tasks", positions=(0, 1, 2, 4),
                           drift=TASK_DRIFT)
    yield fx, analysis
    fx.store.close()


def plain(md: str) -> str:
    """What Streamlit shows of escaped Markdown: colour directives, backslash escapes and HTML entities resolved."""
    return html.unescape(re.sub(r"\\(.)", r"\1", re.sub(r":[a-z]+\[([^\]]*)\]", r"\1", md)))


def page(url: str, monkeypatch, query: dict | None = None, target: str = "trajectory") -> AppTest:
    monkeypatch.setenv("RAI_AUDIT_DB", url)
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.switch_page(f"app_pages/{target}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def points_tables(at: AppTest) -> list:
    return [df.value for df in at.dataframe if {"position", "verdict", "value [95% CI]"} <= set(df.value.columns)]


def charts(at: AppTest) -> list[tuple[dict, list]]:
    """The Vega-Lite charts on the page: (spec, its data sets as data frames)."""
    from streamlit import dataframe_util

    return [(json.loads(el.proto.spec), [dataframe_util.convert_arrow_bytes_to_pandas_df(d.data.data) for d in el.proto.datasets])
            for el in at.get("vega_lite_chart")]


def check_page(at: AppTest, analysis, axis_title: str) -> None:
    assert [t.value for t in at.title] == ["Trajectory"]
    heads = [plain(h.value) for h in at.subheader]
    sha = analysis.policy["sha256"][:8]
    assert heads[0] == f"Trajectory gate: {analysis.gate['verdict'].upper()} — policy {POLICY_NAME} (sha256 {sha})"
    summary = next(plain(c.value) for c in at.caption if plain(c.value).startswith("Axis: "))
    assert summary.startswith(f"Axis: {axis_title}; 4 points: base, ")
    for p in analysis.points[1:]:  # every checkpoint's verdict, as the analysis computed it under the audit's policy
        assert f"{p.label} ({p.verdict})" in summary
    assert {p.verdict for p in analysis.points[1:]} == {"pass", "inconclusive", "fail"}
    probes = tf.probes(analysis)
    assert [h for h in heads if ": " in h and not h.startswith("Trajectory gate")] == [
        "Toy toxicity probe (trajectory): toxicity_probability", "Toy bias probe (trajectory): accuracy"]
    tables = points_tables(at)
    assert len(tables) == len(probes) == 2
    for probe, table in zip(probes, tables):
        heads_of = [h for h in analysis.headline if h.probe == probe]
        assert list(table["position"]) == [p.position for p in analysis.points]
        assert list(table["label"]) == [p.label for p in analysis.points]
        assert list(table["verdict"]) == ["base"] + [p.verdict for p in analysis.points[1:]]
        for (_, row), h in zip(table.iterrows(), heads_of):
            assert row["value [95% CI]"].startswith(f"{h.value:.4f} [{h.ci_low:.4f}, {h.ci_high:.4f}]")
            if h.position:
                assert row["change vs base [95% CI]"] == f"{h.diff:+.4f} [{h.diff_ci_low:+.4f}, {h.diff_ci_high:+.4f}]"
            else:
                assert row["change vs base [95% CI]"] == "-"
        losses = [p.train_loss for p in analysis.points]
        assert [None if x != x else round(x, 6) for x in table["train loss"]] == [None if x is None else round(x, 6) for x in losses]
    trends = [plain(c.value) for c in at.caption if plain(c.value).startswith("Trend of ")]
    tox = next(t for t in analysis.trends if t.probe == "trajtox")
    assert trends[0] == (f"Trend of toxicity_probability: {tox.slope:+.4f} {tox.per}, 95% CI [{tox.ci_low:+.4f}, {tox.ci_high:+.4f}] "
                         f"({tox.n_points} points, {tox.n_items} items): worsening (the whole CI is on the worse side).")
    assert trends[1].endswith(": not worsening.")
    drawn = charts(at)
    assert len(drawn) == 2
    for probe, (spec, frames) in zip(probes, drawn):  # each point with its verdict, the base as a rule, a click selection
        points = next(f for f in frames if "verdict" in f.columns)
        heads_of = [h for h in analysis.headline if h.probe == probe]
        assert list(points["position"]) == [h.position for h in heads_of]
        assert list(points["value"]) == pytest.approx([h.value for h in heads_of])
        assert list(points["verdict"]) == ["base"] + [p.verdict for p in analysis.points[1:]]
        assert list(points["comparison_id"]) == [""] + [p.comparison_id for p in analysis.points[1:]]
        rule = next(f for f in frames if list(f.columns) == ["base"])
        assert rule["base"].iloc[0] == pytest.approx(heads_of[0].value)
        assert [p["name"] for p in spec["params"]] == [tf.SELECTION]
        marks = [layer["mark"]["type"] for layer in spec["layer"]]
        assert marks == ["area", "line", "rule", "point"]
        enc = spec["layer"][-1]["encoding"]
        assert enc["color"]["field"] == enc["shape"]["field"] == "verdict"
        assert enc["color"]["scale"]["domain"] == tf.VERDICT_ORDER
    assert spec["layer"][0]["encoding"]["x"]["title"] == axis_title


def test_step_trajectory_renders_with_verdicts(step, monkeypatch):
    fx, analysis = step
    at = page(fx.url, monkeypatch)
    check_page(at, analysis, "training step")
    final = analysis.points[-1]
    links = [el.proto for el in at.get("page_link")]  # the checkpoint picker defaults to the final point
    assert [(ln.page, ln.query_string) for ln in links] == [("compare", f"comparison={final.comparison_id}"),
                                                             ("items", f"comparison={final.comparison_id}")]


def test_tasks_trajectory_renders_with_verdicts(tasks, monkeypatch):
    fx, analysis = tasks
    at = page(fx.url, monkeypatch)
    check_page(at, analysis, "number of mixture tasks")
    assert [p.label for p in analysis.points] == ["base", "1 task", "2 tasks", "4 tasks"]
    spec, _ = charts(at)[0]
    assert spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "symlog"


def test_picking_a_checkpoint_links_its_comparison(step, monkeypatch):
    fx, analysis = step
    at = page(fx.url, monkeypatch)
    mid = analysis.points[2]
    at.selectbox(key="trajectory_checkpoint").set_value(mid.position).run()
    assert not at.exception
    assert {el.proto.query_string for el in at.get("page_link")} == {f"comparison={mid.comparison_id}"}
    assert "\n".join(mid.gate_reasons) in [t.value for t in at.text]


@pytest.mark.parametrize("target", ["compare", "items"])
def test_a_linked_comparison_opens_on_compare_and_items(step, monkeypatch, target):
    """What a click on a point does: the Compare (and Items) page opened with ?comparison=<id>
    shows that checkpoint against the base, not the default pair."""
    fx, analysis = step
    mid = analysis.points[1]
    at = page(fx.url, monkeypatch, {"comparison": mid.comparison_id}, target)
    assert at.selectbox(key=f"{target}_a").value == analysis.base_run
    assert at.selectbox(key=f"{target}_b").value == mid.run_id
    if target == "compare":
        heading = next(plain(h.value) for h in at.subheader if plain(h.value).startswith("Gate: "))
        assert heading.startswith(f"Gate: {mid.verdict.upper()}")


def test_hostile_labels_are_text(tmp_path, monkeypatch):
    fx = build_trajectory(tmp_path / "hostile.sqlite", drift=DRIFT)
    with Store.open(fx.url) as store:  # a point recorded with a label carrying markup
        store.add_trajectory_point(fx.trajectory_id, axis="step", position=16, run_id=fx.runs[12], audit_id="traj-audit",
                                   meta={"label": HOSTILE})
    fx.store.close()
    at = page(fx.url, monkeypatch)
    for el in list(at.markdown) + list(at.caption) + list(at.subheader) + list(at.info) + list(at.warning):
        assert "<img" not in el.value and "](javascript" not in el.value, el.value
    summary = next(c.value for c in at.caption if plain(c.value).startswith("Axis: "))
    assert HOSTILE in plain(summary)  # shown, literally
    assert HOSTILE in list(points_tables(at)[0]["label"])


def test_empty_store_says_how_to_record_a_trajectory(tmp_path, monkeypatch):
    at = page(build_empty_store(tmp_path / "empty.sqlite"), monkeypatch)
    info = " ".join(plain(i.value) for i in at.info)
    assert "holds no trajectory audit yet" in info and "trajectory: {every: N}" in info and "rai-audit sweep" in info
    assert not at.dataframe and not at.get("vega_lite_chart")


def test_trajectory_frames_on_the_analysis(step):
    """The frame behind charts and tables: one row per probe and point, with the analysis' numbers."""
    _, analysis = step
    frame = tf.headline_frame(analysis)
    assert len(frame) == len(analysis.headline) == 2 * len(analysis.points)
    base = frame[frame["position"] == 0]
    assert base["diff"].isna().all() and set(base["verdict"]) == {"base"}
    assert tf.comparison_of(analysis, 0) is None
    assert tf.comparison_of(analysis, 8) == analysis.point(8).comparison_id
    assert tf.selected_position({"selection": {tf.SELECTION: [{"position": 8}]}}) == 8
    assert tf.selected_position({"selection": {tf.SELECTION: []}}) is None
