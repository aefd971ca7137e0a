"""The data types of a comparison: what `rai-audit compare` computes, the store keeps, and the
gate, the report and the dashboard read.

They are pydantic models: ``Comparison.model_validate(d)`` reads a comparison back from its
stored JSON and ``comparison.model_dump(mode="json")`` writes it. The JSON form is the one the
store has always held, byte for byte, so saved comparisons, their ids and the stores'
``result_sha256`` seals stay valid:

* an undefined value (:data:`Value`: a difference on items where the metric is undefined) is NaN
  in memory, ``null`` in JSON, and NaN again when loaded;
* other statistics (:data:`Stat`) are None where they do not apply, and a non-finite one is
  written as ``null`` too;
* free-form content (settings, probe metadata, recorded answers, the policy and the gate verdict)
  is written through :func:`rai_audit.jsonable.jsonable` (numpy scalars become numbers, sets
  sorted lists, ...).

``model_dump()`` in Python mode keeps the values as they are (NaN stays NaN).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Mapping

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from rai_audit.jsonable import jsonable


def _nan_if_none(v: Any) -> Any:
    return math.nan if v is None else v


_AS_JSON = PlainSerializer(jsonable, when_used="json")

#: A value that may be undefined: NaN in memory, null in JSON, NaN again when loaded.
Value = Annotated[float, BeforeValidator(_nan_if_none), _AS_JSON]
#: A statistic that may not apply (None); a NaN or infinite one is written as null.
Stat = Annotated[float | None, _AS_JSON]
#: Free-form JSON content, written through :func:`~rai_audit.jsonable.jsonable`.
Json = Annotated[Any, _AS_JSON]
JsonDict = Annotated[dict[str, Any], _AS_JSON]

_CONFIG = ConfigDict(validate_assignment=True)  # rows are corrected in place; keep them typed


class DiffRow(BaseModel):
    """One metric of one probe in one subgroup ("" = overall), paired B - A."""

    model_config = _CONFIG

    probe: str
    metric: str
    subgroup: str
    source: str  # "metric" (probe aggregate) | "outcome" (per-item outcome)
    method: str
    n: int
    value_a: Value
    value_b: Value
    diff: Value
    ci_low: Stat
    ci_high: Stat
    p_value: Stat
    p_adjusted: Stat
    significant: bool
    mde: Stat  # shown where not significant
    better: str = "none"
    kind: str = "mean"
    se: Stat = None
    clusters: int | None = None  # independent units (clusters) behind the row, where known


class Flip(BaseModel):
    """An item whose binary outcome differs between A and B, with both responses."""

    model_config = _CONFIG

    probe: str
    item_id: str
    outcome: str
    direction: str  # e.g. "correct->incorrect"
    worse: bool | None  # True when B is worse by the outcome's "better" direction
    value_a: Value
    value_b: Value
    prompt: Json = None  # the record's prompt (text for every bundled probe)
    responses_a: list[str] = Field(default_factory=list)
    responses_b: list[str] = Field(default_factory=list)
    parsed_a: Json = None
    parsed_b: Json = None
    subgroups: JsonDict = Field(default_factory=dict)
    max_toxicity_a: Stat = None
    max_toxicity_b: Stat = None


class Confounders(BaseModel):
    """Output properties that can masquerade as safety gains (for one model on one probe)."""

    model_config = _CONFIG

    n_records: int
    n_errors: int
    n_texts: int
    parse_rate: Stat  # share of records with a parsed answer, of those that parse
    empty_rate: Stat  # share of generated samples that are empty or whitespace
    refusal_rate: Stat  # share of generated samples the refusal detector flags
    mean_length_chars: Stat
    mean_length_words: Stat


class ProbeComparison(BaseModel):
    """One probe's part of a comparison: its rows, flips, worst items and confounders."""

    model_config = _CONFIG

    probe: str
    title: str
    citation: str
    metric_specs: Annotated[list[dict[str, Any]], _AS_JSON]
    n_pairs: int
    errors_a: int
    errors_b: int
    rows: list[DiffRow]
    flips: list[Flip]
    flip_counts: dict[str, int]
    confounders: dict[str, Confounders]  # "a", "b"
    worst_items: list[Flip]
    warnings: list[str] = Field(default_factory=list)
    headline: str = ""  # the probe's headline metric (one row per probe on a report's first page)
    # Overlap of this probe's items with a model's training data, per run ("a", "b"), for the runs
    # that recorded one (:mod:`rai_audit.contamination`); empty = not checked, never "clean".
    contamination: dict[str, JsonDict] = Field(default_factory=dict)
    # The rows again on the clean subset (items checked and overlapping in neither run), when any
    # item overlaps: the GPT-3 study's "clean-only" comparison (Brown et al. 2020, appendix C).
    clean_rows: list[DiffRow] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _default_headline(cls, data: Any) -> Any:
        """Comparisons saved before probes named a headline metric: their first metric."""
        if isinstance(data, Mapping) and not data.get("headline") and data.get("metric_specs"):
            data = {**data, "headline": data["metric_specs"][0]["name"]}
        return data

    @property
    def contaminated(self) -> bool:
        return any(c.get("overlapping") for c in self.contamination.values())


class Comparison(BaseModel):
    """Run B compared with run A (B - A) on the same items, probe by probe."""

    model_config = _CONFIG

    comparison_id: str
    run_a: str
    run_b: str
    created_at: str
    settings: JsonDict
    probes: list[ProbeComparison]
    warnings: list[str] = Field(default_factory=list)
    # The gate policy of the audit that made this comparison ({"name", "sha256", "content"}) and
    # its verdict under it (a GateResult dict); None for an ad-hoc `rai-audit compare`.
    policy: Annotated[dict[str, Any] | None, _AS_JSON] = None
    gate: Annotated[dict[str, Any] | None, _AS_JSON] = None

    @property
    def rows(self) -> list[DiffRow]:
        return [r for p in self.probes for r in p.rows]

    @property
    def errors(self) -> int:
        """Error records in both runs across all probes."""
        return sum(p.errors_a + p.errors_b for p in self.probes)

    def probe(self, name: str) -> ProbeComparison:
        for p in self.probes:
            if p.probe == name:
                return p
        raise KeyError(name)
