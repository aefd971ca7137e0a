"""Paired comparison of two runs (base vs tuned) on the same items: `rai-audit compare A B`.

The question the tool exists for: did tuning make the model more toxic or more biased, for whom,
and how sure are we? Both runs answered the same items with the same decoding, seeds and
chat-template mode, so every difference is paired by ``item_id`` (see
:mod:`rai_audit.stats.paired` for the tests and their citations).

For each probe the comparison holds

* **rows** (:mod:`.rows`): per metric and subgroup, value A, value B, difference B - A, its 95%
  CI, p-value, the p-value corrected across the subgroups of that metric (Holm by default, or
  BH), whether it is significant, and the minimum detectable effect where it is not;
* **flips** (:mod:`.flips`): items whose binary outcome changed, with both models' responses;
* **confounders** (:mod:`.confounders`) for both models: parse rate, empty-output rate, refusal
  rate (:mod:`rai_audit.refusals`), mean output length, so that a "safer" model that merely
  refuses more is visible as such.

Pairs where either run recorded an error are left out of the statistics and counted.

Modules: :mod:`.model` (the data types, pydantic), :mod:`.comparability` (which runs can be
compared), :mod:`.outcomes` (what a per-item record says), :mod:`.rows`, :mod:`.flips`,
:mod:`.confounders`, :mod:`.compute` (:func:`compare_runs`) and :mod:`.saved` (the store).
"""

from rai_audit.comparison.comparability import (
    CHAT_PATHS,
    COMPLETED,
    DECODING_PATHS,
    check_comparable,
    lookup_setting,
    probe_params,
)
from rai_audit.comparison.compute import ProbeLoader, compare_runs
from rai_audit.comparison.confounders import confounders
from rai_audit.comparison.flips import find_flips
from rai_audit.comparison.model import Comparison, Confounders, DiffRow, Flip, ProbeComparison
from rai_audit.comparison.outcomes import OUTCOME_BETTER, OUTCOME_STATES
from rai_audit.comparison.rows import POWER
from rai_audit.comparison.saved import load_comparison, save_comparison

__all__ = [
    "CHAT_PATHS",
    "COMPLETED",
    "DECODING_PATHS",
    "OUTCOME_BETTER",
    "OUTCOME_STATES",
    "POWER",
    "Comparison",
    "Confounders",
    "DiffRow",
    "Flip",
    "ProbeComparison",
    "ProbeLoader",
    "check_comparable",
    "compare_runs",
    "confounders",
    "find_flips",
    "load_comparison",
    "lookup_setting",
    "probe_params",
    "save_comparison",
]
