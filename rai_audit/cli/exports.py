"""``rai-audit export``: a run or a comparison as lm-evaluation-harness output or as flat
per-item tables (CSV, Parquet, JSON Lines) for pandas (:mod:`rai_audit.exports`)."""

from __future__ import annotations

from typing import Optional

import typer

from rai_audit.cli.app import app
from rai_audit.cli.common import DB_HELP, open_existing_store


@app.command("export")
def export_command(
    target: str = typer.Argument(..., help="A run or a comparison: its id, a unique prefix, or 'latest', written run:REF or comparison:REF when it could be either (run:latest, comparison:latest)."),
    fmt: str = typer.Option(..., "--format", "-f", help="lm-eval (lm-evaluation-harness results JSON + samples_<probe>_<date>.jsonl), csv, parquet (needs pyarrow) or jsonl: one row per item; a comparison adds its paired difference rows."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Folder to write into (default rai-audit-out/exports), or a file with the format's suffix (x.csv; a comparison's diff table goes beside it as x.diff.csv); lm-eval: as lm-eval's --output_path (a folder gets <model>/results_<date>.json)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Export a run or a comparison: lm-evaluation-harness results, or per-item CSV/Parquet/JSONL tables.

    Tables have one row per item (outcomes, subgroups, error); a comparison pairs both runs' items (a_/b_ columns) and adds its difference rows. CSV text cells that start with = + - @ get a leading apostrophe so spreadsheets do not run them. Exit 2 on a bad target, format or path (docs/reports.md, "Exports").

    Example: rai-audit export comparison:latest --format csv --output exports/
    """
    from rai_audit.exports import check_format, export

    name = check_format(fmt)  # a bad format is reported before the store is opened
    for path in export(open_existing_store(db), target, name, output):
        typer.echo(f"{name:<8} {path}")
