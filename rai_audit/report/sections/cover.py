"""The report's title and what it is: a comparison of model B with model A, or a single run."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.sections.base import Section, SectionContext


class Cover(BaseModel):
    comparison: bool
    title: str
    generated_at: str
    version: str
    comparison_id: Optional[str] = None
    model_a: Any = None
    model_b: Any = None


def build(ctx: SectionContext) -> Cover:
    r = ctx.report
    return Cover(comparison=r.comparison, title=r.title, generated_at=r.generated_at, version=r.tool.version,
                 comparison_id=r.comparison_id, model_a=r.runs["a"].model_reference,
                 model_b=r.runs["b"].model_reference if "b" in r.runs else None)


SECTION = Section("cover", Cover, build)
