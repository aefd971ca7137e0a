"""CachedScorer: store-backed score cache, dedup, failure isolation, retry of error rows.

An in-memory fake with the spec's get_scores / add_scores contract (append-only rows; a success
row answers in preference to an error row) stands in for the store; the last test runs the real
store, which keeps the first row per key.
"""

from __future__ import annotations

import hashlib
import math
from typing import Sequence


from rai_audit.errors import ScorerError
from rai_audit.scorer_cache import CachedScorer, ScoreFailure, score_key
from rai_audit.scoring import Scorer, ScorerIdentity, TextScore


class FakeStore:
    def __init__(self):
        self.rows: list[dict] = []
        self.add_calls = 0

    def get_scores(self, keys):
        out = {}
        for r in self.rows:
            if r["key"] in keys and (r["key"] not in out or out[r["key"]]["error"] is not None):
                out[r["key"]] = {"scores": r["scores"], "truncated": r["truncated"], "error": r["error"]}
        return out

    def add_scores(self, rows):
        self.add_calls += 1
        for r in rows:
            assert set(r) == {"key", "scorer_id", "text_sha256", "scores", "truncated", "error"}
        self.rows.extend(dict(r) for r in rows)


class ToyScorer(Scorer):
    """Score = share of 'x' characters; raises on any batch containing BOOM (while ``broken``)."""

    batch_size = 4

    def __init__(self, threshold=0.5):
        self.identity = ScorerIdentity(name="toy", version="1", checkpoint_sha256="ab" * 32,
                                       threshold=threshold, max_length=10, length_unit="chars")
        self.scored: list[str] = []
        self.broken = True

    def score_batch(self, texts: Sequence[str]) -> list[TextScore]:
        if self.broken and any("BOOM" in t for t in texts):
            raise ScorerError("exploded")
        out = []
        for t in texts:
            if t == "nan":
                out.append(TextScore({"toxicity": float("nan")}))
                continue
            self.scored.append(t)
            out.append(TextScore({"toxicity": t.count("x") / max(len(t), 1)}, truncated=len(t) > 10))
        return out


def expected(t):
    return t.count("x") / max(len(t), 1)


def test_key_is_sha256_of_scorer_id_and_text():
    s = ToyScorer()
    assert score_key(s.identity.scorer_id, "hi") == hashlib.sha256((s.identity.scorer_id + "hi").encode()).hexdigest()


def test_misses_then_hits_and_rows_written():
    store, scorer = FakeStore(), ToyScorer()
    cached = CachedScorer(scorer, store)
    texts = ["xx", "ab", "xx", "xaxaxaxaxaxa"]  # a duplicate and a truncated text
    first = cached.score(texts)
    assert [r.scores["toxicity"] for r in first] == [expected(t) for t in texts]
    assert sorted(scorer.scored) == ["ab", "xaxaxaxaxaxa", "xx"]  # duplicate computed once
    assert cached.counters() == {"hits": 0, "misses": 4, "computed": 3, "errors": 0, "truncated": 1}
    assert len(store.rows) == 3
    row = next(r for r in store.rows if r["text_sha256"] == hashlib.sha256(b"xx").hexdigest())
    assert row["key"] == score_key(scorer.identity.scorer_id, "xx")
    assert row["scorer_id"] == scorer.identity.scorer_id
    assert row["scores"] == {"toxicity": 1.0} and row["error"] is None and row["truncated"] is False

    scorer.scored.clear()
    second = cached.score(texts)
    assert second == first and scorer.scored == []
    assert cached.hits == 4 and cached.misses == 4 and cached.truncated == 2
    assert len(store.rows) == 3


def test_other_identity_does_not_share_cache():
    store = FakeStore()
    CachedScorer(ToyScorer(threshold=0.5), store).score(["xx"])
    other = ToyScorer(threshold=0.6)
    c = CachedScorer(other, store)
    c.score(["xx"])
    assert c.misses == 1 and other.scored == ["xx"]


def test_failures_are_isolated_to_the_failing_texts():
    store, scorer = FakeStore(), ToyScorer()
    cached = CachedScorer(scorer, store)
    texts = [f"text {i} x" for i in range(13)]
    texts[3] = "a BOOM here"
    texts[9] = "BOOM again"
    out = cached.score(texts)
    for i, (t, o) in enumerate(zip(texts, out)):
        if i in (3, 9):
            assert isinstance(o, ScoreFailure) and "ScorerError: exploded" == o.error
        else:
            assert isinstance(o, TextScore) and math.isclose(o.scores["toxicity"], expected(t))
    errors = [r for r in store.rows if r["error"] is not None]
    assert len(errors) == 2 and all(r["scores"] is None for r in errors)
    assert len(store.rows) == 13
    assert cached.errors == 2


def test_error_rows_are_retried_and_success_then_cached():
    store, scorer = FakeStore(), ToyScorer()
    cached = CachedScorer(scorer, store)
    assert isinstance(cached.score(["BOOM x"])[0], ScoreFailure)
    assert isinstance(cached.score(["BOOM x"])[0], ScoreFailure)  # still failing: retried, not cached
    assert cached.hits == 0 and cached.computed == 2
    scorer.broken = False
    ok = cached.score(["BOOM x"])[0]
    assert isinstance(ok, TextScore) and math.isclose(ok.scores["toxicity"], 1 / 6)
    assert [r["error"] is None for r in store.rows] == [False, False, True]
    scorer.scored.clear()
    assert cached.score(["BOOM x"])[0] == ok and scorer.scored == []
    assert cached.hits == 1


def test_non_finite_score_is_a_failure_not_a_number():
    cached = CachedScorer(ToyScorer(), FakeStore())
    out = cached.score(["ok x", "nan"])
    assert isinstance(out[0], TextScore)
    assert isinstance(out[1], ScoreFailure) and "probability" in out[1].error


def test_without_store_still_isolates():
    cached = CachedScorer(ToyScorer(), None)
    out = cached.score(["BOOM", "x"])
    assert isinstance(out[0], ScoreFailure) and out[1].scores == {"toxicity": 1.0}
    assert cached.score([]) == []


def test_with_a_real_scorer():
    from probes.scorers import get_scorer

    store = FakeStore()
    cached = CachedScorer(get_scorer("profanity-check"), store)
    a = cached.score(["fuck off", "hello there"])
    b = cached.score(["hello there", "fuck off"])
    assert a[0] == b[1] and a[1] == b[0] and cached.hits == 2
    assert a[0].scores["offensive"] > a[1].scores["offensive"]


def test_real_store_caches_the_first_success_after_a_failure(db_url):
    """The store keeps the first row per key; the failure's row must not take the score's slot,
    so a text that failed once is cached as soon as it succeeds (SQLite and PostgreSQL)."""
    from rai_audit.scorer_cache import error_key
    from rai_audit.store import Store

    store, scorer = Store.open(db_url), ToyScorer()
    try:
        cached = CachedScorer(scorer, store)
        assert isinstance(cached.score(["BOOM x"])[0], ScoreFailure)
        key = score_key(cached.scorer_id, "BOOM x")
        assert store.get_scores([key]) == {}  # nothing under the score's key
        logged = store.get_scores([error_key(key)])[error_key(key)]
        assert logged["scores"] is None and "exploded" in logged["error"]
        scorer.broken = False
        ok = cached.score(["BOOM x"])[0]
        assert isinstance(ok, TextScore)
        scorer.scored.clear()
        assert cached.score(["BOOM x"])[0] == ok and scorer.scored == []  # answered by the store
        assert cached.hits == 1 and cached.computed == 2
    finally:
        store.close()
