"""Finetune config validation and the bad-config errors users see (UserError -> exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rai_audit.errors import UserError

from finetune.config import FinetuneConfig, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent
DEMO_MIXTURE = REPO / "rai_audit" / "assets" / "demo_mixture" / "mixture.yaml"


def _write(tmp_path, text, name="ft.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_demo_config_parses_and_resolves_paths():
    cfg = load_config(REPO / "examples" / "finetune_demo.yaml")
    assert cfg.model == "default"
    assert cfg.output_path == REPO / "out" / "finetune-demo"
    spec = cfg.mixture_spec()
    assert {t.name for t in spec.tasks} == {"general_qa", "word_tasks", "list_tasks", "arithmetic_cot"}
    assert Path(spec.base_dir) == DEMO_MIXTURE.parent
    from finetune.mixture import build_mixture

    m = build_mixture(spec)
    assert len(m.examples) == spec.total
    # proportions 0.6 / 0.25 / 0.15 of 400
    assert m.counts["general_qa"]["drawn"] + m.counts["word_tasks"]["drawn"] == 240
    assert m.counts["list_tasks"]["drawn"] == 100 and m.counts["arithmetic_cot"]["drawn"] == 60
    assert m.counts["word_tasks"]["distinct_used"] <= 100  # its cap


def test_demo_mixture_is_a_few_hundred_pairs():
    from finetune.config import load_mixture
    from finetune.sources import load_task

    spec = load_mixture(DEMO_MIXTURE)
    sizes = {t.name: len(load_task(t, spec.base_dir).examples) for t in spec.tasks}
    assert 200 <= sum(sizes.values()) <= 1000, sizes


def test_unknown_and_missing_fields_are_named(tmp_path):
    p = _write(tmp_path, "model: default\noutput_dir: out\nmixture: m.yaml\nlearning_rate: 0.1\n")
    with pytest.raises(UserError, match=r"learning_rate: unknown field"):
        load_config(p)
    p = _write(tmp_path, "model: default\nmixture: m.yaml\n")
    with pytest.raises(UserError, match=r"output_dir: required field is missing"):
        load_config(p)
    with pytest.raises(UserError, match=r"seq_len"):
        parse_config({"model": "x", "output_dir": "o", "mixture": "m.yaml", "seq_len": 0})
    with pytest.raises(UserError, match=r"warmup_steps \(50\) is larger than steps \(10\)"):
        parse_config({"model": "x", "output_dir": "o", "mixture": "m.yaml", "steps": 10, "warmup_steps": 50})
    with pytest.raises(UserError, match=r"optimizer"):
        parse_config({"model": "x", "output_dir": "o", "mixture": "m.yaml", "optimizer": "sgd"})


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(_write(tmp_path, "model: [unclosed\n"))
    with pytest.raises(UserError, match="mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_empty_mixture_is_user_error(tmp_path):
    _write(tmp_path, "tasks: []\n", "mix.yaml")
    cfg = load_config(_write(tmp_path, "model: default\noutput_dir: out\nmixture: mix.yaml\n"))
    with pytest.raises(UserError, match="mixture spec .* tasks: .*no tasks"):
        cfg.mixture_spec()
    from finetune.run import run_finetune

    with pytest.raises(UserError, match="no tasks"):
        run_finetune(cfg, progress=False)  # refused before any model is loaded
    (tmp_path / "a.jsonl").write_text(json.dumps({"instruction": "i", "output": "o"}) + "\n")
    _write(tmp_path, "tasks:\n  - {name: a, source: {type: jsonl, path: a.jsonl}}\nproportions: {a: 0}\n", "zero.yaml")
    with pytest.raises(UserError, match="proportions must not all be zero"):
        load_config(_write(tmp_path, "model: default\noutput_dir: out\nmixture: zero.yaml\n")).mixture_spec()


def test_unset_environment_variable_in_a_path_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("RAI_AUDIT_NOPE", raising=False)
    cfg = FinetuneConfig(model="x", output_dir="${RAI_AUDIT_NOPE}/out", mixture="m.yaml")
    with pytest.raises(UserError, match="RAI_AUDIT_NOPE, which is not set"):
        cfg.output_path


def test_unknown_architecture_is_user_error(tmp_path):
    from finetune.run import run_finetune

    model_dir = tmp_path / "bert"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"}))
    cfg = parse_config({"model": str(model_dir), "output_dir": str(tmp_path / "out"), "mixture": str(DEMO_MIXTURE)})
    with pytest.raises(UserError, match="does not support BertForMaskedLM"):
        run_finetune(cfg, progress=False)


def test_check_tokenizer_names_the_mismatch():
    from finetune.run import check_tokenizer
    from tests.finetune_fixtures import CharTokenizer

    check_tokenizer(CharTokenizer(), 253, "char")  # same size: fine
    with pytest.raises(UserError, match=r"253 tokens but the model's embedding has only 100 rows"):
        check_tokenizer(CharTokenizer(), 100, "char")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    pytest.importorskip("jax")
    from tests.finetune_fixtures import make_tiny_hf_model

    root = tmp_path_factory.mktemp("tiny")
    make_tiny_hf_model(root / "llama")
    make_tiny_hf_model(root / "small_vocab", model_vocab=64)
    return root


def test_mismatched_tokenizer_and_short_seq_len_through_run(tiny_llama, tmp_path):
    from finetune.run import run_finetune

    # a tokenizer with more ids than the model has embeddings
    cfg = parse_config({"model": str(tiny_llama / "small_vocab"), "output_dir": str(tmp_path / "o1"),
                        "mixture": str(DEMO_MIXTURE)})
    with pytest.raises(UserError, match="does not belong to this model"):
        run_finetune(cfg, progress=False)
    cfg = parse_config({"model": str(tiny_llama / "small_vocab"), "tokenizer": str(tiny_llama / "llama"),
                        "output_dir": str(tmp_path / "o2"), "mixture": str(DEMO_MIXTURE)})
    with pytest.raises(UserError, match="tokenizer"):
        run_finetune(cfg, progress=False)
    # a row shorter than the longest target
    cfg = parse_config({"model": str(tiny_llama / "llama"), "output_dir": str(tmp_path / "o3"),
                        "mixture": str(DEMO_MIXTURE), "seq_len": 16})
    with pytest.raises(UserError, match=r"longest target .* Raise 'seq_len' to at least \d+"):
        run_finetune(cfg, progress=False)
    assert not (tmp_path / "o3" / "finetune_manifest.json").exists()
