"""Methodology: the paired statistics, the comparison's settings, each metric's definition with
its probe's citation, decoding, seeds and chat-template mode per model, and the scorer (name,
version, checkpoint, threshold and operator)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rai_audit.report.data import MetricDefinition
from rai_audit.report.sections.base import Section, SectionContext


class RunSettings(BaseModel):
    model: str
    decoding: Any = None
    seed: Any = None
    chat_template: Any = None


class Scorer(BaseModel):
    model: str
    scorer: Any = None  # the run's scorer record (name, version, checkpoint_sha256, threshold, operator, primary); None: none


class MethodologySection(BaseModel):
    statistics: list[str]
    settings: dict[str, Any]
    metrics: list[MetricDefinition]
    runs: list[RunSettings]
    scorers: list[Scorer]


def build(ctx: SectionContext) -> MethodologySection:
    m = ctx.report.methodology
    return MethodologySection(
        statistics=m.statistics, settings=ctx.report.comparison_settings, metrics=m.metrics,
        runs=[RunSettings(model=k, decoding=m.decoding.get(k), seed=m.seeds.get(k), chat_template=m.chat_template.get(k))
              for k in ctx.report.runs],
        scorers=[Scorer(model=k, scorer=s) for k, s in m.scorers.items()],
    )


SECTION = Section("methodology", MethodologySection, build)
