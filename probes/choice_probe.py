"""Shared machinery of the probes whose items are "pick one of these options" questions.

Winogender, WinoBias and BBQ all ask the model to choose among a few given options, in one of two
modes (``mode`` parameter):

* ``mc``: one :class:`LoglikRequest` per option (continuation ``" " + option``); the choice is the
  option with the highest score under ``scoring_rule`` (:func:`probes.answer_parsing.option_scores`:
  ``sum`` of log-probabilities, the default; ``per_token``, ``per_char`` or ``per_byte``
  length-normalised; or ``pmi_dc``, which adds one request per option with the domain premise
  ``pmi_premise`` as context, after the conditional ones, and subtracts its log-probability).
  Every MC record says which rule chose (``scoring_rule``); the default rule's requests are the
  same as before the rules existed, so their cache keys are unchanged.
* ``generative``: one greedy :class:`GenerationRequest`; the text is parsed with
  :func:`probes.answer_parsing.match_option`. An unparseable answer has ``parsed = None`` and
  ``choice_index = None``: it is wrong for accuracy (the item was not answered) and is never
  counted as any option in a bias score.

k-shot prompts prepend ``k`` solved exemplars drawn per item with a seeded stream, never the item
itself and never an item of the same cluster (template or matched pair), so the answer is never
shown. A subclass provides the items (``_load_items``), the question text (``prompt_body``) and the
record's subgroup fields; the base builds requests and the common record fields.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from pydantic import Field, model_validator

from probes.answer_parsing import (
    UNCONDITIONAL_RULES,
    MatchMode,
    ScoringRule,
    best_option,
    match_option,
    normalization_alias,
    option_scores,
)
from probes.fewshot import limit_by_cluster, pick_exemplars
from rai_audit.errors import UserError
from rai_audit.hashing import sha256_text
from rai_audit.probe import DatasetInfo, Item, Probe, ProbeParams
from rai_audit.requests import GenerationRequest, GenerationResult, LoglikRequest, LoglikResult, Request, Sampling


class ChoiceParams(ProbeParams):
    mode: Literal["mc", "generative"] = "mc"
    k_shot: int = Field(0, ge=0, le=32)
    seed: int = 0
    chat: bool = False  # wrap the prompt as a user turn in the model's chat template
    # MC: how option log-likelihoods become scores (probes/answer_parsing.py). ``normalization``
    # (none | per_token) is still accepted as its old name.
    scoring_rule: ScoringRule = "sum"
    pmi_premise: str | None = None  # pmi_dc: the domain premise; None = the probe's default
    answer_match: MatchMode = "exact"  # generative: exact normalised match, or unique prefix
    max_new_tokens: int = Field(12, ge=1, le=256)

    @model_validator(mode="before")
    @classmethod
    def _old_normalization_name(cls, data):
        return normalization_alias(data, {"none": "sum", "per_token": "per_token"})

    @model_validator(mode="after")
    def _rule_applies(self):
        if self.mode == "generative" and self.scoring_rule != "sum":
            raise ValueError(f"scoring_rule={self.scoring_rule!r} applies to mode 'mc' only; generative answers are parsed, not scored")
        if self.pmi_premise is not None and self.scoring_rule != "pmi_dc":
            raise ValueError(f"pmi_premise is used only by scoring_rule 'pmi_dc' (scoring_rule is {self.scoring_rule!r})")
        return self


# Record field the old ``normalization`` parameter wrote, kept for the rules it could express.
_OLD_NORMALIZATION = {"sum": "none", "per_token": "per_token"}


class ChoiceProbe(Probe):
    """Base of the option-choosing probes. Items carry ``options`` and ``gold`` in ``data``."""

    Params = ChoiceParams
    #: ``pmi_dc``'s domain premise when ``pmi_premise`` is not set: the task's answer cue without
    #: anything item-specific (Holtzman et al. 2021 use e.g. "the answer is:" or "because").
    default_pmi_premise: str = "Answer:"

    def __init__(self, params=None, data_root=None, **kwargs):
        super().__init__(params, data_root, **kwargs)
        self._pool: list[Item] | None = None
        self._prompts: dict[str, str] = {}  # item id -> full prompt (requests and record agree)

    # -- subclass hooks ---------------------------------------------------------------------
    def _load_items(self) -> tuple[DatasetInfo, list[Item]]:
        raise NotImplementedError

    def prompt_body(self, item: Item) -> str:
        """The question for ``item`` ending where the answer starts (no trailing space)."""
        raise NotImplementedError

    def exemplar_allowed(self, item: Item, candidate: Item) -> bool:
        """Whether ``candidate`` may be shown solved in ``item``'s prompt (default: other cluster)."""
        return candidate.id != item.id and (item.cluster is None or candidate.cluster != item.cluster)

    # -- Probe API ----------------------------------------------------------------------------
    def load(self) -> tuple[DatasetInfo, list[Item]]:
        info, items = self._load_items()
        self._pool = items  # exemplars come from the whole benchmark, not only the sampled part
        return info, limit_by_cluster(items, self.params.limit, self.params.seed)

    def prompt(self, item: Item) -> str:
        cached = self._prompts.get(item.id)
        if cached is None:
            cached = self._prompts[item.id] = self._build_prompt(item)
        return cached

    def _build_prompt(self, item: Item) -> str:
        p = self.params
        shots = ""
        if p.k_shot:
            if self._pool is None:
                raise UserError(f"Probe {self.name}: call load() before building k-shot prompts.")
            exemplars = pick_exemplars(
                self._pool, p.k_shot, seed=p.seed, item_id=item.id,
                allowed=lambda c: self.exemplar_allowed(item, c),
            )
            shots = "".join(
                f"{self.prompt_body(ex)} {ex.data['options'][ex.data['gold']]}\n\n" for ex in exemplars
            )
        return shots + self.prompt_body(item)

    @property
    def pmi_premise(self) -> str:
        """The domain premise ``pmi_dc`` conditions the unconditional term on."""
        return self.default_pmi_premise if self.params.pmi_premise is None else self.params.pmi_premise

    def requests(self, item: Item) -> list[Request]:
        p = self.params
        prompt = self.prompt(item)
        if p.mode == "mc":
            continuations = [" " + o for o in item.data["options"]]
            reqs: list[Request] = [LoglikRequest(context=prompt, continuation=c, chat=p.chat) for c in continuations]
            if p.scoring_rule in UNCONDITIONAL_RULES:
                premise = self.pmi_premise
                reqs += [LoglikRequest(context=premise, continuation=c, chat=p.chat) for c in continuations]
            return reqs
        sampling = Sampling(max_new_tokens=p.max_new_tokens, temperature=0.0, stop=("\n",), n=1, seed=p.seed)
        return [GenerationRequest(prompt=prompt, sampling=sampling, chat=p.chat)]

    def choice_record(self, item: Item, responses: Sequence[Any]) -> dict[str, Any]:
        """Fields every option-choosing record has: prompt, the choice (or None), correctness."""
        p = self.params
        options: list[str] = list(item.data["options"])
        prompt = self.prompt(item)
        rec: dict[str, Any] = {
            "item_id": item.id,
            "cluster": item.cluster,
            "prompt": prompt,
            "prompt_sha256": sha256_text(prompt),
            "mode": p.mode,
            "options": options,
            "gold": item.data.get("gold"),
        }
        if p.mode == "mc":
            results = [r for r in responses if isinstance(r, LoglikResult)]
            rule = p.scoring_rule
            pmi = rule in UNCONDITIONAL_RULES
            expected = len(options) * (2 if pmi else 1)
            if len(results) != expected:
                raise ValueError(f"{item.id}: expected {expected} log-likelihoods, got {len(results)}")
            conditional, unconditional = results[: len(options)], results[len(options):]
            scores = option_scores(conditional, rule, texts=options, unconditional=unconditional if pmi else None)
            idx: int | None = best_option(scores)
            rec["option_scores"] = scores
            rec["scoring_rule"] = rule
            if rule in _OLD_NORMALIZATION:
                rec["normalization"] = _OLD_NORMALIZATION[rule]
            if rule != "sum":
                rec["option_logprobs"] = [float(r.logprob) for r in conditional]
            if pmi:
                rec["pmi_premise"] = self.pmi_premise
                rec["option_logprobs_unconditional"] = [float(r.logprob) for r in unconditional]
            rec["choice"] = options[idx]
        else:
            gen = [r for r in responses if isinstance(r, GenerationResult)]
            texts = list(gen[0].texts) if gen else []
            rec["responses"] = texts
            idx = match_option(texts[0], options, p.answer_match) if texts else None
            rec["answer_match"] = p.answer_match
            rec["parsed"] = None if idx is None else options[idx]
        rec["choice_index"] = idx
        gold = item.data.get("gold")
        rec["correct"] = bool(gold is not None and idx == gold)
        rec["outcomes"] = {"correct": 1.0 if rec["correct"] else 0.0, "parsed": 0.0 if idx is None else 1.0}
        return rec
