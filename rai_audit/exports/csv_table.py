"""``--format csv``: the flat per-item tables (:mod:`rai_audit.exports.tables`) as CSV (UTF-8, a
header row, empty cells for missing values).

Text from the store (item ids, subgroup labels, error messages) is untrusted: a spreadsheet would
run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return) as a
formula, so such text cells get a leading apostrophe (``'=cmd``), OWASP's advice against CSV
injection; numbers are written as numbers. Parquet and JSON Lines keep text exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rai_audit.exports.output import table_paths, write_all
from rai_audit.exports.tables import tables

if TYPE_CHECKING:
    import pandas as pd

    from rai_audit.exports.target import ExportTarget
    from rai_audit.store.protocol import ResultsStore

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def guard_cell(value: Any) -> Any:
    """``'`` + the text for a text cell a spreadsheet would run as a formula; anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def guarded(df: pd.DataFrame) -> pd.DataFrame:
    from pandas.api.types import is_numeric_dtype

    out = df.copy()
    for col in out.columns:
        if not is_numeric_dtype(out[col].dtype):  # text (object or pandas' str dtype): numbers stay numbers
            out[col] = out[col].map(guard_cell)
    return out


def _write(df: pd.DataFrame, path: Path) -> None:
    guarded(df).to_csv(path, index=False, encoding="utf-8")


def write(target: ExportTarget, store: ResultsStore, output: Path) -> list[Path]:
    found = tables(store, target)
    return write_all(table_paths(output, target.stem, list(found), ".csv"), found, _write)
