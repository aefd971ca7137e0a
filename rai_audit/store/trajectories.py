"""Trajectory points: which probe run sits at which step (or mixture size) of a trajectory audit.

A trajectory is identified by a content hash of what defines it (audit, axis, finetune config,
trajectory probes; :func:`rai_audit.trajectory.plan.trajectory_id`), so re-running the same
command after a crash finds and extends the same trajectory. Points are written with
insert-or-ignore on (trajectory, position): the first run recorded at a position stays.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from rai_audit.store import schema as t
from rai_audit.store.api import TrajectoryPointRecord
from rai_audit.store.base import StoreBase
from rai_audit.store.types import utcnow


class TrajectoriesMixin(StoreBase):
    """Recording and reading trajectory points."""

    def add_trajectory_point(
        self, trajectory_id: str, *, axis: str, position: int, run_id: str, finetune_run: str | None = None,
        audit_id: str | None = None, meta: dict[str, Any] | None = None,
    ) -> None:
        row = dict(trajectory_id=trajectory_id, audit_id=audit_id, axis=axis, position=int(position), run_id=run_id,
                   finetune_run=finetune_run, meta=dict(meta or {}), created_at=utcnow())
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.trajectory_points, [row])

    def trajectory_points(self, trajectory_id: str) -> list[TrajectoryPointRecord]:
        """The points of one trajectory (full id or unique prefix), ordered by position."""
        c = t.trajectory_points.c
        q = sa.select(t.trajectory_points).where(
            sa.or_(c.trajectory_id == trajectory_id, c.trajectory_id.startswith(trajectory_id, autoescape=True))
        ).order_by(c.position, c.seq)
        with self._conn(write=False) as conn:
            rows = [_record(r) for r in conn.execute(q)]
        ids = {r.trajectory_id for r in rows}
        if len(ids) > 1:
            exact = [r for r in rows if r.trajectory_id == trajectory_id]
            return exact
        return rows

    def list_trajectories(self, audit_id: str | None = None) -> list[list[TrajectoryPointRecord]]:
        """Every trajectory (newest first), each as its points ordered by position."""
        c = t.trajectory_points.c
        q = sa.select(t.trajectory_points).order_by(c.seq)
        if audit_id is not None:
            q = q.where(c.audit_id == audit_id)
        with self._conn(write=False) as conn:
            rows = [_record(r) for r in conn.execute(q)]
        by_id: dict[str, list[TrajectoryPointRecord]] = {}
        for r in rows:
            by_id.setdefault(r.trajectory_id, []).append(r)
        ordered = sorted(by_id.values(), key=lambda pts: max(p.created_at for p in pts), reverse=True)
        return [sorted(pts, key=lambda p: p.position) for pts in ordered]

    def trajectories_of_run(self, run_id: str) -> list[TrajectoryPointRecord]:
        """The trajectory points a probe run is recorded at (so `show` can say where it sits)."""
        c = t.trajectory_points.c
        with self._conn(write=False) as conn:
            return [_record(r) for r in conn.execute(sa.select(t.trajectory_points).where(c.run_id == run_id).order_by(c.seq))]


def _record(r: Any) -> TrajectoryPointRecord:
    return TrajectoryPointRecord(trajectory_id=r.trajectory_id, audit_id=r.audit_id, axis=r.axis, position=int(r.position),
                                 run_id=r.run_id, finetune_run=r.finetune_run, meta=dict(r.meta or {}),
                                 created_at=r.created_at)
