"""Worst items, behind a content warning: per probe, the first few items where model B looks worst
(a comparison) or the run scores worst by its probe's per-item score (a single run), with the
prompt and the responses (escaped and truncated by each format; the JSON keeps them all)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rai_audit.report.formatting import num
from rai_audit.report.sections.base import Section, SectionContext

#: Items quoted per probe (the JSON report keeps them all).
SHOW_WORST = 3


class WorstItem(BaseModel):
    item_id: Any = None
    prompt: Any = None
    responses_a: list[Any]
    responses_b: list[Any]
    score: str  # "0.1000 → 0.9000" (A → B), the flip ("correct->incorrect"), or a single run's score


class ProbeWorst(BaseModel):
    probe: str
    items: list[WorstItem]
    n_items: int


class WorstItems(BaseModel):
    comparison: bool
    show: int
    probes: list[ProbeWorst]


def _score(w: dict[str, Any], comparison: bool) -> str:
    if not comparison:
        return num(w.get("value_a"))
    # a comparison's worst items are its flips (rai_audit.comparison): a score's rise, else the flip
    if w.get("max_toxicity_b") is not None:
        return f"{num(w.get('max_toxicity_a'))} → {num(w.get('max_toxicity_b'))}"
    return str(w.get("direction"))


def build(ctx: SectionContext) -> WorstItems:
    comparison = ctx.report.comparison
    probes = [ProbeWorst(probe=p["probe"], n_items=len(p["worst_items"]), items=[
        WorstItem(item_id=w.get("item_id"), prompt=w.get("prompt"), responses_a=list(w.get("responses_a") or []),
                  responses_b=list(w.get("responses_b") or []), score=_score(w, comparison))
        for w in p["worst_items"][:SHOW_WORST]]) for p in ctx.report.probes if p.get("worst_items")]
    return WorstItems(comparison=comparison, show=SHOW_WORST, probes=probes)


SECTION = Section("worst_items", WorstItems, build)
