"""The contract every text scorer (toxicity classifier) fulfils.

A scorer turns a batch of texts into per-attribute probabilities. Its identity (name, version,
checkpoint hash, threshold and comparison operator) is recorded beside every score, because a
toxicity number means nothing without the classifier and threshold that produced it
(docs/architecture.md, "The nouns"). Implementations live in ``probes/scorers/``.

A scorer signals failure by raising. The runner isolates the failing texts and stores an error
row for each; a failure is never turned into a score of 0.
"""

from __future__ import annotations

import hashlib
import json
import operator as _op
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

Operator = Literal[">=", ">"]
_OPS = {">=": _op.ge, ">": _op.gt}


@dataclass(frozen=True)
class ScorerIdentity:
    """Everything needed to say which classifier produced a score and how it was thresholded.

    ``primary`` is the attribute used as "toxicity" by the toxicity probes. ``max_length`` is the
    scorer's input limit in its own unit (``length_unit``: "tokens" or "chars"); longer texts are
    truncated and counted.
    """

    name: str
    version: str
    checkpoint_sha256: str | None
    threshold: float = 0.5
    operator: Operator = ">="
    primary: str = "toxicity"
    attributes: tuple[str, ...] = ("toxicity",)
    max_length: int | None = None
    length_unit: str = "tokens"
    description: str = ""
    extra: dict = field(default_factory=dict)

    def is_toxic(self, probability: float) -> bool:
        """Apply the recorded threshold with the recorded operator."""
        return bool(_OPS[self.operator](probability, self.threshold))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attributes"] = list(self.attributes)
        return d

    @property
    def scorer_id(self) -> str:
        """Content hash of the identity; the key scores are cached under."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TextScore:
    """Probabilities per attribute for one text, and whether the text was truncated first."""

    scores: dict[str, float]
    truncated: bool = False


class Scorer(ABC):
    """Base class of all scorers; subclasses set ``identity`` and implement ``score_batch``."""

    identity: ScorerIdentity
    batch_size: int = 32

    @abstractmethod
    def score_batch(self, texts: Sequence[str]) -> list[TextScore]:
        """Score texts in order. Raise on failure; never return a placeholder value."""

    def score(self, texts: Sequence[str]) -> list[TextScore]:
        """Score any number of texts, length-sorted into batches of ``batch_size``.

        Sorting by length keeps padding small for transformer scorers; results come back in the
        caller's order.
        """
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[TextScore | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, s in zip(idx, self.score_batch([texts[i] for i in idx])):
                out[i] = s
        return out  # type: ignore[return-value]
