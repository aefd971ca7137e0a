"""Answer requests from the results store when it already has them (docs/architecture.md, "The nouns").

Every request is keyed by :func:`rai_audit.requests.cache_key` (model hash + exact request,
including decoding settings and seed). A call looks all keys up in one ``store.get_responses``,
computes only the missing ones (each distinct key once, however often it repeats in the call),
writes them with ``store.add_responses`` and returns results in request order. So an interrupted
run resumes where it stopped and an identical re-run computes nothing.

Reduced precision: answers computed in bfloat16 or float16 (``runtime.dtype``, the fast mode) are
not the float32 answers of the same weights, so they are cached under their own key
(``model_id@bfloat16``): a fast run never serves, or is served, float32 answers.

Counters: ``hits`` counts requests answered from the store, ``misses`` counts distinct requests
that had to be computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from rai_audit.backend import Backend, ModelInfo
from rai_audit.requests import (
    GenerationRequest,
    GenerationResult,
    LoglikRequest,
    LoglikResult,
    PseudoLoglikRequest,
    Request,
    Response,
    cache_key,
    request_kind,
    request_to_dict,
    response_from_dict,
    response_to_dict,
)

if TYPE_CHECKING:
    from rai_audit.store.protocol import ResponseCache


REDUCED_PRECISIONS = ("bfloat16", "float16")


def reduced_precision(dtype: str | None) -> str | None:
    """The precision a run's answers are keyed by when it is not the default float32 (an explicit
    ``runtime.dtype`` of bfloat16 or float16), else None."""
    return dtype if dtype in REDUCED_PRECISIONS else None


class CachedBackend:
    """A :class:`~rai_audit.backend.Backend` that reads and fills the store's response cache."""

    def __init__(self, backend: Backend, store: ResponseCache, *, precision: str | None = None):
        self.backend = backend
        self.store = store
        self.info: ModelInfo = backend.info
        self.precision = precision
        self.hits = 0
        self.misses = 0

    def loglikelihood(self, requests: Sequence[LoglikRequest]) -> list[LoglikResult]:
        return self._answer(requests, self.backend.loglikelihood)  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return self._answer(requests, self.backend.generate)  # type: ignore[return-value]

    def pseudo_loglikelihood(self, requests: Sequence[PseudoLoglikRequest]) -> list[LoglikResult]:
        return self._answer(requests, self.backend.pseudo_loglikelihood)  # type: ignore[return-value]

    def _answer(self, requests: Sequence[Request], compute: Callable[[list], list]) -> list[Response]:
        if not requests:
            return []
        model_id = self.info.model_id
        key_id = model_id if self.precision is None else f"{model_id}@{self.precision}"
        keys = [cache_key(key_id, r) for r in requests]
        found = self.store.get_responses(list(dict.fromkeys(keys)))
        results: dict[str, Response] = {}
        for k, row in found.items():
            results[k] = response_from_dict(row["kind"], row["result"])
        todo: dict[str, Request] = {}
        for k, r in zip(keys, requests):
            if k not in results and k not in todo:
                todo[k] = r
        self.hits += sum(1 for k in keys if k in results)
        if todo:
            computed = compute(list(todo.values()))
            if len(computed) != len(todo):
                raise RuntimeError(f"backend returned {len(computed)} results for {len(todo)} requests")
            rows = []
            for (k, r), res in zip(todo.items(), computed):
                results[k] = res
                rows.append({"key": k, "model_id": model_id, "kind": request_kind(r),
                             "request": request_to_dict(r), "result": response_to_dict(res)})
            self.store.add_responses(rows)
            self.misses += len(todo)
        return [results[k] for k in keys]
