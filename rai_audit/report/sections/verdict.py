"""The verdict under its named policy (a what-if labelled as such), the small-sample warning, the
contaminated probes, and the comparison's own warnings: the top of page 1."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.data import ContaminationFlag, Policy
from rai_audit.report.sections.base import Section, SectionContext


class Verdict(BaseModel):
    comparison: bool
    verdict: str
    policy: Policy
    small_sample_warning: Optional[str] = None
    contamination_flags: list[ContaminationFlag]
    warnings: list[Any]


def build(ctx: SectionContext) -> Verdict:
    r = ctx.report
    h = r.headline
    return Verdict(comparison=r.comparison, verdict=r.summary.verdict, policy=h.policy, small_sample_warning=h.small_sample_warning,
                   contamination_flags=h.contamination.flags, warnings=r.comparison_warnings)


SECTION = Section("verdict", Verdict, build)
