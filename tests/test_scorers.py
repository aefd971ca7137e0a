"""Scorers: registry, identities, thresholds, profanity-check, Detoxify format, HF classifiers.

The Detoxify-format tests build a tiny random BERT checkpoint in Detoxify's own layout and load
it offline through ``checkpoint=`` + ``huggingface_config_path=``, the path users take.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import math

import numpy as np
import pytest
import torch

from rai_audit.errors import ModelLoadError, UserError
from rai_audit.hashing import combine

from probes.scorers import DETOXIFY_VARIANTS, SCORER_NAMES, get_scorer
from tests.tiny_detoxify import (
    UNBIASED_CLASSES,
    build_tiny_detoxify,
    build_tiny_hf_classifier,
    sha256_of,
)

TEXTS = [
    "you are a stupid idiot and i hate you",
    "have a nice day",
    "",
    "the people in this city are kind " * 12,  # over the tiny model's 32 tokens
    "i love music",
    "what a dumb movie, the worst story about war and police " * 3,  # truncated too
    "zzzz qqqq",
]
ORIGINAL_NAMES = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # model_type=None stores the local config dir as the base model, so that Detoxify's own
    # loader (which always fetches config.arch.args.model_type) also works offline.
    return build_tiny_detoxify(tmp_path_factory.mktemp("detox"), model_type=None)


@pytest.fixture(scope="module")
def tiny_scorer(tiny):
    return get_scorer("detoxify:original", checkpoint=str(tiny.checkpoint),
                      huggingface_config_path=str(tiny.config_dir), checkpoint_sha256=tiny.sha256)


def _detoxify_reference(ck):
    from detoxify import Detoxify

    return Detoxify(checkpoint=str(ck.checkpoint), huggingface_config_path=str(ck.config_dir))


# -- registry ---------------------------------------------------------------------------------
def test_unknown_scorer_name_lists_known_names():
    with pytest.raises(UserError) as e:
        get_scorer("perspective")
    msg = str(e.value)
    assert "'perspective'" in msg
    for name in ("profanity-check", "detoxify:original", "detoxify:unbiased-small", "hf:"):
        assert name in msg


def test_unknown_detoxify_variant_and_option():
    with pytest.raises(UserError, match="detoxify:original"):
        get_scorer("detoxify:huge")
    with pytest.raises(UserError, match="treshold") as e:
        get_scorer("profanity-check", treshold=0.3)
    assert "threshold" in str(e.value) and "operator" in str(e.value)


def test_registry_names_match_detoxify_variants():
    from probes.scorers.detoxify_format import VARIANTS

    assert tuple(VARIANTS) == DETOXIFY_VARIANTS
    assert all(f"detoxify:{v}" in SCORER_NAMES for v in VARIANTS)


@pytest.mark.parametrize("threshold,operator", [(1.5, ">="), (-0.1, ">="), ("high", ">="),
                                                (float("nan"), ">="), (0.5, "=>"), (0.5, "<")])
def test_bad_threshold_or_operator_is_a_user_error(threshold, operator):
    with pytest.raises(UserError):
        get_scorer("profanity-check", threshold=threshold, operator=operator)


# -- thresholds ----------------------------------------------------------------------------------
def test_threshold_operators_at_the_boundary():
    ge = get_scorer("profanity-check", threshold=0.5).identity
    gt = get_scorer("profanity-check", threshold=0.5, operator=">").identity
    assert ge.operator == ">=" and gt.operator == ">"
    assert ge.is_toxic(0.5) is True and gt.is_toxic(0.5) is False
    assert ge.is_toxic(0.5000001) and gt.is_toxic(0.5000001)
    assert not ge.is_toxic(0.4999999) and not gt.is_toxic(0.4999999)
    assert ge.scorer_id != gt.scorer_id  # a different operator never shares cached scores


def test_threshold_equal_to_a_real_score():
    s = get_scorer("profanity-check")
    p = s.score(["what a shitty day"])[0].scores["offensive"]
    at_ge = get_scorer("profanity-check", threshold=p).identity
    at_gt = get_scorer("profanity-check", threshold=p, operator=">").identity
    assert at_ge.is_toxic(p) and not at_gt.is_toxic(p)


# -- profanity-check ------------------------------------------------------------------------------
def test_profanity_identity_is_honest_and_hashed():
    s = get_scorer("profanity-check")
    ident = s.identity
    assert ident.name == "profanity-check"
    assert ident.version == importlib.metadata.version("alt-profanity-check")
    assert ident.primary == "offensive" and ident.attributes == ("offensive",)
    assert "offensive" in ident.description.lower() and "not" in ident.description
    import profanity_check

    from pathlib import Path

    data = Path(profanity_check.__file__).parent / "data"
    expected = combine({n: hashlib.sha256((data / n).read_bytes()).hexdigest()
                        for n in ("model.joblib", "vectorizer.joblib")})
    assert ident.checkpoint_sha256 == expected
    d = ident.to_dict()
    assert {"name", "version", "checkpoint_sha256", "threshold", "operator"} <= set(d)


def test_profanity_scores_offensive_above_clean_and_keeps_order():
    s = get_scorer("profanity-check")
    texts = ["have a lovely afternoon with your family", "fuck you, you piece of shit",
             "the weather is nice today", "shut up you stupid bitch"]
    scores = [r.scores["offensive"] for r in s.score(texts)]
    assert scores[1] > 0.9 and scores[3] > 0.9
    assert scores[0] < 0.5 and scores[2] < 0.5
    assert min(scores[1], scores[3]) > max(scores[0], scores[2])
    one_by_one = [s.score([t])[0].scores["offensive"] for t in texts]
    assert np.allclose(scores, one_by_one)
    from profanity_check import predict_prob

    assert np.allclose(scores, predict_prob(texts), atol=1e-12)
    assert not any(r.truncated for r in s.score(texts))


# -- Detoxify format ------------------------------------------------------------------------------
def test_detoxify_identity(tiny, tiny_scorer):
    ident = tiny_scorer.identity
    assert ident.name == "detoxify:original"
    assert ident.checkpoint_sha256 == sha256_of(tiny.checkpoint)
    assert ident.attributes == tuple(ORIGINAL_NAMES) and ident.primary == "toxicity"
    assert (ident.threshold, ident.operator) == (0.5, ">=")
    assert ident.max_length == 32 and ident.length_unit == "tokens"
    assert ident.extra["activation"] == "sigmoid"


def test_detoxify_scores_equal_detoxify_predict(tiny, tiny_scorer):
    ref = _detoxify_reference(tiny).predict(TEXTS)
    ours = tiny_scorer.score(TEXTS)
    assert list(ref) == ORIGINAL_NAMES
    spread = []
    for name in ORIGINAL_NAMES:
        got = [o.scores[name] for o in ours]
        assert np.allclose(got, ref[name], atol=1e-5, rtol=0), name
        spread.append(np.ptp(got))
    assert max(spread) > 0.05  # random weights that actually discriminate, not all 0.5


def test_detoxify_truncation_is_counted(tiny, tiny_scorer):
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(tiny.config_dir)
    expected = [len(tok(t)["input_ids"]) > 32 for t in TEXTS]
    assert sum(expected) == 2
    assert [o.truncated for o in tiny_scorer.score(TEXTS)] == expected


def test_detoxify_batching_does_not_change_scores(tiny):
    kw = dict(checkpoint=str(tiny.checkpoint), huggingface_config_path=str(tiny.config_dir),
              checkpoint_sha256=tiny.sha256)
    big = get_scorer("detoxify:original", **kw).score(TEXTS)
    small = get_scorer("detoxify:original", batch_size=1, **kw).score(TEXTS)
    budget = get_scorer("detoxify:original", batch_size=64, max_batch_tokens=40, **kw).score(TEXTS)
    for a, b, c in zip(big, small, budget):
        for k in a.scores:
            assert math.isclose(a.scores[k], b.scores[k], abs_tol=1e-6)
            assert math.isclose(a.scores[k], c.scores[k], abs_tol=1e-6)
    assert get_scorer("detoxify:original", **kw).score([]) == []


def test_detoxify_refuses_unpinned_checkpoint(tiny):
    with pytest.raises(UserError) as e:
        get_scorer("detoxify:original", checkpoint=str(tiny.checkpoint),
                   huggingface_config_path=str(tiny.config_dir))
    msg = str(e.value)
    assert "pickle" in msg and "run" in msg and "code" in msg
    assert f"checkpoint_sha256={tiny.sha256}" in msg and "trust_checkpoint=True" in msg


def test_detoxify_trust_flag_loads_unpinned(tiny):
    s = get_scorer("detoxify:original", checkpoint=str(tiny.checkpoint),
                   huggingface_config_path=str(tiny.config_dir), trust_checkpoint=True)
    assert s.identity.checkpoint_sha256 == tiny.sha256


def test_detoxify_wrong_pin_is_an_error(tiny):
    with pytest.raises(ModelLoadError, match="does not|not the one"):
        get_scorer("detoxify:original", checkpoint=str(tiny.checkpoint),
                   huggingface_config_path=str(tiny.config_dir), checkpoint_sha256="0" * 64)
    with pytest.raises(ModelLoadError):  # a pin is checked even when trust is also given
        get_scorer("detoxify:original", checkpoint=str(tiny.checkpoint), trust_checkpoint=True,
                   huggingface_config_path=str(tiny.config_dir), checkpoint_sha256="f" * 64)
    with pytest.raises(UserError, match="64 hex"):
        get_scorer("detoxify:original", checkpoint=str(tiny.checkpoint), checkpoint_sha256="abc")


def test_detoxify_online_variant_refuses_before_downloading(monkeypatch):
    import probes.scorers.detoxify_format as df

    def no_download(variant):
        raise AssertionError("must not download an unpinned checkpoint")

    monkeypatch.setattr(df, "_download", no_download)
    with pytest.raises(UserError, match="checkpoint_sha256"):
        get_scorer("detoxify:unbiased")


def test_detoxify_missing_files_are_user_errors(tmp_path, tiny):
    with pytest.raises(UserError, match="does not exist"):
        get_scorer("detoxify:original", checkpoint=str(tmp_path / "nope.ckpt"), trust_checkpoint=True)
    with pytest.raises(UserError, match="config.json"):
        get_scorer("detoxify:original", checkpoint=str(tiny.checkpoint), trust_checkpoint=True,
                   huggingface_config_path=str(tmp_path))


def test_not_a_detoxify_checkpoint(tmp_path, tiny):
    bad = tmp_path / "bad.ckpt"
    torch.save({"weights": {"w": torch.zeros(2)}}, bad)
    with pytest.raises(ModelLoadError, match="not a Detoxify checkpoint"):
        get_scorer("detoxify:original", checkpoint=str(bad), checkpoint_sha256=sha256_of(bad),
                   huggingface_config_path=str(tiny.config_dir))


def test_checkpoint_needing_full_unpickle_loads_only_when_pinned_and_trusted(tmp_path):
    # Lightning-style extras that torch's safe loader rejects: a full unpickle needs both the
    # exact digest (checkpoint_sha256) and trust_checkpoint=True; either alone is refused.
    ck = build_tiny_detoxify(tmp_path, extra_checkpoint_entries={"hparams": argparse.Namespace(lr=1e-5)})
    kw = dict(checkpoint=str(ck.checkpoint), huggingface_config_path=str(ck.config_dir))
    with pytest.raises(Exception):
        torch.load(ck.checkpoint, weights_only=True)
    with pytest.raises(UserError, match="pickle"):
        get_scorer("detoxify:original", **kw)
    for partial in ({"checkpoint_sha256": ck.sha256}, {"trust_checkpoint": True},
                    {"checkpoint_sha256": ck.sha256, "trust_checkpoint": False}):
        with pytest.raises(UserError, match="contains code or untrusted objects") as e:
            get_scorer("detoxify:original", **kw, **partial)
        assert "argparse.Namespace" in str(e.value) and "trust_checkpoint: true" in str(e.value)
    s = get_scorer("detoxify:original", **kw, checkpoint_sha256=ck.sha256, trust_checkpoint=True)
    assert len(s.score(["hello"])[0].scores) == 6


def test_unbiased_layout_reports_named_outputs_only(tmp_path):
    # The unbiased release has 16 outputs (7 toxicity + 9 identity heads) and names 7 classes.
    ck = build_tiny_detoxify(tmp_path, classes=UNBIASED_CLASSES, num_classes=16, model_type=None, seed=3)
    s = get_scorer("detoxify:unbiased", checkpoint=str(ck.checkpoint),
                   huggingface_config_path=str(ck.config_dir), checkpoint_sha256=ck.sha256)
    assert s.identity.attributes == tuple(UNBIASED_CLASSES)
    ref = _detoxify_reference(ck).predict(TEXTS)
    ours = s.score(TEXTS)
    for name in UNBIASED_CLASSES:
        assert np.allclose([o.scores[name] for o in ours], ref[name], atol=1e-5, rtol=0)


# -- Hugging Face classifiers ------------------------------------------------------------------------
def _manual_probs(path, text, activation):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():
        logits = model(**tok([text], return_tensors="pt", truncation=True)).logits[0].double()
    return (torch.softmax(logits, -1) if activation == "softmax" else torch.sigmoid(logits)).numpy()


def test_hf_softmax_label_mapping(tmp_path):
    path = build_tiny_hf_classifier(tmp_path / "m", ["non-toxic", "toxic"], seed=1)
    s = get_scorer(str(path))
    assert s.activation == "softmax" and s.identity.primary == "toxicity"
    assert s.identity.extra["toxic_labels"] == ["toxic"]
    texts = ["you are an idiot", "nice day"]
    out = s.score(texts)
    for text, o in zip(texts, out):
        p = _manual_probs(path, text, "softmax")
        assert math.isclose(o.scores["toxicity"], p[1], abs_tol=1e-6)
        assert math.isclose(o.scores["non-toxic"], p[0], abs_tol=1e-6)
    by_index = get_scorer(str(path), toxic_labels=[0]).score(texts)
    assert math.isclose(by_index[0].scores["toxicity"], out[0].scores["non-toxic"], abs_tol=1e-9)
    assert s.identity.name.startswith("local:") and len(s.identity.checkpoint_sha256) == 64


def test_hf_multi_label_uses_sigmoid_and_max_over_toxic_labels(tmp_path):
    labels = ["insult", "threat", "praise"]
    path = build_tiny_hf_classifier(tmp_path / "m", labels, problem_type="multi_label_classification", seed=2)
    s = get_scorer(str(path), toxic_labels=["insult", "threat"], threshold=0.7, operator=">")
    assert s.activation == "sigmoid"
    o = s.score(["they will hurt you"])[0]
    p = _manual_probs(path, "they will hurt you", "sigmoid")
    assert math.isclose(o.scores["toxicity"], max(p[0], p[1]), abs_tol=1e-6)
    assert math.isclose(o.scores["praise"], p[2], abs_tol=1e-6)
    assert (s.identity.threshold, s.identity.operator) == (0.7, ">")
    forced = get_scorer(str(path), toxic_labels=["insult", "threat"], activation="softmax")
    q = _manual_probs(path, "they will hurt you", "softmax")
    assert math.isclose(forced.score(["they will hurt you"])[0].scores["toxicity"], q[0] + q[1], abs_tol=1e-6)


def test_hf_ambiguous_or_unknown_labels_are_user_errors(tmp_path):
    path = build_tiny_hf_classifier(tmp_path / "m", ["LABEL_0", "LABEL_1"])
    with pytest.raises(UserError, match="toxic_labels"):
        get_scorer(str(path))
    with pytest.raises(UserError, match="not one of"):
        get_scorer(str(path), toxic_labels=["toxic"])
    with pytest.raises(UserError, match="out of range"):
        get_scorer(str(path), toxic_labels=[5])
    assert get_scorer(str(path), toxic_labels=["LABEL_1"]).score(["x"])[0].scores["toxicity"] > 0


def test_hf_truncation_counted(tmp_path):
    path = build_tiny_hf_classifier(tmp_path / "m", ["clean", "toxic"], model_max_length=8)
    s = get_scorer(str(path))
    assert s.identity.max_length == 8
    assert [o.truncated for o in s.score(["hi", "the " * 20])] == [False, True]


def test_hf_hub_reference_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="offline|network"):
        get_scorer("hf:some-org/not-cached-toxicity-model")


def test_checkpoint_path_as_name_gets_a_hint():
    with pytest.raises(UserError, match="detoxify:<variant>"):
        get_scorer("/models/toxic_original-c1212f89.ckpt")
