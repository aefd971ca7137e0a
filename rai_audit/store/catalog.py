"""The content-addressed catalog: models, data sets and their items (insert or ignore: the first
write of a key wins)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Sequence

import sqlalchemy as sa

from rai_audit.store import schema as t
from rai_audit.store.base import StoreBase
from rai_audit.store.types import utcnow

if TYPE_CHECKING:  # rai_audit.probe pulls in pydantic; readers such as `rai-audit runs` need not
    from rai_audit.backend import ModelInfo
    from rai_audit.probe import DatasetInfo, Item


class CatalogMixin(StoreBase):
    """Models, data sets and items."""

    def add_model(self, info: ModelInfo) -> None:
        row = dict(
            model_id=info.model_id,
            reference=info.reference,
            kind=info.kind,
            path=info.path,
            revision=info.revision,
            architecture=info.architecture,
            info=asdict(info),
            created_at=utcnow(),
        )
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.models, [row])

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        """The stored ModelInfo fields of ``model_id`` plus ``created_at``, or None."""
        with self._conn(write=False) as conn:
            row = conn.execute(
                sa.select(t.models.c.info, t.models.c.created_at).where(t.models.c.model_id == model_id)
            ).first()
        if row is None:
            return None
        return {**row.info, "created_at": row.created_at}

    def add_dataset(self, info: DatasetInfo) -> None:
        row = dict(
            dataset_id=info.dataset_id,
            name=info.name,
            source=info.source,
            revision=info.revision,
            license=info.license,
            citation=info.citation,
            files=dict(info.files),
            created_at=utcnow(),
        )
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.datasets, [row])

    def get_dataset(self, dataset_id: str) -> DatasetInfo | None:
        from rai_audit.probe import DatasetInfo

        with self._conn(write=False) as conn:
            row = conn.execute(sa.select(t.datasets).where(t.datasets.c.dataset_id == dataset_id)).first()
        if row is None:
            return None
        return DatasetInfo(
            name=row.name, source=row.source, revision=row.revision, license=row.license,
            citation=row.citation, files=dict(row.files),
        )

    def add_items(self, dataset_id: str, probe: str, items: Sequence[Item]) -> None:
        """Store the items of a dataset for a probe (``add_dataset`` first: items reference it)."""
        now = utcnow()
        rows = [
            dict(probe=probe, dataset_id=dataset_id, item_id=str(it.id), cluster=it.cluster, data=it.data, created_at=now)
            for it in items
        ]
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.items, rows, sort_by="item_id")

    def items(self, probe: str, dataset_id: str | None = None) -> list[Item]:
        """Stored items of a probe (optionally of one dataset version), ordered by item id."""
        from rai_audit.probe import Item

        q = sa.select(t.items.c.item_id, t.items.c.data, t.items.c.cluster).where(t.items.c.probe == probe)
        q = q.order_by(t.items.c.dataset_id, t.items.c.item_id)
        if dataset_id is not None:
            q = q.where(t.items.c.dataset_id == dataset_id)
        with self._conn(write=False) as conn:
            return [Item(id=r.item_id, data=r.data, cluster=r.cluster) for r in conn.execute(q)]

