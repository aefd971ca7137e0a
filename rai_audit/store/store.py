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
"""

from __future__ import annotations

import os
import re
import threading
import typing
import uuid
import weakref
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rai_audit.backend import ModelInfo
from rai_audit.errors import StoreError
from rai_audit.hashing import sha256_json
from rai_audit.store import integrity
from rai_audit.store import schema as t
from rai_audit.store.api import (
    ArtifactRecord,
    ComparisonRecord,
    MetricRow,
    RunEvent,
    RunRecord,
    RunStatus,
)
from rai_audit.store.engine import (
    BEGIN_OPTION,
    display_url,
    dispose_engine,
    make_engine,
    resolve_url,
    sqlite_path,
    translate_error,
)
from rai_audit.store.locks import advisory_lock
from rai_audit.store.migrate import ensure_schema
from rai_audit.store.types import utcnow

if TYPE_CHECKING:  # rai_audit.probe pulls in pydantic; readers such as `rai-audit runs` need not
    from rai_audit.probe import DatasetInfo, Item

RUN_STATUSES: tuple[str, ...] = typing.get_args(RunStatus)
_IN_CHUNK = 5000  # keys per IN (...) query: below SQLite's and PostgreSQL's parameter limits
_HEX = re.compile(r"^[0-9a-f]+$")

_open_stores: "weakref.WeakSet[Store]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child must not use its parent's pooled connections (SQLAlchemy's advice).
    for store in list(_open_stores):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _chunks(seq: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _nan_to_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if x != x else x


class Store:
    """A results store (see the module docstring). Open with :meth:`open`; close with
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
    def open(cls, url: str | os.PathLike | None = None) -> "Store":
        """Open (and on first use create) the store at ``url`` (see module docstring)."""
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

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __reduce__(self):
        # Worker processes (Ray, multiprocessing) reopen the store by URL.
        return (Store.open, (self.url,))

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
        """Group store calls of this thread into one atomic commit (see module docstring)."""
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

    # -- models, datasets, items (content-addressed, insert or ignore) --------------------------
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

    # -- runs -------------------------------------------------------------------------------
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
            for chunk in _chunks(ids):
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

    # -- response and score caches (content-addressed) -----------------------------------------
    def get_responses(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """key -> {"kind": "loglik"|"generate", "result": dict}."""
        out: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(keys))
        with self._conn(write=False) as conn:
            for chunk in _chunks(keys):
                q = sa.select(t.responses.c.key, t.responses.c.kind, t.responses.c.result).where(
                    t.responses.c.key.in_(chunk)
                )
                for r in conn.execute(q):
                    out[r.key] = {"kind": r.kind, "result": r.result}
        return out

    def add_responses(self, rows: Sequence[dict[str, Any]]) -> None:
        """rows: {"key", "model_id", "kind", "request": dict, "result": dict}."""
        now = utcnow()
        data = [
            dict(key=r["key"], model_id=r["model_id"], kind=r["kind"], request=r["request"], result=r["result"], created_at=now)
            for r in rows
        ]
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.responses, data, sort_by="key")

    def get_scores(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """key -> {"scores": dict|None, "truncated": bool, "error": str|None}."""
        out: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(keys))
        c = t.scores.c
        with self._conn(write=False) as conn:
            for chunk in _chunks(keys):
                q = sa.select(c.key, c.scores, c.truncated, c.error).where(c.key.in_(chunk))
                for r in conn.execute(q):
                    out[r.key] = {"scores": r.scores, "truncated": bool(r.truncated), "error": r.error}
        return out

    def add_scores(self, rows: Sequence[dict[str, Any]]) -> None:
        """rows: {"key", "scorer_id", "text_sha256", "scores": dict|None, "truncated", "error"}."""
        now = utcnow()
        data = [
            dict(
                key=r["key"], scorer_id=r["scorer_id"], text_sha256=r["text_sha256"], scores=r.get("scores"),
                truncated=bool(r.get("truncated", False)), error=r.get("error"), created_at=now,
            )
            for r in rows
        ]
        with self._conn(write=True) as conn:
            self._insert_ignore(conn, t.scores, data, sort_by="key")

    # -- per-item records --------------------------------------------------------------------
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

    # -- artifacts ------------------------------------------------------------------------------
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

    # -- comparisons ----------------------------------------------------------------------------
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

    # -- audit locks ----------------------------------------------------------------------------
    @contextmanager
    def audit_lock(
        self, name: str, wait: bool = False, timeout: float | None = None, poll: float = 0.25,
    ) -> Iterator[None]:
        """Hold the advisory lock of audit ``name`` for the ``with`` block (:mod:`.locks`).

        Held elsewhere: StoreError (exit 2) at once, or with ``wait=True`` poll until it is free
        (StoreError after ``timeout`` seconds if given). Released on exit, and by the OS or the
        database server if this process dies.
        """
        from rai_audit.store.locks import holder_id

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
