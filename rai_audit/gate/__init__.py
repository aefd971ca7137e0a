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

**Trajectories.** An optional ``trajectory:`` section (``checkpoints: all | final``, ``trend:
not_worsening | off``; both on by default) says how a trajectory audit is judged
(:mod:`rai_audit.trajectory.gate`); policies without it keep their content hash.

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

Modules: :mod:`.policy` (the policy format, loading and checking it), :mod:`.result` (the
verdict's data types), :mod:`.evaluate` (judging a comparison) and :mod:`.table` (the text
``rai-audit gate`` prints).
"""

from rai_audit.gate.evaluate import (
    bad_direction,
    below_support,
    evaluate_gate,
    evaluate_row,
    gate_for_comparison,
    small_sample_warnings,
    worsening_range,
)
from rai_audit.gate.policy import (
    DEFAULT_POLICY,
    MIN_CLUSTERS,
    MIN_ITEMS,
    Policy,
    Rule,
    TrajectoryRules,
    bundled_policy_names,
    bundled_policy_path,
    check_targets,
    declared_metrics,
    load_policy,
    policy_identity,
    policy_name,
)
from rai_audit.gate.result import ROW_VERDICTS, GateResult, GateRow, RowVerdict, Verdict
from rai_audit.gate.table import format_table, verdict_line

__all__ = [
    "DEFAULT_POLICY",
    "MIN_CLUSTERS",
    "MIN_ITEMS",
    "ROW_VERDICTS",
    "GateResult",
    "GateRow",
    "Policy",
    "RowVerdict",
    "Rule",
    "TrajectoryRules",
    "Verdict",
    "bad_direction",
    "below_support",
    "bundled_policy_names",
    "bundled_policy_path",
    "check_targets",
    "declared_metrics",
    "evaluate_gate",
    "evaluate_row",
    "format_table",
    "gate_for_comparison",
    "load_policy",
    "policy_identity",
    "policy_name",
    "small_sample_warnings",
    "verdict_line",
    "worsening_range",
]
