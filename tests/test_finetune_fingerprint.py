"""The finetune stage's training fingerprint and the contamination check (issue 14, section 2).

A mixture is built from files with the stage's own code (``finetune.config`` -> ``build_mixture``
-> ``finetune.fingerprint.mixture_fingerprint``, what ``run_finetune`` calls); the probe items are
the civil_comments probe's real items from the shared benchmark files. The end-to-end run that
writes the fingerprint, the manifest entry and the store artifact is in test_finetune_train.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from rai_audit.contamination import TrainingFingerprint, check_items, load_training_data
from rai_audit.contamination.ngrams import words
from rai_audit.errors import UserError
from rai_audit.hashing import sha256_file

from finetune.config import ContaminationSpec, load_config, load_mixture, parse_config
from finetune.fingerprint import FINGERPRINT_NAME, mixture_fingerprint, training_documents, write_fingerprint
from finetune.mixture import Mixture, build_mixture

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "rai_audit" / "assets" / "demo_mixture"
PLANTED = 50
# how Flan wraps a CivilComments item (NIV2 task1720's definition, in our words)
INSTRUCTION = "Read the comment and decide whether it is toxic. Answer Yes or No."


@pytest.fixture(scope="module")
def civil_comments():
    """(probe, items) of the civil_comments probe on the shared benchmark files."""
    import os

    import probes

    root = Path(os.environ["RAI_AUDIT_DATA"])
    if not (root / "civil_comments_niv2").is_dir() and not (root / "civil_comments").is_dir():
        pytest.skip(f"CivilComments files not found under {root}")
    probe = probes.probe_class("civil_comments")({}, data_root=root)
    _, items = probe.load()
    return probe, items


def _probe_items(probe, items):
    return [(it.id, probe.content_texts(it)) for it in items]


def _planted(probe, items) -> list:
    """50 items long enough to check, seeded, some of them short enough to need the 8-gram size."""
    checkable = [it for it in items if len(words(" ".join(probe.content_texts(it)))) >= 8]
    pick = np.random.default_rng(14).choice(len(checkable), size=PLANTED, replace=False)
    return [checkable[i] for i in sorted(pick)]


def _mixture_yaml(tmp_path: Path, planted_rows: list[dict] | None) -> Path:
    """A Flan-style mixture: the demo mixture's clean tasks as filler, plus (when given) a task of
    CivilComments items wrapped in an instruction template."""
    mix = yaml.safe_load((DEMO / "mixture.yaml").read_text(encoding="utf-8"))
    for task in mix["tasks"]:
        task["source"]["path"] = str(DEMO / task["source"]["path"])
    if planted_rows is not None:
        path = tmp_path / "toxicity_task.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in planted_rows), encoding="utf-8")
        mix["tasks"].append({"name": "toxicity_classification", "collection": "instructions",
                             "source": {"type": "jsonl", "path": str(path)}})
        mix.pop("total")  # examples-proportional: every task contributes all its examples
        mix.pop("proportions")
    out = tmp_path / "mixture.yaml"
    out.write_text(yaml.safe_dump(mix), encoding="utf-8")
    return out


def _stage_fingerprint(tmp_path: Path, mixture_path: Path, **contamination) -> tuple[TrainingFingerprint, Mixture]:
    """Exactly what run_finetune does between its config and the training loop."""
    raw = {"model": "x", "output_dir": str(tmp_path / "out"), "mixture": str(mixture_path)}
    if contamination:
        raw["contamination"] = contamination
    cfg = parse_config(raw)
    mixture = build_mixture(cfg.mixture_spec())
    return mixture_fingerprint(mixture, cfg.contamination), mixture


def test_mixture_with_50_probe_items_flags_exactly_those(civil_comments, tmp_path):
    probe, items = civil_comments
    planted = _planted(probe, items)
    assert any(len(words(it.data["text"])) < 13 for it in planted)  # the short_n path is exercised too
    rows = [{"instruction": INSTRUCTION, "input": it.data["text"], "output": "Yes" if it.data["label"] else "No"}
            for it in planted]
    fp, mixture = _stage_fingerprint(tmp_path, _mixture_yaml(tmp_path, rows))
    assert mixture.counts["toxicity_classification"]["drawn"] == PLANTED
    assert {"general_qa", "word_tasks", "list_tasks", "arithmetic_cot"} <= set(mixture.counts)
    # each planted comment reached training inside the instruction wrapping, never on its own
    docs = list(training_documents(mixture))
    for it in planted:
        assert any(it.data["text"] in d and INSTRUCTION in d for d in docs)
        assert not any(d.strip() == it.data["text"].strip() for d in docs)

    result = check_items(_probe_items(probe, items), fp)
    assert result.overlapping == sorted(it.id for it in planted)
    assert not set(result.overlapping) & set(result.unchecked)
    assert result.fraction == pytest.approx(PLANTED / result.checked)
    assert result.fingerprint_id == fp.fingerprint_id and result.examples

    # the file the stage writes says the same after a round trip, found from a model folder
    path, _ = write_fingerprint(fp, tmp_path / "model")
    assert path.name == FINGERPRINT_NAME
    again = check_items(_probe_items(probe, items), load_training_data(tmp_path / "model"))
    assert again.overlapping == result.overlapping and again.fingerprint_id == fp.fingerprint_id


def test_clean_demo_mixture_flags_no_item(civil_comments, tmp_path):
    probe, items = civil_comments
    fp, mixture = _stage_fingerprint(tmp_path, DEMO / "mixture.yaml")
    assert fp.documents > 0 and fp.summary()["examples"] == len(mixture.examples)
    result = check_items(_probe_items(probe, items), fp)
    assert result.overlapping == [] and result.checked > 0 and result.fraction == 0.0


def test_fingerprint_is_deterministic_and_its_file_reproducible(tmp_path):
    fp1, _ = _stage_fingerprint(tmp_path, DEMO / "mixture.yaml")
    fp2, _ = _stage_fingerprint(tmp_path, DEMO / "mixture.yaml")
    assert fp1.fingerprint_id == fp2.fingerprint_id and fp1.summary() == fp2.summary()
    p1, sha1 = write_fingerprint(fp1, tmp_path / "a")
    p2, sha2 = write_fingerprint(fp2, tmp_path / "b")
    assert sha1 == sha2 == sha256_file(p1, use_cache=False) and p1.read_bytes() == p2.read_bytes()
    # every training example is a document: the input and the target, as rendered
    mixture = build_mixture(load_mixture(DEMO / "mixture.yaml"))
    ex = mixture.examples[0]
    assert next(training_documents(mixture)) == f"{ex.inputs}\n{ex.targets}"


def test_contamination_sizes_are_configurable_and_validated(tmp_path):
    fp, _ = _stage_fingerprint(tmp_path, DEMO / "mixture.yaml", ngram=10, short_ngram=5)
    assert fp.sizes == [10, 5] and fp.summary()["ngram_sizes"] == [10, 5]
    default = parse_config({"model": "x", "output_dir": "o", "mixture": "m.yaml"}).contamination
    assert (default.ngram, default.short_ngram) == (13, 8) and default == ContaminationSpec()
    with pytest.raises(UserError, match="short_ngram"):
        parse_config({"model": "x", "output_dir": "o", "mixture": "m.yaml",
                      "contamination": {"ngram": 8, "short_ngram": 13}})
    with pytest.raises(UserError, match="contamination.ngram"):
        parse_config({"model": "x", "output_dir": "o", "mixture": "m.yaml", "contamination": {"ngram": 0}})
    with pytest.raises(UserError, match="unknown field"):
        parse_config({"model": "x", "output_dir": "o", "mixture": "m.yaml", "contamination": {"n": 13}})


def test_shipped_flan_example_trains_on_no_civil_comments_item(civil_comments, shared_data):
    """The example once trained on NIV2 task1720, the very file the civil_comments probe scores."""
    cfg = load_config(REPO / "examples" / "finetune_flan_shared.yaml")
    spec = cfg.mixture_spec()
    sources = [cfg.resolve_path(getattr(t.source, "path", "")) for t in spec.tasks]
    assert not any("civil_comments" in str(p) for p in sources)
    probe, items = civil_comments
    fp = mixture_fingerprint(build_mixture(spec), cfg.contamination)
    assert check_items(_probe_items(probe, items), fp).overlapping == []
