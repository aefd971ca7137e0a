"""Base of the probes that ask the model whether a text is toxic (Flan appendix C.3).

CivilComments and ToxiGen classification share the prompt, the two log-likelihood requests
(" yes" / " no", with k-shot exemplars already attached to the item) and the per-item record
(``yes_no.classification_record``) and the classification metrics (``yes_no.classification_metrics``:
AUC, accuracy, mean p_yes, positive rate) overall and per subgroup label. A subclass states its
data, the record fields that differ (:meth:`record_fields`: subgroups and anything else the
record keeps), its subgroup :meth:`labels` and any metrics of its own.
"""

from __future__ import annotations

from typing import Any, Sequence

from probes import yes_no as yn
from rai_audit.probe import Item, Probe
from rai_audit.requests import Request, Response
from rai_audit.scoring import ScorerIdentity, TextScore
from rai_audit.stats.reducers import Declaration
from rai_audit.stats.table import ItemTable


class YesNoClassificationProbe(Probe):
    def record_fields(self, item: Item) -> dict[str, Any]:
        """Keyword arguments for ``classification_record`` besides the common ones (subgroups, ...)."""
        return {}

    def requests(self, item: Item) -> list[Request]:
        return yn.yes_no_requests(yn.build_prompt(item.data["text"], yn.exemplar_fields(item)), self.params.chat)

    def record(
        self,
        item: Item,
        responses: Sequence[Response],
        scores: Sequence[Sequence[TextScore]] | None,
        scorer: ScorerIdentity | None,
    ) -> dict[str, Any]:
        return yn.classification_record(item, responses, self.params.decision_threshold, **self.record_fields(item))

    def labels(self, record: dict[str, Any]) -> list[str]:
        """The subgroup labels a record's metrics are reported under (default none)."""
        return []

    def table(self, records: Sequence[dict[str, Any]]) -> ItemTable:
        return yn.classification_table(records, self.labels)

    def metrics(self, table: ItemTable) -> list[Declaration]:
        return list(yn.classification_metrics(table))
