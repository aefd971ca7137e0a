"""The tables of the results store, as SQLAlchemy Core metadata.

This module is what the store's queries are written against. The database itself is created
and evolved by the Alembic migrations in ``migrations/versions`` (each written out explicitly, so
an old migration never changes when this file does); ``tests/test_store.py`` checks that a
database migrated to head matches this metadata exactly.

Every table is append-only (see :mod:`rai_audit.store.ddl`): nothing is updated in place and a
correction is a new row. Tables fall in three groups:

- content-addressed (primary key is a content hash; written with insert-or-ignore so concurrent
  writers of the same key never conflict): ``models``, ``datasets``, ``items``, ``responses``,
  ``scores``;
- run results (keyed by run): ``runs``, ``run_events`` (status history; a run's status is its
  latest event), ``records`` (one per run, probe and item), ``metrics``, ``artifacts``,
  ``comparisons``;
- ``trajectory_points``: a trajectory is an ordered series of probe runs along one axis (training
  step, or number of mixture tasks); each point links a probe run to the finetune run that made
  its model and to its position on the axis (:mod:`rai_audit.trajectory`);
- ``audit_locks``: a log of who acquired which audit lock when (the lock itself is an advisory
  lock, see :mod:`rai_audit.store.locks`); it only serves the "held by ..." message.

Surrogate ``seq`` columns give insertion order, which is what "latest" and "in insertion order"
mean everywhere (wall clocks of two writers may disagree; the database's sequence does not).
"""

from __future__ import annotations

import sqlalchemy as sa

from rai_audit.store.types import SEQ, UTCDateTime

metadata = sa.MetaData()

#: Result tables guarded by the append-only triggers (all of ours; not ``alembic_version``).
APPEND_ONLY_TABLES = (
    "models",
    "datasets",
    "items",
    "runs",
    "run_events",
    "responses",
    "scores",
    "records",
    "metrics",
    "artifacts",
    "comparisons",
    "audit_locks",
    "trajectory_points",
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("model_id", sa.String(64), primary_key=True),  # sha256 over the weight files
    sa.Column("reference", sa.Text, nullable=False),  # the first reference seen for these weights
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("path", sa.Text),
    sa.Column("revision", sa.Text),
    sa.Column("architecture", sa.Text),
    sa.Column("info", sa.JSON, nullable=False),  # the whole ModelInfo
    sa.Column("created_at", UTCDateTime, nullable=False),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("dataset_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("revision", sa.Text),
    sa.Column("license", sa.Text),
    sa.Column("citation", sa.Text),
    sa.Column("files", sa.JSON, nullable=False),  # relative file name -> sha256
    sa.Column("created_at", UTCDateTime, nullable=False),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("probe", sa.String(64), primary_key=True),
    sa.Column("dataset_id", sa.String(64), sa.ForeignKey("datasets.dataset_id"), primary_key=True),
    sa.Column("item_id", sa.Text, primary_key=True),
    sa.Column("cluster", sa.Text),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("run_key", sa.String(64), nullable=False, index=True),
    sa.Column("model_id", sa.String(64), index=True),
    sa.Column("model_reference", sa.Text),
    sa.Column("probes", sa.JSON, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("provenance", sa.JSON, nullable=False),
    sa.Column("scorer", sa.JSON),
    sa.Column("datasets", sa.JSON, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("audit_id", sa.Text, index=True),
    sa.Column("role", sa.String(16)),
    sa.Column("label", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

run_events = sa.Table(
    "run_events",
    metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

responses = sa.Table(
    "responses",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # rai_audit.requests.cache_key
    sa.Column("model_id", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

scores = sa.Table(
    "scores",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # (scorer identity, text) hash
    sa.Column("scorer_id", sa.Text, nullable=False, index=True),
    sa.Column("text_sha256", sa.String(64), nullable=False),
    sa.Column("scores", sa.JSON),  # None when the scorer failed on this text
    sa.Column("truncated", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False),
    sa.Column("probe", sa.String(64), nullable=False),
    sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("record", sa.JSON, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("run_id", "probe", "item_id", name="uq_records_run_probe_item"),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False),
    sa.Column("probe", sa.String(64), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("subgroup", sa.Text, nullable=False),
    sa.Column("value", sa.Float),  # NULL = NaN (SQLite cannot store NaN)
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("ci_low", sa.Float),
    sa.Column("ci_high", sa.Float),
    sa.Column("extra", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("run_id", "probe", "name", "subgroup", name="uq_metrics_run_probe_name_subgroup"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # "model" | "report" | "manifest" | ...
    sa.Column("path", sa.Text),
    sa.Column("sha256", sa.String(64)),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

comparisons = sa.Table(
    "comparisons",
    metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("comparison_id", sa.String(64), nullable=False, unique=True),
    sa.Column("run_a", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("run_b", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

audit_locks = sa.Table(
    "audit_locks",
    metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False, index=True),
    sa.Column("holder", sa.Text, nullable=False),  # "host:pid"
    sa.Column("acquired_at", UTCDateTime, nullable=False),
)

trajectory_points = sa.Table(
    "trajectory_points",
    metadata,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
    sa.Column("trajectory_id", sa.String(64), nullable=False, index=True),
    sa.Column("audit_id", sa.Text, index=True),
    sa.Column("axis", sa.String(16), nullable=False),  # "step" | "tasks"
    sa.Column("position", sa.BigInteger, nullable=False),  # training step, or number of tasks
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("finetune_run", sa.String(32), sa.ForeignKey("runs.run_id")),  # None for the base point
    sa.Column("meta", sa.JSON, nullable=False),  # label, model reference, training loss, export time
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("trajectory_id", "position", name="uq_trajectory_points_trajectory_position"),
)


def unique_keys(table: sa.Table) -> list[list[str]]:
    """Every key of ``table`` that identifies a row: the primary key and each unique constraint."""
    keys = [[c.name for c in table.primary_key.columns]]
    for con in table.constraints:
        if isinstance(con, sa.UniqueConstraint):
            keys.append([c.name for c in con.columns])
    keys += [[c.name] for c in table.columns if c.unique]
    out: list[list[str]] = []
    for k in keys:
        if k and k not in out:
            out.append(k)
    return out
