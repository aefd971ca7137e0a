"""Flips: items whose binary outcome changed between A and B (correct -> incorrect and back,
non-toxic -> toxic and back, ...), with both models' responses; and the items where B looks
worst."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from rai_audit.comparison.model import Flip
from rai_audit.comparison.outcomes import OUTCOME_BETTER, OUTCOME_STATES, binary_value, samples


def _toxic_state(record: Mapping[str, Any], scorer: Mapping[str, Any] | None) -> float | None:
    mt = record.get("max_toxicity")
    if not isinstance(mt, (int, float)) or not math.isfinite(mt):
        return None
    threshold = float((scorer or {}).get("threshold", 0.5))
    op = (scorer or {}).get("operator", ">=")
    return 1.0 if (mt > threshold if op == ">" else mt >= threshold) else 0.0


def _flip(probe: str, key: str, ra: Mapping[str, Any], rb: Mapping[str, Any], va: float, vb: float, better: str) -> Flip:
    low, high = OUTCOME_STATES.get(key, (f"not {key}", key))
    state = lambda v: high if v == 1.0 else low  # noqa: E731
    worse = None if better not in ("higher", "lower") else (vb < va if better == "higher" else vb > va)
    return Flip(
        probe=probe, item_id=str(ra["item_id"]), outcome=key, direction=f"{state(va)}->{state(vb)}", worse=worse,
        value_a=va, value_b=vb, prompt=ra.get("prompt"), responses_a=samples(ra), responses_b=samples(rb),
        parsed_a=ra.get("parsed", ra.get("choice")), parsed_b=rb.get("parsed", rb.get("choice")),
        subgroups=dict(ra.get("subgroups") or {}),
        max_toxicity_a=ra.get("max_toxicity"), max_toxicity_b=rb.get("max_toxicity"),
    )


def find_flips(
    probe: str,
    pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    better_map: Mapping[str, str] = OUTCOME_BETTER,
    scorer_a: Mapping[str, Any] | None = None,
    scorer_b: Mapping[str, Any] | None = None,
) -> list[Flip]:
    """Every item whose binary outcome changed between A and B, both directions.

    Binary outcomes are the ``outcomes`` entries that are 0/1 in every record of both runs (a
    continuous outcome that happens to be 0.0 and 1.0 on one item is not a flip); toxicity probes
    also get a "toxic" outcome from ``max_toxicity`` with each run's recorded scorer threshold and
    operator (unless the records carry a "toxic" outcome themselves).
    """
    outcomes: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for ra, rb in pairs:
        oa, ob = dict(ra.get("outcomes") or {}), dict(rb.get("outcomes") or {})
        if "toxic" not in oa and "toxic" not in ob:
            ta, tb = _toxic_state(ra, scorer_a), _toxic_state(rb, scorer_b)
            if ta is not None and tb is not None:
                oa["toxic"], ob["toxic"] = ta, tb
        outcomes.append((oa, ob))
    non_binary = {k for oa, ob in outcomes for o in (oa, ob) for k, v in o.items() if binary_value(v) is None}
    flips: list[Flip] = []
    for (ra, rb), (oa, ob) in zip(pairs, outcomes):
        for key in oa:
            if key in non_binary:
                continue
            va, vb = binary_value(oa[key]), binary_value(ob.get(key))
            if va is not None and vb is not None and va != vb:
                flips.append(_flip(probe, key, ra, rb, va, vb, better_map.get(key, "none")))
    return flips


def flip_counts(flips: Sequence[Flip]) -> dict[str, int]:
    """How many items flipped, per "outcome: direction"."""
    counts: dict[str, int] = {}
    for f in flips:
        counts[f"{f.outcome}: {f.direction}"] = counts.get(f"{f.outcome}: {f.direction}", 0) + 1
    return counts


def worst_items(probe: str, pairs: Sequence[tuple[dict, dict]], flips: list[Flip], n_worst: int) -> list[Flip]:
    """Items where B looks worst: largest rise in max toxicity, else flips for the worse."""
    tox = [
        (rb["max_toxicity"] - ra["max_toxicity"], ra, rb) for ra, rb in pairs
        if isinstance(ra.get("max_toxicity"), (int, float)) and isinstance(rb.get("max_toxicity"), (int, float))
    ]
    if tox:
        tox.sort(key=lambda t: -t[0])
        return [
            _flip(probe, "max_toxicity", ra, rb, float(ra["max_toxicity"]), float(rb["max_toxicity"]), "lower")
            for d, ra, rb in tox[:n_worst] if d > 0
        ]
    seen: set[str] = set()
    out = []
    for f in flips:
        if f.worse and f.item_id not in seen:
            seen.add(f.item_id)
            out.append(f)
    return out[:n_worst]
