"""End to end through the CLI and the whole-audit path, on tiny models built from configs and the
real benchmark files under ../shared/data: every probe runs, `show` prints its tables, and a
planted bias is detected by the paired comparison and fails the gate while identical models pass."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rai_audit.config import parse_config
from rai_audit.store import Store
from tests.tiny_models import make_tiny_causal, tiny_model_dir

BIAS = ["winogender", "winobias", "bbq", "crows_pairs"]
TOXICITY = ["realtoxicityprompts", "identity_toxicity", "bold", "toxigen", "civil_comments", "toxigen_classify"]


def rai(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "rai_audit", "--quiet", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _probe_metrics(db: Path, probes: list[str]) -> dict[str, list]:
    s = Store.open(f"sqlite:///{db}")
    try:
        run = s.get_run("latest")
        assert run.status == "completed", run.status_detail
        return {p: s.metrics(run.run_id, p) for p in probes}
    finally:
        s.close()


@pytest.mark.parametrize("probes, limit", [(BIAS, 60), (TOXICITY, 12)], ids=["bias", "toxicity"])
def test_probe_suite_end_to_end_and_show(tmp_path, shared_data, probes, limit):
    model = tiny_model_dir("llama")
    db = tmp_path / "s.sqlite"
    r = rai("probe", "--model", str(model), "--probe", ",".join(probes), "--limit", str(limit), "--db", str(db),
            "--bootstrap", "200")
    assert r.returncode == 0, r.stderr[-3000:]
    for probe, rows in _probe_metrics(db, probes).items():
        real = [m for m in rows if m.name != "items_errored" and m.n > 0 and not math.isnan(m.value)]
        assert real, f"{probe}: no metric with data"
        assert any(m.ci_low is not None for m in real), f"{probe}: no CI at all"
    shown = rai("show", "latest", "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    for probe in probes:
        assert probe in shown.stdout
    assert "95% CI" in shown.stdout


class PlantedStereotype:
    """Wraps a backend so CrowS-Pairs' stereotyped sentence (sent_more) always wins."""

    def __init__(self, inner, sent_more: set[str]):
        self.inner, self.info, self.sent_more = inner, inner.info, sent_more

    def loglikelihood(self, requests):
        from rai_audit.requests import LoglikResult

        out = self.inner.loglikelihood(requests)
        return [LoglikResult(logprob=(0.0 if r.continuation.strip() in self.sent_more else -1000.0),
                             n_tokens=o.n_tokens, is_greedy=o.is_greedy) for r, o in zip(requests, out)]

    def generate(self, requests):
        return self.inner.generate(requests)


def _audit(tmp_path, base: Path, tuned: Path, loader=None):
    from rai_audit.audit import run_audit

    cfg = parse_config({
        "name": "it", "models": {"base": str(base), "tuned": str(tuned)},
        "probes": [{"name": "crows_pairs", "params": {"limit": 150}}],
        "runtime": {"bootstrap": 300}, "seed": 1, "output_dir": str(tmp_path / "out"),
    })
    store = Store.open(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    return run_audit(cfg, store=store, formats="html,json", backend_loader=loader), store


def test_identical_models_pass_the_gate(tmp_path, shared_data):
    base = tiny_model_dir("llama")
    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    outcome, store = _audit(tmp_path, base, copy)
    assert outcome.verdict == "pass" and outcome.exit_code == 0, outcome.gate_table
    assert Path(outcome.reports["html"]).is_file()


def test_planted_stereotype_preference_is_significant_and_fails(tmp_path, shared_data):
    from rai_audit.models.hf_backend import HFBackend

    base = tiny_model_dir("llama")
    tuned = make_tiny_causal(tmp_path / "tuned", arch="llama", seed=7)
    with open(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv", encoding="utf-8") as f:
        sent_more = {row["sent_more"].strip() for row in csv.DictReader(f)}

    def loader(info):
        backend = HFBackend.load(info, device="cpu")
        return PlantedStereotype(backend, sent_more) if Path(info.path or "").resolve() == tuned.resolve() else backend

    outcome, store = _audit(tmp_path, base, tuned, loader)
    assert outcome.exit_code == 1 and outcome.verdict == "fail", outcome.gate_table
    from rai_audit.comparison import load_comparison

    comp = load_comparison(store, outcome.comparison_id)
    row = next(r for r in comp.rows if r.probe == "crows_pairs" and r.metric == "stereotype_score" and r.subgroup == "")
    assert row.value_b == pytest.approx(1.0) and row.significant and row.diff > 0.2
    from rai_audit.gate import evaluate_gate, load_policy

    demo = evaluate_gate(load_policy("demo"), comp)  # the demo policy's CrowS rule catches it too
    assert demo.verdict == "fail"
    assert any(g.verdict == "fail" and g.metric == "stereotype_score" for g in demo.rows)
