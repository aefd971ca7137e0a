"""Scorer options are validated strictly, and code in a checkpoint pickle never runs unless the
user trusts that exact file (``checkpoint_sha256`` equal to its sha256 *and*
``trust_checkpoint: true``, a real boolean).

The malicious checkpoints below are Detoxify-layout files (a genuine tiny config and state
dict) plus one object whose unpickling creates a marker file. Whatever the options say, the
marker must never appear, except in the one trusted case, which proves the marker would appear
if the loader ever unpickled the file in full.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import shlex
import subprocess
import sys

import pytest
import torch

from rai_audit.config import load_config, parse_config
from rai_audit.errors import EXIT_USAGE, ModelLoadError, UserError

import probes
from probes.scorers import get_scorer
from tests.tiny_detoxify import build_tiny_detoxify, build_tiny_hf_classifier, sha256_of

ORIGINAL_NAMES = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"]


class TouchMarker:
    """Unpickling this calls ``pathlib.Path.touch(marker)``."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


class SystemMarker:
    """Unpickling this runs ``os.system('touch marker')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


class OpenMarker:
    """Unpickling this calls the builtin ``open(marker, 'a')``, which creates the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "a"))


PAYLOADS = {"touch": TouchMarker, "system": SystemMarker, "open": OpenMarker}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_detoxify(tmp_path_factory.mktemp("genuine"), model_type=None)


def evil_checkpoint(tiny, root: pathlib.Path, payload: str = "touch", raw: bool = False):
    """A Detoxify-layout checkpoint carrying a payload; returns (path, marker)."""
    marker = root / f"MARKER-{payload}"
    genuine = torch.load(tiny.checkpoint, map_location="cpu", weights_only=True)
    genuine["evil"] = PAYLOADS[payload](marker)
    path = root / f"evil-{payload}{'-raw' if raw else ''}.ckpt"
    if raw:  # a bare pickle stream, not torch's zip format
        with open(path, "wb") as f:
            pickle.dump(genuine, f, protocol=2)
    else:
        torch.save(genuine, path)
    assert not marker.exists()
    return path, marker


def _opts(case: str, digest: str) -> dict:
    other = "0123456789abcdef" * 4
    return {
        "missing": {},
        "trust 'false' string": {"trust_checkpoint": "false"},
        "trust 'true' string": {"trust_checkpoint": "true"},
        "trust 1": {"trust_checkpoint": 1},
        "trust 0": {"trust_checkpoint": 0},
        "trust False": {"trust_checkpoint": False},
        "trust True, no pin": {"trust_checkpoint": True},
        "pin only": {"checkpoint_sha256": digest},
        "pin, trust False": {"checkpoint_sha256": digest, "trust_checkpoint": False},
        "pin, trust 'false' string": {"checkpoint_sha256": digest, "trust_checkpoint": "false"},
        "pin, trust 'true' string": {"checkpoint_sha256": digest, "trust_checkpoint": "true"},
        "pin, trust 'True' string": {"checkpoint_sha256": digest, "trust_checkpoint": "True"},
        "pin, trust 1": {"checkpoint_sha256": digest, "trust_checkpoint": 1},
        "other digest": {"checkpoint_sha256": other},
        "other digest, trust True": {"checkpoint_sha256": other, "trust_checkpoint": True},
    }[case]


UNTRUSTED_CASES = ["missing", "trust 'false' string", "trust 'true' string", "trust 1", "trust 0",
                   "trust False", "trust True, no pin", "pin only", "pin, trust False",
                   "pin, trust 'false' string", "pin, trust 'true' string", "pin, trust 'True' string",
                   "pin, trust 1", "other digest", "other digest, trust True"]


def _expect_message(case: str, msg: str, digest: str) -> None:
    """Each refusal says what is wrong and how to trust the file."""
    if isinstance(_opts(case, digest).get("trust_checkpoint"), (str, int)) and \
            not isinstance(_opts(case, digest).get("trust_checkpoint"), bool):
        assert "trust_checkpoint" in msg and "boolean" in msg and "Allowed options" in msg, msg
    elif case == "missing" or case == "trust False":
        assert "not pinned" in msg and f"checkpoint_sha256={digest}" in msg, msg
    elif case.startswith("other digest"):
        assert "not the one you pinned" in msg, msg
    else:
        assert "contains code or untrusted objects" in msg and "nothing in it was executed" in msg, msg
        assert f"checkpoint_sha256: {digest}" in msg and "trust_checkpoint: true" in msg, msg


# -- the malicious pickle never runs ------------------------------------------------------------
@pytest.mark.parametrize("case", UNTRUSTED_CASES)
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_malicious_checkpoint_never_runs_without_exact_trust(tmp_path, tiny, case, payload):
    path, marker = evil_checkpoint(tiny, tmp_path, payload)
    digest = sha256_of(path)
    with pytest.raises(UserError) as e:
        get_scorer("detoxify:original", checkpoint=str(path), huggingface_config_path=str(tiny.config_dir),
                   **_opts(case, digest))
    assert not marker.exists(), f"the pickle ran with options {case!r}"
    assert e.value.exit_code == EXIT_USAGE
    _expect_message(case, str(e.value), digest)


@pytest.mark.parametrize("case", ["pin only", "trust True, no pin", "pin, trust False"])
def test_raw_pickle_stream_never_runs_either(tmp_path, tiny, case):
    path, marker = evil_checkpoint(tiny, tmp_path, "system", raw=True)
    digest = sha256_of(path)
    with pytest.raises(UserError, match="contains code or untrusted objects"):
        get_scorer("detoxify:original", checkpoint=str(path), huggingface_config_path=str(tiny.config_dir),
                   **_opts(case, digest))
    assert not marker.exists()


def test_refusal_names_what_the_pickle_references(tmp_path, tiny):
    path, marker = evil_checkpoint(tiny, tmp_path, "system")
    with pytest.raises(UserError) as e:
        get_scorer("detoxify:original", checkpoint=str(path), huggingface_config_path=str(tiny.config_dir),
                   checkpoint_sha256=sha256_of(path))
    assert "system" in str(e.value) and "lacks trust_checkpoint: true" in str(e.value)
    assert not marker.exists()


def test_direct_construction_also_rejects_a_string_trust_flag(tmp_path, tiny):
    from probes.scorers.detoxify_format import DetoxifyScorer

    path, marker = evil_checkpoint(tiny, tmp_path, "touch")
    for value in ("false", "true", 1):
        with pytest.raises(UserError, match="trust_checkpoint"):
            DetoxifyScorer("original", checkpoint=str(path), huggingface_config_path=str(tiny.config_dir),
                           checkpoint_sha256=sha256_of(path), trust_checkpoint=value)
    assert not marker.exists()


def test_exact_trust_is_the_only_way_to_a_full_unpickle(tmp_path, tiny):
    """With the file's own digest and trust_checkpoint=True the pickle is unpickled in full: the
    marker appears, which shows the tests above would catch a loader that ran it."""
    path, marker = evil_checkpoint(tiny, tmp_path, "touch")
    s = get_scorer("detoxify:original", checkpoint=str(path), huggingface_config_path=str(tiny.config_dir),
                   checkpoint_sha256=sha256_of(path).upper(), trust_checkpoint=True)
    assert marker.exists()
    assert s.identity.checkpoint_sha256 == sha256_of(path)
    assert list(s.score(["hello"])[0].scores) == ORIGINAL_NAMES


def test_full_unpickle_reads_the_bytes_it_hashed(tmp_path, tiny, monkeypatch):
    """The trusted fallback unpickles from memory the bytes whose digest matched, so a file
    swapped after the check is never the one unpickled."""
    import probes.scorers.detoxify_format as df

    path, marker = evil_checkpoint(tiny, tmp_path, "touch")
    digest = sha256_of(path)
    real_read = pathlib.Path.read_bytes

    def swapped(self):
        data = real_read(self)
        return data[:-1] + bytes([data[-1] ^ 1]) if self == path else data

    monkeypatch.setattr(pathlib.Path, "read_bytes", swapped)
    with pytest.raises(ModelLoadError, match="changed while it was being loaded"):
        df.DetoxifyScorer("original", checkpoint=str(path), huggingface_config_path=str(tiny.config_dir),
                          checkpoint_sha256=digest, trust_checkpoint=True)
    assert not marker.exists()


# -- the genuine checkpoint still loads weights-only and scores as before ------------------------
def test_genuine_checkpoint_loads_weights_only_and_scores_as_a_full_load(tiny, monkeypatch):
    calls = []
    real = torch.load

    def spy(*a, **kw):
        calls.append(kw.get("weights_only"))
        return real(*a, **kw)

    monkeypatch.setattr(torch, "load", spy)
    texts = ["you are a stupid idiot and i hate you", "have a nice day", "i love music"]
    for kw in ({"checkpoint_sha256": tiny.sha256}, {"trust_checkpoint": True},
               {"checkpoint_sha256": tiny.sha256, "trust_checkpoint": True}):
        calls.clear()
        s = get_scorer("detoxify:original", checkpoint=str(tiny.checkpoint),
                       huggingface_config_path=str(tiny.config_dir), **kw)
        assert calls == [True], kw  # one load, weights-only, even when fully trusted
    monkeypatch.setattr(torch, "load", real)
    ours = s.score(texts)

    # reference: the model built from a full (unrestricted) unpickle of the same file
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    loaded = torch.load(tiny.checkpoint, map_location="cpu", weights_only=False)
    model = BertForSequenceClassification(BertConfig.from_pretrained(tiny.config_dir, num_labels=6))
    model.load_state_dict(loaded["state_dict"])
    model.eval()
    tok = BertTokenizer.from_pretrained(tiny.config_dir)
    with torch.no_grad():
        ref = torch.sigmoid(model(**tok(texts, return_tensors="pt", padding=True)).logits.double()).numpy()
    for row, o in zip(ref, ours):
        assert [o.scores[n] for n in ORIGINAL_NAMES] == pytest.approx(list(row), abs=1e-5)


def test_detoxify_allow_list_is_empty():
    from probes.scorers.detoxify_format import SAFE_GLOBALS

    assert SAFE_GLOBALS == ()


# -- Hugging Face classifier weights -------------------------------------------------------------
def test_hf_pickled_bin_with_code_is_refused_not_run(tmp_path):
    d = build_tiny_hf_classifier(tmp_path / "m", ["clean", "toxic"])
    from safetensors.torch import load_file

    weights = load_file(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    marker = tmp_path / "MARKER-hf"
    torch.save({**weights, "evil": TouchMarker(marker)}, d / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="contain code or untrusted objects"):
        get_scorer(str(d))
    assert not marker.exists()


def test_hf_clean_bin_still_loads(tmp_path):
    d = build_tiny_hf_classifier(tmp_path / "m", ["clean", "toxic"])
    ref = get_scorer(str(d)).score(["you are an idiot"])[0].scores["toxicity"]
    from safetensors.torch import load_file

    weights = load_file(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    torch.save(weights, d / "pytorch_model.bin")
    assert get_scorer(str(d)).score(["you are an idiot"])[0].scores["toxicity"] == pytest.approx(ref, abs=1e-6)


# -- strict option schemas -----------------------------------------------------------------------
@pytest.mark.parametrize("name,options,word", [
    ("detoxify:original", {"trust_checkpoint": "false"}, "trust_checkpoint"),
    ("detoxify:original", {"trust_checkpoint": "yes"}, "trust_checkpoint"),
    ("detoxify:original", {"trust_checkpoint": None}, "trust_checkpoint"),
    ("detoxify:original", {"batch_size": "64"}, "batch_size"),
    ("detoxify:original", {"batch_size": True}, "batch_size"),
    ("detoxify:original", {"batch_size": 0}, "batch_size"),
    ("detoxify:original", {"max_batch_tokens": 1.5}, "max_batch_tokens"),
    ("detoxify:original", {"checkpoint": 42}, "checkpoint"),
    ("detoxify:original", {"checkpoint_sha256": "abc"}, "64 hex"),
    ("detoxify:original", {"trust": True}, "'trust'"),
    ("detoxify:original", {"toxic_labels": ["x"]}, "toxic_labels"),
    ("profanity-check", {"threshold": "0.5"}, "threshold"),
    ("profanity-check", {"threshold": True}, "threshold"),
    ("profanity-check", {"batch_size": "16"}, "batch_size"),
    ("profanity-check", {"checkpoint": "x.ckpt"}, "'checkpoint'"),
    ("hf:org/name", {"max_length": "128"}, "max_length"),
    ("hf:org/name", {"activation": "relu"}, "activation"),
    ("hf:org/name", {"toxic_labels": [True]}, "toxic_labels"),
    ("hf:org/name", {"trust_checkpoint": True}, "'trust_checkpoint'"),
])
def test_bad_option_is_a_user_error_naming_it_and_the_allowed_ones(name, options, word):
    from probes.scorers import options_schema

    with pytest.raises(UserError) as e:
        get_scorer(name, **options)
    msg = str(e.value)
    assert word in msg and "Allowed options:" in msg, msg
    allowed = msg.split("Allowed options:", 1)[1]
    for option in options_schema(name).model_fields:
        assert option in allowed
    assert "\n" not in msg


def test_option_schemas_match_the_scorer_signatures():
    """Every keyword a scorer takes has a schema field with the same default, and vice versa."""
    import inspect

    from probes.scorers import options_schema
    from probes.scorers.detoxify_format import DetoxifyScorer
    from probes.scorers.hf_classifier import HFClassifierScorer
    from probes.scorers.profanity import ProfanityCheckScorer

    for name, factory in (("profanity-check", ProfanityCheckScorer), ("detoxify:original", DetoxifyScorer),
                          ("hf:org/name", HFClassifierScorer)):
        params = {p: v.default for p, v in inspect.signature(factory).parameters.items()
                  if v.kind == inspect.Parameter.KEYWORD_ONLY}
        fields = {f: i.default for f, i in options_schema(name).model_fields.items()}
        assert params == fields, name


def test_valid_options_still_accepted():
    s = get_scorer("profanity-check", threshold=1, operator=">", batch_size=8)
    assert (s.identity.threshold, s.identity.operator, s.batch_size) == (1.0, ">", 8)


# -- config-load time ------------------------------------------------------------------------------
def _write(tmp_path, text):
    p = tmp_path / "audit.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("value", ["'false'", "'true'", "\"no\"", "1", "0"])
def test_config_rejects_a_non_boolean_trust_flag_at_load_time(tmp_path, value):
    p = _write(tmp_path, "scorer:\n  name: detoxify:original\n  options:\n"
                         f"    checkpoint: x.ckpt\n    trust_checkpoint: {value}\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    msg = str(e.value)
    assert "scorer.options" in msg and "trust_checkpoint" in msg and "boolean" in msg, msg
    assert "Allowed options" in msg and "checkpoint_sha256" in msg


@pytest.mark.parametrize("options, word", [
    ({"treshold": 0.3}, "treshold"),
    ({"threshold": 0.3}, "scorer.threshold"),
    ({"batch_size": "8"}, "batch_size"),
])
def test_config_rejects_unknown_misplaced_or_mistyped_options(options, word):
    with pytest.raises(UserError, match=word):
        parse_config({"scorer": {"name": "profanity-check", "options": options}})


def test_config_accepts_real_booleans_and_leaves_unknown_scorer_names_to_run_time():
    cfg = parse_config({"scorer": {"name": "detoxify:original",
                                   "options": {"trust_checkpoint": True, "checkpoint": "x.ckpt"}}})
    assert cfg.scorer.options["trust_checkpoint"] is True
    assert parse_config({"scorer": {"name": "fake-scorer", "options": {"anything": 1}}}).scorer.name == "fake-scorer"


def test_cli_quoted_false_exits_2_before_any_run(tmp_path, tiny):
    path, marker = evil_checkpoint(tiny, tmp_path, "touch")
    db = tmp_path / "results.sqlite"
    p = _write(tmp_path, "probes: [identity_toxicity]\nscorer:\n  name: detoxify:original\n  options:\n"
                         f"    checkpoint: {path}\n    huggingface_config_path: {tiny.config_dir}\n"
                         f"    checkpoint_sha256: {sha256_of(path)}\n    trust_checkpoint: 'false'\n")
    r = subprocess.run([sys.executable, "-m", "rai_audit", "probe", "--config", str(p), "--db", str(db)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "trust_checkpoint" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists() and not db.exists()


def test_run_with_untrusted_checkpoint_fails_before_creating_a_run(tmp_path, tiny, monkeypatch):
    from rai_audit.runner import run_probe_suite
    from rai_audit.store import Store
    from tests.fakes import FAKE_MODEL, FakeBackend

    monkeypatch.setitem(probes.REGISTRY, "fake_gen", "tests.fakes:FakeGen")
    path, marker = evil_checkpoint(tiny, tmp_path, "system")
    cfg = parse_config({"probes": ["fake_gen"], "runtime": {"bootstrap": 10}, "scorer": {
        "name": "detoxify:original",
        "options": {"checkpoint": str(path), "huggingface_config_path": str(tiny.config_dir),
                    "checkpoint_sha256": sha256_of(path)}}})
    store = Store.open(f"sqlite:///{tmp_path / 'r.sqlite'}")
    try:
        with pytest.raises(UserError, match="contains code or untrusted objects"):
            run_probe_suite(cfg, model_ref="fake:model", store=store, model_info=FAKE_MODEL,
                            backend_loader=lambda info: FakeBackend())
        assert store.list_runs() == []
    finally:
        store.close()
    assert not marker.exists()
