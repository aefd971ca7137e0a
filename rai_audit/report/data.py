"""The report's data as pydantic models: :class:`ReportData` is the JSON report
(``rai-audit-report/1``), field for field and in its order; every format is rendered from it.

What the report computes is typed here (page 1, the summary, contamination blocks, subgroup
listings, methodology, data sets, the compliance map). What it carries from elsewhere keeps that
source's shape: a comparison's probes and difference rows (``Comparison.to_dict``), the gate
result (``GateResult.to_dict``) and the runs' free-form config, provenance and scorer records.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_serializer

#: An int or a float, kept as given (1 stays 1, 0.5 stays 0.5: the JSON report is byte-stable).
Number = Union[int, float]

SCHEMA = "rai-audit-report/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------ contamination


class OverlapExample(_Model):
    item_id: str
    ngram: str
    text: str


class RunOverlap(_Model):
    """One run's training-data overlap with a probe's items."""

    side: str
    model_reference: Any = None
    checked: int
    overlapping: int
    unchecked: int
    fraction: Optional[Number] = None
    contaminated: bool
    text: str
    fingerprint_id: Any = None
    source: Any = ""
    path: Any = ""
    documents: Any = None
    ngram_sizes: list[Any]
    examples: list[OverlapExample]
    n_examples: int


class CleanPair(_Model):
    """A probe's overall row on all paired items beside the same row on the clean subset."""

    metric: str
    source: str
    headline: bool
    better: Any = None
    n: Any = None
    value_a: Optional[Number] = None
    value_b: Optional[Number] = None
    diff: Optional[Number] = None
    ci_text: str
    significant: bool
    clean_n: Any = None
    clean_value_a: Optional[Number] = None
    clean_value_b: Optional[Number] = None
    clean_diff: Optional[Number] = None
    clean_ci_low: Optional[Number] = None
    clean_ci_high: Optional[Number] = None
    clean_ci_text: str
    clean_p_adjusted: Optional[Number] = None
    clean_significant: bool
    clean_mde: Optional[Number] = None


class ContaminationDetail(_Model):
    """A probe's contamination block (None in the report when no run recorded training data)."""

    probe: Any = None
    contaminated: bool
    runs: list[RunOverlap]
    clean: list[CleanPair]
    clean_n: Any = None
    no_clean_items: bool


class ContaminationFlag(_Model):
    probe: str
    side: str
    model_reference: Any = None
    overlapping: int
    checked: int
    unchecked: int
    fraction: Optional[Number] = None
    clean_n: Any = None
    detail: str
    text: str


class Fingerprint(_Model):
    side: str
    model_reference: Any = None
    fingerprint_id: Any = None
    source: Any = ""
    path: Any = ""
    documents: Any = None
    ngram_sizes: list[Any]


class ContaminationHeadline(_Model):
    """What page 1 says about contamination (and the dashboard's Compare page)."""

    checked: list[str]
    not_checked: list[str]
    flags: list[ContaminationFlag]
    contaminated: list[str]
    sentence: str
    note: Optional[str] = None
    fingerprints: list[Fingerprint]


# ------------------------------------------------------------------------------ page 1


class Policy(_Model):
    """The policy behind the verdict (an ungated report shows the audit's stored one, if any)."""

    gated: bool
    name: Any = None
    sha256: Any = None
    label: Any = None
    what_if: bool
    description: Any = ""
    audit_policy: Any = None


class AuditedModel(_Model):
    key: str
    role: Any = None
    label: Any = None
    model_reference: Any = None
    model_id: Any = None
    run_id: Any = None
    status: Any = None


class AuditedDataset(_Model):
    probe: str
    name: Any = None
    revision: Any = None
    dataset_id: Any = None
    source: Any = None
    n: Any = None


class Audited(_Model):
    models: list[AuditedModel]
    datasets: list[AuditedDataset]
    store: Optional[str] = None


class HeadlineRow(_Model):
    """One probe's headline metric on page 1. ``n_pairs``, ``errors_a`` and ``errors_b`` are
    only in a comparison's rows (absent, not null, in a single run's)."""

    probe: str
    title: Any = None
    dataset: Any = None
    revision: Any = None
    dataset_id: Any = None
    contaminated: bool
    contamination_marks: list[str]
    metric: Optional[str] = None
    source: Optional[str] = None
    n: Any = None
    clusters: Any = None
    n_pairs: Any = None
    errors_a: Any = None
    errors_b: Any = None
    value_a: Optional[Number] = None
    value_b: Optional[Number] = None
    diff: Optional[Number] = None
    ci_low: Optional[Number] = None
    ci_high: Optional[Number] = None
    ci_text: str
    mde: Optional[Number] = None
    p_adjusted: Optional[Number] = None
    significant: bool
    better: Any = None
    worse: Optional[bool] = None
    verdict: str
    gate_reasons: list[str]
    small_sample: bool

    @model_serializer(mode="wrap")
    def _comparison_only_fields(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        for key in ("n_pairs", "errors_a", "errors_b"):
            if key not in self.model_fields_set:
                out.pop(key, None)
        return out


class GateSummary(_Model):
    """Page 1's gate box: counts per verdict and the rows that did not pass."""

    counts: dict[str, int]
    listed: list[dict[str, Any]]
    errors: Any = 0
    max_errors: Any = 0
    exit_code: Any = None
    description: Any = ""


class Headline(_Model):
    """Page 1 of every format."""

    verdict: str
    policy: Policy
    exit_code: Any = None
    alpha: Any = None
    power: Any = None
    min_items: Any = None
    min_clusters: Any = None
    small_sample_warning: Optional[str] = None
    contamination: ContaminationHeadline
    audited: Audited
    rows: list[HeadlineRow]
    gate: Optional[GateSummary] = None


class Summary(_Model):
    verdict: str
    lines: list[str]
    n_rows: int
    n_regressions: int
    n_improvements: int


class SubgroupDetail(_Model):
    """A probe's subgroup rows for the appendix: significant first, then by |B - A|; at most a
    limit listed (``shown``), the rest counted."""

    shown: list[dict[str, Any]]
    n_rows: int
    n_changed: int
    n_hidden: int
    max_abs_hidden: Optional[Number] = None
    n_unchanged: int
    n_undefined: int
    n_significant: int


# ------------------------------------------------------------------------------ the rest


class RunInfo(_Model):
    """A run as the report shows it (from the store)."""

    run_id: str
    label: Any = None
    role: Any = None
    audit_id: Any = None
    model_reference: Any = None
    model_id: Any = None
    model: Any = None
    status: Any = None
    seed: Any = None
    probes: list[Any]
    config: Any = None
    config_hash: Any = None
    created_at: Any = None
    finished_at: Any = None
    scorer: Any = None
    datasets: Any = None
    provenance: Any = None
    decoding: Any = None
    chat: Any = None


class MetricDefinition(BaseModel):
    """A metric's definition in the methodology (the probe's ``MetricSpec``)."""

    model_config = ConfigDict(extra="allow")

    probe: str
    title: Any = None
    citation: Any = ""
    name: str
    description: Any = ""
    better: Any = "none"
    kind: Any = ""


class Methodology(_Model):
    statistics: list[str]
    metrics: list[MetricDefinition]
    decoding: dict[str, Any]
    chat_template: dict[str, Any]
    seeds: dict[str, Any]
    scorers: dict[str, Any]
    refusal_detector: dict[str, Any]
    settings: dict[str, Any]


class DatasetEntry(_Model):
    probe: str
    name: Any = None
    source: Any = None
    revision: Any = None
    license: Any = None
    citation: Any = None
    files: dict[str, Any]
    dataset_id: Any = None


class FrameworkItem(_Model):
    item: str
    requirement: str
    sections: list[str]


class Compliance(_Model):
    disclaimer: str
    eu_ai_act_annex_xi: list[FrameworkItem]
    nist_ai_rmf_measure: list[FrameworkItem]


class Tool(_Model):
    name: str
    version: str


class ReportData(BaseModel):
    """The JSON report. Sections with data of their own (``Section.stored``) add a field under
    their name after these (``extra``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_: str = Field(SCHEMA, alias="schema")
    kind: Literal["comparison", "run"]
    title: str
    generated_at: str
    tool: Tool
    headline: Headline
    summary: Summary
    gate: Optional[dict[str, Any]] = None
    runs: dict[str, RunInfo]
    comparison_id: Optional[str] = None
    comparison_settings: dict[str, Any]
    comparison_warnings: list[Any]
    #: A comparison's probes (``Comparison.to_dict()["probes"]``) with the report's fields added
    #: (rows with CI text and direction, overall/subgroup splits, ``subgroup_detail``,
    #: ``contamination_detail``), or a single run's probes (metrics, confounders, worst items).
    probes: list[dict[str, Any]]
    metrics: dict[str, list[dict[str, Any]]]
    methodology: Methodology
    datasets: list[DatasetEntry]
    limitations: list[Any]
    provenance: dict[str, dict[str, Any]]
    compliance: Compliance
    signoff: dict[str, Any]
    inputs: dict[str, Any]
    #: What ``build_report`` was given besides the comparison or run, for the stored sections to
    #: read while the report is built (e.g. ``trajectory``: a TrajectoryAnalysis); never dumped.
    _supplied: dict[str, Any] = PrivateAttr(default_factory=dict)

    def supply(self, **inputs: Any) -> "ReportData":
        """Hand inputs to the stored sections' builders (None values are left out)."""
        self._supplied.update({k: v for k, v in inputs.items() if v is not None})
        return self

    def supplied(self, name: str) -> Any:
        """An input given to ``build_report`` (None when it was not given)."""
        return self._supplied.get(name)

    @property
    def comparison(self) -> bool:
        return self.kind == "comparison"

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON report as a dict (what ``build_report`` returns and the JSON format writes)."""
        from rai_audit.jsonable import jsonable

        return jsonable(self.model_dump(mode="json", by_alias=True))
