"""The statistics of a trajectory: every checkpoint paired with the base, corrected jointly, and
the headline metrics' trends along the axis (docs/metrics.md, "Trajectories").

* **Per checkpoint**: ``compare_runs(base, checkpoint)``, exactly the comparison ``rai-audit
  compare`` makes (same items, paired, cluster bootstrap), saved in the store unless one with the
  same settings is already there (comparison ids are content hashes, so it is found, not
  recomputed), and judged by the gate policy as ``rai-audit gate`` would judge it.
* **Across checkpoints**: each comparison corrects within a metric's subgroups; a trajectory
  looks at K checkpoints at once, so every row of every checkpoint gets ``p_trajectory``, Holm
  (1979) over all checkpoints x rows jointly: a change flagged there is not one of many chances.
* **Trends**: each probe's headline metric against x (the step; log2 of the number of tasks on
  the tasks axis, where the base, at 0 tasks, has no place on a log axis and is left out of the
  fit), the OLS slope with a cluster-bootstrap CI whose resamples are shared by all points
  (:mod:`rai_audit.stats.trend`). ``worsening``: the whole CI on the metric's worse side.

The policy is the one given, else the one recorded with the trajectory (a point's
``meta["policy"]``, else the oldest comparison of a checkpoint with the base that recorded one:
the audit's own), else the bundled default. The trajectory gate's verdict
(:mod:`rai_audit.trajectory.gate`) under that policy's ``trajectory:`` section is part of the
analysis.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from rai_audit.comparison import COMPLETED, POWER, Comparison, ProbeLoader, compare_runs, probe_params, save_comparison
from rai_audit.errors import UserError
from rai_audit.gate import DEFAULT_POLICY, GateResult, Policy, evaluate_gate, load_policy, policy_identity
from rai_audit.gate.policy import validate_policy
from rai_audit.hashing import sha256_json
from rai_audit.stats.multiple import holm
from rai_audit.stats.trend import align_points, fit_trends
from rai_audit.trajectory.gate import judge_trajectory
from rai_audit.trajectory.lookup import find_trajectory
from rai_audit.trajectory.model import HeadlinePoint, PointRow, PointSummary, TrajectoryAnalysis, Trend

if TYPE_CHECKING:
    from rai_audit.store.api import TrajectoryPointRecord
    from rai_audit.store.protocol import ResultsStore

#: compare_runs' own defaults, besides n_boot, seed and alpha: what a reusable comparison must match.
_FIXED_SETTINGS = {"correction": "holm", "power": POWER, "max_flips": 200, "aggregate_test": "auto"}
_EPS = 1e-12


def _default_loader(name: str, params: Mapping[str, Any]) -> Any:
    import probes  # lazily, through the registry: services never import probe modules directly

    return probes.probe_class(name)(dict(params))


def analyse_trajectory(
    store: ResultsStore,
    trajectory_id: str,
    *,
    n_boot: int | None = None,
    seed: int | None = None,
    policy: str | Path | Mapping[str, Any] | Policy | None = None,
    probe_loader: ProbeLoader | None = None,
    alpha: float = 0.05,
) -> TrajectoryAnalysis:
    """Everything about one trajectory (full id, unique prefix or "latest"; module docstring).
    UserError when it is unknown, has no base point, or its runs cannot be compared.

    ``n_boot`` / ``seed`` left None take the settings the trajectory's own audit compared its
    points with (:func:`audited_settings`), so that looking at a trajectory reuses its stored
    comparisons and shows the CIs its report shows; 1,000 resamples and seed 0 where it has none."""
    points = find_trajectory(store, trajectory_id)
    base = next((p for p in points if p.position == 0), None)
    if base is None:
        raise UserError(f"Trajectory {points[0].trajectory_id} has no base point (position 0), so no checkpoint can be "
                        "paired with the base model. Re-run the trajectory audit; it probes the base first.")
    if n_boot is None or seed is None:
        audited = audited_settings(store, base, points) or (1000, 0)
        n_boot = audited[0] if n_boot is None else n_boot
        seed = audited[1] if seed is None else seed
    ident, loaded = _policy(store, policy, points)
    settings = {"n_boot": n_boot, "seed": seed, "alpha": alpha, **_FIXED_SETTINGS}
    summaries: list[PointSummary] = [_summary(base)]
    comparisons: dict[int, Comparison] = {}
    warnings: list[str] = []
    done = [base]
    for pt in points:
        if pt.position == 0:
            continue
        status = store.get_run(pt.run_id).status
        if status not in COMPLETED:  # a trajectory still being audited: the point waits, the rest is analysed
            warnings.append(f"{pt.label}: its run {pt.run_id[:12]} is {status}; not compared with the base yet")
            summaries.append(_summary(pt, note=f"run {pt.run_id[:12]} is {status}: not compared yet"))
            continue
        comp, gate = _checkpoint(store, base.run_id, pt.run_id, settings, ident, loaded, probe_loader)
        comparisons[pt.position] = comp
        summaries.append(_summary(pt, comp, gate))
        done.append(pt)
    analysis = TrajectoryAnalysis(
        trajectory_id=base.trajectory_id, audit_id=base.audit_id, axis=base.axis, base_run=base.run_id, points=summaries,
        settings={**settings, "trajectory_correction": "holm over every checkpoint x row",
                  "trend": "OLS slope; cluster bootstrap shared by all points (percentile CI)",
                  "x": "step" if base.axis == "step" else "log2_tasks"},
        policy=ident, warnings=warnings,
    )
    analysis.rows = _point_rows(comparisons, alpha)
    analysis.headline = _headline(store, analysis, comparisons)
    analysis.trends = _trends(store, done, comparisons, probe_loader or _default_loader, n_boot, seed, alpha,
                              analysis.warnings)
    analysis.gate = judge_trajectory(analysis, loaded.trajectory_rules).to_dict()
    return analysis


# ------------------------------------------------------------------------------ policy


def _policy(store: ResultsStore, policy: Any, points: list[TrajectoryPointRecord]) -> tuple[dict[str, Any], Policy]:
    """(identity {name, sha256, content}, loaded policy): given (a source as ``rai-audit gate
    --policy`` takes it, a policy mapping, a :class:`Policy` or an identity), recorded, or the
    bundled default."""
    if isinstance(policy, Policy):
        content = policy.content()
        return {"name": "inline", "sha256": sha256_json(content), "content": content}, policy
    if isinstance(policy, Mapping) and "content" in policy and "sha256" in policy:  # an identity, as audits store it
        return dict(policy), validate_policy(dict(policy["content"]), f"the policy {policy.get('name')!r}")
    if policy is not None:
        loaded = load_policy(policy)
        return policy_identity(policy, loaded), loaded
    recorded = _recorded_policy(store, points)
    if recorded is not None:
        return recorded, validate_policy(dict(recorded["content"]), f"the recorded policy {recorded.get('name')!r}")
    loaded = load_policy(DEFAULT_POLICY)
    return policy_identity(DEFAULT_POLICY, loaded), loaded


def _recorded_policy(store: ResultsStore, points: list[TrajectoryPointRecord]) -> dict[str, Any] | None:
    for pt in points:
        pol = (pt.meta or {}).get("policy")
        if isinstance(pol, Mapping) and pol.get("content") and pol.get("sha256"):
            return dict(pol)
    base = points[0].run_id
    for pt in points[1:]:
        found = [c for c in store.list_comparisons(run_id=pt.run_id)
                 if (c.run_a, c.run_b) == (base, pt.run_id) and ((c.result or {}).get("policy") or {}).get("content")]
        if found:
            return dict(found[-1].result["policy"])  # the oldest: the audit's own
    return None


# ------------------------------------------------------------------------------ checkpoints


def audited_settings(store: ResultsStore, base: TrajectoryPointRecord,
                     points: list[TrajectoryPointRecord]) -> tuple[int, int] | None:
    """(resamples, seed) of the oldest stored comparison of the base with one of the checkpoints:
    the trajectory's own audit made those first, with its runtime's bootstrap and seed (later
    looks with other settings add newer ones). None when no checkpoint has been compared yet."""
    for pt in points:
        if pt.position == 0:
            continue
        stored = [c for c in store.list_comparisons(run_id=pt.run_id) if (c.run_a, c.run_b) == (base.run_id, pt.run_id)
                  and "n_boot" in c.config and "seed" in c.config]
        if stored:
            oldest = stored[-1].config  # the store lists newest first
            return int(oldest["n_boot"]), int(oldest["seed"])
    return None


def _checkpoint(store: ResultsStore, base: str, run: str, settings: dict[str, Any], ident: dict[str, Any], loaded: Policy,
                probe_loader: ProbeLoader | None) -> tuple[Comparison, GateResult]:
    """The checkpoint's comparison with the base (a stored one with the same settings, else a new
    one, saved with its verdict) and its gate result under ``ident``."""
    stored = [c for c in store.list_comparisons(run_id=run)
              if (c.run_a, c.run_b) == (base, run) and all(c.config.get(k) == v for k, v in settings.items())]
    stored.sort(key=lambda c: ((c.result or {}).get("policy") or {}).get("sha256") != ident["sha256"])  # same policy first
    if stored:
        comp = Comparison.model_validate(stored[0].result)
        own = (comp.policy or {}).get("sha256")
        gate = evaluate_gate(loaded, comp, name=ident["name"], recorded=own == ident["sha256"],
                             what_if=own is not None and own != ident["sha256"])
        return comp, gate
    comp = compare_runs(store, base, run, n_boot=settings["n_boot"], seed=settings["seed"], alpha=settings["alpha"],
                        probe_loader=probe_loader, policy=ident)
    gate = evaluate_gate(loaded, comp, name=ident["name"], recorded=True)
    comp.gate = gate.to_dict()  # stored with the comparison, as an audit stores its verdict
    save_comparison(store, comp)
    return comp, gate


def _summary(pt: TrajectoryPointRecord, comp: Comparison | None = None, gate: GateResult | None = None,
             note: str | None = None) -> PointSummary:
    meta = pt.meta or {}
    reasons: list[str] = [note] if note else []
    if gate is not None:
        if gate.errors > gate.max_errors:
            reasons.append(f"{gate.errors} error(s), more than the {gate.max_errors} allowed")
        reasons += [f"{r.probe} {r.metric} [{r.subgroup or 'overall'}]: {r.verdict}: {r.reason}"
                    for r in gate.rows if r.verdict in ("fail", "inconclusive", "error")]
    return PointSummary(
        position=pt.position, label=pt.label, run_id=pt.run_id, model_reference=meta.get("model_reference"),
        finetune_run=pt.finetune_run, comparison_id=comp.comparison_id if comp else None,
        verdict=gate.verdict if gate else None, gate_reasons=reasons, train_loss=_num(meta.get("train_loss")),
        export_s=_num(meta.get("export_s")),
    )


def _num(v: Any) -> float | None:
    try:
        return None if v is None or math.isnan(float(v)) else float(v)
    except (TypeError, ValueError):
        return None


def _point_rows(comparisons: dict[int, Comparison], alpha: float) -> list[PointRow]:
    """Every row of every checkpoint's comparison, with Holm over all of them jointly."""
    rows = [PointRow(position=pos, row=r) for pos, comp in comparisons.items() for r in comp.rows]
    for pr, p in zip(rows, holm([pr.row.p_value for pr in rows])):
        pr.p_trajectory = p
        pr.significant_trajectory = p is not None and p < alpha
    return rows


# ------------------------------------------------------------------------------ headline


def _headline_probes(comparisons: dict[int, Comparison]) -> list[tuple[str, str, str]]:
    """(probe, headline metric, better) of every probe, in the comparisons' order."""
    out: dict[str, tuple[str, str, str]] = {}
    for comp in comparisons.values():
        for p in comp.probes:
            if p.headline and p.probe not in out:
                spec = next((s for s in p.metric_specs if s.get("name") == p.headline), {})
                out[p.probe] = (p.probe, p.headline, str(spec.get("better") or "none"))
    return list(out.values())


def _headline(store: ResultsStore, analysis: TrajectoryAnalysis, comparisons: dict[int, Comparison]) -> list[HeadlinePoint]:
    out: list[HeadlinePoint] = []
    p_of = {(r.position, r.row.probe, r.row.metric): r.p_trajectory for r in analysis.rows
            if r.row.source == "metric" and not r.row.subgroup}
    metrics = {pt.position: store.metrics(pt.run_id) for pt in analysis.points}
    for probe, metric, _better in _headline_probes(comparisons):
        for pt in analysis.points:
            m = next((m for m in metrics[pt.position] if m.probe == probe and m.name == metric and not m.subgroup), None)
            row = None
            if pt.position in comparisons:
                row = next((r for r in comparisons[pt.position].rows
                            if r.probe == probe and r.metric == metric and not r.subgroup and r.source == "metric"), None)
            out.append(HeadlinePoint(
                probe=probe, metric=metric, position=pt.position, label=pt.label,
                value=m.value if m else float("nan"), ci_low=m.ci_low if m else None, ci_high=m.ci_high if m else None,
                n=m.n if m else 0, diff=row.diff if row else float("nan"), diff_ci_low=row.ci_low if row else None,
                diff_ci_high=row.ci_high if row else None, p_trajectory=p_of.get((pt.position, probe, metric)),
                verdict=pt.verdict,
            ))
    return out


# ------------------------------------------------------------------------------ trends


def trend_axis(axis: str, positions: list[int]) -> tuple[list[int], list[float], float, str]:
    """(positions in the fit, x of each, unit, unit in words). Step axis: x = step, every point,
    the slope per ``unit`` steps (the largest power of ten not above the last step, so a 12-step
    toy reads "per 10 steps" and a 5,000-step run "per 1,000 steps"). Tasks axis: x =
    log2(number of tasks), the base (0 tasks) left out, the slope per doubling of tasks."""
    if axis == "tasks":
        kept = [p for p in positions if p > 0]
        return kept, [math.log2(p) for p in kept], 1.0, "per doubling of tasks"
    top = max(positions) if positions else 0
    unit = 10 ** math.floor(math.log10(top)) if top >= 10 else 1
    return list(positions), [float(p) for p in positions], float(unit), "per step" if unit == 1 else f"per {unit:,} steps"


def _trends(store: ResultsStore, points: list[TrajectoryPointRecord], comparisons: dict[int, Comparison],
            loader: ProbeLoader, n_boot: int, seed: int, alpha: float, warnings: list[str]) -> list[Trend]:
    axis = points[0].axis
    kept, x, unit, per = trend_axis(axis, [p.position for p in points])
    at = {p.position: p for p in points}
    base_run = store.get_run(points[0].run_id)
    out: list[Trend] = []
    for i, (probe, metric, better) in enumerate(_headline_probes(comparisons)):
        trend = Trend(probe=probe, metric=metric, better=better, x="step" if axis == "step" else "log2_tasks",
                      slope=float("nan"), n_points=len(kept), per=per)
        out.append(trend)
        if len(set(x)) < 2:
            warnings.append(f"{probe}: no trend: fewer than two points on the {trend.x} axis")
            continue
        try:
            instance = loader(probe, probe_params(base_run.config, probe))
        except Exception as e:  # noqa: BLE001 - reported: the trend needs the probe's metric definitions
            warnings.append(f"{probe}: no trend: the probe could not be loaded ({type(e).__name__}: {e})")
            continue
        aligned = align_points([store.records(at[p].run_id, probe) for p in kept])
        if aligned.errored:
            warnings.append(f"{probe}: {len(aligned.errored)} item(s) left out of the trend because a run recorded an "
                            f"error for them at some point (e.g. {', '.join(aligned.errored[:3])})")
        if aligned.missing:
            warnings.append(f"{probe}: {len(aligned.missing)} item(s) left out of the trend because some point lacks them")
        fit = fit_trends(instance.aggregate, aligned.records, x, [(metric, "")], n_boot=n_boot,
                         seed=seed + 1009 * i, alpha=alpha)[(metric, "")]
        trend.slope = fit.slope * unit
        trend.ci_low = None if fit.ci_low is None else fit.ci_low * unit
        trend.ci_high = None if fit.ci_high is None else fit.ci_high * unit
        trend.p_value = fit.p_value
        trend.n_items = len(aligned.item_ids)
        trend.worsening = _worsening(better, trend.ci_low, trend.ci_high)
    return out


def _worsening(better: str, lo: float | None, hi: float | None) -> bool | None:
    """The whole CI on the worse side; None without a CI or without a direction (closer-to-a-target
    metrics worsen in a direction that depends on their value: not judged)."""
    if lo is None or hi is None:
        return None
    if better == "lower":
        return lo > _EPS
    if better == "higher":
        return hi < -_EPS
    return None


__all__ = ["analyse_trajectory", "trend_axis"]
