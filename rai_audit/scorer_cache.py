"""A content-addressed score cache in the results store, with per-text failure isolation.

Toxicity probes score the same continuations again on a resumed or repeated run, and the base
and tuned models often write identical short continuations; scoring is cached by
``key = sha256(scorer_id + text)`` (``scorer_id`` is the hash of the full scorer identity, so a
different checkpoint, threshold or operator never shares a score).

Failures: when the scorer raises on a batch, the batch is bisected until each failing text is
alone; every failing text gets a :class:`ScoreFailure` and an error row in the store, and the
other texts keep their real scores. A failure is never a score of 0 (docs/architecture.md, "Conventions"). A score that
is not a finite probability in [0, 1] is treated as a failure too.

Error rows are a log, not an answer. They are written under their own key
(:func:`error_key`, a hash of the success key), so the store, which keeps the first row per key,
never lets a failure occupy the slot of the text's score: the text is scored again on the next
call (the failure may have been transient: out of memory, a device hiccup), and the first
success is cached. An error row found under the success key itself (written by an older
version) is likewise not an answer.

Counters (cumulative over calls, per input position unless said otherwise): ``hits`` (answered
by a stored success row), ``misses`` (not answered by the store), ``computed`` (distinct texts
sent to the scorer), ``errors`` (positions answered with a ScoreFailure), ``truncated``
(positions whose score comes from a truncated text).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from rai_audit.hashing import sha256_text
from rai_audit.scoring import Scorer, ScorerIdentity, TextScore


@dataclass(frozen=True)
class ScoreFailure:
    """A text the scorer could not score; ``error`` is "ExceptionType: message"."""

    error: str


class ScoreStore(Protocol):
    def get_scores(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def add_scores(self, rows: Sequence[dict[str, Any]]) -> None: ...


def score_key(scorer_id: str, text: str) -> str:
    """Cache key of ``text`` under a scorer: sha256 of scorer_id followed by the text."""
    return hashlib.sha256((scorer_id + text).encode("utf-8")).hexdigest()


def error_key(key: str) -> str:
    """Store key of the error log row for the text whose score lives under ``key``."""
    return hashlib.sha256(f"error:{key}".encode()).hexdigest()


def _validate(result: object, n: int) -> list[TextScore]:
    if not isinstance(result, list) or len(result) != n:
        raise ValueError(f"scorer returned {type(result).__name__} of length "
                         f"{len(result) if hasattr(result, '__len__') else '?'} for {n} texts")
    for s in result:
        if not isinstance(s, TextScore) or not s.scores:
            raise ValueError(f"scorer returned {s!r} instead of a TextScore with scores")
        for attr, v in s.scores.items():
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
                raise ValueError(f"scorer returned {attr}={v!r}, not a probability in [0, 1]")
    return result


class CachedScorer:
    """Wraps a :class:`Scorer`: store-backed cache, dedup of repeated texts, error isolation."""

    def __init__(self, scorer: Scorer, store: ScoreStore | None):
        self.scorer = scorer
        self.store = store
        self.hits = 0
        self.misses = 0
        self.computed = 0
        self.errors = 0
        self.truncated = 0

    @property
    def identity(self) -> ScorerIdentity:
        return self.scorer.identity

    @property
    def scorer_id(self) -> str:
        return self.scorer.identity.scorer_id

    def counters(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "computed": self.computed,
                "errors": self.errors, "truncated": self.truncated}

    # -- scoring ------------------------------------------------------------------------------
    def score(self, texts: Sequence[str]) -> list[TextScore | ScoreFailure]:
        """One outcome per text, in order: a TextScore, or a ScoreFailure for a failing text."""
        sid = self.scorer_id
        keys = [score_key(sid, t) for t in texts]
        unique = list(dict.fromkeys(keys))
        stored = self.store.get_scores(unique) if (self.store is not None and unique) else {}

        answers: dict[str, TextScore | ScoreFailure] = {}
        for k in unique:
            row = stored.get(k)
            if row is not None and row.get("error") is None and row.get("scores") is not None:
                answers[k] = TextScore(scores=dict(row["scores"]), truncated=bool(row.get("truncated")))

        todo_keys = [k for k in unique if k not in answers]
        text_of = {k: t for k, t in zip(keys, texts)}
        todo_texts = [text_of[k] for k in todo_keys]
        outcomes = self._score_isolating(todo_texts) if todo_texts else []
        self.computed += len(todo_texts)

        rows = []
        for k, t, o in zip(todo_keys, todo_texts, outcomes):
            answers[k] = o
            ok = isinstance(o, TextScore)
            rows.append({
                "key": k if ok else error_key(k),
                "scorer_id": sid,
                "text_sha256": sha256_text(t),
                "scores": dict(o.scores) if ok else None,
                "truncated": bool(o.truncated) if ok else False,
                "error": None if ok else o.error,
            })
        if rows and self.store is not None:
            self.store.add_scores(rows)

        result = [answers[k] for k in keys]
        hit_keys = set(answers) - set(todo_keys)
        for k, o in zip(keys, result):
            if k in hit_keys:
                self.hits += 1
            else:
                self.misses += 1
            if isinstance(o, ScoreFailure):
                self.errors += 1
            elif o.truncated:
                self.truncated += 1
        return result

    def _score_isolating(self, texts: list[str]) -> list[TextScore | ScoreFailure]:
        """Score ``texts``; on an exception, bisect until each failing text stands alone."""
        try:
            return list(_validate(self.scorer.score(texts), len(texts)))
        except Exception as e:  # noqa: BLE001 - any scorer failure becomes an error row
            if len(texts) == 1:
                return [ScoreFailure(error=f"{type(e).__name__}: {e}")]
        mid = len(texts) // 2
        return self._score_isolating(texts[:mid]) + self._score_isolating(texts[mid:])
