"""The trajectory gate (checkpoint and trend rules, the policy's ``trajectory:`` section, whose
absence must not change a policy's hash) and the selection of a checkpoint to ship."""

from __future__ import annotations

import pytest

from rai_audit.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, UserError
from rai_audit.gate import TrajectoryRules, load_policy, policy_identity
from rai_audit.trajectory.analysis import analyse_trajectory
from rai_audit.trajectory.gate import choose_checkpoint, judge_trajectory, select_checkpoint
from rai_audit.trajectory.model import PointSummary, TrajectoryAnalysis, Trend
from tests.trajectory_fixture import FIXTURE_POLICY, build_trajectory, registered

N_BOOT = 200


@pytest.fixture(scope="module", autouse=True)
def _probes_registered():
    """The fixture's probes in the registry for this module only."""
    with registered():
        yield


def synthetic(verdicts, losses=None, worsening=False) -> TrajectoryAnalysis:
    """A trajectory whose checkpoints (positions 10, 20, ...) carry the given verdicts."""
    losses = losses or [None] * len(verdicts)
    points = [PointSummary(position=0, label="base", run_id="r0")] + [
        PointSummary(position=10 * (i + 1), label=f"step {10 * (i + 1)}", run_id=f"r{i + 1}", verdict=v, train_loss=loss,
                     gate_reasons=[] if v == "pass" else [f"rule: {v}"])
        for i, (v, loss) in enumerate(zip(verdicts, losses))]
    trend = Trend(probe="p", metric="m", better="lower", x="step", slope=0.2 if worsening else 0.0,
                  ci_low=0.1 if worsening else -0.1, ci_high=0.3 if worsening else 0.1, worsening=worsening, per="per 10 steps")
    return TrajectoryAnalysis(trajectory_id="t" * 32, axis="step", base_run="r0", points=points, trends=[trend])


# ------------------------------------------------------------------------------ the gate


@pytest.mark.parametrize("verdicts, expected", [
    (["pass", "pass", "pass"], "pass"),
    (["pass", "inconclusive", "pass"], "inconclusive"),
    (["pass", "inconclusive", "fail"], "fail"),
    (["fail", "pass", "pass"], "fail"),  # an early checkpoint that failed fails the trajectory
])
def test_every_checkpoint_must_pass(verdicts, expected):
    result = judge_trajectory(synthetic(verdicts))
    assert result.verdict == expected == result.checkpoint_verdict
    assert result.exit_code == {"pass": EXIT_OK, "fail": EXIT_GATE_FAILED, "inconclusive": EXIT_INCONCLUSIVE}[expected]
    assert result.judged == [10, 20, 30]


def test_final_judges_only_the_last_checkpoint():
    result = judge_trajectory(synthetic(["fail", "inconclusive", "pass"]), {"checkpoints": "final"})
    assert result.verdict == "pass" and result.judged == [30]


def test_a_worsening_trend_fails_unless_switched_off():
    a = synthetic(["pass", "pass", "pass"], worsening=True)
    on = judge_trajectory(a)
    assert on.verdict == "fail" and on.checkpoint_verdict == "pass" and on.trend_verdict == "fail"
    assert on.worsening == ["p/m"] and any("worsens along the trajectory" in r for r in on.reasons)
    off = judge_trajectory(a, TrajectoryRules(trend="off"))
    assert off.verdict == "pass" and off.trend_verdict == "off"
    assert judge_trajectory(synthetic(["inconclusive"], worsening=True)).verdict == "fail"


def test_the_trajectory_section_keeps_old_policy_hashes():
    plain = load_policy(FIXTURE_POLICY)
    explicit_default = load_policy({**FIXTURE_POLICY, "trajectory": {"checkpoints": "all", "trend": "not_worsening"}})
    final_only = load_policy({**FIXTURE_POLICY, "trajectory": {"checkpoints": "final"}})
    assert "trajectory" not in plain.content()
    assert policy_identity(FIXTURE_POLICY, plain)["sha256"] == policy_identity(FIXTURE_POLICY, explicit_default)["sha256"]
    assert policy_identity(FIXTURE_POLICY, final_only)["sha256"] != policy_identity(FIXTURE_POLICY, plain)["sha256"]
    assert final_only.content()["trajectory"] == {"checkpoints": "final", "trend": "not_worsening"}
    assert plain.trajectory_rules == TrajectoryRules() and final_only.trajectory_rules.checkpoints == "final"
    for bad in ({"checkpoints": "some"}, {"trend": "maybe"}, {"extra": 1}):
        with pytest.raises(UserError, match="trajectory"):
            load_policy({**FIXTURE_POLICY, "trajectory": bad})


def test_the_policy_section_reaches_the_analysis(tmp_path):
    fx = build_trajectory(tmp_path / "t.sqlite")
    with fx.store:
        relaxed = {**FIXTURE_POLICY, "trajectory": {"checkpoints": "final", "trend": "off"}}
        a = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT, policy=relaxed)
        assert a.gate["checkpoints"] == "final" and a.gate["trend_verdict"] == "off" and a.gate["judged"] == [12]
        assert a.gate["verdict"] == "fail"  # the final checkpoint still fails
        # selection is per checkpoint: step 4 passes although the trend worsens and step 12 fails
        assert select_checkpoint(a).position == 4


# ------------------------------------------------------------------------------ selection


def test_select_latest_or_lowest_loss():
    a = synthetic(["pass", "pass", "fail"], losses=[1.0, 1.3, 0.8])
    assert select_checkpoint(a).position == 20
    assert select_checkpoint(a, by="loss").position == 10  # 0.8 belongs to a failing checkpoint
    tie = synthetic(["pass", "pass"], losses=[1.0, 1.0])
    assert select_checkpoint(tie, by="loss").position == 20


def test_select_before_a_worsening_trend():
    a = synthetic(["pass", "inconclusive", "fail"], worsening=True)
    sel = choose_checkpoint(a)
    assert sel.point.position == 10 and sel.exit_code == EXIT_OK
    assert judge_trajectory(a).verdict == "fail"


def test_nothing_to_select():
    assert select_checkpoint(synthetic(["fail", "fail"])) is None
    assert choose_checkpoint(synthetic(["fail", "fail"])).exit_code == EXIT_GATE_FAILED
    unsure = choose_checkpoint(synthetic(["fail", "inconclusive"]))
    assert unsure.point is None and unsure.exit_code == EXIT_INCONCLUSIVE
    assert choose_checkpoint(synthetic([])).exit_code == EXIT_GATE_FAILED  # the base is never a selection
    with pytest.raises(UserError, match="training loss"):
        select_checkpoint(synthetic(["pass"]), by="loss")
    with pytest.raises(UserError, match="--by"):
        choose_checkpoint(synthetic(["pass"]), by="best")


def test_selection_on_a_gentle_drift(tmp_path):
    fx = build_trajectory(tmp_path / "g.sqlite", drift=0.05, train_losses={4: 1.0, 8: 1.3, 12: 1.5})
    with fx.store:
        a = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT)
    assert [p.verdict for p in a.points[1:]] == ["pass", "pass", "inconclusive"]
    assert select_checkpoint(a).position == 8
    assert select_checkpoint(a, by="loss").position == 4
