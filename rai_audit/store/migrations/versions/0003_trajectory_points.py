"""Trajectories: ``trajectory_points`` links each probe run of a trajectory audit to its axis
position (training step or number of mixture tasks) and to the finetune run that made its model;
append-only with the SQLite insert guard, like every result table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Written out in full (not generated from ``rai_audit.store.schema`` at run time) so that this
migration stays what it was when later ones change the schema.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rai_audit.store import ddl

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
KEYS = [["seq"], ["trajectory_id", "position"]]


def upgrade() -> None:
    op.create_table(
        "trajectory_points",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("trajectory_id", sa.String(64), nullable=False),
        sa.Column("audit_id", sa.Text),
        sa.Column("axis", sa.String(16), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False),
        sa.Column("finetune_run", sa.String(32), sa.ForeignKey("runs.run_id")),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("trajectory_id", "position", name="uq_trajectory_points_trajectory_position"),
    )
    op.create_index("ix_trajectory_points_trajectory_id", "trajectory_points", ["trajectory_id"])
    op.create_index("ix_trajectory_points_audit_id", "trajectory_points", ["audit_id"])
    op.create_index("ix_trajectory_points_run_id", "trajectory_points", ["run_id"])
    dialect = op.get_bind().dialect.name
    for stmt in ddl.create_triggers_sql(dialect, "trajectory_points"):
        op.execute(stmt)
    for stmt in ddl.create_insert_guard_sql(dialect, "trajectory_points", KEYS):
        op.execute(stmt)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for stmt in ddl.drop_insert_guard_sql(dialect, "trajectory_points"):
        op.execute(stmt)
    for stmt in ddl.drop_triggers_sql(dialect, "trajectory_points"):
        op.execute(stmt)
    op.drop_table("trajectory_points")
