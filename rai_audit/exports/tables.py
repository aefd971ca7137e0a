"""Flat per-item tables of runs and comparisons, for pandas (CSV, Parquet, JSON Lines).

A run's table has one row per item record: ``run_id``, ``model_reference``, ``probe``,
``item_id``, ``cluster``, ``error`` (the error message of an item that failed, else empty), then
``subgroup.<name>`` (the record's subgroup labels: ``subgroup.gender`` = ``female``) and
``outcome.<name>`` (the record's per-item outcomes, numbers: ``outcome.correct`` = 1.0), the
columns a comparison pairs. An error record has no outcomes: its outcome cells are empty, never 0.

A comparison's item table pairs the two runs' records by ``(probe, item_id)``: ``comparison_id``,
``probe``, ``item_id``, ``cluster``, the subgroup columns (an item property, taken from run A's
record, else B's), then ``a_run_id``, ``a_error``, ``a_outcome.<name>`` and the same for ``b_``.
Its diff table holds the comparison's rows (every metric, subgroup and per-item outcome, paired
B - A, with CI, p-values and MDE) with ``subset`` = ``all``, then its clean-only rows (items
overlapping neither model's training data) with ``subset`` = ``clean``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    import pandas as pd

    from rai_audit.comparison import Comparison
    from rai_audit.exports.target import ExportTarget
    from rai_audit.store.api import RunRecord
    from rai_audit.store.protocol import ResultsStore

BASE_COLUMNS = ("run_id", "model_reference", "probe", "item_id", "cluster", "error")
PAIR_COLUMNS = ("comparison_id", "probe", "item_id", "cluster")


def _label(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def run_item_rows(store: ResultsStore, run: RunRecord) -> list[dict[str, Any]]:
    """One dict per record of ``run``, probe by probe in the run's order, records in store order."""
    rows = []
    for probe in run.probes:
        for rec in store.records(run.run_id, probe):
            row: dict[str, Any] = {
                "run_id": run.run_id, "model_reference": run.model_reference, "probe": probe,
                "item_id": str(rec.get("item_id")), "cluster": _label(rec.get("cluster")),
                "error": _label(rec.get("error")),
            }
            for key, value in (rec.get("subgroups") or {}).items():
                row[f"subgroup.{key}"] = _label(value)
            if not rec.get("error"):
                for key, value in (rec.get("outcomes") or {}).items():
                    row[f"outcome.{key}"] = _number(value)
            rows.append(row)
    return rows


def _ordered(rows: Iterable[dict[str, Any]], first: Sequence[str], prefixes: Sequence[str]) -> list[str]:
    """``first``, then every other key in ``prefixes`` order, each group in order of appearance."""
    seen = list(dict.fromkeys(k for r in rows for k in r))
    out = list(first)
    for prefix in prefixes:
        out += [k for k in seen if k.startswith(prefix) and k not in out]
    return out + [k for k in seen if k not in out]


def frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=columns)


def run_items(store: ResultsStore, run: RunRecord) -> pd.DataFrame:
    rows = run_item_rows(store, run)
    return frame(rows, _ordered(rows, BASE_COLUMNS, ("subgroup.", "outcome.")))


def comparison_items(store: ResultsStore, comparison: Comparison, run_a: RunRecord, run_b: RunRecord) -> pd.DataFrame:
    sides = {"a": run_item_rows(store, run_a), "b": run_item_rows(store, run_b)}
    paired: dict[tuple[str, str], dict[str, Any]] = {}
    for side, rows in sides.items():
        for r in rows:
            row = paired.setdefault((r["probe"], r["item_id"]), {
                "comparison_id": comparison.comparison_id, "probe": r["probe"], "item_id": r["item_id"],
                "cluster": r["cluster"]})
            for key, value in r.items():
                if key.startswith("subgroup."):
                    row.setdefault(key, value)
            row[f"{side}_run_id"] = r["run_id"]
            row[f"{side}_error"] = r["error"]
            row.update({f"{side}_{k}": v for k, v in r.items() if k.startswith("outcome.")})
    rows = list(paired.values())
    columns = _ordered(rows, PAIR_COLUMNS, ("subgroup.", "a_run_id", "a_error", "a_outcome.", "b_run_id", "b_error", "b_outcome."))
    return frame(rows, columns)


def diff_rows(comparison: Comparison) -> pd.DataFrame:
    from rai_audit.comparison.model import DiffRow

    fields = list(DiffRow.model_fields)
    rows = []
    for p in comparison.probes:
        for subset, found in (("all", p.rows), ("clean", p.clean_rows)):
            for r in found:
                rows.append({"comparison_id": comparison.comparison_id, "subset": subset, **r.model_dump()})
    return frame(rows, ["comparison_id", "subset", *fields])


def tables(store: ResultsStore, target: ExportTarget) -> dict[str, pd.DataFrame]:
    """``{"items": ...}`` for a run; ``{"items": ..., "diff": ...}`` for a comparison."""
    if target.comparison is None:
        return {"items": run_items(store, target.runs[0])}
    a, b = target.runs
    return {"items": comparison_items(store, target.comparison, a, b), "diff": diff_rows(target.comparison)}
