"""Where the store lives and how we connect to it.

URL resolution (:func:`resolve_url`): an explicit URL, else ``RAI_AUDIT_DB``, else the default
SQLite file ``$RAI_AUDIT_HOME/results.sqlite`` with ``RAI_AUDIT_HOME`` defaulting to
``$XDG_DATA_HOME/rai-audit`` (i.e. ``~/.local/share/rai-audit``). A bare path becomes a SQLite
URL; ``postgresql://`` and ``postgres://`` URLs get the psycopg 3 driver we ship with.

SQLite is tuned for one writer and many readers across threads and processes:

- ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers.
- ``busy_timeout=30000``: a writer waits up to 30 s for another writer instead of failing.
- Write transactions start with ``BEGIN IMMEDIATE`` (the write lock is taken up front). A
  deferred transaction that reads first and writes later cannot wait for the lock when another
  writer got in between; SQLite fails it at once with "database is locked" whatever the
  busy timeout. Taking the lock at BEGIN makes every writer queue politely instead.
- ``foreign_keys=ON`` and ``synchronous=NORMAL`` (durable at checkpoints; a power cut can lose
  the last transactions but never corrupts the file, which WAL guarantees).

The Python ``sqlite3`` module's own transaction handling is switched off (``isolation_level =
None``) and SQLAlchemy's ``begin`` event emits our ``BEGIN`` instead, the recipe SQLAlchemy
documents for taking control of SQLite transactions.

An in-memory URL (``sqlite://``) is served by a private temporary file deleted at close: an
in-memory SQLite database is per connection, which cannot serve several threads.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from rai_audit.errors import StoreError
from rai_audit.store.types import json_dumps, json_loads

BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10
DEFAULT_FILENAME = "results.sqlite"
#: Connection execution option naming how SQLite's BEGIN starts ("IMMEDIATE" for writers).
BEGIN_OPTION = "rai_audit_sqlite_begin"


def rai_audit_home() -> Path:
    """``$RAI_AUDIT_HOME``, else ``$XDG_DATA_HOME/rai-audit``, else ``~/.local/share/rai-audit``."""
    home = os.environ.get("RAI_AUDIT_HOME")
    if home:
        return Path(home).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "rai-audit"


def default_url() -> str:
    return "sqlite:///" + str(rai_audit_home() / DEFAULT_FILENAME)


def resolve_url(url: str | os.PathLike | None = None) -> str:
    """The store URL to use: ``url`` > ``RAI_AUDIT_DB`` > the default SQLite file."""
    if url is None or str(url).strip() == "":
        url = os.environ.get("RAI_AUDIT_DB") or default_url()
    url = str(url).strip()
    if "://" not in url:  # a bare path
        return "sqlite:///" + str(Path(url).expanduser().absolute())
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(
            f"The store URL {url!r} is not a valid database URL. Use a file path, "
            "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE "
            "(--db or RAI_AUDIT_DB)."
        ) from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"The store URL {display_url(parsed)} names a {parsed.get_backend_name()!r} database; "
            "rai-audit stores results in SQLite (a file path or sqlite:///PATH) or PostgreSQL "
            "(postgresql+psycopg://...). Fix --db or RAI_AUDIT_DB."
        )
    return parsed


def display_url(url: str | URL) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):
        return str(url)
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL (None for an in-memory one)."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    if db.startswith("file:"):  # URI filename
        db = db[5:].split("?", 1)[0]
    return Path(db)


def _prepare_sqlite_file(url: URL) -> tuple[URL, Path | None]:
    """Make the database file's folder; swap an in-memory database for a private temp file."""
    path = sqlite_path(url)
    tmp = None
    if path is None:
        fd, name = tempfile.mkstemp(prefix="rai-audit-memory-", suffix=".sqlite")
        os.close(fd)
        tmp = Path(name)
        return url.set(database=name), tmp
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the folder {path.parent} for the results store {path}: "
            f"{exc.strerror or exc}. Choose a writable location with --db PATH or RAI_AUDIT_DB "
            "(or set RAI_AUDIT_HOME)."
        ) from exc
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(
            f"The results store {path} is not readable and writable by this user. Fix its "
            "permissions or choose another store with --db PATH or RAI_AUDIT_DB."
        )
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreError(
            f"The folder {path.parent} of the results store is not writable (SQLite needs to "
            "create its -wal and -shm files beside the database). Fix its permissions or choose "
            "another store with --db PATH or RAI_AUDIT_DB."
        )
    return url, None


def _install_sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module docstring)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"SQLite refused WAL mode for the results store (journal_mode={mode}); the store "
                "needs a local file system that supports shared memory (not a network share)."
            )
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        mode = conn.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | None = None) -> Engine:
    """A configured engine for ``url`` (resolved as :func:`resolve_url` does).

    Does not connect; connection errors surface on first use and are translated by
    :func:`translate_error`.
    """
    parsed = parse_url(resolve_url(url))
    backend = parsed.get_backend_name()
    common = dict(json_serializer=json_dumps, json_deserializer=json_loads, future=True)
    try:
        if backend == "sqlite":
            parsed, tmp = _prepare_sqlite_file(parsed)
            engine = sa.create_engine(
                parsed,
                connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
                pool_size=8,
                max_overflow=32,
                pool_timeout=BUSY_TIMEOUT_MS / 1000,
                **common,
            )
            _install_sqlite_events(engine)
            engine._rai_audit_tempfile = tmp  # type: ignore[attr-defined]
            return engine
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        connect_args = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        if "application_name" not in parsed.query:
            connect_args["application_name"] = "rai-audit"
        return sa.create_engine(
            parsed,
            connect_args=connect_args,
            pool_pre_ping=True,
            pool_size=8,
            max_overflow=32,
            **common,
        )
    except (NoSuchModuleError, ImportError, ModuleNotFoundError) as exc:
        raise StoreError(
            f"The database driver for {display_url(parsed)} is not installed ({exc}). For "
            "PostgreSQL install psycopg 3: pip install 'rai-audit[postgres]'."
        ) from exc


def dispose_engine(engine: Engine) -> None:
    engine.dispose()
    tmp = getattr(engine, "_rai_audit_tempfile", None)
    if tmp is not None:
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(str(tmp) + suffix)
            except OSError:
                pass
        for lockdir in [Path(str(tmp) + ".locks")]:
            if lockdir.is_dir():
                for f in lockdir.iterdir():
                    try:
                        f.unlink()
                    except OSError:
                        pass
                try:
                    lockdir.rmdir()
                except OSError:
                    pass


_DISK_FULL = ("database or disk is full", "disk full", "no space left on device", "could not extend file")
_UNREACHABLE = (
    "connection refused",
    "could not connect",
    "connection failed",
    "could not translate host name",
    "name or service not known",
    "timeout expired",
    "server closed the connection",
    "terminating connection",
    "connection is closed",
    "consuming input failed",
    "connection to server",
)


def translate_error(exc: BaseException, url: str | URL, doing: str = "using") -> StoreError | None:
    """A clear StoreError for environmental failures (unreachable server, disk full, permission,
    lock timeout), or None for anything else (a bug or a violated constraint keeps its type)."""
    if isinstance(exc, StoreError):
        return exc
    environmental = isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) or (
        isinstance(exc, sa.exc.DBAPIError)
        and (exc.connection_invalidated or _sqlstate(exc) in ("53100", "53200", "53300"))
    ) or (
        type(exc) is sa.exc.DatabaseError  # SQLite: a corrupt or foreign file
        and any(s in str(exc).lower() for s in ("file is not a database", "malformed", "disk"))
    )
    if not environmental:
        return None
    shown = display_url(url)
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    low = text.lower()
    if any(s in low for s in _DISK_FULL) or _sqlstate(exc) == "53100":
        return StoreError(
            f"The results store {shown} ran out of disk space while {doing} it ({first}). "
            "Nothing of the interrupted write was committed; free some space and run the "
            "command again (it resumes)."
        )
    if "database is locked" in low or "database is busy" in low:
        return StoreError(
            f"The results store {shown} stayed locked by another writer for more than "
            f"{BUSY_TIMEOUT_MS // 1000} s while {doing} it. Another rai-audit process may be "
            "stuck; check `ps` for it, or use a separate store with --db."
        )
    if "unable to open database file" in low or "readonly database" in low or "permission denied" in low:
        return StoreError(
            f"Cannot write the results store {shown} ({first}). Check that the file and its "
            "folder are writable, or choose another store with --db PATH or RAI_AUDIT_DB."
        )
    if "file is not a database" in low or "malformed" in low:
        return StoreError(
            f"{shown} is not a readable SQLite database ({first}). Point --db / RAI_AUDIT_DB at "
            "a rai-audit store, or at a new path to create one."
        )
    if "authentication failed" in low or "does not exist" in low or "no password supplied" in low:
        return StoreError(
            f"The database server refused the results store {shown} ({first}). Check the user, "
            "password and database name in --db / RAI_AUDIT_DB, and that the database exists."
        )
    if any(s in low for s in _UNREACHABLE) or isinstance(exc, sa.exc.InterfaceError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    ):
        return StoreError(
            f"Cannot reach the results store {shown} ({first}). Check that the database server is "
            "running and reachable and that the URL, user and password are right (--db or "
            "RAI_AUDIT_DB); nothing was written."
        )
    return StoreError(f"The results store {shown} failed while {doing} it: {first}")


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def missing_sqlite_file(url: str | os.PathLike | None) -> Path | None:
    """The SQLite file ``url`` names when it does not exist yet (else None: it exists, or the
    store is PostgreSQL or in memory). Commands that only read use this to refuse a mistyped
    ``--db`` instead of creating an empty store there."""
    resolved = resolve_url(url)
    parsed = parse_url(resolved)
    if parsed.get_backend_name() != "sqlite":
        return None
    path = sqlite_path(parsed)
    return path if path is not None and not path.exists() else None
