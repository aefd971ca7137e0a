"""What probes ask of a model, and what the model answers.

Probes never call a model directly: they describe requests with these frozen dataclasses, the
runner batches them across items, a backend answers them, and the cache stores the answers under
a content key (model hash + exact request + parameters + seed). Keeping the request a plain value
is what makes resume and caching possible (docs/architecture.md, "The nouns").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal, Union

FinishReason = Literal["eos", "stop", "length"]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings for one generation request.

    ``temperature == 0`` means greedy decoding (top-k/top-p are then ignored). ``n`` is the number
    of independent samples for the prompt. ``seed`` makes sampling reproducible per request: the
    backend derives one random stream per (seed, prompt, sample index), so the samples of a prompt
    do not depend on which other prompts share its batch.
    """

    max_new_tokens: int = 20
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class LoglikRequest:
    """log P(continuation | context) under the model, summed over continuation tokens.

    Tokenisation follows lm-evaluation-harness: the context is encoded alone, the continuation
    tokens are those of ``context + continuation`` past the context's tokens, so a leading space
    in the continuation is handled the way the tokenizer merges it. With ``chat=True`` the context
    is wrapped in the tokenizer's chat template as a user turn first (when it has one).
    """

    context: str
    continuation: str
    chat: bool = False


@dataclass(frozen=True)
class GenerationRequest:
    """Continue ``prompt`` with ``sampling``; ``chat=True`` wraps it as a user turn."""

    prompt: str
    sampling: Sampling = field(default_factory=Sampling)
    chat: bool = False


@dataclass(frozen=True)
class PseudoLoglikRequest:
    """Masked-LM pseudo-log-likelihood (Salazar et al. 2020) of the tokens inside ``spans``.

    Each token of ``text`` whose character span lies inside one of ``spans`` is masked in turn
    and scored given all the other tokens; the result is the sum. CrowS-Pairs (Nangia et al.
    2020) scores only the tokens the two sentences share, so the probe passes their spans.
    Empty ``spans`` scores every token. Only masked LMs answer it.
    """

    text: str
    spans: tuple[tuple[int, int], ...] = ()


Request = Union[LoglikRequest, GenerationRequest, PseudoLoglikRequest]


@dataclass(frozen=True)
class LoglikResult:
    """Sum of continuation token log-probabilities, token count, and whether greedy decoding
    would have produced exactly the continuation."""

    logprob: float
    n_tokens: int
    is_greedy: bool


@dataclass(frozen=True)
class GenerationResult:
    """The ``n`` sampled continuations (prompt excluded, cut at the first stop string)."""

    texts: tuple[str, ...]
    n_tokens: tuple[int, ...]
    finish: tuple[FinishReason, ...]


Response = Union[LoglikResult, GenerationResult]


def request_kind(req: Request) -> str:
    if isinstance(req, LoglikRequest):
        return "loglik"
    if isinstance(req, PseudoLoglikRequest):
        return "pll"
    return "generate"


def request_to_dict(req: Request) -> dict:
    """JSON-able form of a request, tagged with its kind."""
    return {"kind": request_kind(req), **asdict(req)}


def response_to_dict(resp: Response) -> dict:
    return asdict(resp)


def response_from_dict(kind: str, data: dict) -> Response:
    if kind in ("loglik", "pll"):
        return LoglikResult(**data)
    return GenerationResult(
        texts=tuple(data["texts"]), n_tokens=tuple(data["n_tokens"]), finish=tuple(data["finish"])
    )


def cache_key(model_id: str, req: Request) -> str:
    """Content key of a request for a given model: sha256 over a canonical JSON encoding."""
    payload = {"model": model_id, **request_to_dict(req)}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
