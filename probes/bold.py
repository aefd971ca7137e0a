"""BOLD: toxicity of open-ended generation about people, professions, ideologies and religions.

Dhamala et al. 2021, "BOLD: Dataset and Metrics for Measuring Biases in Open-Ended Language
Generation" (FAccT). 23,679 Wikipedia sentence beginnings in five domains (gender, race,
profession, political ideology, religious ideology), each tied to a group (e.g. American_actresses,
Hispanic_and_Latino_Americans). The model continues each prompt k times; continuations are scored
by the run's scorer. Per domain and per group: expected maximum toxicity, toxicity probability,
toxic fraction and mean toxicity (formulas in :mod:`probes.toxicity_aggregate`), plus per domain
the range and between-group std of the groups' toxic fraction and mean toxicity.

Data: ``<data root>/bold/<domain>_prompt.json`` (the release layout: group -> Wikipedia page ->
list of prompts) or the Hugging Face set ``AlexaAI/bold``. Prompts from one Wikipedia page are
related, so the bootstrap cluster is the page.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from probes import toxicity_aggregate as ta
from probes import toxicity_common as tc
from probes.continuation_probe import ContinuationToxicityProbe
from probes.files import read_json, require_file
from probes.release_info import HubSource, local_dataset_info
from rai_audit.data_root import benchmark_dir
from rai_audit.errors import DataError, UserError
from rai_audit.probe import DatasetInfo, Item, MetricSpec
from rai_audit.stats.reducers import Declaration, Spread
from rai_audit.stats.table import ItemTable

DOMAINS = ("gender", "political_ideology", "profession", "race", "religious_ideology")
HF_ID = "AlexaAI/bold"
LAYOUT = "bold/{gender,political_ideology,profession,race,religious_ideology}_prompt.json"


class BOLDParams(tc.GenerationParams):
    domains: list[str] = Field(default_factory=lambda: list(DOMAINS), description="BOLD domains to run.")
    n_per_group: int | None = Field(None, ge=1, description="Prompts sampled per (domain, group) with the seed; None = all.")
    strip_prompt: bool = Field(True, description="Strip the trailing space of the release prompts (it tokenizes badly).")
    hf_id: str = Field(HF_ID, description="Hugging Face data set used when no local files are found.")
    hf_revision: str | None = Field(None, description="Hub revision to load (default: the manifest's pin, else main resolved to its current commit; the run records the commit and a checksum of the rows).")
    hf_split: str = Field("train", description="Hub split.")


class BOLD(ContinuationToxicityProbe):
    name = "bold"
    title = "BOLD: toxicity of open-ended generation by domain and group"
    citation = (
        "Dhamala, Sun, Kumar, Krishna, Pruksachatkun, Chang, Gupta (2021). BOLD: Dataset and Metrics for "
        "Measuring Biases in Open-Ended Language Generation. FAccT 2021."
    )
    Params = BOLDParams
    # The one metric on a report's first page: BOLD (Dhamala et al. 2021) reports the share of toxic generations per group.
    headline_metric = "toxic_fraction"
    content_fields = ("prompt",)
    metric_specs = tc.with_generation_specs(
        MetricSpec("expected_max_toxicity", "Mean over prompts of the maximum toxicity of k continuations", "lower"),
        MetricSpec("toxicity_probability", "Share of prompts with at least one toxic continuation", "lower", "proportion"),
        MetricSpec("toxic_fraction", "Share of continuations that are toxic", "lower", "proportion"),
        MetricSpec("toxic_fraction_range", "Max - min toxic fraction across a domain's groups", "lower"),
    )
    params: BOLDParams

    def load(self) -> tuple[DatasetInfo, list[Item]]:
        p = self.params
        unknown = set(p.domains) - set(DOMAINS)
        if unknown:
            raise UserError(f"bold: unknown domain(s) {sorted(unknown)}; known: {', '.join(DOMAINS)}.")
        rows: list[tuple[str, str, str, int, str]] = []  # domain, group, page, index, prompt
        d = benchmark_dir(self.data_root, "bold")
        if d is not None:
            paths = [require_file(d, f"{dom}_prompt.json", LAYOUT) for dom in p.domains]
            for dom, path in zip(p.domains, paths):
                doc = read_json(path)
                if not isinstance(doc, dict):
                    raise DataError(f"{path}: expected an object group -> page -> list of prompts ({LAYOUT}).")
                for group, pages in doc.items():
                    for page, prompts in pages.items():
                        for i, text in enumerate(prompts):
                            rows.append((dom, group, page, i, text))
            info = local_dataset_info(self.name, d, paths, allow_modified=self.allow_modified_data)
        else:
            hub = HubSource(self.name, hf_id=p.hf_id, revision=p.hf_revision, allow_modified=self.allow_modified_data)
            ds = hub.load(None, p.hf_split)
            for r in ds:
                if r["domain"] in p.domains:
                    for i, text in enumerate(r["prompts"]):
                        rows.append((r["domain"], r["category"], r["name"], i, text))
            info = hub.info()
        items = [
            Item(
                id=f"{dom}|{group}|{page}|{i}",
                cluster=f"{dom}|{page}",
                data={"prompt": text.rstrip() if p.strip_prompt else text, "domain": dom, "group": group, "page": page},
            )
            for dom, group, page, i, text in rows
        ]
        items = tc.stratified_sample(items, lambda it: f"{it.data['domain']}|{it.data['group']}", p.n_per_group, p.seed)
        if not items:
            raise DataError("bold: no prompts to evaluate (check the domains and the files).")
        return info, items

    def subgroups(self, item: Item) -> dict[str, str]:
        return {"domain": item.data["domain"], "group": item.data["group"]}

    def record_fields(self, item: Item) -> dict[str, Any]:
        return {"page": item.data["page"]}

    def labels(self, record: dict[str, Any]) -> list[str]:
        sg = record["subgroups"]
        return [f"domain={sg['domain']}", f"group={sg['domain']}/{sg['group']}"]

    def metrics(self, table: ItemTable) -> list[Declaration]:
        """The generation metrics per domain and group, then per domain the spread of its groups'
        toxic fraction and mean toxicity."""
        by_domain: dict[str, list[str]] = {}
        for lab in table.groups[ta.LABELS].names:
            if lab.startswith("group="):
                by_domain.setdefault(lab[len("group="):].split("/", 1)[0], []).append(lab)
        return [*super().metrics(table),
                *(Spread(ta.SPREAD_METRICS, labs, f"domain={dom}") for dom, labs in by_domain.items())]
