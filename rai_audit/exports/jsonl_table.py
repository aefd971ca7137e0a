"""``--format jsonl``: the flat per-item tables (:mod:`rai_audit.exports.tables`) as JSON Lines,
one object per row, missing values as ``null`` (``pandas.read_json(path, lines=True)``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rai_audit.exports.output import table_paths, write_all
from rai_audit.exports.tables import tables

if TYPE_CHECKING:
    import pandas as pd

    from rai_audit.exports.target import ExportTarget
    from rai_audit.store.protocol import ResultsStore


def _write(df: pd.DataFrame, path: Path) -> None:
    df.to_json(path, orient="records", lines=True, force_ascii=False)


def write(target: ExportTarget, store: ResultsStore, output: Path) -> list[Path]:
    found = tables(store, target)
    return write_all(table_paths(output, target.stem, list(found), ".jsonl"), found, _write)
