"""The trajectory section: when the audited (tuned) model is the final point of a trajectory audit,
how each probe's headline metric moved from the base through the checkpoints (or mixture sizes)
to it: one plot (value with 95% CI band per point, the base's value, failing points marked), one
table (per point: its verdict against the base, and per probe the value [CI] and the change from
the base [CI]) and the trends (slope [CI] per unit, worsening or not). An end-point comparison
cannot say *when* a metric moved; this section does, compactly, after the results.

Stored (built once from the store with the report, kept in the JSON report under
``"trajectory"``): from ``build_report(..., trajectory=analysis)``, else from the store's
trajectory whose final point is the comparison's tuned run. Absent otherwise.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.formatting import ci_text, missing, num, signed
from rai_audit.report.sections.base import Section, SectionContext

AXIS_TITLE = {"step": "training step", "tasks": "number of mixture tasks"}
#: Where the points are, in words (the section's first sentence).
AXIS_PHRASE = {"step": "at checkpoints during the finetune", "tasks": "after tuning on growing mixtures of tasks"}


class TrajectoryCell(BaseModel):
    """One probe's headline metric at one point."""

    probe: str
    value: Optional[float] = None
    value_text: str  # "0.2500 [0.1200, 0.3800]"
    diff: Optional[float] = None
    diff_text: str  # "+0.1000 [+0.0200, +0.1800]"; "—" at the base


class TrajectoryPoint(BaseModel):
    position: int
    label: str
    verdict: str  # base | pass | fail | inconclusive | not gated
    train_loss: Optional[float] = None
    comparison_id: Optional[str] = None
    cells: list[TrajectoryCell]


class TrajectoryTrend(BaseModel):
    probe: str
    title: str
    metric: str
    slope_text: str  # "+0.0120 [+0.0030, +0.0210] per 1,000 steps"
    worsening: Optional[bool] = None
    n_points: int = 0


class TrajectoryPanel(BaseModel):
    """A probe's series for the plot (:func:`rai_audit.report.trajectory_chart.trajectory_plot`)."""

    title: str
    positions: list[int]
    values: list[Optional[float]]
    lows: list[Optional[float]]
    highs: list[Optional[float]]
    verdicts: list[str]
    base: Optional[float] = None


class TrajectorySection(BaseModel):
    trajectory_id: str
    axis: str
    axis_title: str
    axis_phrase: str
    base_run: str
    policy: Optional[str] = None
    verdict: Optional[str] = None  # the trajectory gate's verdict, when judged
    probes: list[TrajectoryTrend]  # the table's probe columns, in order (with each probe's trend)
    points: list[TrajectoryPoint]
    panels: list[TrajectoryPanel]
    warnings: list[str] = []

    def chart_uri(self) -> Optional[str]:
        """The plot as a ``data:image/svg+xml`` URI (drawn when rendered; None: nothing to draw)."""
        from rai_audit.report.trajectory_chart import trajectory_plot

        return trajectory_plot(self.panels, axis=self.axis, xlabel=self.axis_title)


def _num(v: Any) -> Optional[float]:
    return None if missing(v) else float(v)


def _value_text(h: Any) -> str:
    ci = ci_text(h.ci_low, h.ci_high, h.n)
    return num(h.value) + ("" if ci == "—" else " " + ci.replace("+", ""))


def _diff_text(h: Any) -> str:
    if missing(h.diff):
        return "—"
    ci = ci_text(h.diff_ci_low, h.diff_ci_high, h.n)
    return signed(h.diff) + ("" if ci == "—" else " " + ci)


def from_analysis(analysis: Any, titles: dict[str, str] | None = None) -> TrajectorySection:
    """The section of a :class:`~rai_audit.trajectory.model.TrajectoryAnalysis` (or its dict);
    ``titles``: probe name -> title (the probe's name where missing)."""
    from rai_audit.trajectory.model import TrajectoryAnalysis

    a = analysis if isinstance(analysis, TrajectoryAnalysis) else TrajectoryAnalysis.model_validate(analysis)
    titles = titles or {}
    base_pos = next((p.position for p in a.points if p.run_id == a.base_run), min(p.position for p in a.points))
    probes = list(dict.fromkeys(h.probe for h in a.headline))
    heads = {(h.probe, h.position): h for h in a.headline}
    trends = {t.probe: t for t in a.trends}

    def verdict(p: Any) -> str:
        return "base" if p.position == base_pos else (p.verdict or "not gated")

    points = [TrajectoryPoint(
        position=p.position, label=p.label, verdict=verdict(p), train_loss=_num(p.train_loss), comparison_id=p.comparison_id,
        cells=[TrajectoryCell(probe=pr, value=_num(h.value), value_text=_value_text(h),
                              diff=None if p.position == base_pos else _num(h.diff),
                              diff_text="—" if p.position == base_pos else _diff_text(h))
               if (h := heads.get((pr, p.position))) is not None else TrajectoryCell(probe=pr, value_text="—", diff_text="—")
               for pr in probes],
    ) for p in sorted(a.points, key=lambda p: p.position)]
    table = []
    for pr in probes:
        t = trends.get(pr)
        metric = next(h.metric for h in a.headline if h.probe == pr)
        if t is None or missing(t.slope):
            slope = "—"
        else:
            ci = ci_text(t.ci_low, t.ci_high, t.n_items)
            slope = signed(t.slope) + ("" if ci == "—" else " " + ci) + (f" {t.per}" if t.per else "")
        table.append(TrajectoryTrend(probe=pr, title=str(titles.get(pr) or pr), metric=metric, slope_text=slope,
                                     worsening=t.worsening if t else None, n_points=t.n_points if t else 0))
    panels = []
    for tr in table:
        series = [(p, heads.get((tr.probe, p.position))) for p in sorted(a.points, key=lambda p: p.position)]
        series = [(p, h) for p, h in series if h is not None]
        base = next((_num(h.value) for p, h in series if p.position == base_pos), None)
        panels.append(TrajectoryPanel(
            title=f"{tr.title}: {tr.metric}", positions=[p.position for p, _ in series], values=[_num(h.value) for _, h in series],
            lows=[_num(h.ci_low) for _, h in series], highs=[_num(h.ci_high) for _, h in series],
            verdicts=[verdict(p) for p, _ in series], base=base))
    return TrajectorySection(
        trajectory_id=a.trajectory_id, axis=a.axis, axis_title=AXIS_TITLE.get(a.axis, a.axis),
        axis_phrase=AXIS_PHRASE.get(a.axis, f"along {a.axis}"), base_run=a.base_run,
        policy=str(a.policy.get("name")) if a.policy and a.policy.get("name") else None,
        verdict=str(a.gate.get("verdict")) if a.gate and a.gate.get("verdict") else None,
        probes=table, points=points, panels=panels, warnings=[str(w) for w in a.warnings])


def _ending_at(store: Any, run_id: str) -> Optional[str]:
    """The newest trajectory whose final point is ``run_id`` (None: the run ends none)."""
    find = getattr(store, "trajectories_of_run", None)
    if find is None:  # a store without trajectories
        return None
    for rec in reversed(find(run_id)):
        points = store.trajectory_points(rec.trajectory_id)
        if len(points) > 1 and points[-1].run_id == run_id:
            return rec.trajectory_id
    return None


def build(ctx: SectionContext) -> Optional[TrajectorySection]:
    report = ctx.report
    analysis = report.supplied("trajectory")
    if analysis is None and ctx.store is not None and report.comparison:
        tid = _ending_at(ctx.store, report.runs["b"].run_id)
        if tid is None:
            return None
        from rai_audit.trajectory.analysis import analyse_trajectory

        settings = report.comparison_settings or {}
        # the comparison's own settings: the checkpoints' saved comparisons are reused, not recomputed
        analysis = analyse_trajectory(ctx.store, tid, n_boot=int(settings.get("n_boot") or 1000),
                                      seed=int(settings.get("seed") or 0), probe_loader=report.supplied("probe_loader"))
    if analysis is None:
        return None
    return from_analysis(analysis, {str(p["probe"]): str(p.get("title") or p["probe"]) for p in report.probes})


SECTION = Section("trajectory", TrajectorySection, build, stored=True)
