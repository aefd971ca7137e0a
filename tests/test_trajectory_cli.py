"""``rai-audit trajectory list | show | gate | select`` on the trajectory fixture: the printed
numbers are the analysis's, exit codes are the gate's (0 / 1 / 3), a bad id is exit 2. In-process
through :func:`rai_audit.cli.main` (the fixture registers its probes on import), and once in a
subprocess that finds the probes through RAI_AUDIT_EXTRA_PROBES."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rai_audit.cli import main
from rai_audit.display import fmt, fmt_ci
from rai_audit.trajectory.analysis import analyse_trajectory
from tests.trajectory_fixture import EXTRA_PROBES_ENV, POLICY_NAME, build_trajectory, registered

REPO = Path(__file__).resolve().parent.parent
BOOT = ["--bootstrap", "200"]


@pytest.fixture(scope="module", autouse=True)
def _probes_registered():
    """The fixture's probes in the registry for this module only."""
    with registered():
        yield


@pytest.fixture(scope="module")
def traj(tmp_path_factory):
    path = tmp_path_factory.mktemp("trajcli") / "t.sqlite"
    fx = build_trajectory(path)
    analysis = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=200)
    fx.store.close()
    return str(path), fx, analysis


def cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list(traj, capsys):
    db, fx, _ = traj
    code, out, _ = cli(capsys, "trajectory", "list", "--db", db)
    assert code == 0 and fx.trajectory_id[:12] in out and "0, 4, 8, 12" in out and "traj-audit" in out
    code, out, _ = cli(capsys, "trajectory", "list", "--db", db, "--json")
    rows = json.loads(out)
    assert [r["trajectory_id"] for r in rows] == [fx.trajectory_id] and rows[0]["positions"] == [0, 4, 8, 12]
    code, out, _ = cli(capsys, "trajectory", "list", "--db", db, "--audit", "other", "--json")
    assert json.loads(out) == []


def test_show_prints_the_analysis(traj, capsys):
    db, fx, a = traj
    code, out, _ = cli(capsys, "trajectory", "show", fx.trajectory_id[:8], "--db", db, *BOOT)
    assert code == 0, out
    lines = out.splitlines()
    assert f"trajectory {fx.trajectory_id}" in out and POLICY_NAME in out
    for h in a.headline:
        row = next(line for line in lines if line.startswith("│") and f" {h.label} " in line
                   and fmt(h.value) in line and fmt_ci(h.ci_low, h.ci_high, h.n) in line)
        if h.position:
            assert f"{h.diff:+.4f}" in row and fmt_ci(h.diff_ci_low, h.diff_ci_high, signed=True) in row and h.verdict in row
    for t in a.trends:
        row = next(line for line in lines if line.startswith("│") and f" {t.metric} " in line and t.per in line)
        assert f"{t.slope:+.4f}" in row and fmt_ci(t.ci_low, t.ci_high, signed=True) in row and fmt(t.p_value, 4) in row
        assert ("yes" if t.worsening else "no") in row
    assert "trajectory gate: FAIL" in out
    code, out, _ = cli(capsys, "trajectory", "show", "latest", "--db", db, "--json", *BOOT)
    assert json.loads(out) == json.loads(json.dumps(a.model_dump(mode="json")))


def test_gate_exit_codes(traj, capsys, tmp_path):
    db, _, a = traj
    code, out, _ = cli(capsys, "trajectory", "gate", "latest", "--db", db, *BOOT)
    assert code == 1 and "trajectory gate: FAIL" in out and "WORSENING" in out
    code, out, _ = cli(capsys, "trajectory", "gate", "latest", "--db", db, "--json", *BOOT)
    got = json.loads(out)
    assert code == 1 and got["verdict"] == "fail" and got["failing"] == [12] and got["inconclusive"] == [8]
    assert [p["verdict"] for p in got["points"]] == [p.verdict for p in a.points]
    # judge the final checkpoint only, and not the trend: the final checkpoint of a gentle drift is inconclusive
    gentle = build_trajectory(tmp_path / "g.sqlite", drift=0.05)
    gentle.store.close()
    policy = tmp_path / "final.yaml"
    policy.write_text("version: 1\nmax_errors: 2\ntrajectory: {checkpoints: final, trend: 'off'}\nrules:\n"
                      "  - {probe: 'traj*', metric: '*', subgroup: '', direction: worse, max_abs_change: 0.15, use: ci}\n")
    code, out, _ = cli(capsys, "trajectory", "gate", "latest", "--db", str(tmp_path / "g.sqlite"), "--policy", str(policy), *BOOT)
    assert code == 3 and "INCONCLUSIVE" in out


def test_select(traj, capsys):
    db, _, a = traj
    code, out, _ = cli(capsys, "trajectory", "select", "latest", "--db", db, *BOOT)
    p = a.point(4)
    assert code == 0 and "step 4" in out and p.run_id in out and p.model_reference in out and p.comparison_id in out
    code, out, _ = cli(capsys, "trajectory", "select", "latest", "--db", db, "--by", "loss", "--json", *BOOT)
    got = json.loads(out)
    assert code == 0 and got["selected"]["position"] == 4 and got["selected"]["run_id"] == p.run_id and got["by"] == "loss"
    code, out, _ = cli(capsys, "trajectory", "select", "latest", "--db", db, "--policy", "default", *BOOT)
    assert code == 3 and "no checkpoint selected" in out  # under the default policy step 4 is inconclusive


def test_bad_ids_and_options_are_exit_2(traj, capsys):
    db, _, _ = traj
    code, _, err = cli(capsys, "trajectory", "show", "nope", "--db", db)
    assert code == 2 and "No trajectory matches 'nope'" in err and "Traceback" not in err
    code, _, err = cli(capsys, "trajectory", "select", "latest", "--db", db, "--by", "best")
    assert code == 2 and "--by latest or --by loss" in err
    code, _, err = cli(capsys, "trajectory", "gate", "latest", "--db", db, "--policy", "no-such-policy")
    assert code == 2 and "not found" in err


def test_subprocess_finds_the_probes_through_the_environment(traj):
    db, fx, _ = traj
    env = {**os.environ, "RAI_AUDIT_EXTRA_PROBES": EXTRA_PROBES_ENV,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-m", "rai_audit", "trajectory", "gate", fx.trajectory_id, "--db", db, *BOOT, "--json"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout)["worsening"] == ["trajtox/toxicity_probability"]
    r = subprocess.run([sys.executable, "-m", "rai_audit", "trajectory", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and all(c in r.stdout for c in ("list", "show", "gate", "select"))
