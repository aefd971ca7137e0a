"""Results by probe: every overall metric of every probe (a comparison's A, B, change with CI,
p-values, significance and MDE; a single run's value with CI), with a forest plot of the headline
rows. The Markdown card also lists each probe's largest subgroup changes and its training-data
overlap here (the HTML/PDF has them in their own sections)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.data import ContaminationDetail, SubgroupDetail
from rai_audit.report.formatting import ci_text
from rai_audit.report.sections.base import Section, SectionContext


class ForestChart(BaseModel):
    """A forest plot's data (:func:`rai_audit.report.charts.forest_plot`'s arguments)."""

    labels: list[str]
    values: list[Optional[float]]
    lows: list[Optional[float]]
    highs: list[Optional[float]]
    title: str
    xlabel: str
    reference: Optional[float] = 0.0
    highlight: Optional[list[bool]] = None
    width: float = 7.5
    row_height: float = 0.2


class ResultProbe(BaseModel):
    probe: str
    title: Any = None
    citation: Any = None
    n_pairs: Any = None
    errors_a: Any = None
    errors_b: Any = None
    headline: Any = None
    warnings: list[Any]
    #: A comparison's overall difference rows (its DiffRow shape plus the report's fields).
    rows: list[dict[str, Any]]
    #: A single run's stored metrics, overall and per subgroup.
    metrics: list[dict[str, Any]]
    subgroups: Optional[SubgroupDetail] = None
    contamination: Optional[ContaminationDetail] = None


class Results(BaseModel):
    comparison: bool
    correction: Any = None
    alpha: Any = None
    power: Any = None
    chart: Optional[ForestChart] = None
    probes: list[ResultProbe]


def headline_chart(ctx: SectionContext) -> Optional[ForestChart]:
    """One forest plot of the headline rows: per probe, the change B - A of its headline metric
    with its 95% CI (comparison), or the headline value with its CI (single run)."""
    rows = ctx.report.headline.rows
    if not rows:
        return None
    labels = [f"{r.probe}: {r.metric or '—'}" for r in rows]
    if ctx.report.comparison:
        na = [ci_text(r.ci_low, r.ci_high, r.n, r.clusters).startswith("n/a") for r in rows]
        return ForestChart(labels=labels, values=[r.diff for r in rows], lows=[None if x else r.ci_low for r, x in zip(rows, na)],
                           highs=[None if x else r.ci_high for r, x in zip(rows, na)],
                           title="Headline metrics: change B − A (95% CI)", xlabel="B − A",
                           highlight=[r.verdict == "fail" or bool(r.significant and r.worse) for r in rows])
    return ForestChart(labels=labels, values=[r.value_a for r in rows], lows=[r.ci_low for r in rows], highs=[r.ci_high for r in rows],
                       title="Headline metrics (95% CI)", xlabel="value", reference=None)


def build(ctx: SectionContext) -> Results:
    r = ctx.report
    probes = [ResultProbe(
        probe=p["probe"], title=p.get("title"), citation=p.get("citation"), n_pairs=p.get("n_pairs"), errors_a=p.get("errors_a"),
        errors_b=p.get("errors_b"), headline=p.get("headline"), warnings=p.get("warnings") or [], rows=p.get("overall_rows") or [],
        metrics=p.get("metrics") or [], subgroups=p.get("subgroup_detail"), contamination=p.get("contamination_detail"),
    ) for p in r.probes]
    return Results(comparison=r.comparison, correction=r.comparison_settings.get("correction"), alpha=r.headline.alpha,
                   power=r.headline.power, chart=headline_chart(ctx), probes=probes)


SECTION = Section("results", Results, build)
