"""Appendix B: the gate's rule rows that passed (page 1 counts them and lists the others)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.sections.base import Section, SectionContext


class GateRows(BaseModel):
    label: Any = None
    n_pass: int
    n_insufficient: int
    passed: list[dict[str, Any]]


def build(ctx: SectionContext) -> Optional[GateRows]:
    r = ctx.report
    if not r.gate or r.headline.gate is None:
        return None
    counts = r.headline.gate.counts
    return GateRows(label=r.headline.policy.label, n_pass=counts.get("pass") or 0,
                    n_insufficient=(counts.get("insufficient") or 0) + (counts.get("skipped") or 0),
                    passed=[g for g in r.gate.get("rows") or [] if g.get("verdict") == "pass"])


SECTION = Section("gate_rows", GateRows, build)
