"""The response and score caches: model answers and toxicity scores, content-addressed by key,
so a resumed or repeated run recomputes nothing."""

from __future__ import annotations

from typing import Any, Sequence

import sqlalchemy as sa

from rai_audit.store import schema as t
from rai_audit.store.base import StoreBase, chunks
from rai_audit.store.types import utcnow


class CachesMixin(StoreBase):
    """Cached model responses and scores."""

    def get_responses(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """key -> {"kind": "loglik"|"generate", "result": dict}."""
        out: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(keys))
        with self._conn(write=False) as conn:
            for chunk in chunks(keys):
                q = sa.select(t.responses.c.key, t.responses.c.kind, t.responses.c.result).where(
                    t.responses.c.key.in_(chunk)
                )
                for r in conn.execute(q):
                    out[r.key] = {"kind": r.kind, "result": r.result}
        return out

    def add_responses(self, rows: Sequence[dict[str, Any]]) -> None:
        """rows: {"key", "model_id", "kind", "request": dict, "result": dict}."""
        now = utcnow()
        data = [
            dict(key=r["key"], model_id=r["model_id"], kind=r["kind"], request=r["request"], result=r["result"], created_at=now)
            for r in rows
        ]
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.responses, data, sort_by="key")

    def get_scores(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """key -> {"scores": dict|None, "truncated": bool, "error": str|None}."""
        out: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(keys))
        c = t.scores.c
        with self._conn(write=False) as conn:
            for chunk in chunks(keys):
                q = sa.select(c.key, c.scores, c.truncated, c.error).where(c.key.in_(chunk))
                for r in conn.execute(q):
                    out[r.key] = {"scores": r.scores, "truncated": bool(r.truncated), "error": r.error}
        return out

    def add_scores(self, rows: Sequence[dict[str, Any]]) -> None:
        """rows: {"key", "scorer_id", "text_sha256", "scores": dict|None, "truncated", "error"}."""
        now = utcnow()
        data = [
            dict(
                key=r["key"], scorer_id=r["scorer_id"], text_sha256=r["text_sha256"], scores=r.get("scores"),
                truncated=bool(r.get("truncated", False)), error=r.get("error"), created_at=now,
            )
            for r in rows
        ]
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.scores, data, sort_by="key")

