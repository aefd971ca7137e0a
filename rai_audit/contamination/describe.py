"""One wording of a probe's contamination for every place that shows it (CLI, gate, reports)."""

from __future__ import annotations

from typing import Any, Mapping

NOT_CHECKED = ("contamination not checked: neither run recorded its model's training data "
               "(models from `rai-audit finetune` carry it; otherwise pass --training-data)")


def overlap_sentence(side: str, found: Mapping[str, Any]) -> str:
    """E.g. "50 of 77 checked items (64.9%) overlap run B's training data; 3 too short to check"."""
    checked, over = int(found.get("checked") or 0), len(found.get("overlapping") or [])
    short = len(found.get("unchecked") or [])
    if not checked:
        return f"no item long enough to check against run {side.upper()}'s training data ({short} too short)"
    text = f"{over} of {checked} checked items ({over / checked:.1%}) overlap run {side.upper()}'s training data"
    return text + (f"; {short} too short to check" if short else "")
