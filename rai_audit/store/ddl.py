"""The append-only rule as database DDL, for SQLite and PostgreSQL.

The store never updates or deletes a result row: a correction is a new row (docs/architecture.md, "The nouns").
The rule is enforced by the database itself rather than by convention, so a bug, a manual
``sqlite3`` session or a dashboard with write access cannot rewrite history:

- SQLite: ``BEFORE UPDATE`` and ``BEFORE DELETE`` triggers per table that
  ``RAISE(ABORT, 'rai-audit: <table> is append-only')`` (surfaces as an IntegrityError).
- PostgreSQL: one plpgsql trigger function raising the same message with SQLSTATE 23001
  (``restrict_violation``, also an IntegrityError), attached ``BEFORE UPDATE OR DELETE ... FOR
  EACH ROW`` and ``BEFORE TRUNCATE ... FOR EACH STATEMENT`` to each table.

``INSERT ... ON CONFLICT DO NOTHING`` never fires an UPDATE trigger, so insert-or-ignore writes of
content-addressed rows are unaffected.

SQLite's ``INSERT OR REPLACE`` (and ``REPLACE INTO``) resolves a key conflict by deleting the old
row *without* firing DELETE triggers (unless the connection set ``recursive_triggers``, which a
raw ``sqlite3`` session does not). So each SQLite table also gets a ``BEFORE INSERT`` trigger
that aborts an insert whose key (primary key or any unique key) already exists
(:func:`create_insert_guard_sql`); the store's own insert-or-ignore writes on SQLite therefore
insert only keys that do not exist (``INSERT ... SELECT ... WHERE NOT EXISTS``) and never reach
it. PostgreSQL has no REPLACE; its ``ON CONFLICT DO UPDATE`` fires the UPDATE trigger above. Migrations call these functions for the tables they
create; a later migration that must rewrite rows drops and recreates the triggers around it.
"""

from __future__ import annotations

PG_FUNCTION = "rai_audit_append_only"


def append_only_message(table: str) -> str:
    return f"rai-audit: {table} is append-only"


def create_function_sql(dialect: str) -> list[str]:
    """Statements to run once before :func:`create_triggers_sql` (PostgreSQL only)."""
    if dialect != "postgresql":
        return []
    return [
        f"""
        CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'rai-audit: % is append-only', TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation',
                      HINT = 'rai-audit never changes a stored result; write a new row instead.';
        END
        $$
        """
    ]


def create_triggers_sql(dialect: str, table: str) -> list[str]:
    if dialect == "sqlite":
        msg = append_only_message(table).replace("'", "''")
        return [
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{msg}'); END",
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{msg}'); END",
        ]
    if dialect == "postgresql":
        return [
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()",
        ]
    raise ValueError(f"rai-audit supports SQLite and PostgreSQL stores, not {dialect!r}")


def key_condition(table: str, keys: list[list[str]], new: str = "NEW") -> str:
    """SQL that is true when a row of ``table`` has the same value in any of ``keys`` (each a
    list of columns) as ``new`` (the trigger's NEW row, or a bind-parameter prefix)."""
    parts = []
    for cols in keys:
        same = " AND ".join(f"{table}.{c} = {new}.{c}" if new == "NEW" else f"{table}.{c} = :{c}" for c in cols)
        parts.append(f"({same})")
    return " OR ".join(parts)


def create_insert_guard_sql(dialect: str, table: str, keys: list[list[str]]) -> list[str]:
    """SQLite: refuse an insert whose key exists (what ``INSERT OR REPLACE`` would overwrite)."""
    if dialect != "sqlite" or not keys:
        return []
    msg = f"{append_only_message(table)}: a row with this key exists (INSERT OR REPLACE is refused)".replace("'", "''")
    return [
        f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {key_condition(table, keys)}) "
        f"BEGIN SELECT RAISE(ABORT, '{msg}'); END"
    ]


def drop_insert_guard_sql(dialect: str, table: str) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {table}_no_replace"] if dialect == "sqlite" else []


def drop_triggers_sql(dialect: str, table: str) -> list[str]:
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {table}_no_update", f"DROP TRIGGER IF EXISTS {table}_no_delete"]
    if dialect == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        ]
    raise ValueError(f"rai-audit supports SQLite and PostgreSQL stores, not {dialect!r}")


def drop_function_sql(dialect: str) -> list[str]:
    return [f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()"] if dialect == "postgresql" else []
