"""A run's results: its per-item records and its aggregate metrics (keyed per run; the first
write of a key wins, so a resumed run never duplicates one)."""

from __future__ import annotations

from typing import Any, Sequence

import sqlalchemy as sa

from rai_audit.store import schema as t
from rai_audit.store.api import MetricRow
from rai_audit.store.base import StoreBase
from rai_audit.store.types import utcnow


def _nan_to_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if x != x else x


class ResultsMixin(StoreBase):
    """Per-item records and metrics of runs."""

    def completed_items(self, run_id: str, probe: str) -> set[str]:
        """Item ids of ``probe`` that already have a record in this run (error records count:
        a retry of failed items is a new run)."""
        c = t.records.c
        with self._conn(write=False) as conn:
            return set(conn.execute(sa.select(c.item_id).where(c.run_id == run_id, c.probe == probe)).scalars())

    def add_records(self, run_id: str, probe: str, records: Sequence[dict[str, Any]]) -> None:
        """Each record has item_id (unique per run and probe) and optional "error".

        A record whose (run, probe, item) is already stored is ignored (first write wins)."""
        now = utcnow()
        rows = []
        for rec in records:
            if "item_id" not in rec:
                raise ValueError(f"a record of probe {probe!r} has no 'item_id': {sorted(rec)[:8]}")
            error = rec.get("error")
            rows.append(dict(
                run_id=run_id, probe=probe, item_id=str(rec["item_id"]), record=rec,
                error=None if error is None else str(error), created_at=now,
            ))
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.records, rows)

    def records(self, run_id: str, probe: str | None = None) -> list[dict[str, Any]]:
        """Records in insertion order, as they were written, plus "probe". Only a failed item's
        record has an "error" key, so ``"error" in record`` and ``record.get("error")`` agree."""
        c = t.records.c
        q = sa.select(c.probe, c.item_id, c.record, c.error).where(c.run_id == run_id).order_by(c.seq)
        if probe is not None:
            q = q.where(c.probe == probe)
        out = []
        with self._conn(write=False) as conn:
            for p, item_id, rec, error in conn.execute(q):
                rec["probe"] = p
                if error is not None:
                    rec["error"] = error
                else:
                    rec.pop("error", None)
                rec.setdefault("item_id", item_id)
                out.append(rec)
        return out

    # -- metrics ------------------------------------------------------------------------------
    def add_metrics(self, run_id: str, metrics: Sequence[MetricRow]) -> None:
        """Store aggregates; NaN values are stored as NULL and read back as NaN. A metric whose
        (run, probe, name, subgroup) is already stored is ignored (first write wins)."""
        now = utcnow()
        rows = [
            dict(
                run_id=run_id, probe=m.probe, name=m.name, subgroup=m.subgroup, value=_nan_to_none(m.value),
                n=int(m.n), ci_low=_nan_to_none(m.ci_low), ci_high=_nan_to_none(m.ci_high),
                extra=dict(m.extra), created_at=now,
            )
            for m in metrics
        ]
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.metrics, rows)

    def metrics(self, run_id: str, probe: str | None = None) -> list[MetricRow]:
        """Metrics in insertion order."""
        c = t.metrics.c
        q = sa.select(c.probe, c.name, c.subgroup, c.value, c.n, c.ci_low, c.ci_high, c.extra)
        q = q.where(c.run_id == run_id).order_by(c.seq)
        if probe is not None:
            q = q.where(c.probe == probe)
        with self._conn(write=False) as conn:
            return [
                MetricRow(
                    probe=r.probe, name=r.name, subgroup=r.subgroup,
                    value=float("nan") if r.value is None else float(r.value), n=int(r.n),
                    ci_low=r.ci_low, ci_high=r.ci_high, extra=r.extra or {},
                )
                for r in conn.execute(q)
            ]

