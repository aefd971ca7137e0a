"""Item flips of a comparison: per probe, how many items changed their outcome between A and B,
each way (a single run has none)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.sections.base import Section, SectionContext


class ProbeFlips(BaseModel):
    probe: str
    counts: dict[str, Any]


class Flips(BaseModel):
    probes: list[ProbeFlips]


def build(ctx: SectionContext) -> Optional[Flips]:
    if not ctx.report.comparison:
        return None
    return Flips(probes=[ProbeFlips(probe=p["probe"], counts=p["flip_counts"]) for p in ctx.report.probes if p.get("flip_counts")])


SECTION = Section("flips", Flips, build)
