"""The llama-cpp backend: :class:`~rai_audit.backend.Backend` over llama.cpp in this process.

What it answers and how (docs/backends.md):

* ``loglikelihood``: :mod:`.scoring` (many requests per ``llama_decode``, shared contexts once);
* ``generate``: :mod:`.sampling_loop` (all samples of a group decoded together, tokens chosen by
  the project's seeded sampler, so a sample depends only on seed, prompt and sample index);
* ``pseudo_loglikelihood``: refused (UserError), as by every causal-LM backend.

Texts are encoded by :class:`rai_audit.models.encoding.PromptEncoder` with the GGUF's transformers
tokenizer (:mod:`.tokenizer`), exactly as the transformers backend encodes them, so both score the
same tokens and a prompt is cut to the same window (the model's training context).

Runtime options: ``batch_size`` caps the sequences one ``llama_decode`` holds (samples per
generation group, requests per log-likelihood round; llama.cpp allows at most 256); ``device``
``auto``/``cpu`` runs on the CPU, ``cuda`` offloads every layer where llama-cpp-python was built
with GPU support; ``dtype`` does not apply (the GGUF's quantisation is the model) and is ignored
with a warning. Threads come from the reference (:mod:`.reference`).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from rai_audit.backend import ModelInfo
from rai_audit.errors import UserError
from rai_audit.models.encoding import PromptEncoder
from rai_audit.models.llamacpp.engine import Engine
from rai_audit.models.openai_compat.payloads import check_sampling  # one rule set for every backend
from rai_audit.requests import GenerationRequest, GenerationResult, LoglikRequest, LoglikResult, PseudoLoglikRequest

log = logging.getLogger(__name__)

#: Tokens per log-likelihood round (one ``llama_decode``; llama.cpp splits it into micro-batches of
#: :data:`.engine.UBATCH`). The whole round stays in the KV cache until it ends, and every token's
#: attention steps over all its cells (skipping other sequences'), so rounds are kept moderate.
LOGLIK_TOKENS = 512
#: Sequences per decode when the runtime sets no batch size.
DEFAULT_SEQUENCES = 128


class LlamaCppBackend:
    """A GGUF causal LM run by llama.cpp in this process (module docstring)."""

    def __init__(self, info: ModelInfo, engine: Engine, tokenizer: Any, *, batch_size: int | None = None):
        self.info = info
        self.engine = engine
        self.tokenizer = tokenizer
        self.encoder = PromptEncoder(tokenizer, is_encoder_decoder=False, max_length=engine.n_ctx_train)
        self.sequences = max(1, min(int(batch_size or DEFAULT_SEQUENCES), engine.max_sequences))
        self.eos_ids = {int(e) for e in (tokenizer.eos_token_id, engine.eos) if isinstance(e, int) and e >= 0}

    def loglikelihood(self, requests: Sequence[LoglikRequest]) -> list[LoglikResult]:
        if not requests:
            return []
        from dataclasses import replace

        from rai_audit.models.llamacpp.scoring import score

        items = []
        for r in requests:
            t = self.encoder.loglik_ids(r.context, r.continuation, r.chat)
            items.append(replace(t, context=self.encoder.fit(t.context, len(t.continuation), "context")))
        out = score(self.engine, items, max_tokens=LOGLIK_TOKENS, max_seqs=self.sequences)
        return [LoglikResult(logprob=lp, n_tokens=n, is_greedy=g) for lp, n, g in out]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        from rai_audit.models.llamacpp.sampling_loop import generate

        prompts = []
        for r in requests:
            check_sampling(r.sampling, r.prompt)
            ids = self.encoder.prompt_ids(r.prompt, r.chat)
            prompts.append(self.encoder.fit(ids, r.sampling.max_new_tokens, "prompt"))
        return generate(self.engine, self.tokenizer, prompts, requests, eos_ids=self.eos_ids, max_rows=self.sequences)

    def pseudo_loglikelihood(self, requests: Sequence[PseudoLoglikRequest]) -> list[LoglikResult]:
        raise UserError(f"The llama-cpp backend runs causal LMs; {self.info.reference!r} cannot score pseudo-log-"
                        "likelihoods (masked LMs only, e.g. BERT through the transformers backend). Choose a probe "
                        "mode that fits the model.")

    def close(self) -> None:
        self.engine.close()


def gpu_layers(device: str | None) -> int:
    """llama.cpp layers to offload for the runtime ``device`` (UserError where it cannot)."""
    device = str(device or "auto")
    if device in ("auto", "cpu"):
        return 0
    if device.startswith("cuda"):
        from rai_audit.models.llamacpp.engine import lib

        if not lib().llama_supports_gpu_offload():
            raise UserError(f"Device {device!r} was requested, but this llama-cpp-python build runs on the CPU only. "
                            "Use --device cpu, or reinstall it with CMAKE_ARGS=\"-DGGML_CUDA=on\".")
        return -1
    raise UserError(f"The llama-cpp backend runs on 'cpu' or 'cuda' (where built with CUDA); device {device!r} was "
                    "requested. Use --device auto, cpu or cuda.")


def check(options: Any) -> None:
    """The registry's check for kind ``llama-cpp``: the device is usable (before any run row)."""
    gpu_layers(getattr(options, "device", "auto"))


def load(info: ModelInfo, options: Any = None) -> LlamaCppBackend:
    """The loader registered for kind ``llama-cpp``: loads the GGUF with llama.cpp (weights
    memory-mapped, well under a second for the embedded model) and its tokenizer."""
    from rai_audit.models.llamacpp.reference import threads_of
    from rai_audit.models.llamacpp.tokenizer import load_tokenizer

    dtype = getattr(options, "dtype", "auto") or "auto"
    if dtype != "auto":
        log.warning("dtype %r does not apply to the llama-cpp backend (the GGUF's own quantisation is used)", dtype)
    if not info.path:
        raise UserError(f"The model {info.reference!r} has no GGUF file to load.")
    weights = (getattr(info, "engine", None) or {}).get("weights_sha256") or next(iter(info.files.values()), "")
    engine = Engine(info.path, threads=threads_of(info), gpu_layers=gpu_layers(getattr(options, "device", "auto")))
    try:
        tokenizer = load_tokenizer(info.path, weights)
    except BaseException:
        engine.close()
        raise
    return LlamaCppBackend(info, engine, tokenizer, batch_size=getattr(options, "batch_size", None))
