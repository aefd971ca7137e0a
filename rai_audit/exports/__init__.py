"""``rai-audit export``: a run or a comparison in formats other tools read (docs/reports.md,
"Exports").

* ``lm-eval`` (:mod:`.lm_eval`): lm-evaluation-harness's results JSON (``results``, ``configs``,
  ``versions``, ``n-shot``, ``higher_is_better``, ``n-samples``, ``config`` and its provenance
  keys) and one ``samples_<task>_<date>.jsonl`` per probe, laid out as lm-eval's ``--output_path``
  lays them out; a comparison writes both runs.
* ``csv`` / ``parquet`` / ``jsonl`` (:mod:`.csv_table`, :mod:`.parquet_table`, :mod:`.jsonl_table`):
  flat per-item tables for pandas, one row per item (:mod:`.tables`); a comparison gives both runs'
  items side by side (``a_`` / ``b_`` columns) and a second table of its paired difference rows.

Export only reads the store. Every input is checked (format, target, output path) before the
first file is written; a problem is a :class:`~rai_audit.errors.UserError` (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rai_audit.errors import UserError

if TYPE_CHECKING:
    from rai_audit.store.protocol import ResultsStore

#: Format name -> the module that writes it (each module has ``write(target, store, output)``).
FORMATS = {
    "lm-eval": "rai_audit.exports.lm_eval",
    "csv": "rai_audit.exports.csv_table",
    "parquet": "rai_audit.exports.parquet_table",
    "jsonl": "rai_audit.exports.jsonl_table",
}
#: Where files go without ``--output``.
DEFAULT_OUTPUT = "rai-audit-out/exports"


def check_format(fmt: str) -> str:
    name = (fmt or "").strip().lower()
    if name not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r}. Use one of: {', '.join(FORMATS)}.")
    return name


def export(store: ResultsStore, target: str, fmt: str, output: str | Path | None = None) -> list[Path]:
    """Write ``target`` (a run or comparison reference) as ``fmt`` under ``output``; the paths written."""
    import importlib

    from rai_audit.exports.target import resolve_target

    name = check_format(fmt)
    resolved = resolve_target(store, target)
    module = importlib.import_module(FORMATS[name])
    return module.write(resolved, store, Path(output or DEFAULT_OUTPUT))
