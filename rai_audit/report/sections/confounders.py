"""Confounders per probe and model: records, errors, parse rate, empty-output rate, refusal rate
and output length, so that a "safer" model that only refuses more, answers less or writes less
shows up as such."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rai_audit.report.sections.base import Section, SectionContext


class ConfounderRow(BaseModel):
    probe: str
    model: str
    first: bool  # the probe's first row (the HTML names the probe once)
    n_records: Any = None
    n_errors: Any = None
    n_texts: Any = None
    parse_rate: Any = None
    empty_rate: Any = None
    refusal_rate: Any = None
    mean_length_chars: Any = None
    mean_length_words: Any = None


class Confounders(BaseModel):
    refusal_method: Any = None
    refusal_limits: Any = None
    rows: list[ConfounderRow]


def build(ctx: SectionContext) -> Confounders:
    rows = []
    for p in ctx.report.probes:
        for i, (key, c) in enumerate((p.get("confounders") or {}).items()):
            rows.append(ConfounderRow(probe=p["probe"], model=key, first=i == 0, **{k: c.get(k) for k in ConfounderRow.model_fields
                                                                                    if k not in ("probe", "model", "first")}))
    detector = ctx.report.methodology.refusal_detector
    return Confounders(refusal_method=detector.get("method"), refusal_limits=detector.get("limits"), rows=rows)


SECTION = Section("confounders", Confounders, build)
