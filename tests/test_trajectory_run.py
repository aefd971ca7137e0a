"""Trajectory audits end to end on a tiny model (issue 16): the finetune exports the audited
steps, every point is probed on the same items and recorded in the store, the CLI prints the plan
first, and a kill -9 anywhere followed by the same command re-trains and re-probes nothing that
was finished and ends with the results of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.finetune_fixtures import make_tiny_hf_model

REPO = Path(__file__).resolve().parent.parent
DEMO_MIXTURE = REPO / "rai_audit" / "assets" / "demo_mixture" / "mixture.yaml"
RAI = [sys.executable, "-m", "rai_audit"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return make_tiny_hf_model(tmp_path_factory.mktemp("tiny-base") / "llama")


def write_audit(root: Path, base: Path, *, every: int = 2, steps: int = 4, sizes=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "finetune.yaml").write_text(yaml.safe_dump({
        "model": str(base), "output_dir": "ft-unused", "mixture": str(DEMO_MIXTURE), "seq_len": 128, "batch_size": 4,
        "steps": steps, "warmup_steps": 1, "lr": 3e-3, "checkpoint_every": 1}))
    audit = {
        "name": "traj", "models": {"base": str(base)}, "finetune": "finetune.yaml",
        "probes": [{"name": "identity_toxicity", "params": {"limit": 4, "k": 2, "max_new_tokens": 4}}],
        "runtime": {"bootstrap": 50}, "seed": 5, "output_dir": "out", "store": "results.sqlite",
        "trajectory": {**({"every": every} if every else {}), **({"mixture_sizes": sizes} if sizes else {})},
    }
    (root / "audit.yaml").write_text(yaml.safe_dump(audit))
    return root / "audit.yaml"


def run_cli(args, cwd, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*RAI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def point_summary(db: Path) -> list[tuple]:
    """(position, label, model id, {metric: value}) of every point of the newest trajectory."""
    from rai_audit.store import Store

    with Store.open(f"sqlite:///{db}") as s:
        [points] = s.list_trajectories()[:1]
        out = []
        for p in points:
            run = s.get_run(p.run_id)
            metrics = {(m.probe, m.name, m.subgroup): (None if m.value != m.value else m.value)  # NaN == NaN here
                       for m in s.metrics(p.run_id)}
            out.append((p.position, p.label, run.model_id, run.status, metrics))
        return out


@pytest.fixture(scope="module")
def uninterrupted(tiny_base, tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    cfg = write_audit(root / "a", tiny_base)
    r = run_cli(["run", str(cfg), "--format", "json"], cwd=root / "a")
    assert r.returncode in (0, 1, 3), r.stderr
    return root, r


def test_step_trajectory_records_every_point_on_the_same_items(uninterrupted):
    tmp_path, r = uninterrupted
    assert "trajectory plan: 3 points (steps 0, 2, 4) x 1 probe (4 items in all)" in r.stderr, r.stderr
    out = tmp_path / "a" / "out" / "finetune"
    assert (out / "trajectory" / "step-000002" / "model.safetensors").is_file()
    assert (out / "trajectory" / "step-000002" / "training_fingerprint.npz").is_file()
    assert not (out / "trajectory" / "step-000004").exists()  # the final step is the model/ export
    points = point_summary(tmp_path / "a" / "results.sqlite")
    assert [(p[0], p[1]) for p in points] == [(0, "base"), (2, "step 2"), (4, "final (step 4)")]
    assert len({p[2] for p in points}) == 3  # three different models
    assert all(p[3] == "completed" for p in points)
    from rai_audit.store import Store

    with Store.open(f"sqlite:///{tmp_path / 'a' / 'results.sqlite'}") as s:
        tr = s.list_trajectories()[0]
        items = [sorted(r["item_id"] for r in s.records(p.run_id)) for p in tr]
        assert items[0] == items[1] == items[2] and len(items[0]) == 4
        ft_runs = s.list_runs(kind="finetune")
        assert [p.finetune_run for p in tr] == [None, ft_runs[0].run_id, ft_runs[0].run_id]
        assert tr[1].meta["export_s"] > 0 and tr[1].meta["train_loss"] > 0
        # the final point is the audit's own tuned run (same probes and limit): not probed twice,
        # and paired with the base by the audit's own comparison (one verdict for one pair)
        assert tr[2].run_id == s.list_runs(kind="probe", role="tuned")[0].run_id
    comparison = next(ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("comparison "))
    [saved] = (tmp_path / "a" / "out" / "reports").glob("trajectory-*.json")
    analysis = json.loads(saved.read_text())
    assert analysis["points"][-1]["comparison_id"] == comparison
    assert analysis["points"][-1]["verdict"] == next(ln.split()[1] for ln in r.stdout.splitlines()
                                                     if ln.startswith("verdict ")).lower()
    assert f"trajectory {analysis['trajectory_id'][:12]} (step axis)" in r.stdout
    # the commands printed to look closer work as printed, from another directory
    import shlex

    def comparisons() -> list[tuple[str, str, int, int]]:
        with Store.open(f"sqlite:///{tmp_path / 'a' / 'results.sqlite'}") as s:
            return [(c.run_a, c.run_b, c.config["n_boot"], c.config["seed"]) for c in s.list_comparisons()]

    before = comparisons()
    assert {(n, seed) for _, _, n, seed in before} == {(50, 5)}  # the audit's runtime.bootstrap and seed
    look = next(ln for ln in r.stdout.splitlines() if ln.startswith("look closer: "))
    for command in look.removeprefix("look closer: ").split("|"):
        argv = shlex.split(command)
        assert Path(argv[0]).name == "rai-audit"
        done = subprocess.run(argv, cwd=REPO.parent, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "final (step 4)" in done.stdout
    # looking reuses the audit's comparisons (its resamples and seed), so it shows the report's CIs
    assert comparisons() == before
    # `show RUN --db X` points at the run's trajectory with a command that works as printed
    db_url = f"sqlite:///{tmp_path / 'a' / 'results.sqlite'}"
    shown = run_cli(["show", tr[1].run_id, "--db", db_url], cwd=REPO.parent)
    assert shown.returncode == 0, shown.stderr
    see = next(ln for ln in shown.stdout.splitlines() if "; see: " in ln).split("; see: ", 1)[1]
    assert see.endswith(f"--db {db_url}"), see
    done = run_cli(shlex.split(see)[1:], cwd=REPO.parent)
    assert done.returncode == 0 and "final (step 4)" in done.stdout, done.stderr


def _wait_for(proc: subprocess.Popen, condition, what: str, timeout: float = 300) -> None:
    t0 = time.time()
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the audit ended (exit {proc.returncode}) before {what}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _points_recorded(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM trajectory_points").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_9_anywhere_then_the_same_command_finishes_with_identical_results(tiny_base, uninterrupted, tmp_path):
    ref_root, _ = uninterrupted
    cfg = write_audit(tmp_path / "b", tiny_base)
    cwd = tmp_path / "b"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    marker = cwd / "out" / "finetune" / "trajectory" / "step-000002" / "trajectory_export.json"
    db = cwd / "results.sqlite"

    # kill 1: mid-finetune, once step 2 is exported and its Orbax checkpoint is complete
    ckpt = cwd / "out" / "finetune" / "checkpoints" / "2"
    proc = subprocess.Popen([*RAI, "run", str(cfg), "--format", "json"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(proc, lambda: marker.exists() and ckpt.is_dir(), "the step-2 export and checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    exported_at = marker.stat().st_mtime_ns

    # kill 2: mid-trajectory, once the base point is recorded and checkpoints are being probed
    proc = subprocess.Popen([*RAI, "run", str(cfg), "--format", "json"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(proc, lambda: _points_recorded(db) >= 1, "the base point")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recorded = _points_recorded(db)

    # the same command again: it finishes
    r = run_cli(["run", str(cfg), "--format", "json"], cwd=cwd)
    assert r.returncode in (0, 1, 3), r.stderr
    assert marker.stat().st_mtime_ns == exported_at  # the finished export was not redone
    from rai_audit.store import Store

    with Store.open(f"sqlite:///{db}") as s:
        [ft] = s.list_runs(kind="finetune")  # one finetune run, resumed from its checkpoint
        assert any(e.detail.get("resumed") for e in ft.events)
        saved = [e.detail["checkpoint_step"] for e in ft.events if "checkpoint_step" in e.detail]
        assert saved.count(1) == saved.count(2) == 1  # steps 1-2 were not trained again
        losses = [m.value for m in s.metrics(ft.run_id) if m.name == "loss"]
        assert len(losses) == 4  # each step logged once
        points = s.list_trajectories()[0]
        assert len(points) == 3 and recorded <= 3
        runs = s.list_runs(kind="probe")
        assert len(runs) == 3  # base, step 2, final: nothing probed twice
    # identical to the uninterrupted run: the same checkpoints (weights hash) and the same metrics
    got, want = point_summary(db), point_summary(ref_root / "a" / "results.sqlite")
    assert [(p[0], p[1], p[2], p[4]) for p in got] == [(p[0], p[1], p[2], p[4]) for p in want]


def test_sweep_tunes_one_model_per_mixture_size_and_records_a_tasks_trajectory(tiny_base, tmp_path):
    cfg = write_audit(tmp_path / "s", tiny_base, every=None, steps=2, sizes=[1, "all"])
    r = run_cli(["sweep", str(cfg), "--tasks", "1,2"], cwd=tmp_path / "s")
    assert r.returncode in (0, 1, 3), r.stderr
    assert "trajectory plan: 3 points (tasks 0, 1, 2) x 1 probe (4 items in all)" in r.stderr
    assert "trajectory " in r.stdout and "ship " in r.stdout and "rai-audit trajectory show" in r.stdout
    points = point_summary(tmp_path / "s" / "results.sqlite")
    assert [(p[0], p[1]) for p in points] == [(0, "base"), (1, "1 task"), (2, "2 tasks")]
    from rai_audit.store import Store

    with Store.open(f"sqlite:///{tmp_path / 's' / 'results.sqlite'}") as s:
        tr = s.list_trajectories()[0]
        assert tr[0].axis == "tasks" and tr[1].meta["tasks"] == ["general_qa"]
        assert tr[2].meta["tasks"] == ["general_qa", "word_tasks"]
        manifests = [json.loads((tmp_path / "s" / "out" / "sweep" / f"tasks-00{n}" / "finetune_manifest.json").read_text())
                     for n in (1, 2)]
        assert [sorted(m["mixture"]["tasks"]) for m in manifests] == [["general_qa"], ["general_qa", "word_tasks"]]
        assert manifests[0]["steps"] == manifests[1]["steps"] == 2
    # the same command again: nothing is tuned or probed again
    again = run_cli(["sweep", str(cfg), "--tasks", "1,2"], cwd=tmp_path / "s")
    assert again.returncode == r.returncode
    assert again.stderr.count("already tuned") == 2 and "tuning on" not in again.stderr
    assert again.stderr.count(": reused (run") == 3


@pytest.mark.parametrize("sizes", [["0"], ["-1"], [0], ["all", 99]])
def test_mixture_sizes_below_one_or_above_the_mixture_are_refused(sizes):
    from rai_audit.errors import UserError
    from rai_audit.trajectory.plan import mixture_positions

    with pytest.raises(UserError, match="at least 1|has only 4"):
        mixture_positions([s if s == "all" else int(s) for s in sizes], 4)
