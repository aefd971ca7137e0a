"""``rai-audit db``: inspect and migrate the results store's schema."""

from __future__ import annotations

from typing import Optional

import typer

from rai_audit.cli.app import app
from rai_audit.cli.common import DB_HELP

db_app = typer.Typer(help="Inspect and migrate the results store schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Migrate the store's schema to this version of rai-audit (back it up first).

    Example: rai-audit db upgrade --db postgresql+psycopg://audit@db/rai
    """
    from rai_audit.store import migrate

    before, after = migrate.upgrade(db)
    typer.echo(f"schema {before or 'empty'} -> {after}")


@db_app.command("current")
def db_current(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Print the store's URL and schema revision.

    Example: rai-audit db current
    """
    from rai_audit.store import migrate
    from rai_audit.store.engine import display_url, resolve_url

    url = resolve_url(db)
    rev = migrate.current_revision(url)
    typer.echo(f"{display_url(url)}\nschema {rev or 'empty'} (this rai-audit expects {migrate.head_revision()})")
