"""A map from the report's sections to the items of EU AI Act Annex XI and the NIST AI RMF
"Measure" function they inform (a navigation aid, not legal advice)."""

from __future__ import annotations

from rai_audit.report.data import Compliance
from rai_audit.report.sections.base import Section, SectionContext


def build(ctx: SectionContext) -> Compliance:
    return ctx.report.compliance


SECTION = Section("compliance", Compliance, build)
