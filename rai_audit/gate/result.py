"""What a gate says: one row per rule and comparison row judged (:class:`GateRow`) and the verdict
over them (:class:`GateResult`, whose ``to_dict`` is what audits store with their comparison and
``rai-audit gate --json`` prints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rai_audit.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK
from rai_audit.gate.policy import DEFAULT_POLICY, MIN_CLUSTERS, MIN_ITEMS

RowVerdict = Literal["pass", "fail", "inconclusive", "insufficient", "error"]
Verdict = Literal["pass", "fail", "inconclusive"]
ROW_VERDICTS: tuple[str, ...] = ("fail", "inconclusive", "error", "insufficient", "pass")

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

