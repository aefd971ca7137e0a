"""The trajectory gate and the choice of a checkpoint to ship.

Two rules, each switchable in the gate policy's optional ``trajectory:`` section
(:class:`rai_audit.gate.TrajectoryRules`; both on by default):

* **checkpoints** (``all`` | ``final``): no checkpoint may be worse than the base beyond the
  policy's margins. Each checkpoint's comparison with the base is judged by the policy's rules
  exactly as ``rai-audit gate`` judges a comparison; any failing checkpoint fails the trajectory,
  else any inconclusive one makes it inconclusive. ``final`` judges the last checkpoint only
  (the classic before/after audit, with the trend on top).
* **trend** (``not_worsening`` | ``off``): a headline metric whose trend CI lies wholly on the
  metric's worse side (a significant worsening per step or per doubling of tasks) fails the
  trajectory, even when every checkpoint is still within the margin: the drift would cross it
  with more training. A trend whose CI includes "no change" does not fail, and is never
  inconclusive: the checkpoint rule is the non-inferiority test, the trend rule an alarm.

Verdict and exit code as ``rai-audit gate``: 0 pass, 1 fail, 3 inconclusive.

**Selection** is per checkpoint, not per trajectory: :func:`select_checkpoint` picks the latest
checkpoint whose own comparison passes (or the passing one with the lowest training loss). A
passing checkpoint before a worsening trend is still selectable; that is the point of stopping
early. The base is never a selection (shipping the base is not a finetune result). No passing
checkpoint: exit 1, or 3 when the best any checkpoint reached is inconclusive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rai_audit.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, UserError
from rai_audit.gate import TrajectoryRules
from rai_audit.trajectory.model import PointSummary, TrajectoryAnalysis

_EXIT = {"pass": EXIT_OK, "fail": EXIT_GATE_FAILED, "inconclusive": EXIT_INCONCLUSIVE}


@dataclass
class TrajectoryGateResult:
    """The trajectory's verdict, the verdict of each rule, and one line per reason."""

    verdict: str  # pass | fail | inconclusive
    checkpoints: str  # the rule's mode: all | final
    trend: str  # not_worsening | off
    checkpoint_verdict: str  # pass | fail | inconclusive (inconclusive when there is no checkpoint)
    trend_verdict: str  # pass | fail | off
    judged: list[int] = field(default_factory=list)  # positions the checkpoint rule judged
    failing: list[int] = field(default_factory=list)
    inconclusive: list[int] = field(default_factory=list)
    worsening: list[str] = field(default_factory=list)  # "probe/metric" of each worsening trend
    reasons: list[str] = field(default_factory=list)
    policy_name: str | None = None
    policy_sha256: str | None = None

    @property
    def exit_code(self) -> int:
        return _EXIT[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exit_code"] = self.exit_code
        return d


def _rules(rules: TrajectoryRules | dict[str, Any] | None) -> TrajectoryRules:
    if rules is None:
        return TrajectoryRules()
    return rules if isinstance(rules, TrajectoryRules) else TrajectoryRules.model_validate(rules)


def judge_trajectory(analysis: TrajectoryAnalysis, rules: TrajectoryRules | dict[str, Any] | None = None) -> TrajectoryGateResult:
    """The trajectory gate (module docstring) over an analysis whose points carry their verdicts."""
    rules = _rules(rules)
    tuned = [p for p in analysis.points if p.position != 0]
    judged = tuned[-1:] if rules.checkpoints == "final" else tuned
    failing = [p for p in judged if p.verdict == "fail"]
    unsure = [p for p in judged if p.verdict not in ("pass", "fail")]  # inconclusive, or not judged at all
    reasons = [f"{p.label}: {p.verdict or 'not judged'} vs the base" + (f" ({'; '.join(p.gate_reasons[:3])})" if p.gate_reasons else "")
               for p in sorted(failing + unsure, key=lambda p: p.position)]
    checkpoint_verdict = "fail" if failing else ("inconclusive" if unsure or not judged else "pass")
    if not judged:
        reasons.append("the trajectory has no checkpoint besides the base: nothing shows the tuned model safe")
    worsening = []
    if rules.trend == "not_worsening":
        for t in analysis.trends:
            if t.worsening:
                worsening.append(f"{t.probe}/{t.metric}")
                reasons.append(f"{t.probe} {t.metric} worsens along the trajectory: slope {t.slope:+.4g} {t.per}, "
                               f"95% CI [{t.ci_low:+.4g}, {t.ci_high:+.4g}] wholly on the worse side")
    trend_verdict = "off" if rules.trend == "off" else ("fail" if worsening else "pass")
    if checkpoint_verdict == "fail" or trend_verdict == "fail":
        verdict = "fail"
    else:
        verdict = checkpoint_verdict
    policy = analysis.policy or {}
    return TrajectoryGateResult(
        verdict=verdict, checkpoints=rules.checkpoints, trend=rules.trend, checkpoint_verdict=checkpoint_verdict,
        trend_verdict=trend_verdict, judged=[p.position for p in judged], failing=[p.position for p in failing],
        inconclusive=[p.position for p in unsure], worsening=worsening, reasons=reasons,
        policy_name=policy.get("name"), policy_sha256=policy.get("sha256"),
    )


@dataclass
class Selection:
    """The checkpoint to ship (None: none qualifies), the exit code and why."""

    point: PointSummary | None
    by: str
    exit_code: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"selected": self.point.model_dump(mode="json") if self.point else None, "by": self.by,
                "exit_code": self.exit_code, "reason": self.reason}


def select_checkpoint(analysis: TrajectoryAnalysis, *, by: Literal["latest", "loss"] = "latest") -> PointSummary | None:
    """The latest checkpoint whose comparison with the base passes (``by="latest"``), or the
    passing one with the lowest training loss (``by="loss"``; ties: the later one). Never the
    base; None when no checkpoint passes. UserError for ``by="loss"`` when checkpoints pass but
    none recorded a training loss."""
    return choose_checkpoint(analysis, by=by).point


def choose_checkpoint(analysis: TrajectoryAnalysis, *, by: str = "latest") -> Selection:
    """:func:`select_checkpoint` with its exit code (0 chosen; 1 none passes; 3 none passes and
    at least one is inconclusive) and a sentence saying why."""
    if by not in ("latest", "loss"):
        raise UserError(f"Unknown selection {by!r}; use --by latest or --by loss.")
    tuned = [p for p in analysis.points if p.position != 0]
    passing = [p for p in tuned if p.verdict == "pass"]
    if passing:
        if by == "latest":
            chosen = max(passing, key=lambda p: p.position)
            return Selection(chosen, by, EXIT_OK, f"the latest of {len(passing)} passing checkpoint(s)")
        with_loss = [p for p in passing if p.train_loss is not None]
        if not with_loss:
            raise UserError("No passing checkpoint of this trajectory recorded a training loss, so none can be chosen "
                            "by loss; use --by latest.")
        chosen = min(with_loss, key=lambda p: (p.train_loss, -p.position))
        return Selection(chosen, by, EXIT_OK, f"the lowest training loss ({chosen.train_loss:.4g}) of "
                                              f"{len(with_loss)} passing checkpoint(s)")
    if any(p.verdict == "inconclusive" for p in tuned):
        return Selection(None, by, EXIT_INCONCLUSIVE, "no checkpoint passes; the best are inconclusive (their CIs "
                                                      "are too wide to rule out a worsening beyond the margin)")
    if not tuned:
        return Selection(None, by, EXIT_GATE_FAILED, "the trajectory has no checkpoint besides the base")
    return Selection(None, by, EXIT_GATE_FAILED, "every checkpoint fails against the base")


__all__ = ["Selection", "TrajectoryGateResult", "choose_checkpoint", "judge_trajectory", "select_checkpoint"]
