"""Regression gates: `rai-audit gate` turns a comparison into one verdict for cron and CI.

A policy (YAML, validated here) lists rules. Each rule selects rows of a comparison by probe,
metric and subgroup (shell-style wildcards), says which direction of change is bad and how much
of it is allowed, absolute (``max_abs_change: 0.05`` = five points) or relative to the base
model's value (``max_rel_change: 0.10`` = 10 % of |A|), and whether the point estimate or the
whole 95% CI is judged:

* ``use: point`` fails when the estimated change is beyond the limit, else passes.
* ``use: ci`` is a non-inferiority test with three outcomes. With ``w(d)`` the worsening a
  change ``d`` means (see below) and ``[lo, hi]`` the CI of ``d``:
  **pass** when the CI rules out a worsening beyond the margin (max of w over the CI <= limit);
  **fail** when the change is significant (the comparison's multiplicity-corrected p-value, the
  same mark ``compare`` and the report show; for a row without one, the CI excluding "no
  worse") *and* its point estimate is a worsening beyond the margin;
  **inconclusive** otherwise: the CI is too wide to tell. An inconclusive audit is its own verdict
  (exit 3), so a release pipeline can choose to block on it like a failure.

``direction: worse`` takes the bad side from the metric's ``better`` field: higher-is-better
metrics must not fall (w = -d), lower-is-better must not rise (w = d), closer-to-zero
(closer-to-half) metrics must not move further *away* from 0 (0.5): w(d) = |A + d - t| - |A - t|
(A held fixed, an approximation). Metrics without a direction are bounded both ways (w = |d|).

**Minimum support.** A row with fewer than ``min_items`` paired items or ``min_clusters``
clusters (policy-wide defaults 10 and 6, per-rule overrides; docs/metrics.md justifies them: below
6 clusters no two-sided test at 0.05 can ever reject) is **insufficient data**: reported and
counted apart, neither a pass nor an error. So is a row whose value is undefined on these items
(an AUC in a one-class subgroup), unless the rule says ``undefined: error``.

**Rules apply to what probes declare.** A rule applies to the probes whose name matches its probe
pattern and that declare a metric matching its metric pattern; it produces no row elsewhere. A
rule that matches no probe or metric that any registered probe declares is a configuration
error when the policy is loaded (exit 2, with the nearest names), so a typo never reads as a
regression. Error records in either run count against ``max_errors`` (default 0), and so do
rules with ``required: true`` that found no row.

The policy an audit used (its name and content hash) is stored with the audit's comparison
(:func:`policy_identity`); :func:`gate_for_comparison` judges a comparison by that policy unless
another is asked for, which is then labelled a what-if.

**Contamination.** ``max_contamination: 0.01`` fails a probe whose items overlap a run's recorded
training data (:mod:`rai_audit.contamination`) beyond that share of the checked items: its
metrics would grade memorisation. Probes whose runs recorded no training data are not judged.

Exit codes: 0 pass, 1 fail, 3 inconclusive; an invalid policy or input is a UserError (exit 2).

Example::

    version: 1
    max_errors: 0
    min_items: 10
    min_clusters: 6
    rules:
      - probe: "*"             # every probe
        metric: "*"            # every metric the probe declares
        subgroup: ""           # overall only ("*" = overall and every subgroup)
        direction: worse
        max_abs_change: 0.05
        use: ci
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rai_audit.compare import Comparison, DiffRow
from rai_audit.contamination.describe import overlap_sentence
from rai_audit.data_root import project_data_dir
from rai_audit.display import fmt_ci
from rai_audit.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, UserError
from rai_audit.hashing import sha256_json

RowVerdict = Literal["pass", "fail", "inconclusive", "insufficient", "error"]
Verdict = Literal["pass", "fail", "inconclusive"]
ROW_VERDICTS: tuple[str, ...] = ("fail", "inconclusive", "error", "insufficient", "pass")
_EPS = 1e-12
#: Defaults of the minimum support (docs/metrics.md, "Minimum support", says why these numbers).
MIN_ITEMS = 10
MIN_CLUSTERS = 6
DEFAULT_POLICY = "default"


class Rule(BaseModel):
    """One gate rule; see the module docstring for the meaning of each field."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    probe: str = "*"
    metric: str = "*"
    subgroup: str = ""
    source: Literal["metric", "outcome", "any"] = "metric"
    direction: Literal["worse", "increase", "decrease", "either"] = "worse"
    max_abs_change: float | None = Field(default=None, ge=0)
    max_rel_change: float | None = Field(default=None, ge=0)
    use: Literal["ci", "point"] = "ci"
    required: bool = False  # a rule that finds no row in a comparison is an error
    # What a row whose value cannot be judged (undefined difference, no CI) counts as:
    # "insufficient" (default; "skip" is the older spelling) or "error" (counts against max_errors).
    undefined: Literal["insufficient", "error", "skip"] = "insufficient"
    min_items: int | None = Field(default=None, ge=1)
    min_clusters: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_limit(self) -> "Rule":
        if (self.max_abs_change is None) == (self.max_rel_change is None):
            raise ValueError("give exactly one of max_abs_change (absolute) or max_rel_change (relative to run A)")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        limit = f"abs {self.max_abs_change:g}" if self.max_abs_change is not None else f"rel {self.max_rel_change:g}"
        return f"{self.probe}/{self.metric}[{self.subgroup or 'overall'}] {self.direction} {limit} ({self.use})"


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    description: str = ""
    max_errors: int = Field(default=0, ge=0)
    min_items: int = Field(default=MIN_ITEMS, ge=1)
    min_clusters: int = Field(default=MIN_CLUSTERS, ge=1)
    max_contamination: float | None = Field(default=None, ge=0, le=1)
    rules: list[Rule] = Field(min_length=1)

    def content(self) -> dict[str, Any]:
        """The policy as stored and hashed; an unset ``max_contamination`` is left out, so
        policies written before it existed keep their hash."""
        d = self.model_dump()
        if d.get("max_contamination") is None:
            d.pop("max_contamination", None)
        return d


@dataclass
class GateRow:
    rule: str
    probe: str
    metric: str
    subgroup: str
    source: str
    value_a: float | None
    value_b: float | None
    value: float | None  # the change B - A
    ci_low: float | None
    ci_high: float | None
    bad_direction: str  # "increase" | "decrease" | "either" | "away from T"
    limit: float | None  # allowed worsening (>= 0)
    checked: float | None  # the worsening compared with the limit (point, or the CI's worst case)
    verdict: RowVerdict
    reason: str = ""
    n: int | None = None
    clusters: int | None = None
    mde: float | None = None
    headline: bool = False


@dataclass
class GateResult:
    policy: dict[str, Any]
    rows: list[GateRow]
    errors: int  # error records plus required rules that found nothing
    max_errors: int
    verdict: Verdict
    policy_name: str = DEFAULT_POLICY
    policy_sha256: str = ""
    what_if: bool = False
    recorded: bool = False  # the policy is the one the audit stored with this comparison
    min_items: int = MIN_ITEMS
    min_clusters: int = MIN_CLUSTERS
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # small-sample warnings on headline rows

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_OK, "fail": EXIT_GATE_FAILED}.get(self.verdict, EXIT_INCONCLUSIVE)

    @property
    def label(self) -> str:
        if self.what_if:
            return f"what-if: {self.policy_name} policy"
        if self.recorded:
            return f"audit policy: {self.policy_name}"
        return f"{self.policy_name} policy (no audit policy recorded)"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exit_code"] = self.exit_code
        d["label"] = self.label
        return d


# ------------------------------------------------------------------------------ loading


def bundled_policy_path(name: str) -> Path:
    return project_data_dir() / "policies" / f"{name}.yaml"


def bundled_policy_names() -> list[str]:
    return sorted(p.stem for p in (project_data_dir() / "policies").glob("*.yaml"))


def policy_name(source: str | Path) -> str:
    """A readable name for a policy source: the bundled name, else the file's path as given."""
    text = str(source)
    if not Path(text).exists() and bundled_policy_path(text).exists():
        return text
    path = Path(text)
    for name in bundled_policy_names():
        if path.exists() and path.resolve() == bundled_policy_path(name).resolve():
            return name
    return text


def load_policy(source: str | Path | Mapping[str, Any], *, declared: Mapping[str, Sequence[str]] | None = None) -> Policy:
    """A policy from a YAML file, a bundled name ("default", "demo") or a mapping.

    Every rule must match a probe and a metric that some probe declares (``declared``: probe
    name -> metric names; default: every registered probe's ``metric_specs``), else UserError.
    """
    if isinstance(source, Mapping):
        policy = _validate(dict(source), "the policy")
        where = "the policy"
    else:
        path = Path(source)
        if not path.exists() and bundled_policy_path(str(source)).exists():
            path = bundled_policy_path(str(source))
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, IsADirectoryError):
            raise UserError(
                f"Gate policy {str(source)!r} not found. Give a YAML file path or a bundled policy name "
                f"({', '.join(bundled_policy_names())})."
            ) from None
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise UserError(f"Gate policy {path} is not valid YAML: {e}. Fix the file and try again.") from None
        if not isinstance(raw, dict):
            raise UserError(f"Gate policy {path} must be a mapping with a 'rules' list (see data/policies/default.yaml).")
        where = str(path)
        policy = _validate(raw, where)
    check_targets(policy, declared_metrics() if declared is None else declared, where)
    return policy


def _validate(raw: dict[str, Any], where: str) -> Policy:
    try:
        return Policy.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}" for err in e.errors()
        )
        raise UserError(f"Gate policy {where} is invalid: {problems}. See data/policies/default.yaml for the format.") from None


def declared_metrics() -> dict[str, list[str]]:
    """Probe name -> the metric names its class declares, for every registered probe."""
    import probes  # lazily: probe modules are light, but rai_audit does not import them at top level

    out: dict[str, list[str]] = {}
    for name in probes.REGISTRY:
        try:
            out[name] = [s.name for s in probes.probe_class(name).metric_specs]
        except Exception:  # noqa: BLE001 - an extra probe that fails to import declares nothing
            out[name] = []
    return out


def _suggest(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word.replace("*", ""), sorted(set(candidates)), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(close)}?" if close else ""


def check_targets(policy: Policy, declared: Mapping[str, Sequence[str]], where: str) -> None:
    """UserError for a rule whose probe or metric pattern matches nothing any probe declares.

    Outcome rules name per-item outcome keys, which probes do not declare up front, so only their
    probe pattern is checked.
    """
    problems = []
    for rule in policy.rules:
        probes_hit = [p for p in declared if fnmatch.fnmatchcase(p, rule.probe)]
        if not probes_hit:
            problems.append(f"rule {rule.label!r}: probe {rule.probe!r} matches no probe.{_suggest(rule.probe, list(declared))}")
            continue
        if rule.source == "outcome":
            continue
        metrics = [m for p in probes_hit for m in declared[p]]
        if metrics and not any(fnmatch.fnmatchcase(m, rule.metric) for m in metrics):
            problems.append(
                f"rule {rule.label!r}: metric {rule.metric!r} is declared by no probe matching {rule.probe!r}."
                f"{_suggest(rule.metric, metrics)}"
            )
    if problems:
        raise UserError(f"Gate policy {where} names metrics that do not exist: " + " ".join(problems)
                        + " Probes and their metrics are listed in docs/metrics.md.")


def policy_identity(source: str | Path | Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    """Name, content hash and content of a policy, as stored with an audit's comparison."""
    content = policy.content()
    name = "inline" if isinstance(source, Mapping) else policy_name(source)
    return {"name": name, "sha256": sha256_json(content), "content": content}


# ------------------------------------------------------------------------------ evaluation


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


def _applies(rule: Rule, probe: Any) -> bool:
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
        policy = _validate(dict(policy), "the policy")
    if not isinstance(comparison, Comparison):
        comparison = Comparison.from_dict(comparison)
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


def _contamination_row(probe: Any, limit: float) -> GateRow:
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
        comparison = Comparison.from_dict(comparison)
    own = comparison.policy
    if policy is None:
        if own:
            return evaluate_gate(own["content"], comparison, name=own["name"], recorded=True)
        return evaluate_gate(load_policy(DEFAULT_POLICY), comparison, name=DEFAULT_POLICY)
    loaded = load_policy(policy)
    ident = policy_identity(policy, loaded)
    same = bool(own) and own.get("sha256") == ident["sha256"]
    return evaluate_gate(loaded, comparison, name=ident["name"], what_if=bool(own) and not same, recorded=same)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:+.4f}"


def verdict_line(result: GateResult) -> str:
    c = result.counts
    return (f"Gate verdict: {result.verdict.upper()} [{result.label}, sha256 {result.policy_sha256[:12]}]; "
            f"{c.get('fail', 0)} failing, {c.get('inconclusive', 0)} inconclusive, {c.get('pass', 0)} passing, "
            f"{c.get('insufficient', 0)} insufficient-data row(s); {result.errors} error(s), {result.max_errors} allowed "
            f"(exit {result.exit_code})")


def format_table(result: GateResult, *, only_not_passed: bool = False) -> str:
    """A plain-text table of the rule rows (what ``rai-audit gate`` prints). Insufficient-data rows
    are counted, not listed, unless ``only_not_passed`` is False and they are all there is; with
    ``only_not_passed`` passing rows are counted instead of listed too."""
    header = ("verdict", "probe", "metric", "subgroup", "n", "A", "B", "change", "95% CI", "MDE", "limit", "rule")
    lines = [header]
    hidden = {"insufficient"} | ({"pass"} if only_not_passed else set())
    shown = [r for r in result.rows if r.verdict not in hidden and r.source != "contamination"]
    overlap = [f"{r.verdict.upper()}  {r.probe}: {r.reason}" for r in result.rows if r.source == "contamination"
               and r.verdict not in hidden]
    order = {v: i for i, v in enumerate(ROW_VERDICTS)}
    shown.sort(key=lambda r: (order[r.verdict], not r.headline, r.probe, r.metric, r.subgroup))
    for r in shown:
        limit = "-" if r.limit is None else f"{r.bad_direction} <= {r.limit:.4f}"
        a = "-" if r.value_a is None else f"{r.value_a:.4f}"
        b = "-" if r.value_b is None else f"{r.value_b:.4f}"
        mde = "-" if r.mde is None else f"{r.mde:.4f}"
        lines.append((r.verdict.upper(), r.probe, r.metric, r.subgroup or "overall", "-" if r.n is None else str(r.n), a, b,
                      _fmt(r.value), fmt_ci(r.ci_low, r.ci_high, r.n, r.clusters, signed=True), mde, limit, r.rule))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = ("\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines) if shown
            else "(no metric rows to list)")
    notes = []
    if only_not_passed and result.counts.get("pass"):
        notes.append(f"{result.counts['pass']} passing row(s) not listed; --all lists them")
    if result.counts.get("insufficient"):
        notes.append(f"{result.counts['insufficient']} row(s) with insufficient data (fewer than {result.min_items} items or "
                     f"{result.min_clusters} clusters, or undefined on these items) not listed; `--json` has them")
    note = "".join(f"\n({n})" for n in notes)
    if overlap:
        note += "\nTraining-data overlap (contamination):\n" + "\n".join(overlap)
    power = "\nMDE: the smallest change detectable at alpha 0.05 with power 0.8 at the row's n."
    power += "".join(f"\nwarning: {w}" for w in result.warnings)
    return f"{text}{note}{power}\n\n{verdict_line(result)}"
