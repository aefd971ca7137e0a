"""The summary's sentences: the gate's counts, how many rows changed significantly either way, and
the largest regressions."""

from __future__ import annotations

from pydantic import BaseModel

from rai_audit.report.sections.base import Section, SectionContext


class SummaryLines(BaseModel):
    lines: list[str]


def build(ctx: SectionContext) -> SummaryLines:
    return SummaryLines(lines=ctx.report.summary.lines)


SECTION = Section("summary", SummaryLines, build)
