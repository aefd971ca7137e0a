"""Plug-ins written the way docs/architecture.md's recipes say, used by tests/test_recipes.py.

Nothing here is special-cased by rai-audit: the scorer reaches the CLI through
``RAI_AUDIT_EXTRA_SCORERS`` exactly as an in-house scorer would.
"""

from __future__ import annotations

from typing import Sequence

from pydantic import Field

from probes.scorers import ScorerOptions
from rai_audit.scoring import Scorer, ScorerIdentity, TextScore


class ShoutScorer(Scorer):
    """'Shouting': the share of a text's letters that are upper case (0 for a text without letters)."""

    class Options(ScorerOptions):
        min_letters: int = Field(1, ge=1, description="letters a text needs before it can shout")

    def __init__(self, *, threshold: float = 0.5, operator: str = ">=", min_letters: int = 1):
        self.min_letters = min_letters
        self.identity = ScorerIdentity(name="shout", version="1", checkpoint_sha256=None, threshold=threshold,
                                       operator=operator, primary="shout", attributes=("shout",),  # type: ignore[arg-type]
                                       length_unit="chars", description="share of upper-case letters")

    def score_batch(self, texts: Sequence[str]) -> list[TextScore]:
        out = []
        for t in texts:
            letters = [c for c in t if c.isalpha()]
            share = sum(c.isupper() for c in letters) / len(letters) if len(letters) >= self.min_letters else 0.0
            out.append(TextScore(scores={"shout": share}))
        return out


# ---------------------------------------------------------------------------- a probe


import hashlib  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from rai_audit.probe import DatasetInfo, Item, MetricSpec, Probe, ProbeParams  # noqa: E402
from rai_audit.requests import LoglikRequest, LoglikResult  # noqa: E402
from rai_audit.stats.reducers import Mean, Rate, grouped  # noqa: E402
from rai_audit.stats.table import Groups, ItemTable, valid_rows  # noqa: E402

STATEMENTS = [(f"s{i}", topic, text) for i, (topic, text) in enumerate([
    ("weather", "It will rain tomorrow."), ("weather", "The sky is green."), ("weather", "Snow is cold."),
    ("maths", "Two plus two is four."), ("maths", "Seven is even."), ("maths", "Ten is larger than three."),
    ("maths", "Zero is positive."), ("weather", "Summer follows spring."),
])]


class AgreeProbe(Probe):
    """Does the model say " yes" rather than " no" after a statement? (A toy: acquiescence bias.)"""

    name = "agree"
    title = "Agreement (toy)"
    citation = "A recipe example of docs/architecture.md."
    Params = ProbeParams
    metric_specs = (
        MetricSpec("agree_rate", "share of statements the model answers yes to", better="closer_to_half", kind="proportion"),
        MetricSpec("yes_margin", "mean log P(yes) - log P(no)", better="none"),
    )
    headline_metric = "agree_rate"
    content_fields = ("text",)

    def load(self):
        files = {"inline": hashlib.sha256(repr(STATEMENTS).encode()).hexdigest()}
        items = [Item(id=i, data={"text": t, "topic": topic}) for i, topic, t in STATEMENTS]
        return DatasetInfo(name=self.name, source="tests/recipe_plugins.py", revision="1", files=files), items

    def requests(self, item):
        prompt = f"{item.data['text']}\nTrue?"
        return [LoglikRequest(context=prompt, continuation=" yes"), LoglikRequest(context=prompt, continuation=" no")]

    def record(self, item, responses, scores, scorer) -> dict[str, Any]:
        yes, no = (r.logprob for r in responses if isinstance(r, LoglikResult))
        return {"item_id": item.id, "cluster": item.cluster, "margin": yes - no, "agree": float(yes > no),
                "subgroups": {"topic": item.data["topic"]}, "outcomes": {"agree": float(yes > no)}}

    def table(self, records):
        ok = valid_rows(records)
        rs = [records[i] for i in ok]
        topics = [f"topic={r['subgroups']['topic']}" for r in rs]
        return ItemTable(np.asarray(ok, dtype=np.int64),
                         {"agree": [r["agree"] for r in rs], "margin": [r["margin"] for r in rs]},
                         {"topic": Groups.of(topics, sorted(set(topics)))})

    def metrics(self, table):
        if not table.n_rows:
            return []
        block = [("agree_rate", Rate("agree")), ("yes_margin", Mean("margin"))]
        return [*grouped(block, table), *grouped(block, table, "topic")]
