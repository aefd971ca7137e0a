"""Page 1's gate box: how many rule rows passed, failed, were inconclusive or had too little data
(counted), the error budget and exit code, and every row that did not pass (listed)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.sections.base import Section, SectionContext


class GateBox(BaseModel):
    counts: dict[str, int]
    listed: list[dict[str, Any]]
    errors: Any = 0
    max_errors: Any = 0
    exit_code: Any = None
    min_items: Any = None
    min_clusters: Any = None


def build(ctx: SectionContext) -> Optional[GateBox]:
    h = ctx.report.headline
    if h.gate is None:
        return None
    g = h.gate
    return GateBox(counts=g.counts, listed=g.listed, errors=g.errors, max_errors=g.max_errors, exit_code=g.exit_code,
                   min_items=h.min_items, min_clusters=h.min_clusters)


SECTION = Section("gate", GateBox, build)
