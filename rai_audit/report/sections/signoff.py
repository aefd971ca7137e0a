"""Sign-off fields (prepared, reviewed, approved by; date, decision, notes) and how to verify the
file against the store it names."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.sections.base import Section, SectionContext


class Signoff(BaseModel):
    fields: dict[str, Any]
    store: Optional[str] = None


def build(ctx: SectionContext) -> Signoff:
    return Signoff(fields=ctx.report.signoff, store=ctx.report.headline.audited.store)


SECTION = Section("signoff", Signoff, build)
