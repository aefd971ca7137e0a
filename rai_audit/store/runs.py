"""Runs: the immutable ``runs`` row plus appended status events (a run's status is its latest
event's); finding a run by id, unique prefix, "latest" or run key; listing runs."""

from __future__ import annotations

import re
import typing
import uuid
from typing import Any, Sequence

import sqlalchemy as sa

from rai_audit.errors import StoreError
from rai_audit.hashing import sha256_json
from rai_audit.store import integrity
from rai_audit.store import schema as t
from rai_audit.store.api import RunEvent, RunRecord, RunStatus
from rai_audit.store.base import StoreBase, chunks
from rai_audit.store.types import utcnow

RUN_STATUSES: tuple[str, ...] = typing.get_args(RunStatus)
_HEX = re.compile(r"^[0-9a-f]+$")


class RunsMixin(StoreBase):
    """Creating, finding and listing runs, and appending their status events."""

    def create_run(
        self,
        *,
        kind: str,
        run_key: str,
        model_id: str | None,
        model_reference: str | None,
        probes: Sequence[str],
        config: dict[str, Any],
        provenance: dict[str, Any],
        scorer: dict[str, Any] | None,
        datasets: dict[str, Any],
        seed: int,
        audit_id: str | None = None,
        role: str | None = None,
        label: str | None = None,
    ) -> str:
        """Insert a run row and its first event ("running"); returns the new run id."""
        run_id = uuid.uuid4().hex
        now = utcnow()
        row = dict(
            run_id=run_id, kind=kind, run_key=run_key, model_id=model_id, model_reference=model_reference,
            probes=list(probes), config=config, config_hash=sha256_json(config), provenance=provenance,
            scorer=scorer, datasets=datasets, seed=int(seed), audit_id=audit_id, role=role, label=label,
            created_at=now,
        )
        with self._conn(write=True) as conn:
            conn.execute(sa.insert(t.runs), [row])
            conn.execute(sa.insert(t.run_events), [dict(run_id=run_id, status="running", detail={}, at=now)])
        return run_id

    def find_run_by_key(self, run_key: str) -> RunRecord | None:
        """Latest run with this key (for resume), or None."""
        runs = self._runs(t.runs.c.run_key == run_key, limit=1)
        return runs[0] if runs else None

    def add_event(self, run_id: str, status: RunStatus, detail: dict[str, Any] | None = None) -> None:
        """Append a status change of a run (its status is the latest event's)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; expected one of {RUN_STATUSES}")
        detail = dict(detail or {})
        if status in integrity.COMPLETED:
            # the seal `rai-audit verify` checks later (records and metrics are written by now)
            detail[integrity.SEAL_KEY] = integrity.seal(self, run_id)
        with self._conn(write=True) as conn:
            exists = conn.execute(sa.select(t.runs.c.seq).where(t.runs.c.run_id == run_id)).first()
            if exists is None:
                raise StoreError(f"No run {run_id!r} in the store {self.display_url}; list runs with `rai-audit runs`.")
            conn.execute(sa.insert(t.run_events), [dict(run_id=run_id, status=status, detail=detail, at=utcnow())])

    def get_run(self, run_id: str) -> RunRecord:
        """``run_id`` may be a full id, a unique prefix, or "latest". StoreError if unknown."""
        ref = (run_id or "").strip()
        if ref == "latest":
            runs = self._runs(None, limit=1)
            if not runs:
                raise StoreError(
                    f"The store {self.display_url} has no runs yet. Run `rai-audit probe` first, or "
                    "point --db / RAI_AUDIT_DB at the store that holds your runs."
                )
            return runs[0]
        runs = self._runs(t.runs.c.run_id == ref, limit=1)
        if runs:
            return runs[0]
        if ref and _HEX.match(ref.lower()):
            runs = self._runs(t.runs.c.run_id.startswith(ref.lower(), autoescape=True), limit=11)
            if len(runs) == 1:
                return runs[0]
            if len(runs) > 1:
                shown = ", ".join(r.run_id[:12] for r in runs[:10])
                raise StoreError(
                    f"Run id prefix {ref!r} is ambiguous: it matches {shown}"
                    f"{' and more' if len(runs) > 10 else ''}. Give more characters of the id "
                    "(list runs with `rai-audit runs`)."
                )
        raise StoreError(
            f"No run matches {ref!r} in the store {self.display_url}. Give a run id, a unique "
            "prefix of one, or 'latest'; list runs with `rai-audit runs`."
        )

    def list_runs(
        self, *, model: str | None = None, probe: str | None = None, kind: str | None = None,
        audit_id: str | None = None, limit: int | None = None, status: str | None = None,
        role: str | None = None, label: str | None = None,
    ) -> list[RunRecord]:
        """Newest first. ``model`` matches a model reference exactly or a model id (or its prefix);
        ``probe`` keeps runs whose suite includes that probe; ``status`` is the latest status."""
        c = t.runs.c
        conds = []
        if model is not None:
            conds.append(sa.or_(c.model_reference == model, c.model_id.startswith(model, autoescape=True)))
        if kind is not None:
            conds.append(c.kind == kind)
        if audit_id is not None:
            conds.append(c.audit_id == audit_id)
        if role is not None:
            conds.append(c.role == role)
        if label is not None:
            conds.append(c.label == label)
        where = sa.and_(*conds) if conds else None
        if probe is None and status is None:
            return self._runs(where, limit=limit)
        out = []
        for run in self._runs(where, limit=None):
            if probe is not None and probe not in run.probes:
                continue
            if status is not None and run.status != status:
                continue
            out.append(run)
            if limit is not None and len(out) >= limit:
                break
        return out

    def _runs(self, where: Any, limit: int | None) -> list[RunRecord]:
        q = sa.select(t.runs).order_by(t.runs.c.seq.desc())
        if where is not None:
            q = q.where(where)
        if limit is not None:
            q = q.limit(limit)
        with self._conn(write=False) as conn:
            rows = conn.execute(q).all()
            events: dict[str, list[RunEvent]] = {r.run_id: [] for r in rows}
            ids = list(events)
            for chunk in chunks(ids):
                ev = conn.execute(
                    sa.select(t.run_events.c.run_id, t.run_events.c.status, t.run_events.c.detail, t.run_events.c.at)
                    .where(t.run_events.c.run_id.in_(chunk))
                    .order_by(t.run_events.c.seq)
                )
                for e in ev:
                    events[e.run_id].append(RunEvent(at=e.at, status=e.status, detail=e.detail))
        return [self._run_record(r, events[r.run_id]) for r in rows]

    @staticmethod
    def _run_record(r: Any, events: list[RunEvent]) -> RunRecord:
        last = events[-1] if events else None
        status = last.status if last else "running"
        return RunRecord(
            run_id=r.run_id, kind=r.kind, run_key=r.run_key, model_id=r.model_id,
            model_reference=r.model_reference, probes=list(r.probes), config=r.config,
            config_hash=r.config_hash, provenance=r.provenance, scorer=r.scorer, datasets=r.datasets,
            seed=r.seed, created_at=r.created_at, status=status,
            status_detail=last.detail if last else {},
            finished_at=last.at if last is not None and status != "running" else None,
            audit_id=r.audit_id, role=r.role, label=r.label, events=events,
        )

