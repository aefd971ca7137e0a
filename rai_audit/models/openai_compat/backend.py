"""The served backend: :class:`~rai_audit.backend.Backend` over an OpenAI-compatible server.

Each call fans its requests out over a thread pool of ``concurrency`` workers (the reference's
option) and returns the answers in request order. The first request that fails for good cancels
the ones not yet sent and is raised: a :class:`.client.ServedRequestError` becomes that item's
error record (the runner retries a failed batch item by item), a UserError such as
:class:`.client.ServerUnreachable` stops the run so that a re-run resumes it. Answers are cached
in the store by the runner (:class:`rai_audit.models.cached.CachedBackend`) under the model's
fingerprint id, like every backend's.

Refused up front (UserError, exit 2, before any request): log-likelihood when the server gives no
prompt log-probabilities or the request asks for the chat template; decoding settings the server
was seen to ignore; pseudo-log-likelihood (masked LMs only).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Sequence

from rai_audit.backend import ModelInfo
from rai_audit.errors import UserError
from rai_audit.models.openai_compat import loglik, payloads
from rai_audit.models.openai_compat.client import Client, ServedRequestError
from rai_audit.models.openai_compat.endpoint import parse_reference
from rai_audit.models.openai_compat.info import ServedModelInfo
from rai_audit.requests import (
    GenerationRequest,
    GenerationResult,
    LoglikRequest,
    LoglikResult,
    PseudoLoglikRequest,
)

log = logging.getLogger("rai_audit.models.openai_compat")


class OpenAICompatBackend:
    """A model behind an OpenAI-compatible server (``/v1/completions``, ``/v1/chat/completions``)."""

    def __init__(self, info: ModelInfo, client: Client | None = None):
        self.info = info
        served = info.served if isinstance(info, ServedModelInfo) else {}
        endpoint = parse_reference(info.reference)
        self.model = str(served.get("served_model") or endpoint.model or "")
        self.caps: dict[str, Any] = dict(served.get("capabilities") or {})
        self.client = client or Client(endpoint)
        self.concurrency = endpoint.concurrency
        self.start = endpoint.start
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._salvage: dict[Any, Any] = {}  # answers that arrived in a call that failed

    @property
    def where(self) -> str:
        return f"{self.client.endpoint.base_url} (model {self.model!r})"

    # -- Backend protocol ------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[LoglikRequest]) -> list[LoglikResult]:
        if not requests:
            return []
        if not self.caps.get("prompt_logprobs"):
            if self.caps.get("prompt_logprobs_check") == "misaligned":
                why = ("the prompt log-probabilities it echoes are misaligned: each prompt token is scored with the "
                       "distribution that follows it (llama-cpp-python's server does this), so every log-likelihood "
                       "would be wrong")
            else:
                why = ("the server returns no prompt log-probabilities (a /v1/completions request with echo=true and "
                       "logprobs=1 came back without them when the model was resolved)")
            raise UserError(
                f"The served model at {self.where} cannot score log-likelihoods: {why}. Run generation probes against "
                "it, serve the model with a server whose echoed log-probabilities are right (vLLM's OpenAI server), or "
                "audit the weights locally."
            )
        if any(r.chat for r in requests):
            raise UserError(
                f"A log-likelihood request with chat=true cannot be scored by the served model at {self.where}: the chat "
                "template lives on the server and /v1/chat/completions returns no prompt log-probabilities. Set the "
                "probe's `chat: false`, or audit the model locally."
            )
        return self._map(self._one_loglik, list(requests))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        for r in requests:
            payloads.check_sampling(r.sampling, r.prompt)
            payloads.refuse_unhonoured(r.sampling, self.caps, self.where)
        jobs = [(r, k) for r in requests for k in range(r.sampling.n)]
        samples = self._map(lambda job: self._one_sample(*job), jobs)
        out, pos = [], 0
        for r in requests:
            got = samples[pos: pos + r.sampling.n]
            pos += r.sampling.n
            out.append(GenerationResult(texts=tuple(t for t, _, _ in got), n_tokens=tuple(n for _, n, _ in got),
                                        finish=tuple(f for _, _, f in got)))  # type: ignore[arg-type]
        return out

    def pseudo_loglikelihood(self, requests: Sequence[PseudoLoglikRequest]) -> list[LoglikResult]:
        raise UserError(
            f"The served model at {self.where} is a causal LM behind an OpenAI-compatible API; pseudo-log-likelihood "
            "scoring needs a masked LM (e.g. BERT) run locally. Choose a probe mode that fits the model."
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- one request -----------------------------------------------------------------------
    def _one_loglik(self, req: LoglikRequest) -> LoglikResult:
        prompt, boundary, skip = loglik.split(req, self.start)
        answer = self.client.post("/completions", loglik.loglik_body(self.model, prompt))
        try:
            return loglik.score(answer, prompt, boundary, skip)
        except loglik.MissingFirstLogprob as e:
            if req.context.strip():
                raise ServedRequestError(f"log-likelihood of {req.continuation[:40]!r}: {e}") from None
            how = (f"even after the start text {self.start!r}: this server drops it (llama-cpp-python's does, after "
                   "BOS); use another server (vLLM)" if self.start else
                   "add the model's start-of-text token to the reference, e.g. ?start=<|im_start|> for SmolLM2 "
                   "(the local backends score the first token after it)")
            raise UserError(
                f"The served model at {self.where} returned no log-probability for the first token of a text scored "
                f"with an empty context ({req.continuation[:40]!r}; CrowS-Pairs does this) {how}, or choose probes "
                "whose requests have a context."
            ) from None
        except ValueError as e:
            raise ServedRequestError(f"log-likelihood of {req.continuation[:40]!r}: {e}") from None

    def _one_sample(self, req: GenerationRequest, index: int) -> tuple[str, int, str]:
        if req.sampling.max_new_tokens == 0:
            return "", 0, "length"  # many servers read max_tokens=0 as "no limit"
        path, body = payloads.generation_body(self.model, req, index, self.caps)
        answer = self.client.post(path, body)
        try:
            return payloads.parse_generation(answer, req)
        except ValueError as e:
            raise ServedRequestError(f"generation for {req.prompt[:40]!r}: {e}") from None

    # -- fan-out ---------------------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="rai-served")
            return self._pool

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``fn`` over ``items`` with at most ``concurrency`` in flight, results in order; the
        first exception cancels what has not started and is raised.

        The answers that did arrive in a failed call are kept (:attr:`_salvage`) and used when the
        runner asks again item by item, so a 5xx on one item does not re-ask its batch mates."""
        todo = list(dict.fromkeys(x for x in items if x not in self._salvage))
        pool = self._executor() if self.concurrency > 1 and len(todo) > 1 else None
        futures: list[Future] = []
        for x in todo:
            if pool is not None:
                futures.append(pool.submit(fn, x))
                continue
            f: Future = Future()
            try:
                f.set_result(fn(x))
            except BaseException as e:  # noqa: BLE001 - re-raised below, after salvaging
                f.set_exception(e)
            futures.append(f)
            if f.exception() is not None:
                break
        _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and not f.cancelled() and f.exception() is not None), None)
        if failed is not None:
            for f in pending:
                f.cancel()
            wait([f for f in pending if not f.cancelled()])
            for x, f in zip(todo, futures):
                if f.done() and not f.cancelled() and f.exception() is None:
                    self._salvage[x] = f.result()
            raise failed.exception()  # type: ignore[misc]
        got = dict(zip(todo, (f.result() for f in futures)))
        out = [got[x] if x in got else self._salvage[x] for x in items]
        for x in items:
            self._salvage.pop(x, None)
        return out


def load(info: ModelInfo, options: Any = None) -> OpenAICompatBackend:
    """The loader registered for kind ``openai-compat``; runtime options (device, dtype, batch
    size) do not apply to a server and are ignored."""
    return OpenAICompatBackend(info)
