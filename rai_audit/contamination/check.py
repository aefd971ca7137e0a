"""Checking a probe's items against a training fingerprint.

An item's text is what the benchmark authors wrote (the probe's ``content_texts``), never the
prompt template or few-shot exemplars rai-audit wraps around it: a template phrase shared with an
instruction-tuning task is not contamination. An item is *overlapping* when any n-gram of its
text, at the largest fingerprint size its length allows, is in the fingerprint (Brown et al. 2020,
appendix C). Items shorter than every size are *unchecked*: reported, never counted as clean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np

from rai_audit.contamination.fingerprint import TrainingFingerprint
from rai_audit.contamination.ngrams import ngram_hashes, words

#: How many overlapping item ids a result keeps as examples for reports (all ids are kept).
EXAMPLES = 5


@dataclass
class ProbeContamination:
    """One probe's overlap with the tuned model's training data."""

    fingerprint_id: str
    checked: int  # items long enough to check
    overlapping: list[str] = field(default_factory=list)  # item ids, sorted
    unchecked: list[str] = field(default_factory=list)  # item ids shorter than every n-gram size
    examples: list[dict[str, str]] = field(default_factory=list)  # {"item_id", "text", "ngram"}

    @property
    def fraction(self) -> float | None:
        """Overlapping share of the checked items (None when none could be checked)."""
        return len(self.overlapping) / self.checked if self.checked else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": self.fraction}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProbeContamination":
        return cls(fingerprint_id=d["fingerprint_id"], checked=int(d["checked"]),
                   overlapping=list(d.get("overlapping", [])), unchecked=list(d.get("unchecked", [])),
                   examples=list(d.get("examples", [])))


def _first_match(toks: list[str], n: int, table: np.ndarray) -> str | None:
    for i in range(len(toks) - n + 1):
        gram = toks[i:i + n]
        h = ngram_hashes(gram, n)
        j = np.searchsorted(table, h[0])
        if j < table.size and table[j] == h[0]:
            return " ".join(gram)
    return None


def check_items(items: Iterable[tuple[str, list[str]]], fingerprint: TrainingFingerprint) -> ProbeContamination:
    """``items``: (item id, its content texts). Every text of an item is checked."""
    sizes = fingerprint.sizes
    overlapping, unchecked, examples = [], [], []
    checked = 0
    for item_id, texts in items:
        token_lists = [words(t) for t in texts if t]
        longest = max((len(t) for t in token_lists), default=0)
        usable = [n for n in sizes if n <= longest]
        if not usable:
            unchecked.append(item_id)
            continue
        checked += 1
        for toks in token_lists:
            n = next((s for s in sizes if s <= len(toks)), None)
            if n is None:
                continue
            table = fingerprint.hashes[n]
            if table.size == 0 or not np.isin(ngram_hashes(toks, n), table, assume_unique=True).any():
                continue
            overlapping.append(item_id)
            if len(examples) < EXAMPLES:
                examples.append({"item_id": item_id, "text": " ".join(toks)[:300],
                                 "ngram": _first_match(toks, n, table) or ""})
            break
    return ProbeContamination(fingerprint_id=fingerprint.fingerprint_id, checked=checked,
                              overlapping=sorted(overlapping), unchecked=sorted(unchecked), examples=examples)
