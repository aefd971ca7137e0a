"""Artifacts: the files a run produced (exported model, report, finetune manifest), by path and
sha256."""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa

from rai_audit.store import schema as t
from rai_audit.store.api import ArtifactRecord
from rai_audit.store.base import StoreBase
from rai_audit.store.types import utcnow


class ArtifactsMixin(StoreBase):
    """Recording and listing artifacts."""

    def add_artifact(
        self, run_id: str, name: str, kind: str, path: str | os.PathLike | None = None,
        sha256: str | None = None, meta: dict[str, Any] | None = None,
    ) -> None:
        """Record a file a run produced (exported model, report, finetune manifest)."""
        row = dict(
            run_id=run_id, name=name, kind=kind, path=None if path is None else str(path), sha256=sha256,
            meta=meta or {}, created_at=utcnow(),
        )
        with self._conn(write=True) as conn:
            conn.execute(sa.insert(t.artifacts), [row])

    def artifacts(self, run_id: str | None = None, kind: str | None = None) -> list[ArtifactRecord]:
        """Artifacts in insertion order, of one run and/or one kind."""
        c = t.artifacts.c
        q = sa.select(t.artifacts).order_by(c.seq)
        if run_id is not None:
            q = q.where(c.run_id == run_id)
        if kind is not None:
            q = q.where(c.kind == kind)
        with self._conn(write=False) as conn:
            return [
                ArtifactRecord(run_id=r.run_id, name=r.name, kind=r.kind, path=r.path, sha256=r.sha256,
                               meta=r.meta, created_at=r.created_at)
                for r in conn.execute(q)
            ]

