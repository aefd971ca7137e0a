"""ToxiGen generation: does the model continue hateful (or benign) statement lists about a group?

Hartvigsen et al. 2022, "ToxiGen: A Large-Scale Machine-Generated Dataset for Adversarial and
Implicit Hate Speech Detection" (ACL). Its demonstration prompts are lists of six statements
about one of the paper's 13 target groups (16 file-name groups in the release), either all
hateful (``hate_<group>_1k.txt``) or all benign (``neutral_<group>_1k.txt``), ending with "-"
so that the model writes the next list item. We continue each prompt k times (stopping at the
end of the line by default, i.e. one new statement), score each continuation with the run's
scorer, and report per prompt kind (hate / neutral), per target group, and per group x kind:
expected maximum toxicity, toxicity probability, toxic fraction and mean toxicity; per group the
hate-minus-neutral difference of the toxic fraction and mean toxicity; per kind the spread
across groups.

Data: ``<data root>/toxigen_prompts/{hate,neutral}_<group>_1k.txt`` (one prompt per line, the
line breaks inside a prompt written as a literal backslash-n), or the Hugging Face set
``toxigen/toxigen-data`` (config ``prompts``; schema not verified offline).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from probes import toxicity_aggregate as ta
from probes import toxicity_common as tc
from probes.continuation_probe import ContinuationToxicityProbe
from probes.files import read_lines
from probes.release_info import HubSource, local_dataset_info
from rai_audit.data_root import benchmark_dir
from rai_audit.errors import DataError, UserError
from rai_audit.probe import DatasetInfo, Item, MetricSpec
from rai_audit.stats.reducers import Declaration, Derived, MetricKey, Results, Spread, Values
from rai_audit.stats.table import ItemTable

HF_ID = "toxigen/toxigen-data"
FILE_RE = re.compile(r"^(hate|neutral)_(.+)_1k\.txt$")
KINDS = ("hate", "neutral")
LAYOUT = "toxigen_prompts/{hate,neutral}_<group>_1k.txt"


def read_prompt_files(directory) -> tuple[list[tuple[str, str, int, str]], list]:
    """(kind, group, line number, raw line) for every prompt line, and the files read."""
    files = sorted(p for p in directory.glob("*_1k.txt") if FILE_RE.match(p.name))
    if not files:
        raise DataError(f"{directory} holds no ToxiGen prompt files; expected layout {LAYOUT}.")
    rows = []
    for f in files:
        kind, group = FILE_RE.match(f.name).groups()
        rows.extend((kind, group, i, line) for i, line in enumerate(read_lines(f)))
    return rows, files


def hub_splits(pinned_files, kinds, groups: list[str] | None) -> list[tuple[str, str]]:
    """(kind, group) of every hub split to read: one per file of the release the manifest pins
    (its file names are the hub's split names), so that no groups means the whole release, as it
    does with local files (the release has no neutral_trans split: naming both kinds and 'trans'
    reads hate_trans alone). Groups the release does not have are named in a UserError."""
    release = [FILE_RE.match(name).groups() for name in sorted(pinned_files) if FILE_RE.match(name)]
    if groups is not None:
        unknown = set(groups) - {g for _, g in release}
        if unknown:
            raise UserError(f"toxigen: unknown group(s) {sorted(unknown)}; known: "
                            f"{', '.join(sorted({g for _, g in release}))}.")
    return [(k, g) for k, g in release if k in kinds and (groups is None or g in groups)]


def unescape(line: str) -> str:
    """The release files write the newlines inside a prompt as the two characters backslash-n."""
    return line.replace("\\n", "\n")


class ToxiGenParams(tc.GenerationParams):
    groups: list[str] | None = Field(None, description="Target groups as named in the file names (women, muslim, ...); None = all.")
    kinds: list[Literal["hate", "neutral"]] = Field(default_factory=lambda: list(KINDS), description="Prompt kinds to run.")
    n_per_file: int | None = Field(None, ge=1, description="Prompts sampled per (kind, group) file with the seed; None = all.")
    stop_at_newline: bool = Field(True, description="Stop at the end of the line: score one new statement, as ToxiGen generated.")
    hf_id: str = Field(HF_ID, description="Hugging Face data set used when no local files are found.")
    hf_revision: str | None = Field(None, description="Hub revision to load (default: the manifest's pin, else main resolved to its current commit; the run records the commit and a checksum of the rows).")


class ToxiGen(ContinuationToxicityProbe):
    name = "toxigen"
    title = "ToxiGen: toxicity of continuations of hateful and benign statement lists"
    citation = (
        "Hartvigsen, Gabriel, Palangi, Sap, Ray, Kamar (2022). ToxiGen: A Large-Scale Machine-Generated "
        "Dataset for Adversarial and Implicit Hate Speech Detection. ACL 2022."
    )
    Params = ToxiGenParams
    # The one metric on a report's first page: the share of toxic continuations, as in the ToxiGen paper's generation study.
    headline_metric = "toxic_fraction"
    content_fields = ("prompt",)
    metric_specs = tc.with_generation_specs(
        MetricSpec("toxic_fraction", "Share of continuations that are toxic", "lower", "proportion"),
        MetricSpec("expected_max_toxicity", "Mean over prompts of the maximum toxicity of k continuations", "lower"),
        MetricSpec("toxic_fraction_hate_minus_neutral", "Toxic fraction after hateful minus after benign prompts", "lower"),
    )
    params: ToxiGenParams

    def load(self) -> tuple[DatasetInfo, list[Item]]:
        p = self.params
        d = benchmark_dir(self.data_root, "toxigen_prompts")
        if d is not None:
            rows, files = read_prompt_files(d)
            info = local_dataset_info(self.name, d, files, allow_modified=self.allow_modified_data)
        else:
            rows = []
            hub = HubSource(self.name, hf_id=p.hf_id, revision=p.hf_revision, allow_modified=self.allow_modified_data)
            for kind, g in hub_splits(hub.manifest.files, p.kinds, p.groups):
                ds = hub.load("prompts", f"{kind}_{g}_1k")
                rows.extend((kind, g, i, r["text"]) for i, r in enumerate(ds))
            info = hub.info()
        known = {g for _, g, _, _ in rows}
        if p.groups is not None and set(p.groups) - known:
            raise UserError(f"toxigen: unknown group(s) {sorted(set(p.groups) - known)}; known: {', '.join(sorted(known))}.")
        rows = [r for r in rows if r[0] in p.kinds and (p.groups is None or r[1] in p.groups)]
        rows = tc.stratified_sample(rows, lambda r: f"{r[0]}_{r[1]}", p.n_per_file, p.seed)
        items = [
            Item(id=f"{kind}_{group}:{i:04d}", cluster=f"{kind}_{group}:{i:04d}",
                 data={"prompt": unescape(line), "kind": kind, "group": group})
            for kind, group, i, line in rows
        ]
        if not items:
            raise DataError("toxigen: no prompts to evaluate (check groups and kinds).")
        return info, items

    def stop_strings(self) -> tuple[str, ...]:
        return ("\n",) if self.params.stop_at_newline else ()

    def subgroups(self, item: Item) -> dict[str, str]:
        return {"kind": item.data["kind"], "group": item.data["group"]}

    def labels(self, record: dict[str, Any]) -> list[str]:
        sg = record["subgroups"]
        return [f"kind={sg['kind']}", f"group={sg['group']}", f"group={sg['group']}|kind={sg['kind']}"]

    def metrics(self, table: ItemTable) -> list[Declaration]:
        """The generation metrics per kind, group and group x kind; per group the hate-minus-neutral
        difference of toxic fraction and mean toxicity; per kind the spread across its groups."""
        labels = table.groups[ta.LABELS].names
        groups = sorted({lab.split("|")[0] for lab in labels if lab.startswith("group=")})

        def hate_minus_neutral(res: Results, _table: ItemTable) -> dict[MetricKey, Values]:
            out: dict[MetricKey, Values] = {}
            for g in groups:
                for metric in ta.SPREAD_METRICS:
                    hate, neutral = (metric, f"{g}|kind=hate"), (metric, f"{g}|kind=neutral")
                    out[(f"{metric}_hate_minus_neutral", g)] = (res.value(hate) - res.value(neutral),
                                                                res.count(hate) + res.count(neutral))
            return out

        decls: list[Declaration] = [*super().metrics(table), Derived(hate_minus_neutral)]
        for kind in KINDS:
            labs = [lab for lab in labels if lab.endswith(f"|kind={kind}")]
            if labs:
                decls.append(Spread(ta.SPREAD_METRICS, labs, f"kind={kind}"))
        return decls
