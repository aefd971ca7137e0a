"""The contract every benchmark probe fulfils.

A probe is data + prompting + per-item scoring + aggregation, in the spirit of HELM's
scenario/adapter/metric split without its depth: one class per benchmark in ``probes/``.

The runner drives it:

1. ``load()`` returns the dataset's provenance and its items (stable ids).
2. ``requests(item)`` lists what to ask the model for that item.
3. The runner answers all requests of a chunk of items in batches (cached), scores generated
   texts with the run's scorer when ``needs_scorer`` is set, then calls
   ``record(item, responses, scores)`` which returns the item's per-item record (a JSON dict).
4. ``table(records)`` turns the records into a per-item table of typed columns (numbers, 0/1
   flags, subgroup labels; :class:`rai_audit.stats.table.ItemTable`) and ``metrics(table)``
   declares the metrics over it (mean, rate, ratio of sums, AUC, a named custom reducer, metrics
   derived from other metrics; :mod:`rai_audit.stats.reducers`), each for the subgroups it is
   reported in. ``aggregate(records)`` is derived from the two: the point estimate and n of every
   (metric, subgroup). The runner's 95% bootstrap CIs and the comparison's paired tests evaluate
   the same declarations for every resample at once (:mod:`rai_audit.stats.evaluate`, a vector of
   cluster counts per resample), so a probe states each formula once and gets CIs and paired
   differences for free. A probe may instead override ``aggregate`` alone; it is then re-run on
   every resample's records (the generic, slower path).

Records always carry ``item_id``, ``cluster`` and ``outcomes`` (a dict of per-item numbers the
paired tests use, e.g. ``{"correct": 1.0}`` or ``{"max_toxicity": 0.31}``), plus whatever the
probe needs (prompt hash, response, parsed choice, subgroup fields). A record whose item failed
(scorer error, unparseable is *not* a failure) has ``"error": "..."`` and is left out of
``aggregate``; the run counts it.

Conventional record fields (use these names where they apply; comparison, confounder and
dashboard code read them):

- ``prompt`` (str): the exact prompt text sent (or the context for log-likelihood items).
- ``prompt_sha256`` (str).
- ``responses`` (list[str]): generated texts, all samples (generative items).
- ``parsed`` (str | None): the parsed answer of a generative item; None means *unparseable*
  (never silently counted as a choice). ``choice`` (str): the chosen option in MC mode.
- ``correct`` (bool) where the item has a gold answer.
- ``toxicity`` (list[float]) per sample, and ``max_toxicity`` (float), for toxicity probes.
- ``subgroups`` (dict[str, str]): the item's subgroup fields, e.g. {"category": "Age",
  "context": "ambig"} or {"gender": "female", "cell": "gotcha"}.
- ``outcomes`` (dict[str, float]): per-item numbers paired tests use (binary as 0.0/1.0).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from rai_audit.requests import Request, Response
from rai_audit.scoring import ScorerIdentity, TextScore
from rai_audit.stats.evaluate import aggregate_declared, derived_aggregate
from rai_audit.stats.reducers import Declaration
from rai_audit.stats.table import ItemTable


class ProbeParams(BaseModel):
    """Parameters common to all probes; each probe subclasses this with its own fields."""

    model_config = ConfigDict(extra="forbid")

    limit: int | None = None  # at most this many items (a seeded sample), None = all


@dataclass(frozen=True)
class Item:
    """One benchmark item. ``id`` is stable across runs and unique within the probe."""

    id: str
    data: dict[str, Any]
    cluster: str | None = None  # bootstrap cluster (template, prompt); None = the item itself


@dataclass
class DatasetInfo:
    """Where the items came from, recorded with every run (docs/architecture.md, "The nouns": Run)."""

    name: str
    source: str  # local directory path or Hugging Face data set id
    revision: str | None = None
    license: str | None = None
    citation: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # relative file name -> sha256

    @property
    def dataset_id(self) -> str:
        blob = "|".join([self.name, self.revision or ""] + [f"{k}={v}" for k, v in sorted(self.files.items())])
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


MetricKey = tuple[str, str]  # (metric name, subgroup; "" for overall)


@dataclass(frozen=True)
class MetricSpec:
    """Describes a metric for reports: what it means, its citation, and which way is good."""

    name: str
    description: str
    better: Literal["higher", "lower", "closer_to_zero", "closer_to_half", "none"] = "none"
    kind: Literal["proportion", "mean", "ratio", "correlation", "auc"] = "mean"


class Probe(ABC):
    """Base class of all probes. Subclasses set the class attributes, ``load``, ``requests`` and
    ``record``, and declare their metrics (``table`` and ``metrics``) or override ``aggregate``."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    Params: ClassVar[type[ProbeParams]] = ProbeParams
    needs_scorer: ClassVar[bool] = False
    metric_specs: ClassVar[Sequence[MetricSpec]] = ()
    #: The metric a report's first page shows for this probe (one row per probe); "" = the first
    #: of ``metric_specs``.
    headline_metric: ClassVar[str] = ""
    #: The ``Item.data`` fields the benchmark's authors wrote (a comment, a prompt, a sentence), as
    #: opposed to the template rai-audit wraps around them: what the contamination check compares
    #: with a tuned model's training data (:mod:`rai_audit.contamination`).
    content_fields: ClassVar[tuple[str, ...]] = ()

    #: Accept local benchmark files whose sha256 differs from their manifest's pin (the run's
    #: ``allow_modified_data``); ``load()`` then records both hashes in the dataset's revision
    #: instead of refusing (:mod:`probes.release_info`).
    allow_modified_data: bool = False

    def __init__(self, params: ProbeParams | Mapping[str, Any] | None = None, data_root: Path | None = None,
                 *, allow_modified_data: bool = False):
        if params is None or isinstance(params, Mapping):
            params = self.Params(**(params or {}))
        self.params = params
        self.data_root = data_root
        self.allow_modified_data = allow_modified_data

    @abstractmethod
    def load(self) -> tuple[DatasetInfo, list[Item]]:
        """Read the benchmark (local release files under ``data_root`` or the hub) into items."""

    @abstractmethod
    def requests(self, item: Item) -> list[Request]:
        """The model requests this item needs, in a fixed order."""

    @abstractmethod
    def record(
        self,
        item: Item,
        responses: Sequence[Response],
        scores: Sequence[Sequence[TextScore]] | None,
        scorer: ScorerIdentity | None,
    ) -> dict[str, Any]:
        """The per-item record. ``scores[j][s]`` scores sample ``s`` of generation request ``j``
        (only generation requests, in order; ``None`` when the probe needs no scorer)."""

    def table(self, records: Sequence[dict[str, Any]]) -> ItemTable:
        """The per-item table of ``records``: one row per error-free record (``source`` says
        which), its number columns, subgroup labels and any table-level facts the metrics need."""
        raise NotImplementedError(f"probe {type(self).__name__} implements neither table() and metrics() nor aggregate()")

    def metrics(self, table: ItemTable) -> Sequence[Declaration]:
        """The metrics over ``table``, in report order (NaN where undefined, e.g. an empty subgroup)."""
        raise NotImplementedError(f"probe {type(self).__name__} implements neither table() and metrics() nor aggregate()")

    @derived_aggregate
    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[MetricKey, tuple[float, int]]:
        """Point estimate and n for every (metric, subgroup): the declared metrics on ``records``.
        A probe that overrides this instead of declaring must keep it pure: the bootstrap then
        calls it once per resample. NaN where a metric is undefined."""
        return aggregate_declared(self, records)

    def content_texts(self, item: Item) -> list[str]:
        """The benchmark-authored texts of ``item`` (``content_fields``, strings only)."""
        return [v for f in self.content_fields if isinstance(v := item.data.get(f), str) and v]

    def texts_to_score(self, item: Item, responses: Sequence[Response]) -> list[list[str]]:
        """Texts the scorer sees, one list per generation request (default: the samples)."""
        from rai_audit.requests import GenerationResult

        return [list(r.texts) for r in responses if isinstance(r, GenerationResult)]
