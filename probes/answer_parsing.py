"""Turning model responses into a choice among an item's options, shared by the bias probes.

Two ways a model answers a multiple-choice item:

* **Generative** (PaLM / Flan style, Chung et al. 2022, appendix on Winogender): the model writes
  free text; :func:`normalize_answer` cuts it at the first punctuation mark or newline,
  lower-cases it and strips a leading article ("the"/"a"/"an": Flan's fix for answers such as
  "the nurse"), and :func:`match_option` compares it with the equally normalised options.
  ``None`` means *unparseable*: it is recorded and reported as a parse rate, never counted as
  a choice.
* **Log-likelihood MC** (lm-evaluation-harness style): :func:`pick_option` takes the option with
  the highest score under a *scoring rule* (:func:`option_scores`, see below).

**Scoring rules** (``scoring_rule``; one mechanism for Winogender, WinoBias, BBQ and CrowS-Pairs).
With ``LL_i = log P(continuation_i | context)`` summed over the continuation's ``T_i`` tokens
(:class:`LoglikResult`), ``a_i`` the option's text *without* the separating space (what
lm-evaluation-harness calls the choice) and ``LL_i^u = log P(continuation_i | premise)``:

* ``sum``: ``LL_i`` (lm-evaluation-harness ``acc``; the default).
* ``per_token``: ``LL_i / T_i`` (Brown et al. 2020's per-token normalisation).
* ``per_char``: ``LL_i / len(a_i)`` in characters (lm-evaluation-harness ``acc_norm``).
* ``per_byte``: ``LL_i / len(a_i.encode("utf-8"))`` (the byte unit of bits-per-byte; equal to
  ``per_char`` for ASCII options).
* ``pmi_dc``: ``LL_i - LL_i^u``, domain-conditional PMI (Holtzman et al. 2021, "Surface Form
  Competition"): ``log P(a | x) - log P(a | x_domain)`` with ``x_domain`` a short task-level premise
  such as ``"Answer:"``, scored with the same continuation ``" " + a_i`` so both terms tokenise
  the option identically. (lm-evaluation-harness's ``acc_mutual_info`` is the same idea with an
  empty premise, scoring the choice without its leading space.)

Lengths and token counts below 1 count as 1. Ties go to the first option.

Apostrophes and hyphens are not treated as cutting punctuation, because options such as
"Can't be determined" (BBQ) or "middle-aged" contain them.
"""

from __future__ import annotations

import re
from typing import Literal, Sequence, get_args

from rai_audit.requests import LoglikResult

MatchMode = Literal["exact", "prefix"]
Normalization = Literal["none", "per_token"]  # the old name of the choice probes' scoring rules
ScoringRule = Literal["sum", "per_token", "per_char", "per_byte", "pmi_dc"]
SCORING_RULES: tuple[str, ...] = get_args(ScoringRule)
#: Rules that need, per option, a second log-likelihood of the option after the domain premise.
UNCONDITIONAL_RULES = frozenset({"pmi_dc"})
#: Rules that divide by the option's length in characters or bytes (they need the option texts).
LENGTH_RULES = frozenset({"per_char", "per_byte"})

# Cut at sentence punctuation, quotes, brackets and line breaks; keep ' and - inside words.
_CUT = re.compile(r"[.,;:!?\"()\[\]{}\n\r\u201c\u201d]")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+")
_SPACES = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """First clause of ``text``, lower-cased, without a leading article, spaces collapsed.

    >>> normalize_answer(" The Nurse, because she was tired.")
    'nurse'
    """
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = _CUT.split(text, maxsplit=1)[0]
    text = _SPACES.sub(" ", text).strip().lower()
    return _ARTICLE.sub("", text).strip()


def match_option(text: str, options: Sequence[str], mode: MatchMode = "exact") -> int | None:
    """Index of the option the generated ``text`` names, or None when it names none (or several).

    ``exact``: the normalised answer equals a normalised option. ``prefix`` additionally accepts an
    answer that starts with exactly one option followed by a word boundary ("nurse was tired" ->
    "nurse"); the longest such option wins when one option is a prefix of another.
    """
    answer = normalize_answer(text)
    if not answer:
        return None
    normalized = [normalize_answer(o) for o in options]
    exact = [i for i, o in enumerate(normalized) if o and o == answer]
    if len(exact) == 1:
        return exact[0]
    if exact:  # two options normalise to the same string: cannot tell them apart
        return None
    if mode == "prefix":
        hits = [i for i, o in enumerate(normalized) if o and (answer.startswith(o + " "))]
        if hits:
            longest = max(len(normalized[i]) for i in hits)
            best = [i for i in hits if len(normalized[i]) == longest]
            if len(best) == 1:
                return best[0]
    return None


def scoring_rule_name(rule: str) -> str:
    """The scoring rule a rule name or an old ``normalization`` value ("none", "total") means."""
    if rule in ("none", "total"):
        return "sum"
    if rule not in SCORING_RULES:
        raise ValueError(f"unknown scoring rule {rule!r}; choose from {', '.join(SCORING_RULES)}")
    return rule


def option_scores(
    results: Sequence[LoglikResult],
    rule: str = "sum",
    *,
    texts: Sequence[str] | None = None,
    unconditional: Sequence[LoglikResult] | None = None,
) -> list[float]:
    """Each option's score under ``rule`` (module docstring), from its log-likelihood result.

    ``texts`` are the options' texts without the separating space (needed by ``per_char`` and
    ``per_byte``); ``unconditional`` the results of the same continuations after the domain
    premise, in the same order (needed by ``pmi_dc``). Old ``normalization`` names are accepted
    ("none" = "total" = "sum").
    """
    rule = scoring_rule_name(rule)
    if rule == "sum":
        return [float(r.logprob) for r in results]
    if rule == "per_token":
        return [r.logprob / max(r.n_tokens, 1) for r in results]
    if rule in LENGTH_RULES:
        if texts is None or len(texts) != len(results):
            raise ValueError(f"scoring rule {rule!r} needs the text of each of the {len(results)} options")
        if rule == "per_char":
            return [r.logprob / max(len(t), 1) for r, t in zip(results, texts)]
        return [r.logprob / max(len(t.encode("utf-8")), 1) for r, t in zip(results, texts)]
    # pmi_dc
    if unconditional is None or len(unconditional) != len(results):
        raise ValueError(f"scoring rule {rule!r} needs an unconditional log-likelihood for each of the {len(results)} options")
    return [float(r.logprob) - float(u.logprob) for r, u in zip(results, unconditional)]


def best_option(scores: Sequence[float]) -> int:
    """Index of the highest score; ties go to the first option (deterministic)."""
    best = 0
    for i, s in enumerate(scores):
        if s > scores[best]:
            best = i
    return best


def pick_option(
    results: Sequence[LoglikResult],
    rule: str = "sum",
    *,
    texts: Sequence[str] | None = None,
    unconditional: Sequence[LoglikResult] | None = None,
) -> int:
    """Index of the highest-scoring option under ``rule``; ties go to the first option."""
    return best_option(option_scores(results, rule, texts=texts, unconditional=unconditional))


def normalization_alias(data, legacy: dict[str, str]):
    """Pydantic "before" hook: turn the old ``normalization`` parameter into ``scoring_rule``.

    ``legacy`` maps the old parameter's values to rules (choice probes: none -> sum, per_token;
    CrowS-Pairs: total -> sum, per_token). Other values, or a ``scoring_rule`` that says
    something else, are errors that name the new parameter.
    """
    if not isinstance(data, dict) or "normalization" not in data:
        return data
    data = dict(data)
    old = data.pop("normalization")
    if old not in legacy:
        raise ValueError(
            f"normalization={old!r}: `normalization` is the old name of `scoring_rule` and takes only "
            f"{', '.join(map(repr, legacy))}; write scoring_rule: one of {', '.join(SCORING_RULES)}"
        )
    rule = legacy[old]
    given = data.get("scoring_rule")
    if given is not None and given != rule:
        raise ValueError(
            f"normalization={old!r} (the old name of scoring_rule, meaning {rule!r}) contradicts "
            f"scoring_rule={given!r}; give only scoring_rule"
        )
    data["scoring_rule"] = rule
    return data
