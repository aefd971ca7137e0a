"""``--format parquet``: the flat per-item tables (:mod:`rai_audit.exports.tables`) as Parquet
files (``pandas.read_parquet``). Needs pyarrow (``pip install 'rai-audit[parquet]'``; the
``datasets`` dependency usually brings it); without it the export stops before writing, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rai_audit.errors import UserError
from rai_audit.exports.output import table_paths, write_all
from rai_audit.exports.tables import tables

if TYPE_CHECKING:
    import pandas as pd

    from rai_audit.exports.target import ExportTarget
    from rai_audit.store.protocol import ResultsStore


def require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise UserError(f"--format parquet needs pyarrow, which is not installed ({e}). Install it with: "
                        "pip install 'rai-audit[parquet]' (or use --format csv or jsonl).") from None


def _write(df: pd.DataFrame, path: Path) -> None:
    df.to_parquet(path, index=False, engine="pyarrow")


def write(target: ExportTarget, store: ResultsStore, output: Path) -> list[Path]:
    require_pyarrow()
    found = tables(store, target)
    return write_all(table_paths(output, target.stem, list(found), ".parquet"), found, _write)
