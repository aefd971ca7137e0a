"""Identity-term toxicity: does the model write more toxic text about some groups than others?

After Gopher (Rae et al. 2021) and Flan (Chung et al. 2022, appendix C.2): sentence starters
that mention an identity term are continued k times each; the continuations are scored by the
run's scorer. Per group we report the share of continuations at or above the scorer threshold
(``toxic_fraction``, operator as recorded) and the mean toxicity; each group's difference from a
neutral baseline term that names no identity, under the same templates
(``<metric>_minus_neutral`` = group value - neutral value); and per axis and overall a disparity
summary over groups: max - min (``<metric>_range``) and the between-group population standard
deviation (``<metric>_between_group_std``).

Prompts are the project's own templates x terms (``rai_audit/assets/identity_terms/``, see its README), or
the HolisticBias descriptors (Smith et al. 2022) as the term source. The bootstrap cluster is the
template, so a group and the neutral baseline are resampled together.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from probes import toxicity_aggregate as ta
from probes import toxicity_common as tc
from probes.continuation_probe import ContinuationToxicityProbe
from probes.files import read_json, require_file
from probes.release_info import local_dataset_info
from rai_audit.data_root import assets_dir, benchmark_dir
from rai_audit.errors import DataError, UserError
from rai_audit.probe import DatasetInfo, Item, MetricSpec
from rai_audit.stats.reducers import Declaration, Derived, MetricKey, Results, Spread, Values
from rai_audit.stats.table import ItemTable

NEUTRAL = "neutral"
HOLISTIC_BIAS_AXES = {
    "ability": "disability",
    "age": "age",
    "gender_and_sex": "gender",
    "nationality": "nationality",
    "race_ethnicity": "ethnicity",
    "religion": "religion",
    "sexual_orientation": "sexual_orientation",
}
DIFF_METRICS = ("toxic_fraction", "mean_toxicity")


class IdentityParams(tc.GenerationParams):
    term_source: Literal["project", "holistic_bias"] = Field(
        "project", description="Identity terms: the project's rai_audit/assets/identity_terms, or HolisticBias descriptors.")
    axes: list[str] | None = Field(None, description="Axes to keep (gender, ethnicity, religion, sexual_orientation, disability, age, nationality); None = all.")
    templates: list[str] | None = Field(None, description="Template ids to keep (t01..t12); None = all.")
    n_terms_per_axis: int | None = Field(None, ge=1, description="Terms sampled per axis with the seed; None = all.")
    holistic_bias_axes: list[str] = Field(default_factory=lambda: list(HOLISTIC_BIAS_AXES),
                                          description="HolisticBias axes read with term_source=holistic_bias.")
    holistic_bias_preferred_only: bool = Field(False, description="Drop descriptors HolisticBias marks 'dispreferred'.")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def fill(template: str, singular: str, plural: str) -> str:
    return (template.replace("{Singular}", _cap(singular)).replace("{Plural}", _cap(plural))
            .replace("{singular}", singular).replace("{plural}", plural))


def _article(word: str) -> str:
    w = word.lower()
    if w[:1] in "aeiou" or w.startswith(("8", "11-", "18-", "eleven", "eighteen", "honest", "hour")):
        return "an"
    return "a"


class IdentityToxicity(ContinuationToxicityProbe):
    name = "identity_toxicity"
    title = "Identity-term toxicity"
    citation = (
        "Rae et al. (2021). Scaling Language Models: Methods, Analysis & Insights from Training Gopher; "
        "Chung et al. (2022). Scaling Instruction-Finetuned Language Models, appendix C.2. Templates and "
        "terms: rai-audit's own (rai_audit/assets/identity_terms), in the style of both."
    )
    Params = IdentityParams
    # The one metric on a report's first page: the Flan-PaLM identity-term study reports the share of toxic continuations.
    headline_metric = "toxic_fraction"
    content_fields = ("prompt",)
    metric_specs = tc.with_generation_specs(
        MetricSpec("toxic_fraction", "Share of continuations at or above the scorer threshold", "lower", "proportion"),
        MetricSpec("mean_toxicity", "Mean continuation toxicity", "lower"),
        MetricSpec("toxic_fraction_minus_neutral", "Group toxic fraction minus the neutral baseline's", "closer_to_zero"),
        MetricSpec("mean_toxicity_minus_neutral", "Group mean toxicity minus the neutral baseline's", "closer_to_zero"),
        MetricSpec("toxic_fraction_range", "Max - min of toxic fraction across groups", "lower"),
        MetricSpec("toxic_fraction_between_group_std", "Between-group std of toxic fraction", "lower"),
    )
    params: IdentityParams

    # ------------------------------------------------------------------ data

    def load(self) -> tuple[DatasetInfo, list[Item]]:
        p = self.params
        own = assets_dir() / "identity_terms"
        layout = "rai_audit/assets/identity_terms/{templates.json,terms.json}"
        tpath = require_file(own, "templates.json", layout)
        templates = [t for t in read_json(tpath)["templates"] if p.templates is None or t["id"] in p.templates]
        if p.templates is not None:
            unknown = set(p.templates) - {t["id"] for t in templates}
            if unknown:
                raise UserError(f"identity_toxicity: unknown template id(s) {sorted(unknown)}; see {tpath}.")
        if p.term_source == "project":
            terms_path = require_file(own, "terms.json", layout)
            terms = self._project_terms(read_json(terms_path))
            info = local_dataset_info(self.name, own, [tpath, terms_path], allow_modified=self.allow_modified_data)
        else:
            d = benchmark_dir(self.data_root, "holistic_bias")
            if d is None:
                raise DataError(
                    "term_source is 'holistic_bias' but no holistic_bias/ folder was found under the data root; "
                    "put HolisticBias's descriptors.json (facebookresearch/ResponsibleNLP, dataset/v1.1) in "
                    "<data root>/holistic_bias/ or use term_source: project."
                )
            dpath = require_file(d, "descriptors.json", "holistic_bias/descriptors.json (HolisticBias v1.1)")
            terms = self._holistic_bias_terms(read_json(dpath))
            info = local_dataset_info("holistic_bias", d, [dpath], allow_modified=self.allow_modified_data)
            own_info = local_dataset_info(self.name, own, [tpath], allow_modified=self.allow_modified_data)
            info.files.update({f"identity_terms/{k}": v for k, v in own_info.files.items()})
            if own_info.revision:  # None when the project's templates match their pin
                info.revision = f"{info.revision}; identity_terms: {own_info.revision}"
            info.name = self.name
        if p.axes is not None:
            known = {t["axis"] for t in terms}
            unknown = set(p.axes) - known
            if unknown:
                raise UserError(f"identity_toxicity: unknown axis/axes {sorted(unknown)}; known: {sorted(known - {NEUTRAL})}.")
            terms = [t for t in terms if t["axis"] in p.axes or t["axis"] == NEUTRAL]
        if p.n_terms_per_axis is not None:
            neutral = [t for t in terms if t["axis"] == NEUTRAL]
            rest = tc.stratified_sample([t for t in terms if t["axis"] != NEUTRAL], lambda t: t["axis"], p.n_terms_per_axis, p.seed)
            terms = neutral + rest
        items = []
        for t in templates:
            for term in terms:
                prompt = fill(t["text"], term["singular"], term["plural"])
                iid = f"{t['id']}|{term['axis']}|{term['group']}"
                items.append(Item(id=iid, cluster=t["id"], data={
                    "prompt": prompt, "template": t["id"], "axis": term["axis"], "group": term["group"],
                    "term": term["singular"], **({"preference": term["preference"]} if "preference" in term else {}),
                }))
        if not items:
            raise DataError("identity_toxicity: no prompts (check templates, axes and the term files).")
        return info, items

    @staticmethod
    def _project_terms(doc: dict[str, Any]) -> list[dict[str, str]]:
        try:
            terms = [{"axis": NEUTRAL, "group": NEUTRAL, "singular": doc["neutral"]["singular"], "plural": doc["neutral"]["plural"]}]
            for axis, lst in doc["axes"].items():
                for t in lst:
                    terms.append({"axis": axis, "group": t["group"], "singular": t["singular"], "plural": t["plural"]})
        except (KeyError, TypeError) as e:
            raise DataError(f"rai_audit/assets/identity_terms/terms.json is malformed ({e!r}); see rai_audit/assets/identity_terms/README.md.") from None
        return terms

    def _holistic_bias_terms(self, doc: dict[str, Any]) -> list[dict[str, str]]:
        p = self.params
        terms = [{"axis": NEUTRAL, "group": NEUTRAL, "singular": "a person", "plural": "people"}]
        for hb_axis in p.holistic_bias_axes:
            if hb_axis not in doc:
                raise UserError(f"identity_toxicity: HolisticBias has no axis {hb_axis!r}; known: {sorted(doc)}.")
            axis = HOLISTIC_BIAS_AXES.get(hb_axis, hb_axis)
            seen: set[str] = set()
            buckets = doc[hb_axis] if isinstance(doc[hb_axis], dict) else {"all": doc[hb_axis]}
            for bucket, entries in buckets.items():
                for e in entries:
                    desc = e if isinstance(e, str) else e.get("descriptor")
                    if not desc or desc in seen:
                        continue
                    pref = "reviewed" if isinstance(e, str) else e.get("preference", "reviewed")
                    if p.holistic_bias_preferred_only and pref == "dispreferred":
                        continue
                    seen.add(desc)
                    art = (e.get("article") if isinstance(e, dict) else None) or _article(desc)
                    terms.append({"axis": axis, "group": desc, "singular": f"{art} {desc} person",
                                  "plural": f"{desc} people", "bucket": bucket, "preference": pref})
        return terms

    # ------------------------------------------------------------------ requests and records

    def subgroups(self, item: Item) -> dict[str, str]:
        d = item.data
        return {"axis": d["axis"], "group": d["group"], "template": d["template"]}

    def record_fields(self, item: Item) -> dict[str, Any]:
        return {"term": item.data["term"]}

    # ------------------------------------------------------------------ metrics

    def labels(self, record: dict[str, Any]) -> list[str]:
        sg = record["subgroups"]
        return [f"group={sg['axis']}/{sg['group']}", f"axis={sg['axis']}"]

    def metrics(self, table: ItemTable) -> list[Declaration]:
        """The generation metrics per group and axis; each group's difference from the neutral
        baseline; per axis and overall the spread across groups."""
        neutral = f"group={NEUTRAL}/{NEUTRAL}"
        groups_by_axis: dict[str, list[str]] = {}
        for lab in table.groups[ta.LABELS].names:
            if lab.startswith("group=") and lab != neutral:
                axis = lab[len("group="):].split("/", 1)[0]
                groups_by_axis.setdefault(axis, []).append(lab)

        def minus_neutral(res: Results, _table: ItemTable) -> dict[MetricKey, Values]:
            out: dict[MetricKey, Values] = {}
            for metric in DIFF_METRICS:
                base = res.value((metric, neutral))
                for labs in groups_by_axis.values():
                    for lab in labs:
                        out[(f"{metric}_minus_neutral", lab)] = (res.value((metric, lab)) - base, res.count((metric, lab)))
            return out

        return [*super().metrics(table), Derived(minus_neutral),
                *(Spread(DIFF_METRICS, labs, f"axis={axis}") for axis, labs in groups_by_axis.items()),
                Spread(DIFF_METRICS, [lab for labs in groups_by_axis.values() for lab in labs], "")]
