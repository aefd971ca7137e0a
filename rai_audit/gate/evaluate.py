"""Judging a comparison by a policy: each rule on each comparison row it selects (see the
package docstring for the pass / fail / inconclusive / insufficient-data rules), the minimum
support, training-data overlap, and which policy judges a comparison by default."""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Any, Mapping

from rai_audit.comparison.model import Comparison, DiffRow, ProbeComparison
from rai_audit.contamination.describe import overlap_sentence
from rai_audit.gate.policy import (
    DEFAULT_POLICY,
    MIN_CLUSTERS,
    MIN_ITEMS,
    Policy,
    Rule,
    load_policy,
    policy_identity,
    validate_policy,
)
from rai_audit.gate.result import ROW_VERDICTS, GateResult, GateRow, RowVerdict, Verdict
from rai_audit.hashing import sha256_json

_EPS = 1e-12


def _nan(v: float | None) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _matches(rule: Rule, row: DiffRow) -> bool:
    if rule.source != "any" and row.source != rule.source:
        return False
    if not fnmatch.fnmatchcase(row.probe, rule.probe) or not fnmatch.fnmatchcase(row.metric, rule.metric):
        return False
    return row.subgroup == "" if rule.subgroup == "" else fnmatch.fnmatchcase(row.subgroup, rule.subgroup)


_TARGETS = {"closer_to_zero": 0.0, "closer_to_half": 0.5}


def bad_direction(rule: Rule, row: DiffRow) -> str:
    """Which change is bad for this row: "increase", "decrease", "either" or "away from T"."""
    if rule.direction != "worse":
        return rule.direction
    if row.better == "higher":
        return "decrease"
    if row.better == "lower":
        return "increase"
    if row.better in _TARGETS:
        return f"away from {_TARGETS[row.better]:g}"
    return "either"


def worsening_range(side: str, lo: float, hi: float, value_a: float | None = None, target: float | None = None) -> tuple[float, float]:
    """(min, max) of the worsening w(d) over changes d in [lo, hi] (module docstring)."""
    if side == "increase":
        return lo, hi
    if side == "decrease":
        return -hi, -lo
    if side == "either":
        return (0.0 if lo <= 0.0 <= hi else min(abs(lo), abs(hi))), max(abs(lo), abs(hi))
    assert value_a is not None and target is not None
    w = lambda d: abs(value_a + d - target) - abs(value_a - target)  # noqa: E731
    candidates = [lo, hi] + ([target - value_a] if lo <= target - value_a <= hi else [])
    values = [w(d) for d in candidates]
    return min(values), max(values)


def below_support(n: int | None, clusters: int | None, min_items: int, min_clusters: int) -> bool:
    """Whether a row rests on fewer items or clusters than the minimum support (unknown counts
    do not count against it). The one rule the gate, its warnings and the report apply."""
    return (n is not None and n < min_items) or (clusters is not None and clusters < min_clusters)


def evaluate_row(rule: Rule, row: DiffRow, *, min_items: int = MIN_ITEMS, min_clusters: int = MIN_CLUSTERS,
                 headline: str | None = None) -> GateRow:
    """Judge one comparison row by one rule (pass / fail / inconclusive / insufficient / error)."""
    side = bad_direction(rule, row)
    base = dict(
        rule=rule.label, probe=row.probe, metric=row.metric, subgroup=row.subgroup, source=row.source,
        value_a=None if _nan(row.value_a) else row.value_a, value_b=None if _nan(row.value_b) else row.value_b,
        value=None if _nan(row.diff) else row.diff, ci_low=row.ci_low, ci_high=row.ci_high, bad_direction=side,
        n=row.n, clusters=row.clusters, mde=row.mde,
        headline=headline is not None and row.subgroup == "" and row.metric == headline,
    )
    need_items = rule.min_items or min_items
    need_clusters = rule.min_clusters or min_clusters
    clusters = base["clusters"]
    if row.n is not None and row.n < need_items:
        return GateRow(**base, limit=None, checked=None, verdict="insufficient", reason=f"n = {row.n} item(s), below the minimum of {need_items}")
    if clusters is not None and clusters < need_clusters:
        return GateRow(**base, limit=None, checked=None, verdict="insufficient",
                       reason=f"{clusters} cluster(s), below the minimum of {need_clusters}")
    undefined: RowVerdict = "error" if rule.undefined == "error" else "insufficient"
    if rule.max_abs_change is not None:
        limit = rule.max_abs_change
    elif _nan(row.value_a):
        return GateRow(**base, limit=None, checked=None, verdict=undefined, reason="relative limit but value A is undefined")
    else:
        limit = rule.max_rel_change * abs(row.value_a)
    if _nan(row.diff):
        return GateRow(**base, limit=limit, checked=None, verdict=undefined, reason="the difference is undefined on these items")
    if rule.use == "ci" and (row.ci_low is None or row.ci_high is None):
        return GateRow(**base, limit=limit, checked=None, verdict=undefined, reason="no confidence interval on these items")
    target = _TARGETS.get(row.better) if side.startswith("away from") else None
    if target is not None and _nan(row.value_a):
        return GateRow(**base, limit=limit, checked=None, verdict=undefined, reason="value A is undefined")
    value_a = None if _nan(row.value_a) else row.value_a
    w_point = worsening_range(side, row.diff, row.diff, value_a, target)[0]
    dist = " of the distance" if target is not None else ""
    if rule.use == "point":
        failed = w_point > limit + _EPS
        reason = f"worsening{dist} {w_point:+.4g} {'beyond' if failed else 'within'} the allowed {limit:.4g}"
        return GateRow(**base, limit=limit, checked=w_point, verdict="fail" if failed else "pass", reason=reason)
    w_min, w_max = worsening_range(side, row.ci_low, row.ci_high, value_a, target)
    # "Significant" is the comparison's own verdict on the row (the multiplicity-corrected p, as
    # `compare` and the report mark it); without a p-value, the CI excluding "no worse".
    significant = bool(row.significant) if row.p_adjusted is not None else w_min > _EPS
    change = "change" if side == "either" else f"worsening{dist}"
    if w_max <= limit + _EPS:
        verdict: RowVerdict = "pass"
        reason = f"the CI rules out a {change} beyond {limit:.4g} (worst case {w_max:+.4g})"
    elif significant and w_point > limit + _EPS:
        verdict = "fail"
        shown = f"{row.diff:+.4g}" if side == "either" else f"{w_point:+.4g}"
        reason = f"significant {change} of {shown}, beyond the allowed {limit:.4g}" + (
            " either way (the metric declares no better direction)" if side == "either" else "")
    else:
        verdict = "inconclusive"
        reason = (f"the CI is too wide to tell: {change} between {w_min:+.4g} and {w_max:+.4g}, allowed {limit:.4g}"
                  + ("" if significant or w_point <= limit + _EPS else "; the change is not significant"))
    return GateRow(**base, limit=limit, checked=w_max, verdict=verdict, reason=reason)


def _required_missing(rule: Rule, probe: str) -> GateRow:
    return GateRow(
        rule=rule.label, probe=probe, metric=rule.metric, subgroup=rule.subgroup, source=rule.source,
        value_a=None, value_b=None, value=None, ci_low=None, ci_high=None, bad_direction=rule.direction,
        limit=None, checked=None, verdict="error", reason="required rule found no row in this comparison",
    )


def _applies(rule: Rule, probe: ProbeComparison) -> bool:
    """A rule applies to a probe whose name matches and that declares a matching metric (probes
    whose declarations are unknown, e.g. that could not be loaded, are matched by name only)."""
    if not fnmatch.fnmatchcase(probe.probe, rule.probe):
        return False
    if rule.source == "outcome":
        return True
    names = [s.get("name") for s in probe.metric_specs or []]
    return not names or any(fnmatch.fnmatchcase(str(n), rule.metric) for n in names) or rule.source == "any"


def evaluate_gate(policy: Policy | Mapping[str, Any], comparison: Comparison | Mapping[str, Any], *,
                  name: str | None = None, what_if: bool = False, recorded: bool = False) -> GateResult:
    """Evaluate every rule on every row it selects. ``name`` labels the policy in outputs."""
    if not isinstance(policy, Policy):
        policy = validate_policy(dict(policy), "the policy")
    if not isinstance(comparison, Comparison):
        comparison = Comparison.model_validate(comparison)
    rows: list[GateRow] = []
    record_errors = comparison.errors
    for rule in policy.rules:
        for p in comparison.probes:
            if not _applies(rule, p):
                continue
            matched = [evaluate_row(rule, r, min_items=policy.min_items, min_clusters=policy.min_clusters,
                                    headline=getattr(p, "headline", None)) for r in p.rows if _matches(rule, r)]
            if not matched and rule.required:
                matched = [_required_missing(rule, p.probe)]
            rows.extend(matched)
    if policy.max_contamination is not None:
        rows.extend(_contamination_row(p, policy.max_contamination) for p in comparison.probes if p.contamination)
    rule_errors = sum(r.verdict == "error" for r in rows)
    errors = record_errors + rule_errors
    counts = {v: sum(r.verdict == v for r in rows) for v in ROW_VERDICTS}
    if errors > policy.max_errors or counts["fail"]:
        verdict: Verdict = "fail"
    elif counts["inconclusive"]:
        verdict = "inconclusive"
    else:
        verdict = "pass"
    content = policy.content()
    warnings = small_sample_warnings(comparison, policy.min_items, policy.min_clusters)
    return GateResult(
        policy=content, rows=rows, errors=errors, max_errors=policy.max_errors, verdict=verdict,
        policy_name=name or "inline", policy_sha256=sha256_json(content), what_if=what_if, recorded=recorded,
        min_items=policy.min_items, min_clusters=policy.min_clusters, counts=counts, warnings=warnings,
    )


def _contamination_row(probe: ProbeComparison, limit: float) -> GateRow:
    """A probe's worst training-data overlap (over the runs that recorded one) against the limit."""
    side, worst = max(probe.contamination.items(), key=lambda kv: kv[1].get("fraction") or 0.0)
    frac = worst.get("fraction")
    if frac is None:
        verdict, reason = "insufficient", "no item long enough to check"
    else:
        verdict = "fail" if frac > limit + _EPS else "pass"
        reason = f"{overlap_sentence(side, worst)}; limit {limit:.1%}"
    return GateRow(rule=f"training-data overlap <= {limit:g}", probe=probe.probe, metric="contamination",
                   subgroup="", source="contamination", value_a=None, value_b=frac, value=None, ci_low=None,
                   ci_high=None, bad_direction="increase", limit=limit, checked=frac, verdict=verdict,  # type: ignore[arg-type]
                   reason=reason, n=worst.get("checked"))


def small_sample_warnings(comparison: Comparison, min_items: int, min_clusters: int) -> list[str]:
    """One line per probe whose headline row (overall) is below the minimum support."""
    out = []
    for p in comparison.probes:
        row = next((r for r in p.rows if r.source == "metric" and not r.subgroup and r.metric == p.headline), None)
        if row is None:
            continue
        if below_support(row.n, row.clusters, min_items, min_clusters):
            what = f"n = {row.n}" + (f", {row.clusters} cluster(s)" if row.clusters is not None else "")
            out.append(f"small sample: {p.probe} {row.metric} rests on {what} (minimum {min_items} items, "
                       f"{min_clusters} clusters); its verdict is insufficient data, not a finding")
    return out


def gate_for_comparison(comparison: Comparison | Mapping[str, Any], policy: str | Path | None = None) -> GateResult:
    """The verdict of a comparison: under the audit's own policy (stored with the comparison) when
    ``policy`` is None, else under ``policy``, labelled a what-if unless it is the same policy.

    A comparison made outside an audit (``rai-audit compare``) has no policy of its own; it is
    judged by the bundled default policy.
    """
    if not isinstance(comparison, Comparison):
        comparison = Comparison.model_validate(comparison)
    own = comparison.policy
    if policy is None:
        if own:
            return evaluate_gate(own["content"], comparison, name=own["name"], recorded=True)
        return evaluate_gate(load_policy(DEFAULT_POLICY), comparison, name=DEFAULT_POLICY)
    loaded = load_policy(policy)
    ident = policy_identity(policy, loaded)
    same = bool(own) and own.get("sha256") == ident["sha256"]
    return evaluate_gate(loaded, comparison, name=ident["name"], what_if=bool(own) and not same, recorded=same)

