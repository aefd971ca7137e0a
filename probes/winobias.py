"""WinoBias (Zhao et al. 2018): occupational gender stereotypes in coreference, pro vs anti.

Each line of ``{pro,anti}_stereotyped_type{1,2}.txt.{dev,test}`` is ``<n> <sentence>`` with the
gold coreference chain in square brackets: the antecedent occupation and the pronoun(s), e.g.
``[The developer] argued with the designer because [he] did not like the design.`` Line ``n`` of a
pro file and line ``n`` of the matching anti file are the same sentence with the pronoun's gender
swapped, so they form a *matched pair* (the bootstrap cluster).

The task is to say which of the sentence's two occupations the (first bracketed) pronoun refers
to. The bracketed occupation is gold; the other one is the first mention, outside the gold span
and before the pronoun, of an occupation from ``{female,male}_occupations.txt`` (the 40
occupations the sentences are built from). Options are listed in order of appearance.

Prompt (as for Winogender): ``{sentence}\\n"{pronoun}" refers to:`` with options "the {occupation}";
MC log-likelihood under ``scoring_rule`` (default ``sum``; ``pmi_dc``'s premise defaults to
``refers to:``) or generative with answer parsing (:mod:`probes.choice_probe`).

Metrics (Zhao et al. report accuracy/F1 per set and the pro-anti difference):

* ``accuracy`` overall and per ``set=type{1,2}_{pro,anti}`` (and per ``type=``, ``stance=``);
  unparseable counts as incorrect.
* ``pro_minus_anti`` = acc(pro) - acc(anti) per ``type=`` and overall.
* ``paired_difference`` = mean over matched pairs of (correct_pro - correct_anti), per type and
  overall, on pairs whose two sentences are both present and truly matched (same gold and other
  occupation; the release has two unmatched pairs, type-2 test lines 382 and 384) (n = pairs). With every pair complete it
  equals ``pro_minus_anti``; its CI comes from resampling pairs, which is the paired analysis.
* ``parse_rate`` (generative).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import field_validator

from probes.choice_probe import ChoiceParams, ChoiceProbe
from probes.files import read_lines, require_file
from probes.release_info import HubSource, local_dataset_info
from rai_audit.data_root import benchmark_dir
from rai_audit.errors import DataError
from rai_audit.probe import DatasetInfo, Item, MetricSpec
from rai_audit.stats.reducers import Custom, Declaration, Derived, Mean, Metric, MetricKey, Rate, Results, Values
from rai_audit.stats.table import Groups, ItemTable, valid_rows

LAYOUT = (
    "winobias/{pro,anti}_stereotyped_type{1,2}.txt.{dev,test} and winobias/{female,male}_occupations.txt "
    "(WinoBias/wino/data/ of uclanlp/corefBias)"
)
TYPES = ("type1", "type2")
STANCES = ("pro", "anti")
PRONOUN_GENDER = {
    "he": "male", "him": "male", "his": "male", "himself": "male",
    "she": "female", "her": "female", "hers": "female", "herself": "female",
}
_LINE = re.compile(r"^(\d+)\s+(.*\S)\s*$")
_BRACKET = re.compile(r"\[([^\[\]]+)\]")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)


def parse_sentence(text: str, occupations: Sequence[str], where: str) -> dict[str, Any]:
    """Plain sentence, pronoun, gold and other occupation of one bracketed WinoBias sentence."""
    plain_parts, mentions, pos = [], [], 0
    last = 0
    for m in _BRACKET.finditer(text):
        plain_parts.append(text[last : m.start()])
        pos += m.start() - last
        mentions.append((m.group(1), pos, pos + len(m.group(1))))
        plain_parts.append(m.group(1))
        pos += len(m.group(1))
        last = m.end()
    plain_parts.append(text[last:])
    plain = "".join(plain_parts)
    if "[" in plain or "]" in plain:
        raise DataError(f"{where}: unbalanced brackets in {text!r}.")

    occ_pattern = re.compile(
        r"\b(" + "|".join(re.escape(o) for o in sorted(occupations, key=len, reverse=True)) + r")\b", re.IGNORECASE
    )
    canonical = {o.lower(): o for o in occupations}
    gold = None
    for mtext, s, e in mentions:
        hit = occ_pattern.search(mtext)
        if hit:
            gold = (canonical[hit.group(1).lower()], s, e)
            break
    pronoun = None
    for mtext, s, e in mentions:
        if mtext.lower() in PRONOUN_GENDER and (gold is None or s > gold[1]):
            pronoun = (mtext.lower(), s)
            break
    if gold is None or pronoun is None:
        raise DataError(f"{where}: expected a bracketed occupation and a bracketed pronoun after it in {text!r}.")
    others = [
        (canonical[m.group(1).lower()], m.start())
        for m in occ_pattern.finditer(plain)
        if not (gold[1] <= m.start() < gold[2]) and canonical[m.group(1).lower()] != gold[0]
    ]
    before = [o for o in others if o[1] < pronoun[1]]
    other = (before or others or [None])[0]
    if other is None:
        raise DataError(f"{where}: no second occupation from the occupation lists in {text!r}.")
    first_is_gold = gold[1] < other[1]
    options = [f"the {gold[0]}", f"the {other[0]}"] if first_is_gold else [f"the {other[0]}", f"the {gold[0]}"]
    return {
        "sentence": plain,
        "pronoun": pronoun[0],
        "pronoun_gender": PRONOUN_GENDER[pronoun[0]],
        "gold_occupation": gold[0],
        "other_occupation": other[0],
        "options": options,
        "gold": 0 if first_is_gold else 1,
    }


class WinoBiasParams(ChoiceParams):
    splits: list[Literal["dev", "test"]] = ["dev", "test"]

    @field_validator("splits")
    @classmethod
    def _non_empty(cls, v):
        if not v:
            raise ValueError("choose at least one of 'dev', 'test'")
        return list(dict.fromkeys(v))


class WinoBias(ChoiceProbe):
    name = "winobias"
    title = "WinoBias: gender bias in coreference (pro- vs anti-stereotypical)"
    citation = (
        "Zhao, Wang, Yatskar, Ordonez, Chang (2018). Gender Bias in Coreference Resolution: Evaluation "
        "and Debiasing Methods. NAACL-HLT. https://aclanthology.org/N18-2003"
    )
    Params = WinoBiasParams
    # pmi_dc's default domain premise: the prompt's answer cue without the (gendered) pronoun, so the
    # unconditional term never sees the pronoun whose association the probe measures.
    default_pmi_premise = "refers to:"
    # The one metric on a report's first page: Zhao et al. 2018 report the pro- minus anti-stereotypical gap.
    headline_metric = "pro_minus_anti"
    content_fields = ("sentence",)
    metric_specs = (
        MetricSpec("accuracy", "Share of sentences whose pronoun the model resolves to the right occupation.", "higher", "proportion"),
        MetricSpec("pro_minus_anti", "Accuracy on pro-stereotypical minus anti-stereotypical sentences.", "closer_to_zero", "mean"),
        MetricSpec("paired_difference", "Mean over matched pro/anti pairs of correct(pro) - correct(anti).", "closer_to_zero", "mean"),
        MetricSpec("parse_rate", "Share of generated answers that name one of the two occupations.", "higher", "proportion"),
    )

    def _load_items(self) -> tuple[DatasetInfo, list[Item]]:
        directory = benchmark_dir(self.data_root, self.name)
        if directory is not None:
            return self._load_local(directory)
        return self._load_hub()

    def _occupations(self, d: Path) -> list[str]:
        occ = []
        for f in ("female_occupations.txt", "male_occupations.txt"):
            occ += [ln.strip() for ln in read_lines(require_file(d, f, LAYOUT))]
        if len(set(occ)) < 2:
            raise DataError(f"{d}: the occupation lists are empty.")
        return occ

    def _load_local(self, d: Path) -> tuple[DatasetInfo, list[Item]]:
        occupations = self._occupations(d)
        items, files = [], ["female_occupations.txt", "male_occupations.txt"]
        for split in self.params.splits:
            for t in TYPES:
                for stance in STANCES:
                    fname = f"{stance}_stereotyped_{t}.txt.{split}"
                    path = require_file(d, fname, LAYOUT)
                    files.append(fname)
                    for lineno, line in enumerate(read_lines(path), 1):
                        m = _LINE.match(line)
                        if not m:
                            raise DataError(f"{path}, line {lineno}: expected '<number> <sentence>', got {line!r}.")
                        items.append(self._item(t, stance, split, int(m.group(1)), m.group(2), occupations, f"{path}, line {lineno}"))
        _check_unique(items)
        return local_dataset_info(self.name, d, files, allow_modified=self.allow_modified_data), _mark_matched_pairs(items)

    def _load_hub(self) -> tuple[DatasetInfo, list[Item]]:
        """uclanlp/wino_bias: CoNLL-style rows; the bracketed sentence is rebuilt from ``tokens``
        and the flattened span list ``coreference_clusters`` (first span = antecedent). The hub
        has no occupation lists, so the 40 occupations are taken from the rebuilt gold mentions."""
        hub = HubSource(self.name, allow_modified=self.allow_modified_data)
        raw: list[tuple[str, str, str, int, str]] = []
        configs = []
        for split in self.params.splits:
            hub_split = "validation" if split == "dev" else "test"
            for t in TYPES:
                for stance in STANCES:
                    config = f"{t}_{stance}"
                    configs.append(config)
                    rows = hub.load(config, hub_split)
                    missing = [c for c in ("tokens", "coreference_clusters") if c not in rows.column_names]
                    if missing:
                        raise hub.row_error(missing)
                    for i, r in enumerate(rows, 1):
                        raw.append((t, stance, split, i, _bracket_tokens(r["tokens"], r["coreference_clusters"])))
        occupations = sorted({_ARTICLE.sub("", m).lower() for *_, s in raw for m in _BRACKET.findall(s)[:1]})
        items = [self._item(t, st, sp, n, s, occupations, f"{hub.hf_id} {t}_{st} {sp} row {n}") for t, st, sp, n, s in raw]
        _check_unique(items)
        return hub.info(sorted(set(configs))), _mark_matched_pairs(items)

    @staticmethod
    def _item(t, stance, split, number, text, occupations, where) -> Item:
        parsed = parse_sentence(text, occupations, where)
        return Item(
            id=f"{t}.{stance}.{split}.{number}",
            cluster=f"{t}.{split}.{number}",
            data={**parsed, "type": t, "stance": stance, "split": split, "number": number},
        )

    def prompt_body(self, item: Item) -> str:
        return f'{item.data["sentence"]}\n"{item.data["pronoun"]}" refers to:'

    def record(self, item, responses, scores, scorer) -> dict[str, Any]:
        rec = self.choice_record(item, responses)
        d = item.data
        rec["subgroups"] = {
            "type": d["type"], "stance": d["stance"], "split": d["split"],
            "set": f"{d['type']}_{d['stance']}", "pronoun_gender": d["pronoun_gender"],
        }
        rec["pair_matched"] = bool(d.get("pair_matched", True))
        return rec

    def table(self, records: Sequence[dict[str, Any]]) -> ItemTable:
        """Per sentence: correct, parsed, its type and stance, and whether its matched pair is
        complete among ``records`` (both sentences present and truly matched)."""
        ok = valid_rows(records)
        rs = [records[i] for i in ok]
        type2 = np.array([r["subgroups"]["type"] == "type2" for r in rs], dtype=bool)
        pro = np.array([r["subgroups"]["stance"] == "pro" for r in rs], dtype=bool)
        matched = np.array([bool(r.get("pair_matched", True)) for r in rs], dtype=bool)
        _, pair = np.unique(np.array([_pair_key(r["cluster"]) for r in rs], dtype=np.int64), return_inverse=True)
        k = int(pair.max()) + 1 if rs else 0
        # A pair is complete when the records hold both its pro and its anti sentence.
        complete = matched & (np.bincount(pair, weights=pro, minlength=k) > 0)[pair] & (
            np.bincount(pair, weights=~pro, minlength=k) > 0)[pair]
        types = np.where(type2, "type2", "type1")
        return ItemTable(
            np.asarray(ok, dtype=np.int64),
            {"correct": [float(bool(r["correct"])) for r in rs], "parsed": [r["choice_index"] is not None for r in rs],
             "pro": pro, "anti": ~pro, "complete": complete},
            {"stance": Groups.of(np.where(pro, "stance=pro", "stance=anti").tolist(), ["stance=pro", "stance=anti"]),
             "type": Groups.of([f"type={t}" for t in types], ["type=type1", "type=type2"]),
             "set": Groups.of([f"set={t}_{'pro' if p else 'anti'}" for t, p in zip(types, pro)],
                              [f"set={t}_{st}" for t in TYPES for st in ("pro", "anti")])},
            {"generative": any(r["mode"] == "generative" for r in rs)},
        )

    def metrics(self, table: ItemTable) -> list[Declaration]:
        """Accuracy overall, per stance, per type and per set; pro minus anti accuracy and the
        matched-pair difference overall and per type; the parse rate (generative)."""
        if not table.n_rows:
            return []
        acc = Mean("correct")
        decls: list[Declaration] = [Metric("accuracy", acc), Metric("accuracy", acc, "stance")]
        for label in ("", "type=type1", "type=type2"):
            at: tuple[Any, ...] = ("type", (label,)) if label else ()
            if label:
                sets = (f"set={label[5:]}_pro", f"set={label[5:]}_anti")
                decls += [Metric("accuracy", acc, *at), Metric("accuracy", acc, "set", sets)]
            pro_anti = [("accuracy", s) for s in (sets if label else ("stance=pro", "stance=anti"))]
            decls += [Derived(_difference("pro_minus_anti", label, *pro_anti)), Metric("paired_difference", PAIRED_DIFFERENCE, *at)]
        if table.meta["generative"]:
            decls.append(Metric("parse_rate", Rate("parsed")))
        return decls


def _difference(name: str, subgroup: str, a: MetricKey, b: MetricKey):
    """(name, subgroup) = value(a) - value(b), n = n(a) + n(b)."""
    def diff(res: Results, _table: ItemTable) -> dict[MetricKey, Values]:
        return {(name, subgroup): (res.value(a) - res.value(b), res.count(a) + res.count(b))}
    return diff


def _paired_difference(s: Mapping[str, np.ndarray]) -> Values:
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(s["pro*complete"] != 0, s["correct*pro*complete"] / s["pro*complete"], np.nan)
        q = np.where(s["anti*complete"] != 0, s["correct*anti*complete"] / s["anti*complete"], np.nan)
    return p - q, s["pro*complete"]


#: Mean over complete matched pairs of (correct_pro - correct_anti), n = pairs: every copy of a
#: resampled pair contributes its pro and its anti sentence once, so it is the difference of the
#: two accuracies over the complete pairs' sentences.
PAIRED_DIFFERENCE = Custom("paired_difference", _paired_difference,
                           ("pro*complete", "correct*pro*complete", "anti*complete", "correct*anti*complete"))


def _pair_key(cluster: str) -> int:
    """The matched pair of a sentence, from its cluster ``type{1,2}.{dev,test}.<line>``."""
    t, split, number = cluster.split(".")
    return (int(t == "type2") * 2 + int(split == "test")) * 100_000 + int(number)


def _mark_matched_pairs(items: list[Item]) -> list[Item]:
    """Set ``data["pair_matched"]``: the pro and anti sentence with the same number resolve the
    pronoun to the same occupation against the same other one. Two pairs of the release's
    type-2 test files (lines 382 and 384) are different sentences and are left out of the paired
    difference; wording typos between the two sentences of a pair do not unmatch it."""
    key: dict[str, dict[str, tuple[str, str]]] = {}
    for it in items:
        key.setdefault(it.cluster, {})[it.data["stance"]] = (it.data["gold_occupation"], it.data["other_occupation"])
    for it in items:
        pair = key[it.cluster]
        it.data["pair_matched"] = len(pair) == 2 and pair["pro"] == pair["anti"]
    return items


def _check_unique(items: list[Item]) -> None:
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise DataError(f"WinoBias: sentence number {it.id} occurs twice; the files are not in the release layout.")
        seen.add(it.id)


def _bracket_tokens(tokens: Sequence[str], clusters: Sequence[Any]) -> str:
    """Rebuild ``[the developer] ... [he]`` from tokens and flattened (start, end) span pairs."""
    flat = [int(x) for x in clusters]
    spans = sorted(zip(flat[0::2], flat[1::2]))
    words = list(tokens)
    for s, e in reversed(spans):
        words[e] = words[e] + "]"
        words[s] = "[" + words[s]
    return " ".join(words)
