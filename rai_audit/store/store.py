"""The results store: append-only tables behind SQLAlchemy Core (SQLite WAL or PostgreSQL).

- ``Store.open(url)``: ``url`` None -> ``RAI_AUDIT_DB`` env var -> default SQLite file
  ``~/.local/share/rai-audit/results.sqlite`` (``RAI_AUDIT_HOME`` overrides the folder).
  A bare path is accepted and turned into ``sqlite:///PATH``; ``postgresql://`` gets the psycopg 3
  driver. SQLite connections use WAL mode, ``busy_timeout`` 30 s, foreign keys and
  ``synchronous=NORMAL``, and writers start with ``BEGIN IMMEDIATE`` (:mod:`.engine`). On open an
  empty database is migrated to head with Alembic; a database at an older revision raises
  StoreError telling the user to run ``rai-audit db upgrade``; a newer one raises StoreError
  telling them to upgrade rai-audit (:mod:`.migrate`). An unreachable server or unwritable path
  raises StoreError (exit 2), never a traceback; so does a disk that fills up mid-write.
- Append-only: triggers make UPDATE and DELETE on every table fail (:mod:`.ddl`). Content-addressed
  tables (models, datasets, items, responses, scores) and the per-run keyed tables (records,
  metrics) are written with ``INSERT ... ON CONFLICT DO NOTHING``: the first write of a key wins,
  so concurrent writers of the same key, or a resumed run rewriting a chunk, never conflict.
- ``transaction()``: store calls made inside it (in the same thread) share one connection and
  commit together; an exception rolls all of them back. Nested ``transaction()`` blocks are
  savepoints. Calls outside a transaction commit on their own. Threads each get their own
  connection, so dashboard readers and a writer thread can share one ``Store``; on SQLite a
  transaction holds the single write lock for its duration, so keep transactions short (one
  chunk of results, not a whole model inference).
- Runs: the ``runs`` row never changes; status changes are appended to ``run_events`` and
  ``RunRecord.status`` is the latest event's.
- ``audit_lock(name, wait=...)``: an advisory lock per audit (:mod:`.locks`).

The store knows nothing of probes or backends: records, requests and results are JSON values.

:class:`Store` is assembled from one mixin per group of tables: :mod:`.base` (engine, connections,
transactions), :mod:`.catalog` (models, data sets, items), :mod:`.runs`, :mod:`.caches` (responses,
scores), :mod:`.results` (records, metrics), :mod:`.artifacts`, :mod:`.comparisons`, :mod:`.trajectories` and
:mod:`.audit_locks`. Callers name the store by its contract, :class:`.protocol.ResultsStore` (or
one of its parts), rather than by this class.
"""

from __future__ import annotations

from rai_audit.store.artifacts import ArtifactsMixin
from rai_audit.store.audit_locks import AuditLocksMixin
from rai_audit.store.base import StoreBase
from rai_audit.store.caches import CachesMixin
from rai_audit.store.catalog import CatalogMixin
from rai_audit.store.comparisons import ComparisonsMixin
from rai_audit.store.results import ResultsMixin
from rai_audit.store.runs import RUN_STATUSES, RunsMixin
from rai_audit.store.trajectories import TrajectoriesMixin

__all__ = ["RUN_STATUSES", "Store"]


class Store(
    CatalogMixin, RunsMixin, CachesMixin, ResultsMixin, ArtifactsMixin, ComparisonsMixin, TrajectoriesMixin,
    AuditLocksMixin, StoreBase,
):
    """A results store (see the module docstring). Open with :meth:`open`; close with
    :meth:`close` or use as a context manager."""
