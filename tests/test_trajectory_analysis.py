"""analyse_trajectory on the trajectory fixture: per-checkpoint comparisons (saved once, reused),
Holm over every checkpoint x row, the headline series, the trends (a planted drift worsens, a
flat trajectory does not) and the lookup of a trajectory by id."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rai_audit.comparison import load_comparison
from rai_audit.errors import UserError
from rai_audit.stats.multiple import holm
from rai_audit.trajectory.analysis import analyse_trajectory, trend_axis
from rai_audit.trajectory.lookup import find_trajectory
from tests.trajectory_fixture import POLICY_NAME, build_trajectory, policy_record, probe_loader, registered

N_BOOT = 200


@pytest.fixture(scope="module", autouse=True)
def _probes_registered():
    """The fixture's probes in the registry for this module only."""
    with registered():
        yield


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    fx = build_trajectory(tmp_path_factory.mktemp("traj") / "t.sqlite")
    yield fx
    fx.store.close()


@pytest.fixture(scope="module")
def analysis(fx):
    return analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT, seed=0)


def test_points_are_judged_by_the_recorded_policy(fx, analysis):
    assert analysis.policy["name"] == POLICY_NAME
    assert [p.position for p in analysis.points] == [0, 4, 8, 12]
    assert [p.verdict for p in analysis.points] == [None, "pass", "inconclusive", "fail"]
    base, *tuned = analysis.points
    assert base.comparison_id is None and base.label == "base" and base.run_id == fx.runs[0]
    assert all(p.comparison_id for p in tuned) and tuned[-1].label == "final (step 12)"
    assert tuned[0].train_loss is not None and tuned[0].model_reference == "hf:demo/traj-step-4"
    assert any("toxicity_probability" in r and "fail" in r for r in tuned[-1].gate_reasons)
    assert tuned[0].gate_reasons == []


def test_comparisons_are_saved_once_and_reused(fx, analysis):
    n = len(fx.store.list_comparisons())
    assert n == 3
    again = analyse_trajectory(fx.store, fx.trajectory_id[:10], n_boot=N_BOOT, seed=0)
    assert len(fx.store.list_comparisons()) == n
    assert [p.comparison_id for p in again.points] == [p.comparison_id for p in analysis.points]
    assert again.model_dump(mode="json") == analysis.model_dump(mode="json")
    for p in analysis.points[1:]:
        comp = load_comparison(fx.store, p.comparison_id)
        assert (comp.run_a, comp.run_b) == (fx.runs[0], fx.runs[p.position])
        assert comp.policy["name"] == POLICY_NAME and comp.gate["verdict"] == p.verdict


def test_another_policy_reuses_the_numbers_and_judges_anew(fx, analysis):
    n = len(fx.store.list_comparisons())
    other = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT, seed=0, policy="default")
    assert len(fx.store.list_comparisons()) == n  # same statistics: nothing recomputed or saved
    assert other.policy["name"] == "default"
    assert [p.comparison_id for p in other.points] == [p.comparison_id for p in analysis.points]
    assert other.point(4).verdict != "pass"  # the default policy's 0.05 margin is stricter


def test_p_trajectory_is_holm_over_every_checkpoint_and_row(fx, analysis):
    comps = {p.position: load_comparison(fx.store, p.comparison_id) for p in analysis.points[1:]}
    assert len(analysis.rows) == sum(len(c.rows) for c in comps.values())
    expected = holm([r.row.p_value for r in analysis.rows])
    assert [r.p_trajectory for r in analysis.rows] == pytest.approx(expected)
    # the joint correction is never less strict than each comparison's own
    for r in analysis.rows:
        if r.p_trajectory is not None and r.row.p_adjusted is not None:
            assert r.p_trajectory >= r.row.p_adjusted - 1e-12
        assert r.significant_trajectory == (r.p_trajectory is not None and r.p_trajectory < 0.05)


def test_headline_points_come_from_the_runs_and_the_comparisons(fx, analysis):
    assert {(h.probe, h.metric) for h in analysis.headline} == {("trajtox", "toxicity_probability"), ("trajbias", "accuracy")}
    for h in analysis.headline:
        stored = next(m for m in fx.metrics[h.position] if m.probe == h.probe and m.name == h.metric and m.subgroup == "")
        assert (h.value, h.ci_low, h.ci_high, h.n) == (stored.value, stored.ci_low, stored.ci_high, stored.n)
        if h.position == 0:
            assert math.isnan(h.diff) and h.verdict is None
            continue
        comp = load_comparison(fx.store, analysis.point(h.position).comparison_id)
        row = next(r for r in comp.rows if r.probe == h.probe and r.metric == h.metric and r.subgroup == "" and r.source == "metric")
        assert (h.diff, h.diff_ci_low, h.diff_ci_high) == (row.diff, row.ci_low, row.ci_high)
        assert h.verdict == analysis.point(h.position).verdict
    tox = [h.value for h in analysis.headline if h.probe == "trajtox"]
    assert tox == sorted(tox) and tox[-1] > tox[0]  # the planted drift


def test_planted_drift_worsens_and_the_flat_probe_does_not(analysis):
    tox = next(t for t in analysis.trends if t.probe == "trajtox")
    bias = next(t for t in analysis.trends if t.probe == "trajbias")
    values = [h.value for h in analysis.headline if h.probe == "trajtox"]
    slope_per_step = float(np.polyfit([0, 4, 8, 12], values, 1)[0])
    assert tox.x == "step" and tox.per == "per 10 steps" and tox.n_points == 4 and tox.n_items == 48
    assert tox.slope == pytest.approx(10 * slope_per_step, rel=1e-9)
    assert tox.ci_low <= tox.slope <= tox.ci_high and tox.ci_low > 0
    assert tox.worsening is True and tox.p_value == pytest.approx(2 / (N_BOOT + 1))
    assert bias.slope == 0.0 and bias.ci_low < 0 < bias.ci_high and bias.worsening is False
    assert analysis.gate["verdict"] == "fail" and analysis.gate["worsening"] == ["trajtox/toxicity_probability"]


def test_a_flat_trajectory_does_not_worsen(tmp_path):
    fx = build_trajectory(tmp_path / "flat.sqlite", drift=0.0, noise=0.05)
    with fx.store:
        a = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT, probe_loader=probe_loader)
    assert [t.worsening for t in a.trends] == [False, False]
    assert [p.verdict for p in a.points[1:]] == ["pass", "pass", "pass"]
    assert a.gate["verdict"] == "pass" and a.gate["exit_code"] == 0


def test_tasks_axis_fits_log2_tasks_without_the_base(tmp_path):
    fx = build_trajectory(tmp_path / "tasks.sqlite", axis="tasks", positions=(0, 1, 2, 4, 8))
    with fx.store:
        a = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT)
    tox = next(t for t in a.trends if t.probe == "trajtox")
    values = {h.position: h.value for h in a.headline if h.probe == "trajtox"}
    assert tox.x == "log2_tasks" and tox.per == "per doubling of tasks" and tox.n_points == 4
    assert tox.slope == pytest.approx(float(np.polyfit([0, 1, 2, 3], [values[p] for p in (1, 2, 4, 8)], 1)[0]), rel=1e-9)
    assert [p.label for p in a.points] == ["base", "1 task", "2 tasks", "4 tasks", "8 tasks"]
    assert trend_axis("tasks", [0, 1, 2, 4, 8])[:2] == ([1, 2, 4, 8], [0.0, 1.0, 2.0, 3.0])
    assert trend_axis("step", [0, 500, 5000])[2:] == (1000.0, "per 1,000 steps")
    assert trend_axis("step", [0, 1, 2])[2:] == (1.0, "per step")


def test_items_in_error_at_some_point_leave_the_trend_with_a_warning(tmp_path):
    fx = build_trajectory(tmp_path / "err.sqlite", error_items={8: [3, 5]})
    with fx.store:
        a = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT)
    tox = next(t for t in a.trends if t.probe == "trajtox")
    assert tox.n_items == 46
    assert any("2 item(s) left out of the trend" in w and "tox-003" in w for w in a.warnings)


def test_lookup_by_prefix_latest_and_the_errors(fx):
    tid = fx.trajectory_id
    assert find_trajectory(fx.store, "latest")[0].trajectory_id == tid
    assert [p.position for p in find_trajectory(fx.store, tid[:6])] == [0, 4, 8, 12]
    with pytest.raises(UserError, match="No trajectory matches 'nope'"):
        find_trajectory(fx.store, "nope")
    fx.store.add_trajectory_point("ffff0001" + "0" * 24, axis="step", position=4, run_id=fx.runs[4])
    fx.store.add_trajectory_point("ffff0002" + "0" * 24, axis="step", position=4, run_id=fx.runs[8])
    with pytest.raises(UserError, match="ambiguous"):
        find_trajectory(fx.store, "ffff")
    with pytest.raises(UserError, match="no base point"):
        analyse_trajectory(fx.store, "ffff0001", n_boot=N_BOOT)


def test_a_point_still_running_waits_and_the_gate_cannot_pass(tmp_path):
    fx = build_trajectory(tmp_path / "running.sqlite", drift=0.0)
    with fx.store:
        base = fx.store.get_run(fx.runs[0])
        running = fx.store.create_run(kind="probe", run_key="still-running", model_id=base.model_id,
                                      model_reference="hf:demo/traj-step-16", probes=base.probes, config=base.config,
                                      provenance={}, scorer=base.scorer, datasets=base.datasets, seed=base.seed)
        fx.store.add_trajectory_point(fx.trajectory_id, axis="step", position=16, run_id=running)
        a = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=N_BOOT, policy=policy_record())
    last = a.point(16)
    assert last.verdict is None and last.comparison_id is None and "not compared yet" in last.gate_reasons[0]
    assert [p.verdict for p in a.points[1:4]] == ["pass", "pass", "pass"]
    assert all(t.n_points == 4 for t in a.trends)  # the trend leaves the unfinished point out
    assert any("step 16" in w and "running" in w for w in a.warnings)
    assert a.policy["name"] == POLICY_NAME  # an identity {name, sha256, content} is taken as given
    assert a.gate["verdict"] == "inconclusive" and a.gate["inconclusive"] == [16]
