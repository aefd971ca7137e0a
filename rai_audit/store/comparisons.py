"""Saved comparisons of two runs, each sealed with the digest of its result
(:func:`rai_audit.store.integrity.comparison_digest`), found by id, unique prefix or "latest"."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from rai_audit.errors import StoreError
from rai_audit.store import integrity
from rai_audit.store import schema as t
from rai_audit.store.api import ComparisonRecord
from rai_audit.store.base import StoreBase
from rai_audit.store.types import utcnow


class ComparisonsMixin(StoreBase):
    """Saving, finding and listing comparisons."""

    def add_comparison(
        self, run_a: str, run_b: str, config: dict[str, Any], result: dict[str, Any],
        comparison_id: str | None = None,
    ) -> str:
        """Store a comparison of two runs; returns its id. With an explicit ``comparison_id``
        (e.g. a content hash) a second write of the same id is ignored."""
        cid = comparison_id or uuid.uuid4().hex
        config = {**config, integrity.COMPARISON_DIGEST_KEY: integrity.comparison_digest(result)}
        row = dict(comparison_id=cid, run_a=run_a, run_b=run_b, config=config, result=result, created_at=utcnow())
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.comparisons, [row])
        return cid

    def get_comparison(self, comparison_id: str) -> ComparisonRecord:
        """Full id, unique prefix or "latest"; StoreError if unknown or ambiguous."""
        c = t.comparisons.c
        ref = (comparison_id or "").strip()
        if ref == "latest":
            found = self._comparisons(None, limit=1)
        else:
            found = self._comparisons(c.comparison_id == ref, limit=1) or (
                self._comparisons(c.comparison_id.startswith(ref, autoescape=True), limit=11) if ref else []
            )
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            shown = ", ".join(x.comparison_id[:12] for x in found[:10])
            raise StoreError(f"Comparison id prefix {ref!r} is ambiguous: it matches {shown}. Give more characters.")
        raise StoreError(
            f"No comparison matches {ref!r} in the store {self.display_url}. Give a comparison id, a "
            "unique prefix of one, or 'latest'."
        )

    def list_comparisons(self, run_id: str | None = None, limit: int | None = None) -> list[ComparisonRecord]:
        """Newest first; ``run_id`` keeps comparisons with that run on either side."""
        c = t.comparisons.c
        where = sa.or_(c.run_a == run_id, c.run_b == run_id) if run_id is not None else None
        return self._comparisons(where, limit=limit)

    def _comparisons(self, where: Any, limit: int | None) -> list[ComparisonRecord]:
        q = sa.select(t.comparisons).order_by(t.comparisons.c.seq.desc())
        if where is not None:
            q = q.where(where)
        if limit is not None:
            q = q.limit(limit)
        with self._conn(write=False) as conn:
            return [
                ComparisonRecord(comparison_id=r.comparison_id, run_a=r.run_a, run_b=r.run_b,
                                 config={k: v for k, v in r.config.items() if k != integrity.COMPARISON_DIGEST_KEY},
                                 result=r.result, created_at=r.created_at,
                                 result_sha256=r.config.get(integrity.COMPARISON_DIGEST_KEY))
                for r in conn.execute(q)
            ]

