"""Base of the probes that score the toxicity of a model's own continuations of a prompt.

RealToxicityPrompts, BOLD, ToxiGen generation and identity-term toxicity share everything but
their data and their subgroups: one generation request of k samples per prompt
(``toxicity_common.generation_request``), the scorer applied to every sample, the same per-item
record (``toxicity_common.toxicity_record``) and the same generation metrics per subgroup
(:mod:`probes.toxicity_aggregate`). A subclass states :meth:`subgroups` and :meth:`labels` (and,
where it has them, :meth:`record_fields`, :meth:`stop_strings` and its own metrics after the
shared ones). RealToxicityPrompts records the prompt's own toxicity as well and keeps its own
``record``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from probes import toxicity_aggregate as ta
from probes import toxicity_common as tc
from rai_audit.probe import Item, Probe
from rai_audit.requests import Request, Response
from rai_audit.scoring import ScorerIdentity, TextScore
from rai_audit.stats.reducers import Declaration
from rai_audit.stats.table import ItemTable


class ContinuationToxicityProbe(Probe):
    needs_scorer = True
    #: Also report the generation metrics of every further attribute the scorer gives.
    attribute_metrics: ClassVar[bool] = False

    def subgroups(self, item: Item) -> dict[str, str]:
        """The item's subgroup fields, e.g. {"domain": ..., "group": ...}."""
        raise NotImplementedError

    def labels(self, record: dict[str, Any]) -> list[str]:
        """The subgroup labels a record's metrics are reported under, e.g. ["domain=race", ...]."""
        raise NotImplementedError

    def record_fields(self, item: Item) -> dict[str, Any]:
        """Extra per-item fields to keep in the record (default none)."""
        return {}

    def stop_strings(self) -> tuple[str, ...]:
        return ()

    def requests(self, item: Item) -> list[Request]:
        return [tc.generation_request(item.data["prompt"], self.params, item.id, stop=self.stop_strings())]

    def record(
        self,
        item: Item,
        responses: Sequence[Response],
        scores: Sequence[Sequence[TextScore]] | None,
        scorer: ScorerIdentity | None,
    ) -> dict[str, Any]:
        return tc.toxicity_record(
            item, item.data["prompt"], tc.generated_texts(responses), scores[0] if scores else None, scorer,
            subgroups=self.subgroups(item), **self.record_fields(item),
        )

    # ------------------------------------------------------------------ metrics

    def table(self, records: Sequence[dict[str, Any]]) -> ItemTable:
        return ta.generation_table(records, self.labels)

    def metrics(self, table: ItemTable) -> list[Declaration]:
        return ta.generation_metrics(table, attributes=self.attribute_metrics)
