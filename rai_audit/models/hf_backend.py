"""The transformers/torch backend: one loaded model answering batched requests.

``HFBackend.load(info)`` picks the model class from the resolved reference (causal LM,
encoder-decoder, or masked LM), loads weights (GGUF files through their converted copy,
:mod:`.default_model`), and answers

- ``loglikelihood`` (causal and encoder-decoder; :mod:`.loglik`),
- ``generate`` (causal and encoder-decoder; :mod:`.generation`),
- ``pseudo_loglikelihood`` (masked LMs; :mod:`.pll`).

Device ``"auto"`` is CUDA when available, else CPU. dtype ``"auto"`` is float32 on CPU (bf16
matmuls are slow there, and token-exactness between batched and one-at-a-time scoring is only
guaranteed to 1e-4 in float32) and, on CUDA, the checkpoint's own dtype when it is 16-bit.
All calls run under ``torch.inference_mode``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Sequence

import torch

from rai_audit.models.openai_compat.payloads import check_sampling  # one rule set for every backend
from rai_audit.backend import ModelInfo
from rai_audit.errors import ModelLoadError, UserError
from rai_audit.models.batching import BatchPolicy
from rai_audit.models.encoding import PromptEncoder
from rai_audit.requests import (
    GenerationRequest,
    GenerationResult,
    LoglikRequest,
    LoglikResult,
    PseudoLoglikRequest,
)

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def pick_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UserError(f"Unknown device {device!r}. Use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"Device {device!r} was requested but CUDA is not available here. Use --device cpu.")
    return dev


def pick_dtype(dtype: str | torch.dtype, device: torch.device, config) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        own = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        own = _DTYPES.get(str(own).replace("torch.", ""), None) if own is not None else None
        return own if own in (torch.float16, torch.bfloat16) else torch.float32
    if dtype not in _DTYPES:
        raise UserError(f"Unknown dtype {dtype!r}. Use 'auto', 'float32', 'float16' or 'bfloat16'.")
    return _DTYPES[dtype]


_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_fast_bf16() -> bool | None:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX-BF16); None when it
    cannot be told (not Linux). Without them torch runs bfloat16 matmuls in emulation: on an
    AVX2-only AMD EPYC we measured them 6x slower than float32 (bench/measure.py), so the fast mode
    only pays on CPUs with these flags and on GPUs."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return None
    return any(flag in flags.split() for flag in _BF16_FLAGS) if flags else None


def _warn_if_slow_precision(dtype: torch.dtype, device: torch.device) -> None:
    if device.type == "cpu" and dtype in (torch.bfloat16, torch.float16) and cpu_has_fast_bf16() is False:
        log.warning("%s on this CPU runs without bfloat16 matrix instructions (no AVX512-BF16 or AMX): "
                    "expect it to be several times slower than float32, not faster; use --dtype float32 "
                    "here, and the fast mode on a CPU with AMX or AVX512-BF16, or a GPU.",
                    str(dtype).replace("torch.", ""))


def _max_length(model, tokenizer) -> int | None:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tokenizer, "model_max_length", None)
    return v if isinstance(v, int) and 0 < v < 1_000_000 else None


class HFBackend:
    """A loaded transformers model implementing :class:`rai_audit.backend.Backend`."""

    def __init__(self, info: ModelInfo, model, tokenizer, *, device: torch.device, batch_size: int | None = None):
        self.info = info
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self.is_masked_lm = info.is_masked_lm
        self.policy = BatchPolicy.auto(model, device, batch_size)
        self.encoder = PromptEncoder(tokenizer, is_encoder_decoder=self.is_encoder_decoder,
                                     max_length=_max_length(model, tokenizer))
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        self.eos_ids = self._eos_ids()

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        info: ModelInfo | str,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        batch_size: int | None = None,
    ) -> "HFBackend":
        """Load the model behind ``info`` (or a reference string, resolved first)."""
        if isinstance(info, str):
            from rai_audit.models.reference import resolve

            info = resolve(info)
        if not info.path:
            raise ModelLoadError(f"The model {info.reference!r} has no local path to load from.")
        path = info.path
        if info.kind == "gguf":
            from rai_audit.models.default_model import ensure_converted

            path = str(ensure_converted(info.path, info.model_id))
        dev = pick_device(device)
        try:
            from transformers import (
                AutoConfig,
                AutoModelForCausalLM,
                AutoModelForMaskedLM,
                AutoModelForSeq2SeqLM,
                AutoTokenizer,
            )

            config = AutoConfig.from_pretrained(path)
            torch_dtype = pick_dtype(dtype, dev, config)
            if info.is_masked_lm:
                auto = AutoModelForMaskedLM
            elif getattr(config, "is_encoder_decoder", False):
                auto = AutoModelForSeq2SeqLM
            else:
                auto = AutoModelForCausalLM
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = auto.from_pretrained(path, dtype=torch_dtype)
        except UserError:
            raise
        except Exception as e:  # transformers raises many types for bad/unsupported checkpoints
            raise ModelLoadError(
                f"Could not load the model {info.reference!r} from {path!r} ({type(e).__name__}: {e}). "
                "The files may be incomplete or the architecture unsupported by the installed "
                "transformers; re-download or re-save the model, or upgrade transformers."
            ) from e
        model.to(dev).eval()
        _warn_if_slow_precision(torch_dtype, dev)
        return cls(info, model, tokenizer, device=dev, batch_size=batch_size)

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        gen = getattr(self.model, "generation_config", None)
        for v in (getattr(gen, "eos_token_id", None), self.tokenizer.eos_token_id):
            if isinstance(v, int):
                ids.add(v)
            elif isinstance(v, (list, tuple)):
                ids.update(int(x) for x in v)
        return ids

    def _require(self, what: str, ok: bool, kinds: str) -> None:
        if not ok:
            kind = "a masked LM" if self.is_masked_lm else ("an encoder-decoder model" if self.is_encoder_decoder
                                                             else "a causal LM")
            raise UserError(
                f"The model {self.info.reference!r} ({self.info.architecture or 'unknown architecture'}) is "
                f"{kind}; {what} needs {kinds}. Choose a probe mode that fits the model, or another model."
            )

    # -- Backend protocol ------------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[LoglikRequest]) -> list[LoglikResult]:
        self._require("log-likelihood scoring", not self.is_masked_lm, "a causal or encoder-decoder LM")
        if not requests:
            return []
        from rai_audit.models.loglik import score_causal, score_seq2seq

        items = []
        for r in requests:
            t = self.encoder.loglik_ids(r.context, r.continuation, r.chat)
            # decoder-only: context and continuation share the window; encoder: context alone
            reserve = 0 if self.is_encoder_decoder else len(t.continuation)
            items.append(replace(t, context=self.encoder.fit(t.context, reserve, "context")))
        score = score_seq2seq if self.is_encoder_decoder else score_causal
        out = score(self.model, items, self.policy, self.pad_id, self.device)
        return [LoglikResult(logprob=lp, n_tokens=n, is_greedy=g) for lp, n, g in out]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self._require("generation", not self.is_masked_lm, "a causal or encoder-decoder LM")
        if not requests:
            return []
        from rai_audit.models.generation import generate

        prompts = []
        for r in requests:
            check_sampling(r.sampling, r.prompt)
            ids = self.encoder.prompt_ids(r.prompt, r.chat)
            reserve = 0 if self.is_encoder_decoder else r.sampling.max_new_tokens
            prompts.append(self.encoder.fit(ids, reserve, "prompt"))
        return generate(self.model, self.tokenizer, prompts, requests, self.policy, pad_id=self.pad_id,
                        eos_ids=self.eos_ids, device=self.device, is_encoder_decoder=self.is_encoder_decoder)

    def pseudo_loglikelihood(self, requests: Sequence[PseudoLoglikRequest]) -> list[LoglikResult]:
        self._require("pseudo-log-likelihood scoring", self.is_masked_lm, "a masked LM (e.g. BERT)")
        if not requests:
            return []
        from rai_audit.models.pll import pseudo_loglikelihood

        return pseudo_loglikelihood(self.model, self.tokenizer, requests, self.policy, self.device)
