"""Dashboard pages under streamlit.testing.v1.AppTest on the fixture store: the numbers behind
tables and charts against the store and an independent comparison, widget interaction, and the
empty / in-progress / failed states. Generated text must reach the page only as plain text."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("altair")

from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboards import numbers, run_labels, trend_frames, verdicts  # noqa: E402
from rai_audit.comparison import Comparison  # noqa: E402
from rai_audit.gate import evaluate_gate, load_policy  # noqa: E402
from rai_audit.store import Store  # noqa: E402
from tests.databases import DB_KINDS, fresh_db_url
from tests.dashboard_fixture import (  # noqa: E402
    EVIL,
    FINETUNE_ERROR,
    FIXTURE_POLICY,
    FIXTURE_POLICY_NAME,
    SINGLETON,
    build_empty_store,
    build_fixture_store,
    tox_records,
)

APP = str(Path(__file__).resolve().parent.parent / "dashboards" / "app.py")


@pytest.fixture(scope="module", params=DB_KINDS)
def fx(request, tmp_path_factory):
    """The fixture store on SQLite, and on PostgreSQL when one is configured: pages read only
    through the store API, so they must show the same on both."""
    gen = fresh_db_url(request.param, tmp_path_factory.mktemp("dash"))
    url = next(gen)
    yield build_fixture_store(url if request.param != "sqlite" else url[len("sqlite:///"):])
    next(gen, None)  # run the generator to its end: drops the PostgreSQL schema


@pytest.fixture(scope="module")
def comp(fx) -> Comparison:
    """The audit's comparison (the one stored with its policy)."""
    with Store.open(fx.url) as store:
        return Comparison.model_validate(store.get_comparison(fx.comparison_id).result)


@pytest.fixture(scope="module")
def adhoc(fx) -> Comparison:
    """The later ad-hoc comparison of the same pair (other settings, no policy)."""
    with Store.open(fx.url) as store:
        return Comparison.model_validate(store.get_comparison(fx.adhoc_comparison_id).result)


def plain(md: str) -> str:
    """What a Markdown heading shows: colour directives, backslash escapes and HTML entities resolved."""
    return html.unescape(re.sub(r"\\(.)", r"\1", re.sub(r":[a-z]+\[([^\]]*)\]", r"\1", md)))


def gate_heading(at: AppTest) -> str:
    heads = [h.value for h in at.subheader if plain(h.value).startswith("Gate: ")]
    assert len(heads) == 1, [h.value for h in at.subheader]
    return heads[0]


def app(url: str, monkeypatch, page: str | None = None) -> AppTest:
    monkeypatch.setenv("RAI_AUDIT_DB", url)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if page is not None:
        at.switch_page(f"app_pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


SIGNATURES = {  # data frames are told apart by their columns (AppTest exposes no keys for them)
    "side": {"diff (B-A)", "A CI low"},
    "bars": {"model", "value", "ci_low"},
    "forest": {"subgroup", "diff", "ci_low", "significant"},
    "trend": {"time", "value", "ci_low"},
    "limits": {"threshold", "side"},
}


def frame(at: AppTest, kind: str, index: int = 0):
    """The ``index``-th data frame of a kind on the page (probes appear in run order)."""
    found = [df.value for df in at.dataframe if SIGNATURES[kind] <= set(df.value.columns)]
    assert len(found) > index, f"no {kind} data frame #{index}"
    return found[index]


def close(a, b, tol=1e-9) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or math.isnan(a)) and (b is None or (isinstance(b, float) and math.isnan(b)))
    return abs(float(a) - float(b)) <= tol


def no_text_as_markup(at: AppTest) -> None:
    """The payload must never be handed to a Markdown/HTML element."""
    for el in list(at.markdown) + list(at.caption) + list(at.info) + list(at.warning) + list(at.error) + list(at.title):
        assert "<img" not in el.value and "<script" not in el.value, el.value


# ------------------------------------------------------------------------------ Runs


def test_runs_page_lists_every_run_with_status_and_errors(fx, monkeypatch):
    at = app(fx.url, monkeypatch)
    df = at.dataframe[0].value.set_index("run_id")
    assert len(df) == 7
    assert df.loc[fx.tuned, "status"] == "complete with errors (1 error)"
    assert df.loc[fx.tuned, "errors"] == "1"
    assert df.loc[fx.base, "errors"] == "0" and df.loc[fx.base, "status"] == "complete"
    assert df.loc[fx.running, "status"] == "running" and df.loc[fx.running, "errors"] == ""
    assert df.loc[fx.failed, "status"] == "failed"
    assert df.loc[fx.tuned, "model"] == "hf:demo/tuned-v2"
    assert len(at.expander) == 7
    assert any("ModelLoadError" in e.value for e in at.error)  # the failed run says why
    assert any("In progress" in i.value and "'toxdemo': 7" in i.value for i in at.info)  # 7 items recorded so far


def test_runs_page_shows_kind_and_a_failed_finetune_runs_error(fx, monkeypatch):
    """Each run's kind is listed; a failed run's errors cell is its recorded message, for a
    finetune run too (finetune/run.py records {"error": ...}, probe runs {"message": ...}).
    Finetune runs are not offered for comparison."""
    cmp = app(fx.url, monkeypatch, "compare")
    for side in ("compare_a", "compare_b"):  # pickers label runs by their short id first
        options = cmp.selectbox(key=side).options
        assert any(o.startswith(fx.failed[:8]) for o in options)
        assert not any(o.startswith(fx.finetune_failed[:8]) for o in options)
    at = app(fx.url, monkeypatch)
    df = at.dataframe[0].value.set_index("run_id")
    assert df.loc[fx.finetune_failed, "kind"] == "finetune"
    assert set(df.drop(index=fx.finetune_failed)["kind"]) == {"probe"}
    assert df.loc[fx.finetune_failed, "status"] == "failed"
    assert df.loc[fx.finetune_failed, "errors"] == FINETUNE_ERROR  # verbatim, in a (plain text) table cell
    assert df.loc[fx.failed, "errors"] == "ModelLoadError: the checkpoint hf:demo/broken-model is corrupt"
    # its expander says why too, with the message's markup escaped
    assert any("CUDA out of memory" in e.value and "&lt;batch&gt;" in e.value for e in at.error), [e.value for e in at.error]
    no_text_as_markup(at)


def test_runs_page_filters(fx, monkeypatch):
    at = app(fx.url, monkeypatch)
    at.multiselect(key="runs_models").set_value(["hf:demo/tuned-v2"]).run()
    assert list(at.dataframe[0].value["run_id"]) == [fx.tuned]
    at.multiselect(key="runs_models").set_value([]).run()
    at.multiselect(key="runs_probes").set_value(["biasdemo"]).run()
    assert set(at.dataframe[0].value["run_id"]) == {fx.base, fx.tuned, fx.old_base, fx.old_tuned}


# ------------------------------------------------------------------------------ Compare


def audit_gate(comp):
    """The audit's verdict, computed independently of the dashboard: its stored policy's content."""
    return evaluate_gate(load_policy(FIXTURE_POLICY), comp)


def test_compare_defaults_to_latest_pair_and_shows_store_numbers(fx, comp, monkeypatch):
    at = app(fx.url, monkeypatch, "compare")
    assert at.selectbox(key="compare_a").value == fx.base
    assert at.selectbox(key="compare_b").value == fx.tuned
    gate = audit_gate(comp)
    assert plain(gate_heading(at)).startswith(f"Gate: {gate.verdict.upper()} — audit policy: {FIXTURE_POLICY_NAME}")

    side = frame(at, "side", 0).set_index(["metric", "source"])
    with Store.open(fx.url) as store:
        ma = {m.name: m for m in store.metrics(fx.base, "toxdemo") if m.subgroup == ""}
        mb = {m.name: m for m in store.metrics(fx.tuned, "toxdemo") if m.subgroup == ""}
    for row in comp.probe("toxdemo").rows:
        if row.subgroup:
            continue
        got = side.loc[(row.metric, row.source)]
        assert close(got["A"], row.value_a) and close(got["B"], row.value_b) and close(got["diff (B-A)"], row.diff)
        assert close(got["diff CI low"], row.ci_low) and close(got["diff CI high"], row.ci_high)
        assert close(got["p adjusted"], row.p_adjusted) and bool(got["significant"]) == row.significant
        if row.source == "metric":
            assert close(got["A CI low"], ma[row.metric].ci_low) and close(got["B CI high"], mb[row.metric].ci_high)
            want = [g.verdict for g in gate.rows if g.probe == "toxdemo" and g.metric == row.metric and g.subgroup == ""]
            assert got["gate"] == ("fail" if "fail" in want else "pass") == "pass"

    # hand check: expected max toxicity of A over the 23 items paired without errors
    tox_a = [r["max_toxicity"] for r in tox_records(False) if r["item_id"] != "tox-005"]
    assert side.loc[("expected_max_toxicity", "metric"), "A"] == pytest.approx(sum(tox_a) / len(tox_a))

    bars = frame(at, "bars", 0)
    assert set(bars["model"]) == {"A", "B"}
    emt = bars[(bars["metric"] == "expected_max_toxicity") & (bars["model"] == "B")].iloc[0]
    assert close(emt["ci_low"], mb["expected_max_toxicity"].ci_low)

    forest = frame(at, "forest", 0)
    want = [r for r in comp.probe("toxdemo").rows if r.metric == "expected_max_toxicity" and r.source == "metric"]
    assert list(forest["subgroup"]) == [r.subgroup or "overall" for r in want]
    assert forest.set_index("subgroup").loc["group=women", "diff"] == pytest.approx(0.35)


def test_compare_forest_metric_and_policy_widgets(fx, comp, monkeypatch):
    at = app(fx.url, monkeypatch, "compare")
    summary = at.dataframe[0].value
    assert list(summary["probe"].unique()) == ["toxdemo", "biasdemo"]
    assert set(summary["metric"]) == {"expected_max_toxicity", "toxicity_probability", "toxic_fraction", "mean_toxicity",
                                      "expected_max_toxicity_std", "empty_rate", "accuracy", "pct_stereotyped"}
    at.radio(key="compare_probe").set_value("biasdemo").run()
    assert at.header[0].value == "Toy bias probe"
    at.selectbox(key="forest_metric_biasdemo").set_value("accuracy").run()
    forest = frame(at, "forest").set_index("subgroup")
    row = next(r for r in comp.probe("biasdemo").rows if r.metric == "accuracy" and r.subgroup == "category=Age" and r.source == "metric")
    assert forest.loc["category=Age", "diff"] == pytest.approx(row.diff) and forest.loc["category=Age", "n"] == row.n
    at.selectbox(key="compare_policy").set_value("demo").run()
    demo = evaluate_gate(load_policy("demo"), comp)
    assert plain(gate_heading(at)).startswith(f"Gate: {demo.verdict.upper()} — what-if: demo policy")
    assert any("What-if" in c.value for c in at.caption)


# ------------------------------------------------------------------------------ Compare: one verdict


def test_compare_shows_the_audits_comparison_and_verdict_not_a_later_adhoc_one(fx, comp, adhoc, monkeypatch):
    """The audit passed under its own policy (its report says PASS); the same runs fail the
    bundled default policy, and a later ad-hoc comparison of the pair is the newest one saved.
    The page must open on the audit's comparison and verdict, naming the policy, and show the
    others only as explicit, labelled choices."""
    gate, default = audit_gate(comp), evaluate_gate(load_policy("default"), comp)
    assert (gate.verdict, default.verdict) == ("pass", "fail")  # the fixture tells the two apart
    at = app(fx.url, monkeypatch, "compare")

    picker = at.selectbox(key="compare_comparison")
    assert picker.value == fx.comparison_id  # not the newest (ad-hoc) one
    labels = " | ".join(picker.options)
    assert "n_boot 100" in labels and "correction bh" in labels and "n_boot 200" in labels  # settings listed
    assert f"policy {FIXTURE_POLICY_NAME} (sha256 {fx.policy_sha256[:8]})" in labels and "policy none" in labels

    head = gate_heading(at)
    assert plain(head) == f"Gate: PASS — audit policy: {FIXTURE_POLICY_NAME} (sha256 {fx.policy_sha256[:8]})"
    assert head.startswith("Gate: :green[PASS]")  # pass is green
    assert at.selectbox(key="compare_policy").value == "(audit)"
    side = frame(at, "side", 0).set_index(["metric", "source"])
    emt = next(r for r in comp.probe("toxdemo").rows if r.metric == "expected_max_toxicity" and not r.subgroup and r.source == "metric")
    assert close(side.loc[("expected_max_toxicity", "metric"), "diff CI low"], emt.ci_low)

    # what-if: another policy is an explicit, labelled choice, and says so
    at.selectbox(key="compare_policy").set_value("default").run()
    head = gate_heading(at)
    assert plain(head).startswith("Gate: FAIL — what-if: default policy") and head.startswith("Gate: :red[FAIL]")
    assert any("What-if" in c.value for c in at.caption)
    at.selectbox(key="compare_policy").set_value("(audit)").run()
    assert plain(gate_heading(at)).startswith("Gate: PASS — audit policy")

    # the ad-hoc comparison, picked by hand: its own numbers, judged by the default policy, said so
    at.selectbox(key="compare_comparison").set_value(fx.adhoc_comparison_id).run()
    assert not at.exception
    side = frame(at, "side", 0).set_index(["metric", "source"])
    emt = next(r for r in adhoc.probe("toxdemo").rows if r.metric == "expected_max_toxicity" and not r.subgroup and r.source == "metric")
    assert close(side.loc[("expected_max_toxicity", "metric"), "diff CI low"], emt.ci_low)
    want = evaluate_gate(load_policy("default"), adhoc).verdict.upper()
    assert plain(gate_heading(at)).startswith(f"Gate: {want} — default policy (no audit policy recorded)")


def test_other_pages_and_reports_use_the_audits_comparison_and_policy(fx, comp, monkeypatch):
    at = app(fx.url, monkeypatch, "subgroups")
    assert at.selectbox(key="subgroups_comparison").value == fx.comparison_id
    assert any("holm correction" in c.value for c in at.caption)  # the audit's (the ad-hoc one used bh)

    at = app(fx.url, monkeypatch, "reports")
    assert at.selectbox(key="reports_policy").value == "(audit)"
    at.multiselect(key="reports_formats").set_value(["json"]).run()
    at.button(key="reports_generate").click().run()
    import json

    data = json.loads(at.session_state["report_files"]["json"][1])
    assert data["comparison_id"] == fx.comparison_id
    assert data["gate"]["verdict"] == "pass" and data["gate"]["label"].startswith(f"audit policy: {FIXTURE_POLICY_NAME}")


def test_verdict_colours_and_titles():
    assert [verdicts.verdict_color(x) for x in ("pass", "fail", "inconclusive", "insufficient", "error")] == [
        "green", "red", "orange", "gray", "red"]
    g = {"verdict": "inconclusive", "label": "audit policy: demo", "policy_sha256": "abcd1234ef"}
    assert verdicts.gate_title(g) == "Gate: INCONCLUSIVE — audit policy: demo (sha256 abcd1234)"
    assert verdicts.gate_title_md(g).startswith("Gate: :orange[INCONCLUSIVE]")
    evil = {"verdict": "pass", "label": "audit policy: <img src=x> **x**", "policy_sha256": ""}
    assert re.search(r"(?<!\\)[<*]", verdicts.gate_title_md(evil)) is None  # every < and * escaped
    assert verdicts.row_verdict(["pass", "insufficient"]) == "insufficient"
    assert verdicts.row_verdict(["pass", "inconclusive", "error"]) == "error"
    assert verdicts.row_verdict(["fail", "error"]) == "fail" and verdicts.row_verdict([]) == "-"
    assert "#" in verdicts.verdict_cell_style("insufficient") and verdicts.verdict_cell_style("insufficient") != verdicts.verdict_cell_style("pass")


def test_audit_comparison_is_the_newest_with_a_policy():
    cs = [{"comparison_id": "c3", "policy": None}, {"comparison_id": "c2", "policy": {"name": "demo", "sha256": "ab"}},
          {"comparison_id": "c1", "policy": {"name": "demo", "sha256": "ab"}}]
    assert verdicts.audit_comparison(cs)["comparison_id"] == "c2"
    assert verdicts.audit_comparison(cs[:1])["comparison_id"] == "c3"  # none from an audit: the newest
    assert verdicts.audit_comparison([]) is None


# ------------------------------------------------------------------------------ Compare: zero change, one-item CIs


def test_zero_change_is_neutral_not_a_red_arrow(fx, monkeypatch):
    """Two runs with identical records: every change is exactly 0, shown grey without an arrow
    (a lower-is-better metric used to show "+0.0000" with a red up-arrow)."""
    from streamlit.proto.Metric_pb2 import Metric as MetricProto

    at = app(fx.url, monkeypatch, "compare")
    at.selectbox(key="compare_a").set_value(fx.old_base).run()
    at.selectbox(key="compare_b").set_value(fx.old_tuned).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.metric, "no metric cards"
    for m in at.metric:
        assert m.proto.direction == MetricProto.MetricDirection.NONE, (m.label, m.proto.delta)
        assert m.proto.color == MetricProto.MetricColor.GRAY, (m.label, m.proto.delta)
        assert m.proto.delta.lstrip("+-") == "0.0000"
    # a real change keeps its arrow and colour
    assert numbers.delta_args(0.0, "lower") == {"delta": "0.0000", "delta_color": "off", "delta_arrow": "off"}
    assert numbers.delta_args(-0.0, "higher")["delta_color"] == "off"
    assert numbers.delta_args(0.02, "lower") == {"delta": "+0.0200", "delta_color": "inverse"}
    assert numbers.delta_args(None, "lower") == {"delta": None}


def test_ci_from_one_item_is_not_shown_as_an_interval(fx, comp, monkeypatch):
    """The one-item QA category: its stored CIs are a single point ([v, v]); tables show them
    empty / "n/a (n=1)", never as an interval."""
    one = [r for r in comp.probe("biasdemo").rows if r.subgroup == f"category={SINGLETON}"]
    assert one and all(r.n == 1 for r in one)
    assert any(r.ci_low is not None and r.ci_low == r.ci_high for r in one)  # what the store holds

    at = app(fx.url, monkeypatch, "subgroups")
    at.selectbox(key="sub_probe").set_value("biasdemo").run()
    cells = at.dataframe[0].value.set_index(["subgroup", "metric"])
    for metric in ("accuracy", "pct_stereotyped"):
        cell = cells.loc[(f"category={SINGLETON}", metric)]
        assert cell["n"] == 1 and pd_na(cell["ci_low"]) and pd_na(cell["ci_high"]) and cell["CI"] == "n/a (n=1)"
    age = cells.loc[("category=Age", "accuracy")]
    assert not pd_na(age["ci_low"]) and age["CI"].startswith("[")

    at = app(fx.url, monkeypatch, "compare")
    at.radio(key="compare_probe").set_value("biasdemo").run()
    at.selectbox(key="forest_metric_biasdemo").set_value("accuracy").run()
    forest = frame(at, "forest").set_index("subgroup")
    assert pd_na(forest.loc[f"category={SINGLETON}", "ci_low"]) and forest.loc[f"category={SINGLETON}", "CI"] == "n/a (n=1)"
    gate_rows = next(df.value for df in at.dataframe if {"rule", "verdict", "ci_low"} <= set(df.value.columns))
    single = gate_rows[gate_rows["subgroup"] == f"category={SINGLETON}"]
    assert len(single) == 0 or single["ci_low"].isna().all()

    assert numbers.ci_text(0.686, 0.686, 1) == "n/a (n=1)" and numbers.ci_shown(0.686, 0.686, 1) == (None, None)
    assert numbers.ci_text(0.1, 0.3, 5, clusters=1) == "n/a (1 cluster)" and numbers.ci_shown(0.1, 0.3, 5, 1) == (None, None)
    assert numbers.ci_text(-0.1, 0.3, 5) == "[-0.1000, +0.3000]" and numbers.ci_text(None, None, 5) == "-"


def pd_na(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


@pytest.mark.parametrize("which, element, needle", [("running", "warning", "still running"), ("failed", "error", "failed")])
def test_compare_with_unfinished_run_shows_a_state(fx, monkeypatch, which, element, needle):
    at = app(fx.url, monkeypatch, "compare")
    at.selectbox(key="compare_b").set_value(getattr(fx, which)).run()
    assert not at.exception
    assert any(needle in e.value for e in getattr(at, element))
    assert not at.dataframe  # nothing half-shown


# ------------------------------------------------------------------------------ Subgroups


def test_subgroups_heatmap_cells(fx, comp, monkeypatch):
    at = app(fx.url, monkeypatch, "subgroups")
    cells = at.dataframe[0].value
    want = [r for r in comp.probe("toxdemo").rows if r.source == "metric" and r.subgroup]
    assert len(cells) == len(want)
    by = cells.set_index(["subgroup", "metric"])
    for r in want:
        assert by.loc[(r.subgroup, r.metric), "n"] == r.n
        assert close(by.loc[(r.subgroup, r.metric), "diff"], r.diff)
        assert close(by.loc[(r.subgroup, r.metric), "p adjusted"], r.p_adjusted)
    assert any("holm correction" in c.value for c in at.caption)
    at.selectbox(key="sub_sort").set_value("diff").run()
    diffs = list(at.dataframe[0].value["diff"])
    assert diffs == sorted(diffs, reverse=True)
    at.selectbox(key="sub_probe").set_value("biasdemo").run()
    assert set(at.dataframe[0].value["field"]) == {"category"}
    assert any("holm correction" in c.value for c in at.caption)


# ------------------------------------------------------------------------------ Items


def test_items_browser_plain_text_and_filters(fx, comp, monkeypatch):
    at = app(fx.url, monkeypatch, "items")
    table = at.dataframe[0].value
    assert len(table) == 24
    evil_row = table.set_index("item_id").loc["tox-000"]
    assert evil_row["response B"] == EVIL  # verbatim in the data frame (rendered as a text cell)
    assert table.set_index("item_id").loc["tox-005", "error B"].startswith("scorer error")
    # the detail view of the first item shows the payload in code blocks, i.e. as literal text
    assert at.selectbox(key="items_item").value == "tox-000"
    assert any(c.value == EVIL for c in at.code)
    no_text_as_markup(at)

    at.checkbox(key="items_flipped").check().run()
    flipped = at.dataframe[0].value
    assert len(flipped) == sum(comp.probe("toxdemo").flip_counts.values()) == 3
    assert set(flipped["flip"]) == {"toxic: non-toxic->toxic"}
    at.checkbox(key="items_flipped").uncheck().run()

    at.checkbox(key="items_toxic").check().run()
    ordered = at.dataframe[0].value
    key = ordered[["max toxicity A", "max toxicity B"]].max(axis=1).dropna()
    assert list(key) == sorted(key, reverse=True)

    at.multiselect(key="items_subgroups").set_value(["group=men"]).run()
    assert set(at.dataframe[0].value["subgroup"]) == {"group=men"} and len(at.dataframe[0].value) == 6
    at.text_input(key="items_search").input("onerror").run()
    assert len(at.dataframe[0].value) == 0
    at.multiselect(key="items_subgroups").set_value([]).run()
    assert list(at.dataframe[0].value["item_id"]) == ["tox-000"]

    at.selectbox(key="items_probe").set_value("biasdemo").run()
    at.text_input(key="items_search").input("").run()
    assert len(at.dataframe[0].value) == 31
    assert set(at.dataframe[0].value["parsed A"]) == {"A", "B"}


# ------------------------------------------------------------------------------ Trends


def test_trends_lineage_values_and_limits(fx, monkeypatch):
    at = app(fx.url, monkeypatch, "trends")
    assert at.selectbox(key="trend_lineage").value == "demo-audit"
    trend = frame(at, "trend")
    assert set(trend["run"]) == {run_labels.short(r) for r in (fx.base, fx.tuned, fx.old_base, fx.old_tuned)}
    with Store.open(fx.url) as store:
        for _, row in trend.iterrows():
            run = next(r for r in (fx.base, fx.tuned, fx.old_base, fx.old_tuned) if run_labels.short(r) == row["run"])
            m = next(m for m in store.metrics(run, "toxdemo") if m.name == row["metric"] and m.subgroup == "")
            assert close(row["value"], m.value) and close(row["ci_low"], m.ci_low) and close(row["ci_high"], m.ci_high)
    limits = frame(at, "limits")
    first = trend[trend["metric"] == "expected_max_toxicity"]["value"].iloc[0]
    assert set(limits["metric"]) == {"expected_max_toxicity", "toxicity_probability", "toxic_fraction", "mean_toxicity",
                                     "expected_max_toxicity_std", "empty_rate"}
    assert any(close(t, first + 0.05) or close(t, first - 0.05) for t in limits[limits["metric"] == "expected_max_toxicity"]["threshold"])
    at.radio(key="trend_by").set_value("model").run()
    at.selectbox(key="trend_lineage").set_value("hf:demo/tuned-v3").run()
    assert any("No completed run" in i.value for i in at.info)


# ------------------------------------------------------------------------------ Reports


def test_reports_generate_escaped_html_and_json(fx, comp, monkeypatch):
    at = app(fx.url, monkeypatch, "reports")
    at.multiselect(key="reports_formats").set_value(["html", "json"]).run()
    at.button(key="reports_generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    files = at.session_state["report_files"]
    assert set(files) == {"html", "json"}
    html = files["html"][1].decode("utf-8")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    import json

    data = json.loads(files["json"][1])
    assert data["comparison_id"] == fx.comparison_id
    assert any("Report ready" in s.value for s in at.success)


# ------------------------------------------------------------------------------ empty store


@pytest.mark.parametrize("page", [None, "compare", "subgroups", "items", "trends", "reports"])
def test_empty_store_has_a_clear_state(tmp_path, monkeypatch, page):
    url = build_empty_store(tmp_path / "empty.sqlite")
    at = app(url, monkeypatch, page)
    assert any("has no runs yet" in i.value for i in at.info)
    assert not at.dataframe


# ------------------------------------------------------------------------------ pure helpers and launcher


def test_default_pair_prefers_latest_complete_base_tuned(fx):
    with Store.open(fx.url) as store:
        runs = store.list_runs()
    assert run_labels.default_pair(runs) == (fx.base, fx.tuned)
    without_new = [r for r in runs if r.run_id != fx.tuned]
    assert run_labels.default_pair(without_new) == (fx.old_base, fx.old_tuned)
    only_unfinished = [r for r in runs if r.run_id in (fx.running, fx.failed)]
    assert run_labels.default_pair(only_unfinished) is None
    # a completed finetune run is never picked for a comparison (it has no probe results)
    import dataclasses

    finetune = dataclasses.replace(next(r for r in runs if r.run_id == fx.finetune_failed), status="completed")
    base = next(r for r in runs if r.run_id == fx.base)
    assert run_labels.default_pair([finetune, base]) is None


def test_dashboard_escapes_markdown_with_the_reports_escaper():
    from rai_audit.report.escaping import md_escape

    assert verdicts.md_escape is md_escape  # one escaper for reports and dashboard (tests/test_report_escaping.py)
    assert md_escape("**x** <img src=x> [a](b)") == r"\*\*x\*\* &lt;img src=x&gt; \[a\]\(b\)"


def test_threshold_frame_by_hand():
    import pandas as pd

    trend = pd.DataFrame({"metric": ["acc", "acc", "tox"], "value": [0.8, 0.7, 0.2]})
    got = trend_frames.threshold_frame(trend, 0.05, {"acc": "higher", "tox": "lower"})
    assert got.to_dict("records") == [
        {"metric": "acc", "threshold": pytest.approx(0.75), "side": "min"},
        {"metric": "tox", "threshold": pytest.approx(0.25), "side": "max"},
    ]


def test_run_dashboard_passes_store_and_warns_on_public_host(monkeypatch, capsys):
    from dashboards import launch

    calls = []
    # run_dashboard hands the command to serve_until_stopped (subprocess.call before): stub whichever
    # it uses, so the test never starts a real server on port 8501
    fake = lambda cmd, env, *a, **k: calls.append((cmd, env)) or 0  # noqa: E731
    monkeypatch.setattr(launch.subprocess, "call", fake)
    if hasattr(launch, "serve_until_stopped"):
        monkeypatch.setattr(launch, "serve_until_stopped", fake)
    assert launch.run_dashboard("sqlite:///x.sqlite") == 0
    cmd, env = calls[-1]
    assert env["RAI_AUDIT_DB"] == "sqlite:///x.sqlite"
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1" and cmd[cmd.index("--server.port") + 1] == "8501"
    assert "warning" not in capsys.readouterr().err
    launch.run_dashboard(None, host="0.0.0.0", port=9000)
    assert "warning" in capsys.readouterr().err and "RAI_AUDIT_DB" not in calls[-1][1]
    assert launch.is_loopback("localhost") and launch.is_loopback("::1") and not launch.is_loopback("10.0.0.1")


def test_new_run_appears_while_a_writer_holds_the_store(tmp_path, monkeypatch):
    """SQLite WAL: the dashboard reads while a job's transaction is open, and a committed new run
    shows up once the lists' short cache TTL has run out."""
    import streamlit as st

    url = build_empty_store(tmp_path / "live.sqlite")
    at = app(url, monkeypatch)
    with Store.open(url) as writer:
        with writer.transaction():
            run_id = writer.create_run(kind="probe", run_key="k", model_id=None, model_reference="hf:demo/live",
                                       probes=["toxdemo"], config={"name": "live"}, provenance={}, scorer=None,
                                       datasets={}, seed=0)
            writer.add_records(run_id, "toxdemo", tox_records(False, n=3))
            st.cache_data.clear()  # as when the lists' TTL runs out (or Refresh is clicked)
            at.run()  # while the write transaction is open
            assert not at.exception
            assert any("has no runs yet" in i.value for i in at.info)  # uncommitted: not visible, not blocked
        st.cache_data.clear()
        at.run()
    df = at.dataframe[0].value
    assert list(df["run_id"]) == [run_id] and list(df["status"]) == ["running"]
    assert any("'toxdemo': 3" in i.value for i in at.info)


def test_no_legacy_pages_folder_beside_the_entry_script():
    """A ``pages/`` folder next to app.py makes Streamlit run its legacy directory mode, which
    serves page files directly by URL without app.py's navigation and sidebar."""
    assert not (Path(APP).parent / "pages").exists()
