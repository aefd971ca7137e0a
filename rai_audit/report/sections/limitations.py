"""Known limitations: of toxicity classifiers, of the benchmarks' validity, of what a benchmark
result says, of significance tests, of the refusal detector; and the comparison's own warnings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rai_audit.report.sections.base import Section, SectionContext


class Limitations(BaseModel):
    lines: list[Any]


def build(ctx: SectionContext) -> Limitations:
    return Limitations(lines=ctx.report.limitations)


SECTION = Section("limitations", Limitations, build)
