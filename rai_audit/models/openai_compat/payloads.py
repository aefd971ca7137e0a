"""Generation requests as OpenAI-API bodies, and answers back as :class:`GenerationResult` s.

Why each choice:

* **One HTTP request per sample.** ``n`` samples are ``n`` requests, each with its own seed
  :func:`sample_seed` (seed, sample index), instead of the API's ``n``: many servers ignore ``n``
  or share one random stream between the choices, and per-sample seeds make a sample independent
  of which other samples were asked for, as in the local backends.
* **Every setting explicit.** Servers have their own defaults (llama.cpp: top-k 40, top-p 0.95,
  min-p 0.05, repeat penalty 1.1; vLLM: the model's generation_config), which the local backends
  do not apply. So ``top_p`` (1.0 when unset), ``frequency_penalty``/``presence_penalty`` (0) are
  always sent, and the *neutral extras* the server accepted when it was resolved
  (:mod:`.capabilities`: ``min_p`` 0, ``repeat_penalty``/``repetition_penalty`` 1, ``top_k``
  disabled) switch the rest off.
* **top_k is not in the OpenAI API**: it is sent as an extra field, and only when the resolver saw
  the server honour it; otherwise the request is refused (:func:`refuse_unhonoured`).
* **Chat.** ``chat=True`` goes to ``/v1/chat/completions`` as one user message, so the server's
  own chat template wraps it (the local backends use the tokenizer's template the same way).
* **Stop strings** are sent and also applied here (text cut at the first one), so a server that
  ignores them still yields the same text.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rai_audit.errors import UserError
from rai_audit.requests import GenerationRequest, Sampling

#: Capability values (:mod:`.capabilities`).
HONOURED, IGNORED, REJECTED, UNTESTED = "honoured", "ignored", "rejected", "untested"


def sample_seed(seed: int, index: int) -> int:
    """The server seed of sample ``index`` of a request with ``seed`` (31-bit, stable)."""
    digest = hashlib.sha256(f"rai-audit-served:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def check_sampling(s: Sampling, prompt: str) -> None:
    """The same validity rules as the local backends (UserError naming the bad settings)."""
    problems = []
    if s.temperature < 0:
        problems.append(f"temperature={s.temperature} (must be >= 0; 0 means greedy)")
    if s.top_k is not None and s.top_k < 1:
        problems.append(f"top_k={s.top_k} (must be >= 1 or unset)")
    if s.top_p is not None and not (0.0 < s.top_p <= 1.0):
        problems.append(f"top_p={s.top_p} (must be in (0, 1] or unset)")
    if s.n < 1:
        problems.append(f"n={s.n} (must be >= 1)")
    if s.max_new_tokens < 0:
        problems.append(f"max_new_tokens={s.max_new_tokens} (must be >= 0)")
    if problems:
        raise UserError(f"Invalid decoding settings for prompt {prompt[:60]!r}: {'; '.join(problems)}.")


def refuse_unhonoured(s: Sampling, caps: dict[str, Any], where: str) -> None:
    """UserError when ``s`` needs a setting the server was seen to ignore or reject.

    Dropping it silently would change what is measured (a top-k 40 toxicity sample is not an
    unrestricted one), so the run stops before anything is asked and says what to do."""
    need = []
    if not s.greedy:
        need.append(("temperature", f"temperature={s.temperature}"))
        if s.top_k is not None:
            need.append(("top_k", f"top_k={s.top_k}"))
        if s.top_p is not None and s.top_p < 1.0:
            need.append(("top_p", f"top_p={s.top_p}"))
    if s.max_new_tokens > 0:
        need.append(("max_tokens", f"max_new_tokens={s.max_new_tokens}"))
    bad = [(name, what, caps.get(name, UNTESTED)) for name, what in need if caps.get(name, UNTESTED) in (IGNORED, REJECTED)]
    if bad:
        listed = "; ".join(f"{what} (the server {state} '{name}')" for name, what, state in bad)
        raise UserError(
            f"The served model at {where} cannot apply these decoding settings: {listed}. rai-audit does not drop a "
            "setting silently, because the samples would then measure something else. Serve the model with a server "
            "that supports them (llama.cpp's server and vLLM accept top_k), or change the probe's decoding settings."
        )


def sampling_fields(s: Sampling, index: int, caps: dict[str, Any]) -> dict[str, Any]:
    """The body fields for sample ``index`` of a request with settings ``s``."""
    out: dict[str, Any] = dict(caps.get("neutral_extras") or {})
    out.update({
        "max_tokens": s.max_new_tokens,
        "temperature": float(s.temperature),
        "top_p": 1.0,
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
        "seed": sample_seed(s.seed, index),
    })
    if not s.greedy:
        if s.top_p is not None:
            out["top_p"] = float(s.top_p)
        if s.top_k is not None:
            out["top_k"] = int(s.top_k)
    if s.stop:
        out["stop"] = list(s.stop)
    return out


def generation_body(model: str, req: GenerationRequest, index: int, caps: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(path, body) of sample ``index`` of ``req``: /completions, or /chat/completions with chat."""
    fields = sampling_fields(req.sampling, index, caps)
    if req.chat:
        return "/chat/completions", {"model": model, "messages": [{"role": "user", "content": req.prompt}], **fields}
    return "/completions", {"model": model, "prompt": req.prompt, **fields}


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """``text`` up to the first stop string (and whether one was found)."""
    cut = min((i for i in (text.find(x) for x in stop if x) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def parse_generation(answer: dict[str, Any], req: GenerationRequest) -> tuple[str, int, str]:
    """(text, generated tokens, finish) of one answer; ServedRequestError-worthy ValueError if malformed.

    finish: "length" when the server says so; "stop" when a stop string ended it (the server names
    the one it matched, or the text had to be cut here); otherwise "eos". A server that reports
    only "stop" for both cases and matched a stop string it does not name reads as "eos" when no
    stop string was asked for, else "stop"."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise ValueError(f"the answer has no choices: {str(answer)[:200]}")
    choice = choices[0]
    if req.chat:
        text = ((choice.get("message") or {}).get("content")) or ""
    else:
        text = choice.get("text") or ""
    text, was_cut = cut_at_stop(text, req.sampling.stop)
    usage = answer.get("usage") or {}
    n_tokens = usage.get("completion_tokens")
    if not isinstance(n_tokens, int):
        lp = choice.get("logprobs") or {}
        n_tokens = len(lp.get("tokens") or []) if isinstance(lp, dict) else 0
    reason = choice.get("finish_reason")
    matched = choice.get("stop_reason")
    if was_cut or (isinstance(matched, str) and matched):
        finish = "stop"
    elif reason == "length":
        finish = "length"
    elif reason == "stop" and req.sampling.stop and matched is None:
        finish = "stop"
    else:
        finish = "eos"
    return text, int(n_tokens), finish
