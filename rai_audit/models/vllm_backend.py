"""The vLLM backend: the offline ``vllm.LLM`` engine on a GPU, behind the same registry.

Reference: ``vllm:org/name``, ``vllm:org/name@revision`` (a hub model, fetched as ``hf:`` does) or
``vllm:/path/to/dir`` (a local model in Hugging Face layout, e.g. the finetune stage's output).
``model_id`` is sha256 over the weights' content hash (as for ``hf:``/directory references, kept
in ``files``) and the engine's name: vLLM samples differently from transformers for the same seed
and its log-probabilities differ in the last digits, so its answers must never be served from, or
to, the transformers backend's cache entries, nor its runs reused as theirs (docs/scaling.md).

Why it looks like this:

* **Same tokens as the transformers backend.** Prompts, chat templates and log-likelihood pairs
  are encoded by :class:`rai_audit.models.encoding.PromptEncoder` with the model's own tokenizer
  and handed to vLLM as token ids, so both engines score exactly the same tokens.
* **Log-likelihood** from ``prompt_logprobs=1`` (the log-probability of every prompt token, and
  its rank: ``is_greedy`` is rank 1 everywhere in the continuation).
* **Sampling** per sample with its own seed (:func:`rai_audit.models.openai_compat.payloads.sample_seed`),
  ``top_k`` -1 and ``top_p`` 1 when unset, so no engine default sneaks in.
* **Lazy.** ``vllm`` and ``transformers`` are imported by the loader only; without vllm the
  loader fails with the install command (exit 2). GGUF files are refused: serve them with
  llama.cpp and use ``openai-compat:``.

Runtime options: ``dtype`` goes to vLLM (``auto``: the checkpoint's), ``batch_size`` caps vLLM's
concurrent sequences (``max_num_seqs``); ``device`` must be a CUDA device or ``auto``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from rai_audit.backend import ModelInfo
from rai_audit.errors import ModelLoadError, UserError
from rai_audit.hashing import sha256_json
from rai_audit.models.encoding import PromptEncoder
from rai_audit.models.openai_compat.payloads import check_sampling, cut_at_stop, sample_seed
from rai_audit.requests import GenerationRequest, GenerationResult, LoglikRequest, LoglikResult, PseudoLoglikRequest

KIND = "vllm"
INSTALL_HINT = "pip install 'rai-audit[vllm]' (vLLM needs a CUDA GPU; see docs/scaling.md)"


def resolve(ref: str) -> ModelInfo:
    """``vllm:...`` -> the weights' :class:`ModelInfo` with kind ``vllm`` (nothing loaded)."""
    from rai_audit.models.reference import resolve as resolve_weights

    body = ref.strip()[len(KIND) + 1:].strip()
    if not body:
        raise ModelLoadError(f"The reference {ref!r} names no model. Write 'vllm:ORG/NAME[@REVISION]' or 'vllm:/path/to/dir'.")
    from pathlib import Path

    local = Path(body).expanduser()
    info = resolve_weights(str(local) if local.exists() else f"hf:{body}")
    if info.kind == "gguf":
        raise ModelLoadError(
            f"The reference {ref!r} is a GGUF file, which the vllm backend does not load. Serve it with llama.cpp's "
            "server and audit it as 'openai-compat:http://HOST:PORT/v1#NAME', or pass a Hugging Face model."
        )
    if info.is_encoder_decoder or info.is_masked_lm:
        raise ModelLoadError(f"The reference {ref!r} is not a decoder-only model; the vllm backend runs causal LMs only.")
    return replace(info, kind=KIND, reference=ref.strip(), model_id=engine_model_id(info.model_id))


def engine_model_id(weights_id: str) -> str:
    """The vllm model id of weights whose content hash is ``weights_id``."""
    return sha256_json({"weights": weights_id, "engine": KIND})


class VLLMBackend:
    """A causal LM on ``vllm.LLM`` (module docstring)."""

    def __init__(self, info: ModelInfo, llm: Any, tokenizer: Any):
        self.info = info
        self.llm = llm
        self.tokenizer = tokenizer
        max_len = getattr(getattr(llm.llm_engine, "model_config", None), "max_model_len", None)
        self.encoder = PromptEncoder(tokenizer, is_encoder_decoder=False, max_length=max_len)

    def loglikelihood(self, requests: Sequence[LoglikRequest]) -> list[LoglikResult]:
        if not requests:
            return []
        from vllm import SamplingParams

        pairs = []
        for r in requests:
            t = self.encoder.loglik_ids(r.context, r.continuation, r.chat)
            pairs.append((self.encoder.fit(t.context, len(t.continuation), "context"), t.continuation))
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        outs = self.llm.generate([{"prompt_token_ids": list(c) + list(x)} for c, x in pairs], params, use_tqdm=False)
        results = []
        for (ctx, cont), out in zip(pairs, outs):
            ids = list(ctx) + list(cont)
            total, greedy = 0.0, True
            for pos in range(len(ctx), len(ids)):
                entries = out.prompt_logprobs[pos]
                mine = entries[ids[pos]]
                total += float(mine.logprob)
                rank = getattr(mine, "rank", None)
                best = max(float(e.logprob) for e in entries.values())
                greedy = greedy and (rank == 1 if rank is not None else float(mine.logprob) >= best)
            results.append(LoglikResult(logprob=total, n_tokens=len(cont), is_greedy=greedy))
        return results

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        from vllm import SamplingParams

        prompts, params, owners = [], [], []
        for i, r in enumerate(requests):
            s = r.sampling
            check_sampling(s, r.prompt)
            if s.max_new_tokens == 0:
                continue
            ids = list(self.encoder.fit(self.encoder.prompt_ids(r.prompt, r.chat), s.max_new_tokens, "prompt"))
            for k in range(s.n):
                prompts.append({"prompt_token_ids": ids})
                params.append(SamplingParams(
                    n=1, max_tokens=s.max_new_tokens, temperature=float(s.temperature),
                    top_p=float(s.top_p) if (s.top_p is not None and not s.greedy) else 1.0,
                    top_k=int(s.top_k) if (s.top_k is not None and not s.greedy) else -1,
                    stop=list(s.stop) or None, seed=sample_seed(s.seed, k), skip_special_tokens=True))
                owners.append((i, k))
        outs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        got: dict[tuple[int, int], tuple[str, int, str]] = {}
        for owner, out in zip(owners, outs):
            o = out.outputs[0]
            text, cut = cut_at_stop(o.text, requests[owner[0]].sampling.stop)
            stop_reason = getattr(o, "stop_reason", None)
            finish = "stop" if cut or isinstance(stop_reason, str) else ("length" if o.finish_reason == "length" else "eos")
            got[owner] = (text, len(o.token_ids), finish)
        results = []
        for i, r in enumerate(requests):
            samples = [got.get((i, k), ("", 0, "length")) for k in range(r.sampling.n)]
            results.append(GenerationResult(texts=tuple(t for t, _, _ in samples), n_tokens=tuple(n for _, n, _ in samples),
                                            finish=tuple(f for _, _, f in samples)))  # type: ignore[arg-type]
        return results

    def pseudo_loglikelihood(self, requests: Sequence[PseudoLoglikRequest]) -> list[LoglikResult]:
        raise UserError(f"The vllm backend runs causal LMs; {self.info.reference!r} cannot score pseudo-log-likelihoods "
                        "(masked LMs only). Choose a probe mode that fits the model.")


def load(info: ModelInfo, options: Any) -> VLLMBackend:
    """The loader registered for kind ``vllm``: builds the engine (GPU memory is taken now)."""
    device = getattr(options, "device", "auto") or "auto"
    if device != "auto" and not str(device).startswith("cuda"):
        raise UserError(f"The vllm backend runs on CUDA GPUs; device {device!r} was requested. Use --device auto or cuda.")
    try:
        import vllm
        from transformers import AutoTokenizer
    except ImportError as e:
        raise ModelLoadError(f"The model {info.reference!r} needs vLLM, which is not importable here ({e}). {INSTALL_HINT}.") from e
    kwargs: dict[str, Any] = {"model": info.path, "tokenizer": info.path, "seed": 0,
                              "dtype": getattr(options, "dtype", "auto") or "auto"}
    if getattr(options, "batch_size", None):
        kwargs["max_num_seqs"] = int(options.batch_size)
    try:
        llm = vllm.LLM(**kwargs)
    except Exception as e:  # vLLM raises many types for unsupported models and full GPUs
        raise ModelLoadError(f"vLLM could not load {info.reference!r} from {info.path!r} ({type(e).__name__}: {e}).") from e
    return VLLMBackend(info, llm, AutoTokenizer.from_pretrained(info.path))
