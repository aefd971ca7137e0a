"""The advisory lock of an audit, held for a ``with`` block (:mod:`.locks`), and the log of who
took it (``audit_locks``) for the "held by ..." message."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa

from rai_audit.errors import StoreError
from rai_audit.store import schema as t
from rai_audit.store.base import StoreBase
from rai_audit.store.locks import advisory_lock, holder_id
from rai_audit.store.types import utcnow


class AuditLocksMixin(StoreBase):
    """``audit_lock(name)``."""

    @contextmanager
    def audit_lock(
        self, name: str, wait: bool = False, timeout: float | None = None, poll: float = 0.25,
    ) -> Iterator[None]:
        """Hold the advisory lock of audit ``name`` for the ``with`` block (:mod:`.locks`).

        Held elsewhere: StoreError (exit 2) at once, or with ``wait=True`` poll until it is free
        (StoreError after ``timeout`` seconds if given). Released on exit, and by the OS or the
        database server if this process dies.
        """

        def describe(file_holder: str | None) -> str:
            if file_holder:
                return f"lock held by {file_holder}"
            try:
                with self._conn(write=False) as conn:
                    row = conn.execute(
                        sa.select(t.audit_locks.c.holder, t.audit_locks.c.acquired_at)
                        .where(t.audit_locks.c.name == name)
                        .order_by(t.audit_locks.c.seq.desc())
                        .limit(1)
                    ).first()
            except StoreError:
                row = None
            if row is None:
                return "lock held by another process"
            return f"lock held, last taken by {row.holder} at {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC"

        def log_acquired() -> None:
            with self._conn(write=True) as conn:
                conn.execute(sa.insert(t.audit_locks), [dict(name=name, holder=holder_id(), acquired_at=utcnow())])

        acquired = False
        try:
            with advisory_lock(
                self.engine, self._lock_dir, name, wait=wait, timeout=timeout, poll=poll,
                describe_holder=describe, on_acquired=log_acquired,
            ):
                acquired = True
                yield
        except sa.exc.SQLAlchemyError as exc:
            if acquired:  # raised by the caller's block, not by locking
                raise
            translated = self._translate(exc, "locking")
            if translated is exc:
                raise
            raise translated from exc

