"""Training-data overlap (contamination): per probe and run that recorded training data, the items
checked, overlapping and too short to check; a comparison's clean-only rows beside the full ones
for contaminated probes; and a few overlapping items with their matching n-gram. Absent when no
run recorded training data (page 1 says "not checked")."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.contamination import SHOW_CONTAMINATION_EXAMPLES
from rai_audit.report.data import ContaminationDetail, Fingerprint
from rai_audit.report.sections.base import Section, SectionContext


class ProbeOverlap(BaseModel):
    probe: str
    title: Any = None
    detail: ContaminationDetail


class Contamination(BaseModel):
    comparison: bool
    show: int
    fingerprints: list[Fingerprint]
    probes: list[ProbeOverlap]

    @property
    def contaminated(self) -> list[ProbeOverlap]:
        return [p for p in self.probes if p.detail.contaminated]


def build(ctx: SectionContext) -> Optional[Contamination]:
    probes = [ProbeOverlap(probe=p["probe"], title=p.get("title"), detail=p["contamination_detail"])
              for p in ctx.report.probes if p.get("contamination_detail")]
    if not probes:
        return None
    return Contamination(comparison=ctx.report.comparison, show=SHOW_CONTAMINATION_EXAMPLES,
                         fingerprints=ctx.report.headline.contamination.fingerprints, probes=probes)


SECTION = Section("contamination", Contamination, build)
