"""The Items page's table: one row per item present in both runs (prompt, both responses, scores,
parse outcome, subgroup, flip), and its search and filters.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from dashboards.numbers import number


def _first(values: Any) -> str:
    if isinstance(values, list):
        return "\n---\n".join(str(v) for v in values)
    return "" if values is None else str(values)


def items_frame(records_a: Sequence[Mapping[str, Any]], records_b: Sequence[Mapping[str, Any]],
                flipped: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per item present in both runs: prompt, both responses, scores, parse outcome,
    subgroup and flip (``flipped``: item id -> flip description)."""
    by_b = {r["item_id"]: r for r in records_b}
    flipped = flipped or {}
    rows = []
    for ra in records_a:
        rb = by_b.get(ra["item_id"])
        if rb is None:
            continue
        subs = ra.get("subgroups") or {}
        rows.append({
            "item_id": str(ra["item_id"]),
            "subgroup": ", ".join(f"{k}={v}" for k, v in sorted(subs.items())),
            "prompt": "" if ra.get("prompt") is None else str(ra.get("prompt")),
            "response A": _first(ra.get("responses", ra.get("response"))),
            "response B": _first(rb.get("responses", rb.get("response"))),
            "max toxicity A": number(ra.get("max_toxicity")),
            "max toxicity B": number(rb.get("max_toxicity")),
            "parsed A": None if ra.get("parsed", ra.get("choice")) is None else str(ra.get("parsed", ra.get("choice"))),
            "parsed B": None if rb.get("parsed", rb.get("choice")) is None else str(rb.get("parsed", rb.get("choice"))),
            "outcomes A": ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in (ra.get("outcomes") or {}).items()),
            "outcomes B": ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in (rb.get("outcomes") or {}).items()),
            "error A": ra.get("error") or "",
            "error B": rb.get("error") or "",
            "flip": flipped.get(str(ra["item_id"]), ""),
        })
    cols = ["item_id", "subgroup", "prompt", "response A", "response B", "max toxicity A", "max toxicity B", "parsed A",
            "parsed B", "outcomes A", "outcomes B", "error A", "error B", "flip"]
    return pd.DataFrame(rows, columns=cols)


def filter_items(frame: pd.DataFrame, search: str = "", subgroups: Iterable[str] = (), flipped_only: bool = False,
                 most_toxic_first: bool = False) -> pd.DataFrame:
    out = frame
    if search:
        s = search.lower()
        hay = (out["item_id"] + "\n" + out["prompt"] + "\n" + out["response A"] + "\n" + out["response B"]).str.lower()
        out = out[hay.str.contains(s, regex=False)]
    subgroups = set(subgroups)
    if subgroups:
        out = out[out["subgroup"].map(lambda v: bool(subgroups.intersection(p.strip() for p in v.split(","))))]
    if flipped_only:
        out = out[out["flip"] != ""]
    if most_toxic_first:
        key = out[["max toxicity A", "max toxicity B"]].max(axis=1)
        out = out.assign(_k=key).sort_values("_k", ascending=False, na_position="last").drop(columns="_k")
    return out
