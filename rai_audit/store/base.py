"""What every part of the results store stands on: the engine, the connection of the current
transaction, insert-or-ignore, and reopening after a fork (see :mod:`rai_audit.store.store`).

:class:`StoreBase` is the root of the :class:`~rai_audit.store.store.Store` mixins; each mixin
(:mod:`.catalog`, :mod:`.runs`, :mod:`.caches`, :mod:`.results`, :mod:`.artifacts`,
:mod:`.comparisons`, :mod:`.audit_locks`) adds the methods of one group of tables.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Self, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rai_audit.store import schema as t
from rai_audit.store.engine import (
    BEGIN_OPTION,
    display_url,
    dispose_engine,
    make_engine,
    resolve_url,
    sqlite_path,
    translate_error,
)
from rai_audit.store.migrate import ensure_schema

_IN_CHUNK = 5000  # keys per IN (...) query: below SQLite's and PostgreSQL's parameter limits

_open_stores: "weakref.WeakSet[StoreBase]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child must not use its parent's pooled connections (SQLAlchemy's advice).
    for store in list(_open_stores):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def chunks(seq: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    """``seq`` in slices small enough for one ``IN (...)`` query."""
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class StoreBase:
    """A results store's engine and connections. Open with :meth:`open`; close with
    :meth:`close` or use as a context manager."""

    url: str

    def __init__(self, engine: Engine, url: str):
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self._local = threading.local()
        path = sqlite_path(engine.url) if self.dialect == "sqlite" else None
        self._lock_dir = Path(str(path) + ".locks") if path is not None else None
        _open_stores.add(self)

    # -- opening and closing ----------------------------------------------------------------
    @classmethod
    def open(cls, url: str | os.PathLike | None = None) -> Self:
        """Open (and on first use create) the store at ``url`` (see :mod:`rai_audit.store.store`)."""
        resolved = resolve_url(url)
        engine = make_engine(resolved)
        try:
            ensure_schema(engine, resolved)
        except BaseException:
            dispose_engine(engine)
            raise
        actual = engine.url.render_as_string(hide_password=False)
        return cls(engine, actual)

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for messages."""
        return display_url(self.engine.url)

    def close(self) -> None:
        dispose_engine(self.engine)
        _open_stores.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __reduce__(self):
        # Worker processes (Ray, multiprocessing) reopen the store by URL.
        return (type(self).open, (self.url,))

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"

    def _after_fork(self) -> None:
        self.engine.dispose(close=False)
        self._local = threading.local()

    # -- connections and transactions ---------------------------------------------------------
    def _translate(self, exc: BaseException, doing: str) -> BaseException:
        translated = translate_error(exc, self.engine.url, doing)
        return translated if translated is not None else exc

    @contextmanager
    def _conn(self, write: bool) -> Iterator[Connection]:
        """The thread's transaction connection, or a fresh one committed at the end."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        try:
            with self.engine.connect() as conn:
                if write and self.dialect == "sqlite":
                    conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    yield conn
        except sa.exc.SQLAlchemyError as exc:
            translated = self._translate(exc, "writing to" if write else "reading")
            if translated is exc:
                raise
            raise translated from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group store calls of this thread into one atomic commit (see :mod:`rai_audit.store.store`)."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            try:
                with current.begin_nested():
                    yield
            except sa.exc.SQLAlchemyError as exc:
                translated = self._translate(exc, "writing to")
                if translated is exc:
                    raise
                raise translated from exc
            return
        with self._conn(write=True) as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    def _insert_ignore(
        self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]], sort_by: str | None = None
    ) -> None:
        """``INSERT ... ON CONFLICT DO NOTHING`` as one executemany.

        ``sort_by``: cache tables are written in key order, so two PostgreSQL transactions that
        insert overlapping key sets take their row locks in the same order and cannot deadlock.
        (Records and metrics keep the caller's order: it is their insertion order.)
        """
        if not rows:
            return
        if sort_by is not None:
            rows = sorted(rows, key=lambda r: r[sort_by])
        if self.dialect == "sqlite":
            # Not ON CONFLICT DO NOTHING: the BEFORE INSERT guard (ddl.create_insert_guard_sql)
            # aborts any insert of an existing key, so only keys that do not exist are inserted.
            conn.execute(_insert_new_keys(table, list(rows[0])), rows)
            return
        from sqlalchemy.dialects.postgresql import insert

        conn.execute(insert(table).on_conflict_do_nothing(), rows)



def _insert_new_keys(table: sa.Table, columns: list[str]) -> Any:
    """``INSERT INTO table (columns) SELECT :c... WHERE NOT EXISTS (a row with any same key)``: an
    insert-or-ignore that never fires SQLite's insert guard. One statement per row under SQLite's
    write lock, so the check and the insert are atomic."""
    cols = [table.c[c] for c in columns]
    keys = [k for k in t.unique_keys(table) if all(c in columns for c in k)]
    select = sa.select(*[sa.bindparam(c.name, type_=c.type) for c in cols])
    if keys:
        same = sa.or_(*[sa.and_(*[table.c[c] == sa.bindparam(c, type_=table.c[c].type) for c in k]) for k in keys])
        select = select.where(~sa.exists().where(same))
    return sa.insert(table).from_select(cols, select)
