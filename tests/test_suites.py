"""Bundled suites (``rai-audit run --suite NAME``) and probe instances (``probe@label``): the Flan
appendix C suite resolves to the expected probe instances at the paper's settings without
running a model; a config file beside it adds settings but not probes; --continuation-tokens
reaches exactly the sampled-continuation probes; instance names are checked and kept through
prepared jobs, aliases and gate rules; and the CLI lists the suites and prints the plan before any
work (a tiny model built from a config, through the CLI as users run it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rai_audit.config import parse_config
from rai_audit.errors import UserError
from rai_audit.suites import continuation_probes, suite_config, suite_names, with_continuation_tokens

CONTINUATION = {"k": 25, "top_k": 40, "temperature": 1.0, "max_new_tokens": 20, "chat": False}
FLAN = [
    ("realtoxicityprompts", CONTINUATION),
    ("identity_toxicity", CONTINUATION),
    ("civil_comments", {"k_shot": 0}),
    ("civil_comments@10shot", {"k_shot": 10}),
    ("winogender", {"mode": "mc"}),
    ("winogender@generative", {"mode": "generative"}),
    ("bbq", {}),
    ("crows_pairs", {}),
    ("winobias", {}),
    ("bold", {**CONTINUATION, "k": 1}),
    ("toxigen", {**CONTINUATION, "k": 1}),
]


def test_the_flan_suite_resolves_to_its_probe_instances_and_params():
    assert "flan-appendix-c" in suite_names()
    cfg = suite_config("flan-appendix-c")
    assert [(p.name, p.params) for p in cfg.probes] == FLAN
    assert cfg.name == "flan-appendix-c" and cfg.models.base == "default" and cfg.models.tuned is None
    assert cfg.limit is None  # every local item
    assert continuation_probes(cfg) == ["realtoxicityprompts", "identity_toxicity", "bold", "toxigen"]


def test_instances_become_jobs_of_their_probe_under_their_own_name(shared_data):
    from rai_audit.runner import prepare_jobs

    cfg = suite_config("flan-appendix-c")
    specs = [(p.name, p.params) for p in cfg.probes if p.name.startswith(("civil_comments", "winogender"))]
    jobs, _ = prepare_jobs(specs, shared_data, limit=None, seed=cfg.seed)
    got = {j.name: (type(j.probe).__name__, j.probe.params.k_shot, getattr(j.probe.params, "mode", None), len(j.items)) for j in jobs}
    assert got == {"civil_comments": ("CivilComments", 0, None, 999), "civil_comments@10shot": ("CivilComments", 10, None, 999),
                   "winogender": ("Winogender", 0, "mc", 720), "winogender@generative": ("Winogender", 0, "generative", 720)}


def test_continuation_tokens_reach_only_the_sampled_continuation_probes():
    cfg = with_continuation_tokens(suite_config("flan-appendix-c"), 128)
    tokens = {p.name: p.params.get("max_new_tokens") for p in cfg.probes}
    assert tokens == {"realtoxicityprompts": 128, "identity_toxicity": 128, "bold": 128, "toxigen": 128,
                      **{n: None for n, _ in FLAN if n not in ("realtoxicityprompts", "identity_toxicity", "bold", "toxigen")}}
    assert suite_config("flan-appendix-c").probes[0].params["max_new_tokens"] == 20  # the bundled file is untouched
    assert with_continuation_tokens(cfg, None) is cfg
    with pytest.raises(UserError, match="runs none of them"):
        with_continuation_tokens(parse_config({"probes": ["crows_pairs"]}), 128)


def test_a_config_beside_the_suite_adds_settings_but_not_probes(tmp_path):
    (tmp_path / "audit.yaml").write_text("models: {tuned: ./tuned}\nscorer: {threshold: 0.6}\nruntime: {bootstrap: 200}\n"
                                         "output_dir: out\n", encoding="utf-8")
    cfg = suite_config("flan-appendix-c", str(tmp_path / "audit.yaml"), {"models.base": "hf:org/base", "limit": 5})
    assert cfg.models.base == "hf:org/base" and cfg.models.tuned == str((tmp_path / "tuned").resolve())
    assert cfg.scorer.threshold == 0.6 and cfg.runtime.bootstrap == 200 and cfg.limit == 5
    assert cfg.output_dir == str((tmp_path / "out").resolve()) and len(cfg.probes) == len(FLAN)
    (tmp_path / "probes.yaml").write_text("probes: [bbq]\n", encoding="utf-8")
    with pytest.raises(UserError, match="brings its own"):
        suite_config("flan-appendix-c", str(tmp_path / "probes.yaml"))
    with pytest.raises(UserError, match="Unknown suite 'nope'; bundled suites: flan-appendix-c"):
        suite_config("nope")


def test_instance_names_are_checked():
    cfg = parse_config({"probes": ["civil_comments", {"name": "civil_comments@10shot", "params": {"k_shot": 10}},
                                   {"name": "bbq_generate@gen"}]})
    assert [(p.name, p.params) for p in cfg.probes][1:] == [("civil_comments@10shot", {"k_shot": 10}), ("bbq@gen", {"mode": "generative"})]
    for bad, why in (("civil_comments@Ten Shot", "instance label"), ("nope@x", "part before '@' must be a probe"),
                     ("civil_comments@", "instance label")):
        with pytest.raises(UserError, match=why):
            parse_config({"probes": [bad]})
    with pytest.raises(UserError, match="civil_comments@second"):
        parse_config({"probes": ["civil_comments", "civil_comments"]})


def test_gate_rules_may_name_instances():
    from rai_audit.gate.policy import check_targets, declared_metrics, validate_policy

    for pattern in ("civil_comments@10shot", "civil_comments@*", "civil_comments*"):
        policy = validate_policy({"version": 1, "rules": [{"name": "r", "probe": pattern, "metric": "auc", "max_abs_change": 0.05}]}, "t")
        check_targets(policy, declared_metrics(), "t")  # no error: the instance's probe declares auc


def rai(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "rai_audit", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_the_cli_lists_suites_and_needs_a_config_or_a_suite(tmp_path):
    listed = rai("suites")
    assert listed.returncode == 0 and listed.stdout.startswith("flan-appendix-c") and "11 probe instances" in listed.stdout
    assert rai("run", "--suite", "list").stdout == listed.stdout
    none = rai("run")
    assert none.returncode == 2 and "--suite flan-appendix-c" in none.stderr
    no_tuned = rai("run", "--suite", "flan-appendix-c", "--db", str(tmp_path / "new.sqlite"))
    assert no_tuned.returncode == 2 and "--tuned REF" in no_tuned.stderr and "plan" not in no_tuned.stderr
    assert not (tmp_path / "new.sqlite").exists()  # the usage error created no store (a new user's trial found one)


def test_run_plan_prints_the_plan_and_stops(tmp_path, shared_data):
    db = tmp_path / "none.sqlite"
    r = rai("run", "--suite", "flan-appendix-c", "--plan", "--limit", "3", "--continuation-tokens", "128", "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "plan of audit 'flan-appendix-c': 11 probes x 2 models (base default; tuned (not set" in r.stderr
    assert "3 items x 25 samples x 128 tokens = 9,600 tokens" in r.stderr and "no measured rate" in r.stderr
    assert not db.exists()  # nothing written, not even an empty store
    # the same model as base and tuned (a timing run): its tuned run is the base run reused, one model's work
    same = rai("run", "--suite", "flan-appendix-c", "--plan", "--limit", "3", "--tuned", "default", "--db", str(db))
    assert same.returncode == 0, same.stderr
    assert "11 probes x 1 model (base = tuned (one run, reused for both) default), per model:" in same.stderr


@pytest.mark.slow
def test_the_suite_prints_its_plan_before_any_work_and_its_progress(tmp_path, shared_data):
    """Through the CLI, with two tiny models built from configs: the plan (every probe instance
    with items x samples x tokens, the totals, no measured rate in a new store) comes before the
    first probe's progress line, and each finished probe prints the audit's progress and time left."""
    from tests.tiny_models import make_tiny_causal, tiny_model_dir

    base, tuned = tiny_model_dir("llama"), make_tiny_causal(tmp_path / "tuned", seed=1)
    (tmp_path / "audit.yaml").write_text("runtime: {bootstrap: 20}\n", encoding="utf-8")
    r = rai("run", "audit.yaml", "--suite", "flan-appendix-c", "--model", str(base), "--tuned", str(tuned), "--limit", "2",
            "--continuation-tokens", "4", "--db", str(tmp_path / "s.sqlite"), "--format", "md", cwd=tmp_path)
    assert r.returncode in (0, 1, 3), r.stderr[-3000:]
    err = r.stderr
    plan = err.index("plan of audit 'flan-appendix-c': 11 probes x 2 models")
    first_work = err.index("progress  ")
    assert plan < first_work
    head = err[plan:first_work]
    assert "realtoxicityprompts" in head and "2 items x 25 samples x 4 tokens = 200 tokens" in head
    assert "civil_comments@10shot" in head and "winogender@generative" in head and "total" in head
    assert "no measured rate for this model" in head
    progress = [line for line in err.splitlines() if line.startswith("audit progress: ")]
    assert len(progress) == 22 and progress[-1].startswith("audit progress: 22 of 22 planned probe runs done")
    assert "left" in progress[0] and "no probe work left" in progress[-1]
    md = next((tmp_path / "rai-audit-out" / "reports").glob("*.md")).read_text(encoding="utf-8")
    assert "### Flan appendix C tables" in md and "10-shot" in md
