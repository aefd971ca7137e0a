"""The contract every model backend fulfils.

A backend answers two batched calls, ``loglikelihood`` and ``generate`` (docs/architecture.md, "The nouns").
It knows nothing of probes, caching or the store: the runner wraps it in
:class:`rai_audit.models.cached.CachedBackend`, which answers from the store when it can.
Backends are found by ``ModelInfo.kind`` in :mod:`rai_audit.models.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

from rai_audit.requests import (
    GenerationRequest,
    GenerationResult,
    LoglikRequest,
    LoglikResult,
    PseudoLoglikRequest,
)


@dataclass(frozen=True)
class ModelInfo:
    """A resolved model reference.

    ``model_id`` is the sha256 over the weight files (sorted by name, content only), so two
    references to the same weights share cache entries and a moving reference (a directory a
    trainer keeps overwriting) is pinned at resolve time.
    """

    model_id: str
    reference: str
    kind: str  # "hf" | "dir" | "gguf" built in; a key of the backend registry (rai_audit.models.registry)
    path: str | None = None  # local directory or file actually loaded
    revision: str | None = None  # hub commit for hf: references
    architecture: str | None = None  # e.g. "LlamaForCausalLM", "T5ForConditionalGeneration"
    is_encoder_decoder: bool = False
    is_masked_lm: bool = False
    has_chat_template: bool = False
    n_parameters: int | None = None
    files: dict[str, str] = field(default_factory=dict)  # weight file name -> sha256


@runtime_checkable
class Backend(Protocol):
    """A loaded model that answers batched requests, in request order."""

    info: ModelInfo

    def loglikelihood(self, requests: Sequence[LoglikRequest]) -> list[LoglikResult]: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...

    def pseudo_loglikelihood(self, requests: Sequence[PseudoLoglikRequest]) -> list[LoglikResult]:
        """Masked LMs only; other backends raise UserError naming the model kind."""
        ...
