"""What was audited: the models (reference, weights sha256, run), the gate policy with its minimum
support, and the store the results come from."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.data import AuditedModel, Policy
from rai_audit.report.sections.base import Section, SectionContext


class AuditedSection(BaseModel):
    models: list[AuditedModel]
    policy: Policy
    min_items: Any = None
    min_clusters: Any = None
    store: Optional[str] = None


def build(ctx: SectionContext) -> AuditedSection:
    h = ctx.report.headline
    return AuditedSection(models=h.audited.models, policy=h.policy, min_items=h.min_items, min_clusters=h.min_clusters,
                          store=h.audited.store)


SECTION = Section("audited", AuditedSection, build)
