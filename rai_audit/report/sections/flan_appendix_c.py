"""The Flan appendix C tables: a comparison's toxicity and bias results laid out as Chung et al.
(2022), "Scaling Instruction-Finetuned Language Models", appendix C, reports them, base and tuned
model side by side.

Why a section of its own: the results section lists every metric of every probe; a reader who ran
the battery (``rai-audit run --suite flan-appendix-c``, docs/battery.md) wants the paper's few
tables, in its layout, to set beside it:

* **RealToxicityPrompts**: toxicity probability of continuations (the share of prompts with at
  least one toxic continuation of k) and expected maximum toxicity, by prompt toxicity bucket:
  toxic prompts, non-toxic prompts (split at the probe's ``prompt_threshold``) and all prompts;
* **CivilComments**: ROC AUC of the yes/no toxicity classification, one row per shot count (every
  ``civil_comments`` instance of the audit: 0-shot and 10-shot in the suite);
* **Winogender**: accuracy on stereotypical and gotcha ("anti-stereotypical") sentences, gotcha
  by pronoun gender, and the stereotypical-minus-gotcha gap, one block per scoring mode (multiple
  choice, generative);
* **identity-term toxicity** (the project's addition to the paper's layout): the toxic fraction
  of continuations per identity group, and the neutral baseline.

No statistic is computed here: every number is one of the comparison's paired rows
(:mod:`rai_audit.comparison`: each model's value with the 95% CI the runner stored, the paired
change B - A with its cluster-bootstrap CI, p corrected per metric family), picked by probe,
metric and subgroup. A row the comparison does not have (a metric undefined on these items)
shows as absent. The section is shown for comparisons that include RealToxicityPrompts,
CivilComments and Winogender (any instance); the identity table when that probe ran too. It is
``stored``: the JSON report carries its tables under ``flan_appendix_c``.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.formatting import is_worse, row_ci_text
from rai_audit.report.sections.base import Section, SectionContext

PAPER = "Chung et al. (2022). Scaling Instruction-Finetuned Language Models, appendix C"
REQUIRED = ("realtoxicityprompts", "civil_comments", "winogender")


class CRow(BaseModel):
    """One line of a table: a comparison row picked by metric and subgroup (None fields: absent)."""

    label: str
    metric: str
    subgroup: str
    n: Any = None
    clusters: Any = None
    value_a: Any = None
    value_b: Any = None
    ci_a: Optional[list[Any]] = None  # each run's own 95% CI, as the runner stored it
    ci_b: Optional[list[Any]] = None
    diff: Any = None
    ci_text: str = "—"  # the paired change's 95% CI
    p_adjusted: Any = None
    significant: bool = False
    worse: Optional[bool] = None
    found: bool = False


class CBlock(BaseModel):
    """The rows of one probe instance (e.g. Winogender generative) within a table."""

    heading: str
    probe: str
    setting: str = ""
    rows: list[CRow]


class CTable(BaseModel):
    key: str
    title: str
    note: str
    blocks: list[CBlock]


class FlanAppendixC(BaseModel):
    paper: str
    model_a: Any = None
    model_b: Any = None
    correction: Any = None
    tables: list[CTable]


def _base(name: str) -> str:
    import probes  # the registry module only

    return probes.split_instance(name)[0]


def _params(ctx: SectionContext, probe: str) -> dict[str, Any]:
    from rai_audit.comparison import probe_params

    run = ctx.report.runs.get("a")
    return probe_params(run.config if run is not None and isinstance(run.config, dict) else {}, probe)


def _row(p: dict[str, Any], label: str, metric: str, subgroup: str = "") -> CRow:
    for r in p.get("rows") or []:
        if r.get("metric") == metric and r.get("subgroup") == subgroup and r.get("source") == "metric":
            return CRow(label=label, metric=metric, subgroup=subgroup, n=r.get("n"), clusters=r.get("clusters"),
                        value_a=r.get("value_a"), value_b=r.get("value_b"), ci_a=r.get("ci_a"), ci_b=r.get("ci_b"),
                        diff=r.get("diff"), ci_text=r.get("ci_text") or row_ci_text(r), p_adjusted=r.get("p_adjusted"),
                        significant=bool(r.get("significant")), worse=is_worse(r), found=True)
    return CRow(label=label, metric=metric, subgroup=subgroup)


def _instances(ctx: SectionContext, base: str) -> list[dict[str, Any]]:
    return [p for p in ctx.report.probes if _base(str(p.get("probe", ""))) == base]


def _rtp(ctx: SectionContext, p: dict[str, Any]) -> CBlock:
    params = _params(ctx, p["probe"])
    threshold = params.get("prompt_threshold", 0.5)
    op = params.get("prompt_operator", ">=")
    rows = []
    for metric, what in (("toxicity_probability", "toxicity probability"), ("expected_max_toxicity", "expected max. toxicity")):
        rows += [_row(p, f"{what}: toxic prompts (toxicity {op} {threshold})", metric, "prompt=toxic"),
                 _row(p, f"{what}: non-toxic prompts", metric, "prompt=nontoxic"),
                 _row(p, f"{what}: all prompts", metric)]
    setting = (f"k = {params.get('k', 25)} samples, top-k {params.get('top_k', 40)}, temperature {params.get('temperature', 1.0)}, "
               f"{params.get('max_new_tokens', 20)} new tokens")
    return CBlock(heading=p.get("title") or p["probe"], probe=p["probe"], setting=setting, rows=rows)


def _civil(ctx: SectionContext, instances: list[dict[str, Any]]) -> list[CBlock]:
    shots = sorted(((int(_params(ctx, p["probe"]).get("k_shot", 0)), p) for p in instances), key=lambda sp: (sp[0], sp[1]["probe"]))
    return [CBlock(heading=f"{k}-shot", probe=p["probe"], setting=f"{k}-shot", rows=[_row(p, f"ROC AUC, {k}-shot", "auc")])
            for k, p in shots]


def _winogender(ctx: SectionContext, instances: list[dict[str, Any]]) -> list[CBlock]:
    blocks = []
    for p in sorted(instances, key=lambda p: (_params(ctx, p["probe"]).get("mode", "mc") != "mc", p["probe"])):
        params = _params(ctx, p["probe"])
        mode = "generative" if params.get("mode") == "generative" else "multiple choice"
        shots = int(params.get("k_shot", 0))
        rows = [_row(p, "accuracy: all sentences", "accuracy"),
                _row(p, "accuracy: stereotypical", "accuracy", "cell=stereotypical"),
                _row(p, "accuracy: gotcha (anti-stereotypical)", "accuracy", "cell=gotcha"),
                _row(p, "accuracy: gotcha, female pronoun", "accuracy", "gender=female,cell=gotcha"),
                _row(p, "accuracy: gotcha, male pronoun", "accuracy", "gender=male,cell=gotcha"),
                _row(p, "stereotypical − gotcha", "stereotypical_minus_gotcha")]
        blocks.append(CBlock(heading=f"{mode}, {shots}-shot", probe=p["probe"], setting=f"{mode}, {shots}-shot", rows=rows))
    return blocks


def _identity(p: dict[str, Any]) -> CBlock:
    groups = sorted({str(r["subgroup"]) for r in p.get("rows") or []
                     if r.get("metric") == "toxic_fraction" and r.get("source") == "metric"
                     and str(r.get("subgroup", "")).startswith("group=")},
                    key=lambda g: (g != "group=neutral/neutral", g))
    rows = [_row(p, g[len("group="):], "toxic_fraction", g) for g in groups] + [_row(p, "all groups", "toxic_fraction")]
    return CBlock(heading=p.get("title") or p["probe"], probe=p["probe"], rows=rows)


def build(ctx: SectionContext) -> Optional[FlanAppendixC]:
    r = ctx.report
    if not r.comparison:
        return None
    found = {base: _instances(ctx, base) for base in (*REQUIRED, "identity_toxicity")}
    if not all(found[b] for b in REQUIRED):
        return None
    scorer = (r.runs["a"].scorer or {}) if "a" in r.runs else {}
    judged = (f"a continuation is toxic when the scorer {scorer.get('name')} gives {scorer.get('operator', '>=')} "
              f"{scorer.get('threshold')}" if scorer.get("name") else "toxic by the run's scorer")
    tables = [
        CTable(key="realtoxicityprompts", title="Toxicity of continuations by prompt toxicity (RealToxicityPrompts)",
               note=f"Per prompt bucket: the share of prompts with at least one toxic continuation, and the mean over prompts "
                    f"of the most toxic continuation; {judged} (a local classifier in place of the paper's Perspective API).",
               blocks=[_rtp(ctx, p) for p in found["realtoxicityprompts"]]),
        CTable(key="civil_comments", title="Toxicity classification (CivilComments), ROC AUC",
               note="Yes/no question \"is this comment toxic?\", scored by the answer's probability; higher is better.",
               blocks=_civil(ctx, found["civil_comments"])),
        CTable(key="winogender", title="Gender bias in pronoun resolution (Winogender), accuracy",
               note="Gotcha sentences are those whose answer goes against the occupation's majority gender (BLS); "
                    "a model that follows stereotypes does worse on them. The gap closer to zero is better.",
               blocks=_winogender(ctx, found["winogender"])),
    ]
    if found["identity_toxicity"]:
        tables.append(CTable(key="identity_toxicity", title="Identity-term toxicity: toxic fraction of continuations per group",
                             note=f"Continuations of sentence starters naming an identity group, against the neutral term; {judged}.",
                             blocks=[_identity(p) for p in found["identity_toxicity"]]))
    return FlanAppendixC(paper=PAPER, model_a=r.runs["a"].model_reference if "a" in r.runs else None,
                         model_b=r.runs["b"].model_reference if "b" in r.runs else None,
                         correction=r.comparison_settings.get("correction"), tables=tables)


SECTION = Section("flan_appendix_c", FlanAppendixC, build, stored=True)
