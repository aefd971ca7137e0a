"""The recipes of docs/architecture.md, each followed exactly as written, through the public
registration paths a user has (environment variables for the CLI, register_* in-process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.tiny_models import tiny_model_dir


def _rai(*args, env_extra):
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "rai_audit", "--quiet", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_add_a_scorer_through_the_environment(tmp_path, shared_data):
    env = {"RAI_AUDIT_EXTRA_SCORERS": "shout=tests.recipe_plugins:ShoutScorer"}
    db = str(tmp_path / "s.sqlite")
    args = ["probe", "--model", str(tiny_model_dir("llama")), "--probe", "identity_toxicity", "--limit", "6",
            "--bootstrap", "20", "--scorer", "shout", "--db", db, "--data-dir", str(shared_data)]
    r = _rai(*args, env_extra=env)
    assert r.returncode == 0, r.stderr
    from rai_audit.store import Store

    with Store.open(db) as s:
        (run,) = s.list_runs()
        assert run.scorer["name"] == "shout" and run.scorer["primary"] == "shout"
        recs = s.records(run.run_id, "identity_toxicity")
        assert recs and not any(r.get("error") for r in recs)
    # The scorer's own options schema is strict, like the shipped ones.
    cfg = tmp_path / "a.yaml"
    cfg.write_text("scorer: {name: shout, options: {min_letter: 3}}\nprobes: [identity_toxicity]\n")
    r = _rai("probe", "--config", str(cfg), "--model", str(tiny_model_dir("llama")), "--db", db, env_extra=env)
    assert r.returncode == 2 and "min_letter" in r.stderr, r.stderr


def test_register_scorer_in_process():
    from probes.scorers import _REGISTERED, get_scorer, register_scorer
    from tests.recipe_plugins import ShoutScorer

    register_scorer("shout-inproc", ShoutScorer)
    try:
        scorer = get_scorer("shout-inproc", threshold=0.4, min_letters=2)
        assert [s.scores["shout"] for s in scorer.score(["ABc", "a", "!!"])] == [pytest.approx(2 / 3), 0.0, 0.0]
        with pytest.raises(ValueError, match="taken"):
            register_scorer("profanity-check", ShoutScorer)
    finally:  # the registry is process-wide: leave it as found for the tests after this one
        _REGISTERED.pop("shout-inproc", None)


def test_add_a_probe_through_the_environment(tmp_path):
    """A probe in its own module, registered by RAI_AUDIT_EXTRA_PROBES, runs, compares and gates
    like a shipped one; its metrics match a hand computation from its own records."""
    env = {"RAI_AUDIT_EXTRA_PROBES": "agree=tests.recipe_plugins:AgreeProbe"}
    db = str(tmp_path / "s.sqlite")
    from tests.tiny_models import make_tiny_causal

    other = make_tiny_causal(tmp_path / "other", seed=3)
    for model in (tiny_model_dir("llama"), other):
        r = _rai("probe", "--model", str(model), "--probe", "agree", "--bootstrap", "50", "--db", db, env_extra=env)
        assert r.returncode == 0, r.stderr
    from rai_audit.store import Store

    with Store.open(db) as s:
        a, b = sorted(s.list_runs(), key=lambda run: run.created_at)
        recs = s.records(a.run_id, "agree")
        metrics = {(m.name, m.subgroup): m for m in s.metrics(a.run_id)}
    agree = [r["agree"] for r in recs]
    assert metrics[("agree_rate", "")].value == pytest.approx(sum(agree) / 8) and metrics[("agree_rate", "")].n == 8
    maths = [r["margin"] for r in recs if r["subgroups"]["topic"] == "maths"]
    assert metrics[("yes_margin", "topic=maths")].value == pytest.approx(sum(maths) / 4)
    r = _rai("compare", a.run_id, b.run_id, "--db", db, "--json", env_extra=env)
    assert r.returncode == 0, r.stderr
    rows = {(row["metric"], row["subgroup"]) for row in json.loads(r.stdout)["probes"][0]["rows"]}
    assert ("agree_rate", "") in rows and ("yes_margin", "topic=weather") in rows
    r = _rai("gate", "latest", "--db", db, env_extra=env)
    assert r.returncode in (0, 1, 3) and "Gate verdict" in r.stdout, r.stdout + r.stderr


def test_register_probe_in_process():
    import probes
    from tests.recipe_plugins import AgreeProbe

    class Agree2(AgreeProbe):
        name = "agree-inproc"

    probes.register_probe(Agree2)
    try:
        assert probes.probe_class("agree-inproc") is Agree2
        with pytest.raises(ValueError, match="taken"):
            probes.register_probe(Agree2)
    finally:  # the registry is process-wide (test_demo compares it with the demo's probe list)
        probes.REGISTRY.pop("agree-inproc", None)
        probes._CLASSES.pop("agree-inproc", None)
    assert "agree-inproc" not in probes.REGISTRY
