"""Appendix A: subgroups. A comparison's subgroup rows whose value changed (significant first, then
by |B - A|, at most :data:`SHOW_SUBGROUPS` per probe, the rest counted); a single run's subgroup
metrics with their CIs."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.data import SubgroupDetail
from rai_audit.report.headline import SHOW_SUBGROUPS
from rai_audit.report.sections.base import Section, SectionContext


class ProbeSubgroups(BaseModel):
    probe: str
    title: Any = None
    detail: Optional[SubgroupDetail] = None  # a comparison's
    metrics: list[dict[str, Any]]  # a single run's subgroup metrics


class Subgroups(BaseModel):
    comparison: bool
    show: int
    correction: Any = None
    min_items: Any = None
    probes: list[ProbeSubgroups]


def build(ctx: SectionContext) -> Subgroups:
    r = ctx.report
    probes = [ProbeSubgroups(probe=p["probe"], title=p.get("title"), detail=p.get("subgroup_detail"),
                             metrics=[m for m in p.get("metrics") or [] if m.get("subgroup")]) for p in r.probes]
    return Subgroups(comparison=r.comparison, show=SHOW_SUBGROUPS, correction=r.comparison_settings.get("correction"),
                     min_items=r.headline.min_items, probes=probes)


SECTION = Section("subgroups", Subgroups, build)
