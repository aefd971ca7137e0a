"""Regression gate: rule arithmetic by hand, error budget, policy validation, and the planted
difference failing a sensible gate while identical runs pass."""

from __future__ import annotations

import math

import pytest

from rai_audit.comparison import Comparison, DiffRow, ProbeComparison, compare_runs
from rai_audit.errors import UserError
from rai_audit.display import fmt_ci
from rai_audit.gate import Policy, Rule, evaluate_gate, evaluate_row, format_table, load_policy
from tests.test_compare import fake_loader, planted_store  # noqa: F401 - fixture


def row(diff, lo, hi, *, a=0.4, better="lower", metric="m", subgroup="", probe="p", significant=None):
    """A comparison row; ``significant`` defaults to what the CI says (it excludes 0)."""
    if significant is None:
        significant = lo is not None and hi is not None and (lo > 0 or hi < 0)
    p = 0.001 if significant else 0.5
    return DiffRow(
        probe=probe, metric=metric, subgroup=subgroup, source="metric", method="test", n=100,
        value_a=a, value_b=a + diff if not math.isnan(diff) else math.nan, diff=diff, ci_low=lo, ci_high=hi,
        p_value=p, p_adjusted=p, significant=significant, mde=0.1, better=better, kind="ratio",
    )


def comparison(rows, errors_a=0):
    probe = ProbeComparison(
        probe="p", title="P", citation="", metric_specs=[], n_pairs=100, errors_a=errors_a, errors_b=0,
        rows=rows, flips=[], flip_counts={}, confounders={}, worst_items=[],
    )
    return Comparison(comparison_id="cid", run_a="A", run_b="B", created_at="2026-01-01T00:00:00+00:00", settings={},
                      probes=[probe])


def test_point_vs_ci_lower_is_better():
    r = row(0.03, -0.01, 0.07)
    assert evaluate_row(Rule(max_abs_change=0.05, use="point"), r).verdict == "pass"
    # CI [-0.01, 0.07] neither rules out a rise beyond 0.05 nor shows a significant rise: inconclusive
    g = evaluate_row(Rule(max_abs_change=0.05, use="ci"), r)
    assert g.verdict == "inconclusive" and g.checked == 0.07 and g.limit == 0.05 and g.bad_direction == "increase"
    # significant rise (CI excludes 0) with the point beyond the margin: fail
    assert evaluate_row(Rule(max_abs_change=0.05, use="ci"), row(0.08, 0.03, 0.13)).verdict == "fail"
    # the CI excludes 0 but the corrected p-value does not call it significant: not a failure
    assert evaluate_row(Rule(max_abs_change=0.05, use="ci"), row(0.08, 0.03, 0.13, significant=False)).verdict == "inconclusive"
    # significant rise, but the point within the margin and the CI crossing it: inconclusive
    assert evaluate_row(Rule(max_abs_change=0.05, use="ci"), row(0.04, 0.01, 0.07)).verdict == "inconclusive"
    # the CI rules out a rise beyond the margin: pass, even though the rise is significant
    assert evaluate_row(Rule(max_abs_change=0.05, use="ci"), row(0.02, 0.01, 0.04)).verdict == "pass"
    # an improvement (decrease) never fails a lower-is-better rule
    assert evaluate_row(Rule(max_abs_change=0.0, use="ci"), row(-0.3, -0.4, -0.2)).verdict == "pass"


def test_higher_is_better_and_explicit_directions():
    assert evaluate_row(Rule(max_abs_change=0.05, use="point"), row(-0.06, -0.1, 0.0, better="higher")).verdict == "fail"
    assert evaluate_row(Rule(max_abs_change=0.05, use="point"), row(0.2, 0.1, 0.3, better="higher")).verdict == "pass"
    assert evaluate_row(Rule(max_abs_change=0.05, use="ci"), row(-0.2, -0.3, -0.1, better="higher")).verdict == "fail"
    either = Rule(max_abs_change=0.05, use="ci", direction="either")
    assert evaluate_row(either, row(0.0, -0.06, 0.01)).verdict == "inconclusive"
    assert evaluate_row(either, row(-0.1, -0.16, -0.04)).verdict == "fail"
    assert evaluate_row(either, row(0.0, -0.04, 0.04)).verdict == "pass"
    # exactly at the limit passes
    assert evaluate_row(Rule(max_abs_change=0.05, use="point", direction="increase"), row(0.05, 0, 0.1)).verdict == "pass"


def test_minimum_support_is_insufficient_data_not_error():
    small = DiffRow(probe="p", metric="m", subgroup="g=1", source="metric", method="t", n=4, value_a=0.2, value_b=0.9,
                    diff=0.7, ci_low=0.7, ci_high=0.7, p_value=0.1, p_adjusted=0.1, significant=False, mde=None,
                    better="lower", clusters=4)
    g = evaluate_row(Rule(max_abs_change=0.05, use="point"), small)
    assert g.verdict == "insufficient" and "n = 4" in g.reason
    few_clusters = DiffRow(**{**small.__dict__, "n": 40, "clusters": 5})
    assert evaluate_row(Rule(max_abs_change=0.05, use="point"), few_clusters).verdict == "insufficient"
    assert evaluate_row(Rule(max_abs_change=0.05, use="point"), few_clusters, min_clusters=5).verdict == "fail"
    assert evaluate_row(Rule(max_abs_change=0.05, use="point", min_items=3, min_clusters=2), small).verdict == "fail"
    res = evaluate_gate({"rules": [{"subgroup": "*", "max_abs_change": 0.05, "use": "point"}]},
                        comparison([small, row(0.0, -0.01, 0.01)]))
    assert res.verdict == "pass" and res.counts["insufficient"] == 1 and res.errors == 0
    text = format_table(res)
    assert "1 row(s) with insufficient data" in text and "INSUFFICIENT" not in text


def test_a_table_with_every_row_hidden_says_which_rows_there_are_instead_of_none():
    """What the demo printed: "(no metric rows to list)", then "(1 passing row(s) not listed)". The
    first line now says what is absent, and the MDE legend goes with the table it explains."""
    small = DiffRow(probe="p", metric="m", subgroup="g=1", source="metric", method="t", n=4, value_a=0.2, value_b=0.9,
                    diff=0.7, ci_low=0.7, ci_high=0.7, p_value=0.1, p_adjusted=0.1, significant=False, mde=None,
                    better="lower", clusters=4)
    policy = {"rules": [{"subgroup": "*", "max_abs_change": 0.05, "use": "point"}]}
    res = evaluate_gate(policy, comparison([small, row(0.0, -0.01, 0.01)]))
    lines = format_table(res, only_not_passed=True).splitlines()
    assert lines[:3] == ["No failing or inconclusive rows.", "(1 passing row(s) not listed; --all lists them)",
                         "(1 row(s) with insufficient data (fewer than 10 items or 6 clusters, or undefined on these "
                         "items) not listed; `--json` has them)"]
    assert not any(line.startswith("MDE:") for line in lines)
    assert "PASS" in format_table(res) and "MDE: the smallest change" in format_table(res)  # --all: the table
    only_small = evaluate_gate(policy, comparison([small]))
    assert format_table(only_small).startswith("No row with enough data to judge.\n(1 row(s) with insufficient")
    assert format_table(evaluate_gate(policy, comparison([]))).startswith("No rule rows:")


def test_ci_from_one_item_is_not_an_interval():
    assert fmt_ci(0.686, 0.686, n=1) == "n/a (n=1)"
    assert fmt_ci(0.1, 0.3, n=40, clusters=1) == "n/a (1 cluster)"
    assert fmt_ci(0.1, 0.3, n=40, clusters=12, signed=True) == "[+0.1000, +0.3000]"


def test_relative_limit():
    # limit = 0.10 * |0.4| = 0.04; a rise of 0.05 fails, 0.03 passes
    g = evaluate_row(Rule(max_rel_change=0.10, use="point"), row(0.05, 0.0, 0.1))
    assert g.limit == pytest.approx(0.04) and g.verdict == "fail"
    assert evaluate_row(Rule(max_rel_change=0.10, use="point"), row(0.03, 0.0, 0.1)).verdict == "pass"


def test_closer_to_half_judges_distance_growth_across_the_ideal():
    # A = 0.475 (just below 1/2), B = 1.0: distance grows from 0.025 to 0.5 -> +0.475 > 0.1
    g = evaluate_row(Rule(max_abs_change=0.10, use="point"), row(0.525, 0.4, 0.6, a=0.475, better="closer_to_half"))
    assert g.verdict == "fail" and g.checked == pytest.approx(0.475) and g.bad_direction == "away from 0.5"
    # A = 0.6 -> B = 0.45: distance shrinks 0.1 -> 0.05
    g2 = evaluate_row(Rule(max_abs_change=0.0, use="point"), row(-0.15, -0.2, -0.1, a=0.6, better="closer_to_half"))
    assert g2.verdict == "pass" and g2.checked == pytest.approx(-0.05)
    # CI mode: B in A + [-0.2, -0.1] = [0.4, 0.5]: worst distance 0.1 -> growth 0.0
    g3 = evaluate_row(Rule(max_abs_change=0.0, use="ci"), row(-0.15, -0.2, -0.1, a=0.6, better="closer_to_half"))
    assert g3.checked == pytest.approx(0.0) and g3.verdict == "pass"


def test_errors_count_as_failures_unless_allowed():
    rows = [row(0.0, -0.01, 0.01), row(math.nan, None, None, metric="undefined")]
    res = evaluate_gate({"rules": [{"max_abs_change": 0.05, "undefined": "error"}]}, comparison(rows))
    verdicts = {(g.metric, g.verdict) for g in res.rows}
    assert ("m", "pass") in verdicts and ("undefined", "error") in verdicts
    assert res.errors == 1 and res.verdict == "fail" and res.exit_code == 1
    ok = evaluate_gate({"max_errors": 1, "rules": [{"max_abs_change": 0.05, "undefined": "error"}]}, comparison(rows))
    assert ok.verdict == "pass" and ok.exit_code == 0
    # an error record in a run counts too
    rec = evaluate_gate({"rules": [{"max_abs_change": 0.05}]}, comparison([row(0.0, 0.0, 0.0)], errors_a=2))
    assert rec.errors == 2 and rec.verdict == "fail"


def test_rules_apply_only_where_declared_and_typos_are_config_errors():
    comp = comparison([row(0.0, 0.0, 0.0)])
    comp.probes[0].metric_specs = [{"name": "m", "better": "lower", "kind": "ratio", "description": ""}]
    # a rule for a metric this probe does not declare gives no row at all (no "SKIPPED" noise)
    other = evaluate_gate({"rules": [{"probe": "*", "metric": "nope", "max_abs_change": 0.1}]}, comp)
    assert other.rows == [] and other.verdict == "pass"
    required = evaluate_gate({"rules": [{"probe": "p", "metric": "m", "subgroup": "x=*", "max_abs_change": 0.1,
                                         "required": True}]}, comp)
    assert required.verdict == "fail" and required.rows[0].verdict == "error"
    # at load time a metric nobody declares is exit 2, naming the rule and the nearest names
    with pytest.raises(UserError, match="stereotype_scor.*Did you mean stereotype_score") as e:
        load_policy({"rules": [{"probe": "crows_pairs", "metric": "stereotype_scor", "max_abs_change": 0.1}]})
    assert e.value.exit_code == 2
    with pytest.raises(UserError, match="matches no probe.*Did you mean bbq"):
        load_policy({"rules": [{"probe": "bbqq", "max_abs_change": 0.1}]})
    load_policy({"rules": [{"probe": "p", "metric": "m", "max_abs_change": 0.1}]}, declared={"p": ["m"]})


def test_inconclusive_verdict_and_exit_code():
    res = evaluate_gate({"rules": [{"max_abs_change": 0.05, "use": "ci"}]}, comparison([row(0.03, -0.01, 0.07)]))
    assert res.verdict == "inconclusive" and res.exit_code == 3
    assert "INCONCLUSIVE" in format_table(res)
    # a failing row outranks an inconclusive one
    both = evaluate_gate({"rules": [{"subgroup": "*", "max_abs_change": 0.05, "use": "ci"}]},
                         comparison([row(0.03, -0.01, 0.07), row(0.2, 0.1, 0.3, subgroup="g=1")]))
    assert both.verdict == "fail" and both.exit_code == 1


def test_the_audits_own_policy_is_the_default_and_others_are_what_ifs(planted_store):  # noqa: F811
    from rai_audit.gate import gate_for_comparison, policy_identity

    ident = policy_identity("demo", load_policy("demo"))
    assert ident["name"] == "demo" and len(ident["sha256"]) == 64
    comp = compare_runs(planted_store, "A", "C", n_boot=100, seed=0, probe_loader=fake_loader, policy=ident)
    assert comp.settings["policy"] == {"name": "demo", "sha256": ident["sha256"]}
    own = gate_for_comparison(comp.model_dump(mode="json"))
    assert own.policy_name == "demo" and not own.what_if and own.label == "audit policy: demo"
    same = gate_for_comparison(comp, "demo")
    assert not same.what_if
    other = gate_for_comparison(comp, "default")
    assert other.what_if and other.label == "what-if: default policy"
    adhoc = compare_runs(planted_store, "A", "C", n_boot=100, seed=0, probe_loader=fake_loader)
    assert adhoc.comparison_id != comp.comparison_id  # the audit's comparison is never confused with an ad-hoc one
    assert gate_for_comparison(adhoc).label == "default policy (no audit policy recorded)"


def test_policy_validation(tmp_path):
    with pytest.raises(UserError, match="exactly one of max_abs_change"):
        load_policy({"rules": [{"max_abs_change": 0.1, "max_rel_change": 0.1}]})
    with pytest.raises(UserError, match="rules"):
        load_policy({"rules": []})
    with pytest.raises(UserError, match="use"):
        load_policy({"rules": [{"max_abs_change": 0.1, "use": "median"}]})
    with pytest.raises(UserError, match="typo"):
        load_policy({"rules": [{"max_abs_change": 0.1, "typo": 1}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_policy(bad)
    with pytest.raises(UserError, match="not found"):
        load_policy(tmp_path / "missing.yaml")
    for name in ("default", "demo"):
        assert load_policy(name).rules


# Every metric, overall and per subgroup, judged by point estimate: the broadest policy shape.
BROAD_POINT = {"rules": [
    {"probe": "*", "metric": "*", "subgroup": "", "max_abs_change": 0.10, "use": "point"},
    {"probe": "*", "metric": "*", "subgroup": "?*", "max_abs_change": 0.10, "use": "point"},
]}


def test_planted_difference_fails_broad_and_default_gates_identical_passes(planted_store):  # noqa: F811
    planted = compare_runs(planted_store, "A", "B", n_boot=200, seed=0, probe_loader=fake_loader)
    same = compare_runs(planted_store, "A", "C", n_boot=200, seed=0, probe_loader=fake_loader)
    for policy in (BROAD_POINT, "default"):
        bad = evaluate_gate(load_policy(policy), planted)
        assert bad.verdict == "fail" and bad.exit_code == 1
        failing = {(g.probe, g.metric, g.subgroup) for g in bad.rows if g.verdict == "fail"}
        assert ("fakebias", "pct_stereotyped", "") in failing
        good = evaluate_gate(load_policy(policy), same)
        assert good.verdict == "pass" and good.exit_code == 0, format_table(good)
        assert not any(g.verdict == "error" for g in good.rows)
    # the dict form of the comparison gives the same verdict (gate from a stored comparison)
    assert evaluate_gate(load_policy(BROAD_POINT), planted.model_dump(mode="json")).verdict == "fail"
    table = format_table(bad)
    assert "Gate verdict: FAIL" in table and "(exit 1)" in table
    assert "pct_stereotyped" in table


def test_undefined_rows_are_insufficient_by_default_and_errors_on_request():
    undefined = row(math.nan, None, None)
    lenient = Rule(max_abs_change=0.1, use="point")
    strict = Rule(max_abs_change=0.1, use="point", undefined="error")
    assert evaluate_row(strict, undefined).verdict == "error"
    assert evaluate_row(lenient, undefined).verdict == "insufficient"
    assert evaluate_row(Rule(max_abs_change=0.1, use="point", undefined="skip"), undefined).verdict == "insufficient"
    assert evaluate_row(lenient, row(0.3, 0.2, 0.4)).verdict == "fail"  # never hides a real failure
    res_strict = evaluate_gate(Policy(rules=[strict]), comparison([undefined, row(0.0, 0.0, 0.0)]))
    res_lenient = evaluate_gate(Policy(rules=[lenient]), comparison([undefined, row(0.0, 0.0, 0.0)]))
    assert res_strict.verdict == "fail" and res_strict.errors == 1
    assert res_lenient.verdict == "pass" and res_lenient.errors == 0
    table = format_table(res_lenient, only_not_passed=True)
    assert "1 passing row(s) not listed" in table and "1 row(s) with insufficient data" in table


def test_small_headline_rows_are_warned_about():
    comp = comparison([row(0.0, -0.01, 0.01)])
    comp.probes[0].headline = "m"
    comp.probes[0].rows[0].n = 4
    res = evaluate_gate({"rules": [{"max_abs_change": 0.05}]}, comp)
    assert res.warnings and "small sample: p m rests on n = 4" in res.warnings[0]
    assert "warning: small sample" in format_table(res)
    comp.probes[0].rows[0].n = 400
    assert evaluate_gate({"rules": [{"max_abs_change": 0.05}]}, comp).warnings == []
