"""Page 1's table: one row per probe with its headline metric (A, B, change with 95% CI, MDE and
gate verdict; a single run's value with its CI), and what the contamination flags do not say."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.data import HeadlineRow
from rai_audit.report.sections.base import Section, SectionContext


class HeadlineTable(BaseModel):
    comparison: bool
    rows: list[HeadlineRow]
    alpha: Any = None
    power: Any = None
    small_sample: bool
    contamination_note: Optional[str] = None


def build(ctx: SectionContext) -> HeadlineTable:
    h = ctx.report.headline
    return HeadlineTable(comparison=ctx.report.comparison, rows=h.rows, alpha=h.alpha, power=h.power,
                         small_sample=bool(h.small_sample_warning), contamination_note=h.contamination.note)


SECTION = Section("headline_table", HeadlineTable, build)
