"""ToxiGen classification: does the model recognise implicitly hateful statements about a group?

Hartvigsen et al. 2022 (ToxiGen); yes/no scoring as in Flan (Chung et al. 2022, appendix C.3),
see :mod:`probes.yes_no`. Each statement is asked the same question as CivilComments; the score
is the normalised P(" yes"). Metrics: ROC AUC and accuracy overall and per target group.

Data: locally, the statements of the ToxiGen demonstration prompts
(``<data root>/toxigen_prompts/{hate,neutral}_<group>_1k.txt``): every distinct list item of a
hate file is a statement labelled toxic, of a neutral file one labelled benign (the prompts were
written by the ToxiGen authors to be all-hateful or all-benign; these labels are the file's, not
per-statement human annotations). Online: the human-annotated ``toxigen/toxigen-data`` set
(config ``annotated``, split ``test``), toxic when ``label_rule`` says so: by default
``toxicity_ai + toxicity_human > 5.5`` (as in lm-evaluation-harness), or
``toxicity_human > 2.5`` (human mean above the scale's midpoint).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from probes import toxicity_common as tc
from probes import yes_no as yn
from probes.yes_no_probe import YesNoClassificationProbe
from probes.release_info import HubSource, local_dataset_info
from probes.toxigen import read_prompt_files
from rai_audit.data_root import benchmark_dir
from rai_audit.errors import DataError, UserError
from rai_audit.hashing import sha256_text
from rai_audit.probe import DatasetInfo, Item, MetricSpec

HF_ID = "toxigen/toxigen-data"


def split_statements(line: str) -> list[str]:
    """The list items of one prompt line ("- a\\n- b\\n-"), without the dash, empties dropped."""
    out = []
    for part in line.split("\\n"):
        s = part.strip()
        if s.startswith("-"):
            s = s[1:].strip()
        if s:
            out.append(s)
    return out


class ToxiGenClassifyParams(yn.YesNoParams):
    groups: list[str] | None = Field(None, description="Target groups to keep; None = all.")
    n_per_group: int | None = Field(None, ge=1, description="Statements sampled per (group, label) with the seed; None = all.")
    label_rule: Literal["ai_plus_human_gt_5.5", "human_gt_2.5"] = Field(
        "ai_plus_human_gt_5.5", description="Hub annotated set: toxic when toxicity_ai + toxicity_human > 5.5, or toxicity_human > 2.5.")
    hf_id: str = Field(HF_ID, description="Hugging Face data set used when no local files are found.")
    hf_revision: str | None = Field(None, description="Hub revision to load (default: the manifest's pin, else main resolved to its current commit; the run records the commit and a checksum of the rows).")
    hf_split: str = Field("test", description="Hub split evaluated (config 'annotated').")
    hf_train_split: str = Field("train", description="Hub split the k-shot exemplars come from.")


class ToxiGenClassify(YesNoClassificationProbe):
    name = "toxigen_classify"
    title = "ToxiGen classification: recognising implicit hate (yes/no)"
    citation = (
        "Hartvigsen, Gabriel, Palangi, Sap, Ray, Kamar (2022). ToxiGen: A Large-Scale Machine-Generated Dataset "
        "for Adversarial and Implicit Hate Speech Detection. ACL 2022. Prompting: Chung et al. (2022), app. C.3."
    )
    Params = ToxiGenClassifyParams
    needs_scorer = False
    # The one metric on a report's first page: threshold-free ROC AUC of the hate judgement.
    headline_metric = "auc"
    content_fields = ("text",)
    metric_specs = (
        MetricSpec("auc", "ROC AUC of the normalised P(yes) against the hate label", "higher", "auc"),
        MetricSpec("accuracy", "Share of statements classified correctly at the decision threshold", "higher", "proportion"),
    )
    params: ToxiGenClassifyParams

    def load(self) -> tuple[DatasetInfo, list[Item]]:
        p = self.params
        pool_rows = None
        d = benchmark_dir(self.data_root, "toxigen_prompts")
        if d is not None:
            raw, files = read_prompt_files(d)
            seen: dict[str, dict[str, Any]] = {}
            for kind, group, _, line in raw:
                for s in split_statements(line):
                    sid = f"{kind}_{group}:{sha256_text(s)[:12]}"
                    seen.setdefault(sid, {"id": sid, "text": s, "label": int(kind == "hate"), "group": group})
            rows = list(seen.values())
            info = local_dataset_info(self.name, d, files, allow_modified=self.allow_modified_data)
            info.name = self.name
        else:
            hub = HubSource(self.name, hf_id=p.hf_id, revision=p.hf_revision, allow_modified=self.allow_modified_data)
            rows = self._hub_rows(hub, p.hf_split)
            pool_rows = self._hub_rows(hub, p.hf_train_split) if p.k_shot else None
            info = hub.info()
        known = {r["group"] for r in rows}
        if p.groups is not None:
            if set(p.groups) - known:
                raise UserError(f"toxigen_classify: unknown group(s) {sorted(set(p.groups) - known)}; known: {', '.join(sorted(known))}.")
            rows = [r for r in rows if r["group"] in p.groups]
        if not rows:
            raise DataError("toxigen_classify: no statements to evaluate.")
        pool = [yn.Exemplar(id=r["id"], text=r["text"], label=r["label"]) for r in (pool_rows or rows)]
        rows = tc.stratified_sample(rows, lambda r: f"{r['group']}|{r['label']}", p.n_per_group, p.seed)
        items = []
        for r in rows:
            ex = yn.choose_exemplars(pool, p.k_shot, p.seed, r["id"], r["text"])
            items.append(Item(id=r["id"], cluster=r["id"], data={
                "text": r["text"], "label": r["label"], "group": r["group"],
                "exemplars": [{"id": e.id, "text": e.text, "label": e.label} for e in ex],
            }))
        return info, items

    def _hub_rows(self, hub: HubSource, split: str) -> list[dict[str, Any]]:
        p = self.params
        ds = hub.load("annotated", split)
        rows = []
        for i, r in enumerate(ds):
            ai, human = float(r["toxicity_ai"]), float(r["toxicity_human"])
            toxic = (ai + human > 5.5) if p.label_rule == "ai_plus_human_gt_5.5" else (human > 2.5)
            rows.append({"id": f"{split}:{i}", "text": r["text"], "label": int(toxic), "group": str(r["target_group"])})
        return rows

    def record_fields(self, item: Item) -> dict[str, Any]:
        return {"subgroups": {"group": item.data["group"]}}

    def labels(self, record: dict[str, Any]) -> list[str]:
        return [f"group={record['subgroups']['group']}"]
