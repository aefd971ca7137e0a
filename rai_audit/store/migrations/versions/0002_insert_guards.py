"""SQLite: refuse INSERT OR REPLACE on result tables (a BEFORE INSERT trigger per table that
aborts an insert whose key exists; see ``rai_audit.store.ddl``). PostgreSQL needs nothing: it has
no REPLACE, and ON CONFLICT DO UPDATE fires the append-only UPDATE trigger of 0001.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

The keys are written out here (not read from ``rai_audit.store.schema`` at run time) so that this
migration stays what it was when later ones change the schema.
"""

from __future__ import annotations

from alembic import op

from rai_audit.store import ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

KEYS: dict[str, list[list[str]]] = {
    "models": [["model_id"]],
    "datasets": [["dataset_id"]],
    "items": [["probe", "dataset_id", "item_id"]],
    "runs": [["seq"], ["run_id"]],
    "run_events": [["seq"]],
    "responses": [["key"]],
    "scores": [["key"]],
    "records": [["seq"], ["run_id", "probe", "item_id"]],
    "metrics": [["seq"], ["run_id", "probe", "name", "subgroup"]],
    "artifacts": [["seq"]],
    "comparisons": [["seq"], ["comparison_id"]],
    "audit_locks": [["seq"]],
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, keys in KEYS.items():
        for stmt in ddl.create_insert_guard_sql(dialect, table, keys):
            op.execute(stmt)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in KEYS:
        for stmt in ddl.drop_insert_guard_sql(dialect, table):
            op.execute(stmt)
