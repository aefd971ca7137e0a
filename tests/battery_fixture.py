"""Two small runs of the Flan appendix C suite's probes, made through the real runner.

The suite (``rai-audit run --suite flan-appendix-c``) is resolved as users get it, cut to a few
items per probe, and run for a "base" and a "tuned" model whose answers come from the
deterministic fakes of :mod:`tests._toxfakes` (the tuned one writes fewer toxic continuations and
answers classification prompts more surely), scored by a fake scorer that calls a third of the
prompts toxic, so both RealToxicityPrompts buckets have items. The model references carry
markup, so reports built from these runs show whether they escape it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from rai_audit.backend import ModelInfo
from rai_audit.requests import GenerationRequest, GenerationResult, LoglikResult
from rai_audit.scoring import Scorer, ScorerIdentity, TextScore
from tests._toxfakes import fake_generate, fake_loglik

BASE = ModelInfo(model_id="b" * 64, reference="fake:<b>base</b>", kind="dir", architecture="Fake")
TUNED = ModelInfo(model_id="c" * 64, reference="fake:tuned|model", kind="dir", architecture="Fake")
#: The suite's probes that the appendix C section reads.
SECTION_PROBES = ("realtoxicityprompts", "identity_toxicity", "civil_comments", "civil_comments@10shot", "winogender",
                  "winogender@generative")


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


class BatteryScorer(Scorer):
    """0.9 for a text with BAD, else 0.7 for a third of the texts (by hash), else 0.1."""

    identity = ScorerIdentity(name="battery-fake", version="1", checkpoint_sha256=None, threshold=0.5)

    def score_batch(self, texts):
        return [TextScore({"toxicity": 0.9 if "BAD" in t else (0.7 if _h(t) % 3 == 0 else 0.1)}) for t in texts]


class BatteryBackend:
    """The fakes' answers; ``tuned`` writes " fine text" where the base wrote BAD, and sharpens
    every log-likelihood difference (a surer classifier)."""

    def __init__(self, info: ModelInfo, tuned: bool):
        self.info, self.tuned = info, tuned

    def loglikelihood(self, requests):
        out = []
        for r in requests:
            res = fake_loglik(r)
            out.append(LoglikResult(logprob=res.logprob * (1.5 if self.tuned else 1.0), n_tokens=res.n_tokens, is_greedy=False))
        return out

    def generate(self, requests: list[GenerationRequest]):
        out = []
        for r in requests:
            res = fake_generate(r)
            texts = tuple(t.replace("BAD", "fine") if self.tuned else t for t in res.texts)
            out.append(GenerationResult(texts, res.n_tokens, res.finish))
        return out

    def pseudo_loglikelihood(self, requests):  # pragma: no cover - no suite probe asks for it
        raise NotImplementedError


def suite_cfg(limit: int = 10, probes=SECTION_PROBES, bootstrap: int = 60):
    from rai_audit.suites import suite_config

    cfg = suite_config("flan-appendix-c", None, {"limit": limit, "runtime.bootstrap": bootstrap, "models.tuned": "x"})
    return cfg.model_copy(update={"probes": [p for p in cfg.probes if p.name in probes]})


def battery_runs(db: Path, limit: int = 10, probes=SECTION_PROBES) -> tuple[object, str, str]:
    """(store, base run id, tuned run id) of the suite's ``probes`` on ``limit`` items each."""
    from rai_audit.runner import run_probe_suite
    from rai_audit.store import Store

    store = Store.open(f"sqlite:///{db}")
    cfg = suite_cfg(limit, probes)
    ids = []
    for role, info in (("base", BASE), ("tuned", TUNED)):
        out = run_probe_suite(cfg, model_ref=info.reference, store=store, role=role, model_info=info,
                              backend_loader=lambda i, t=(role == "tuned"): BatteryBackend(i, t), scorer=BatteryScorer())
        assert out.run.status == "completed", out.run.status_detail
        ids.append(out.run.run_id)
    return store, ids[0], ids[1]
