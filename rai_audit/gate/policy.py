"""Gate policies: the YAML format (:class:`Policy`, :class:`Rule`), loading a policy from a file,
a bundled name or a mapping, checking that its rules name probes and metrics that exist, and the
identity (name, content hash, content) an audit stores with its comparison."""

from __future__ import annotations

import difflib
import fnmatch
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rai_audit.data_root import assets_dir
from rai_audit.errors import UserError
from rai_audit.hashing import sha256_json

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


class TrajectoryRules(BaseModel):
    """The optional ``trajectory:`` section: how a trajectory audit (the same probes at several
    checkpoints of one finetune, :mod:`rai_audit.trajectory.gate`) is judged.

    ``checkpoints``: ``all`` (every checkpoint, judged against the base by this policy's rules,
    must pass; the default) or ``final`` (only the last one). ``trend``: ``not_worsening`` (the
    default: a headline metric whose trend CI lies wholly on its worse side fails the trajectory)
    or ``off``. Absent means the defaults; an absent or default section is left out of the
    policy's content, so policies written before it existed keep their hash.
    """

    model_config = ConfigDict(extra="forbid")

    checkpoints: Literal["all", "final"] = "all"
    trend: Literal["not_worsening", "off"] = "not_worsening"


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    description: str = ""
    max_errors: int = Field(default=0, ge=0)
    min_items: int = Field(default=MIN_ITEMS, ge=1)
    min_clusters: int = Field(default=MIN_CLUSTERS, ge=1)
    max_contamination: float | None = Field(default=None, ge=0, le=1)
    rules: list[Rule] = Field(min_length=1)
    trajectory: TrajectoryRules | None = None  # None: the defaults (TrajectoryRules)

    def content(self) -> dict[str, Any]:
        """The policy as stored and hashed; an unset ``max_contamination`` and an absent or
        default ``trajectory`` section are left out, so policies written before they existed keep
        their hash."""
        d = self.model_dump()
        if d.get("max_contamination") is None:
            d.pop("max_contamination", None)
        if d.get("trajectory") in (None, TrajectoryRules().model_dump()):
            d.pop("trajectory", None)
        return d

    @property
    def trajectory_rules(self) -> TrajectoryRules:
        """The trajectory section, with its defaults when the policy has none."""
        return self.trajectory or TrajectoryRules()




def bundled_policy_path(name: str) -> Path:
    return assets_dir() / "policies" / f"{name}.yaml"


def bundled_policy_names() -> list[str]:
    return sorted(p.stem for p in (assets_dir() / "policies").glob("*.yaml"))


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
        policy = validate_policy(dict(source), "the policy")
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
            raise UserError(f"Gate policy {path} must be a mapping with a 'rules' list (see the bundled policy rai_audit/assets/policies/default.yaml).")
        where = str(path)
        policy = validate_policy(raw, where)
    check_targets(policy, declared_metrics() if declared is None else declared, where)
    return policy


def validate_policy(raw: dict[str, Any], where: str) -> Policy:
    try:
        return Policy.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}" for err in e.errors()
        )
        raise UserError(f"Gate policy {where} is invalid: {problems}. See the bundled policy rai_audit/assets/policies/default.yaml for the format.") from None


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
        # A rule for an instance (civil_comments@10shot, civil_comments@*) targets its probe's metrics.
        pattern = rule.probe.split("@", 1)[0] if "@" in rule.probe else rule.probe
        probes_hit = [p for p in declared if fnmatch.fnmatchcase(p, pattern)]
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
