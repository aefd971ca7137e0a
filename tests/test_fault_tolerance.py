"""Fault tolerance with real processes and real signals (issue 8).

A ``rai-audit probe`` subprocess on a tiny model is killed with SIGKILL at several points
(during model answers, during scoring, around metric writing); re-running the same command must
finish with metrics identical to an uninterrupted run, every item exactly once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rai_audit.store import Store
from tests.tiny_models import tiny_model_dir

REPO = Path(__file__).resolve().parent.parent
# 12 chunks of MC records (2 rows per item, 8 rows per chunk) and 3 of generation records (2
# samples per item): each kill point below falls inside its phase, with chunks before and after it.
N_MC, N_GEN = 48, 12


def _env(tmp_path):
    env = dict(os.environ)
    env.update({
        "RAI_AUDIT_EXTRA_PROBES": "fake_mc=tests.fakes:FakeMC,fake_gen=tests.fakes:FakeGen",
        "RAI_AUDIT_CHUNK_ROWS": "8",
        "PYTHONPATH": str(REPO),
        "RAI_AUDIT_HOME": str(tmp_path / "home"),
    })
    return env


def _config(tmp_path) -> Path:
    p = tmp_path / "audit.yaml"
    p.write_text(
        "probes:\n"
        f"  - {{name: fake_mc, params: {{n_items: {N_MC}}}}}\n"
        f"  - {{name: fake_gen, params: {{n_items: {N_GEN}, k: 2}}}}\n"
        "scorer: {name: profanity-check}\nruntime: {bootstrap: 100, batch_size: 4}\nseed: 5\n"
    )
    return p


def _cmd(model: Path, cfg: Path, db: Path):
    return [sys.executable, "-m", "rai_audit", "--quiet", "probe", "--config", str(cfg), "--model", str(model), "--db", str(db)]


def _count_records(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("select count(*) from records").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _metrics(db: Path):
    s = Store.open(f"sqlite:///{db}")
    try:
        run = s.get_run("latest")
        assert run.status == "completed", (run.status, run.status_detail)
        rows = s.records(run.run_id)
        ids = [(r["probe"], r["item_id"]) for r in rows]
        assert len(ids) == len(set(ids)) == N_MC + N_GEN
        return {(m.probe, m.name, m.subgroup): (m.value, m.n, m.ci_low, m.ci_high) for m in s.metrics(run.run_id)}
    finally:
        s.close()


@pytest.mark.slow
def test_kill9_then_rerun_matches_uninterrupted(tmp_path):
    model = tiny_model_dir("llama")
    cfg = _config(tmp_path)
    env = _env(tmp_path)
    ref_db = tmp_path / "ref.sqlite"
    r = subprocess.run(_cmd(model, cfg, ref_db), env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    want = _metrics(ref_db)

    db = tmp_path / "killed.sqlite"
    # Kill points: early in the MC answers, in the generation/scoring probe, and after every
    # record is written (metric writing / final event).
    for threshold in (10, N_MC + 6, N_MC + N_GEN):
        proc = subprocess.Popen(_cmd(model, cfg, db), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while proc.poll() is None and _count_records(db) < threshold and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    final = subprocess.run(_cmd(model, cfg, db), env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert _metrics(db) == want
