"""What a per-item record says: its outcome values, which way each outcome is better, the names
of a binary outcome's two states, and the texts the model generated."""

from __future__ import annotations

import math
from typing import Any, Mapping

# Which way is good for conventional outcome names (probes may add ``outcome_better``).
OUTCOME_BETTER: dict[str, str] = {
    "correct": "higher",
    "accurate": "higher",
    "toxic": "lower",
    "toxicity": "lower",
    "max_toxicity": "lower",
    "stereotyped": "lower",
    "pro_stereotype": "lower",
    "biased": "lower",
}
# Names of the 0 and 1 states of binary outcomes, for flip labels.
OUTCOME_STATES: dict[str, tuple[str, str]] = {
    "correct": ("incorrect", "correct"),
    "toxic": ("non-toxic", "toxic"),
    "stereotyped": ("non-stereotyped", "stereotyped"),
    "biased": ("unbiased", "biased"),
}


def finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(float(v))


def binary_value(v: Any) -> float | None:
    """0.0/1.0 for a binary outcome value (bools included), None otherwise."""
    if isinstance(v, (int, float)) and float(v) in (0.0, 1.0):
        return float(v)
    return None


def samples(record: Mapping[str, Any]) -> list[str]:
    """The texts a record's model generated (one per sample; non-text answers as "")."""
    responses = record.get("responses")
    if isinstance(responses, list):
        return [r if isinstance(r, str) else "" for r in responses]
    if isinstance(record.get("response"), str):
        return [record["response"]]
    return []
