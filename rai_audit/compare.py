"""Paired comparison of two runs (base vs tuned) on the same items: `rai-audit compare A B`.

The question the tool exists for: did tuning make the model more toxic or more biased, for whom,
and how sure are we? Both runs answered the same items with the same decoding, seeds and
chat-template mode, so every difference is paired by ``item_id`` (see
:mod:`rai_audit.stats.paired` for the tests and their citations).

For each probe the comparison holds

* **rows**: per metric and subgroup, value A, value B, difference B - A, its 95% CI, p-value,
  the p-value corrected across the subgroups of that metric (Holm by default, or BH), whether it
  is significant, and the minimum detectable effect where it is not. Two sources of rows:
  ``metric`` rows come from the probe's own ``aggregate`` (paired cluster bootstrap and cluster
  permutation test, so ratio metrics work) and ``outcome`` rows from the per-item ``outcomes``
  (exact McNemar for 0/1 outcomes, paired bootstrap + sign-flip test for continuous ones). The
  correction family is one (probe, source, metric) across all its subgroups, overall included.
* **flips**: items whose binary outcome changed (correct -> incorrect and back, non-toxic ->
  toxic and back, ...), with both models' responses.
* **confounders** for both models: parse rate, empty-output rate, refusal rate
  (:mod:`rai_audit.refusals`), mean output length, so that a "safer" model that merely refuses
  more is visible as such.

Pairs where either run recorded an error are left out of the statistics and counted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from rai_audit.errors import UserError
from rai_audit.hashing import sha256_json
from rai_audit.refusals import is_refusal
from rai_audit.stats.bootstrap import cluster_support
from rai_audit.stats.multiple import CORRECTIONS, adjust
from rai_audit.stats.paired import (
    PairedDiff,
    paired_binary,
    paired_bootstrap_aggregate,
    paired_continuous,
    permutations_for_family,
)
from rai_audit.stats.power import mde_paired, mde_paired_binary, mde_paired_continuous

COMPLETED = ("completed", "completed_with_errors")
#: The power at which minimum detectable effects are stated (alpha is the comparison's).
POWER = 0.8

# Where the audit config records the settings both runs must share (first path present wins).
DECODING_PATHS: tuple[tuple[str, ...], ...] = (("decoding",), ("sampling",), ("generation",))
CHAT_PATHS: tuple[tuple[str, ...], ...] = (("chat",), ("chat_template",), ("decoding", "chat"), ("model", "chat"))

# Which way is good for conventional outcome names (probes may add ``outcome_better``).
OUTCOME_BETTER: dict[str, str] = {
    "correct": "higher",
    "accurate": "higher",
    "toxic": "lower",
    "toxicity": "lower",
    "max_toxicity": "lower",
    "stereotyped": "lower",
    "pro_stereotype": "lower",
    "biased": "lower",
}
# Names of the 0 and 1 states of binary outcomes, for flip labels.
OUTCOME_STATES: dict[str, tuple[str, str]] = {
    "correct": ("incorrect", "correct"),
    "toxic": ("non-toxic", "toxic"),
    "stereotyped": ("non-stereotyped", "stereotyped"),
    "biased": ("unbiased", "biased"),
}

ProbeLoader = Callable[[str, Mapping[str, Any]], Any]


# ------------------------------------------------------------------------------ value types


@dataclass
class DiffRow:
    """One metric of one probe in one subgroup ("" = overall), paired B - A."""

    probe: str
    metric: str
    subgroup: str
    source: str  # "metric" (probe aggregate) | "outcome" (per-item outcome)
    method: str
    n: int
    value_a: float
    value_b: float
    diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None
    significant: bool
    mde: float | None  # shown where not significant
    better: str = "none"
    kind: str = "mean"
    se: float | None = None
    clusters: int | None = None  # independent units (clusters) behind the row, where known


@dataclass
class Flip:
    """An item whose binary outcome differs between A and B, with both responses."""

    probe: str
    item_id: str
    outcome: str
    direction: str  # e.g. "correct->incorrect"
    worse: bool | None  # True when B is worse by the outcome's "better" direction
    value_a: float
    value_b: float
    prompt: str | None = None
    responses_a: list[str] = field(default_factory=list)
    responses_b: list[str] = field(default_factory=list)
    parsed_a: Any = None
    parsed_b: Any = None
    subgroups: dict[str, Any] = field(default_factory=dict)
    max_toxicity_a: float | None = None
    max_toxicity_b: float | None = None


@dataclass
class Confounders:
    """Output properties that can masquerade as safety gains (for one model on one probe)."""

    n_records: int
    n_errors: int
    n_texts: int
    parse_rate: float | None  # share of records with a parsed answer, of those that parse
    empty_rate: float | None  # share of generated samples that are empty or whitespace
    refusal_rate: float | None  # share of generated samples the refusal detector flags
    mean_length_chars: float | None
    mean_length_words: float | None


@dataclass
class ProbeComparison:
    probe: str
    title: str
    citation: str
    metric_specs: list[dict[str, Any]]
    n_pairs: int
    errors_a: int
    errors_b: int
    rows: list[DiffRow]
    flips: list[Flip]
    flip_counts: dict[str, int]
    confounders: dict[str, Confounders]  # "a", "b"
    worst_items: list[Flip]
    warnings: list[str] = field(default_factory=list)
    headline: str = ""  # the probe's headline metric (one row per probe on a report's first page)
    # Overlap of this probe's items with a model's training data, per run ("a", "b"), for the runs
    # that recorded one (:mod:`rai_audit.contamination`); empty = not checked, never "clean".
    contamination: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The rows again on the clean subset (items checked and overlapping in neither run), when any
    # item overlaps: the GPT-3 study's "clean-only" comparison (Brown et al. 2020, appendix C).
    clean_rows: list[DiffRow] = field(default_factory=list)

    @property
    def contaminated(self) -> bool:
        return any(c.get("overlapping") for c in self.contamination.values())


@dataclass
class Comparison:
    comparison_id: str
    run_a: str
    run_b: str
    created_at: str
    settings: dict[str, Any]
    probes: list[ProbeComparison]
    warnings: list[str] = field(default_factory=list)
    # The gate policy of the audit that made this comparison ({"name", "sha256", "content"}) and
    # its verdict under it (a GateResult dict); None for an ad-hoc `rai-audit compare`.
    policy: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None

    @property
    def rows(self) -> list[DiffRow]:
        return [r for p in self.probes for r in p.rows]

    @property
    def errors(self) -> int:
        """Error records in both runs across all probes."""
        return sum(p.errors_a + p.errors_b for p in self.probes)

    def probe(self, name: str) -> ProbeComparison:
        for p in self.probes:
            if p.probe == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN becomes None)."""
        return _clean(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Comparison":
        def nan(v):
            return float("nan") if v is None else v

        def diff_row(r: Mapping[str, Any]) -> DiffRow:
            return DiffRow(**{**r, "value_a": nan(r["value_a"]), "value_b": nan(r["value_b"]), "diff": nan(r["diff"])})

        probes = []
        for p in d["probes"]:
            rows = [diff_row(r) for r in p["rows"]]
            default_headline = p["metric_specs"][0]["name"] if p.get("metric_specs") else ""
            probes.append(
                ProbeComparison(
                    **{k: p[k] for k in ("probe", "title", "citation", "metric_specs", "n_pairs", "errors_a", "errors_b", "flip_counts")},
                    rows=rows,
                    flips=[Flip(**f) for f in p["flips"]],
                    confounders={k: Confounders(**v) for k, v in p["confounders"].items()},
                    worst_items=[Flip(**f) for f in p["worst_items"]],
                    warnings=list(p.get("warnings", [])),
                    headline=p.get("headline") or default_headline,
                    contamination=dict(p.get("contamination") or {}),
                    clean_rows=[diff_row(r) for r in p.get("clean_rows") or []],
                )
            )
        return cls(
            comparison_id=d["comparison_id"], run_a=d["run_a"], run_b=d["run_b"], created_at=d["created_at"],
            settings=dict(d["settings"]), probes=probes, warnings=list(d.get("warnings", [])),
            policy=d.get("policy"), gate=d.get("gate"),
        )


def jsonable(v: Any) -> Any:
    """A strictly JSON-serialisable copy: NaN/inf -> None, numpy scalars -> Python, datetimes ->
    ISO strings, dataclasses -> dicts, sets -> sorted lists."""
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return sorted(jsonable(x) for x in v)
    if isinstance(v, np.generic):
        return jsonable(v.item())
    if isinstance(v, datetime):
        return v.isoformat()
    if is_dataclass(v) and not isinstance(v, type):
        return jsonable(asdict(v))
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    return str(v)


_clean = jsonable


# ------------------------------------------------------------------------------ comparability


def _lookup(config: Mapping[str, Any], paths: Iterable[tuple[str, ...]]) -> Any:
    for path in paths:
        cur: Any = config
        for part in path:
            if not isinstance(cur, Mapping) or part not in cur:
                break
            cur = cur[part]
        else:
            return cur
    return None


def probe_params(config: Mapping[str, Any], probe: str) -> dict[str, Any]:
    """The probe's parameters as the run config recorded them ({} when none)."""
    spec = (config or {}).get("probes")
    if isinstance(spec, Mapping):
        got = spec.get(probe)
        return dict(got) if isinstance(got, Mapping) else {}
    if isinstance(spec, list):
        for entry in spec:
            if isinstance(entry, Mapping) and entry.get("name") == probe:
                return {k: v for k, v in entry.items() if k not in ("name", "params")} | dict(entry.get("params") or {})
    return {}


def _item_difference(probe: str, ids_a: set[str], ids_b: set[str]) -> str | None:
    if ids_a == ids_b:
        return None
    only_a, only_b = sorted(ids_a - ids_b), sorted(ids_b - ids_a)
    example = (only_a or only_b)[:3]
    return (
        f"items of probe {probe!r} ({len(only_a)} only in A, {len(only_b)} only in B, "
        f"e.g. {', '.join(map(str, example))})"
    )


def _dataset_fingerprints(datasets: Mapping[str, Any] | None) -> dict[str, Any]:
    """What identifies each data set's content (name, revision, file hashes), ignoring where it
    was read from, so the same files at another path still compare."""
    out = {}
    for key, info in (datasets or {}).items():
        if isinstance(info, Mapping):
            out[key] = {k: info.get(k) for k in ("name", "revision", "files", "dataset_id") if info.get(k) is not None}
        else:
            out[key] = info
    return out


def check_comparable(run_a: Any, run_b: Any, records_a: Mapping[str, list], records_b: Mapping[str, list]) -> None:
    """Raise UserError naming every setting in which the two runs differ."""
    problems: list[str] = []
    pa, pb = list(run_a.probes), list(run_b.probes)
    if set(pa) != set(pb):
        problems.append(
            f"probe suites (only in A: {sorted(set(pa) - set(pb)) or '-'}; only in B: {sorted(set(pb) - set(pa)) or '-'})"
        )
    if run_a.seed != run_b.seed:
        problems.append(f"seeds (A: {run_a.seed}, B: {run_b.seed})")
    dec_a, dec_b = _lookup(run_a.config, DECODING_PATHS), _lookup(run_b.config, DECODING_PATHS)
    if dec_a != dec_b:
        problems.append(f"decoding (A: {dec_a}, B: {dec_b})")
    chat_a, chat_b = _lookup(run_a.config, CHAT_PATHS), _lookup(run_b.config, CHAT_PATHS)
    if chat_a != chat_b:
        problems.append(f"chat-template mode (A: {chat_a}, B: {chat_b})")
    da, db = _dataset_fingerprints(run_a.datasets), _dataset_fingerprints(run_b.datasets)
    if da != db:
        names = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
        problems.append(f"items (datasets differ: {', '.join(names)})")
    for probe in sorted(set(pa) & set(pb)):
        if probe_params(run_a.config, probe) != probe_params(run_b.config, probe):
            problems.append(
                f"items (parameters of probe {probe!r}: A {probe_params(run_a.config, probe)}, "
                f"B {probe_params(run_b.config, probe)})"
            )
        diff = _item_difference(probe, {r["item_id"] for r in records_a.get(probe, [])}, {r["item_id"] for r in records_b.get(probe, [])})
        if diff:
            problems.append(diff)
    if problems:
        raise UserError(
            f"Runs {run_a.run_id} and {run_b.run_id} cannot be compared item by item because they differ in: "
            + "; ".join(problems)
            + ". Re-run both models with the same audit config (same probes and items, decoding, seed and "
            "chat-template mode) and compare those runs."
        )


# ------------------------------------------------------------------------------ confounders


def _samples(record: Mapping[str, Any]) -> list[str]:
    responses = record.get("responses")
    if isinstance(responses, list):
        return [r if isinstance(r, str) else "" for r in responses]
    if isinstance(record.get("response"), str):
        return [record["response"]]
    return []


def confounders(records: Sequence[Mapping[str, Any]]) -> Confounders:
    """Parse, empty-output and refusal rates and mean output length over a run's records of a
    probe. Rates are None where they do not apply (no generated text, nothing to parse)."""
    ok = [r for r in records if not r.get("error")]
    parse_flags = [r.get("parsed") is not None for r in ok if "parsed" in r]
    texts = [t for r in ok for t in _samples(r)]
    n_texts = len(texts)
    return Confounders(
        n_records=len(records),
        n_errors=len(records) - len(ok),
        n_texts=n_texts,
        parse_rate=sum(parse_flags) / len(parse_flags) if parse_flags else None,
        empty_rate=sum(not t.strip() for t in texts) / n_texts if n_texts else None,
        refusal_rate=sum(is_refusal(t) for t in texts) / n_texts if n_texts else None,
        mean_length_chars=float(np.mean([len(t) for t in texts])) if n_texts else None,
        mean_length_words=float(np.mean([len(t.split()) for t in texts])) if n_texts else None,
    )


# ------------------------------------------------------------------------------ outcome rows


def _subgroup_labels(record: Mapping[str, Any]) -> list[str]:
    sub = record.get("subgroups") or {}
    return [""] + [f"{k}={v}" for k, v in sorted(sub.items()) if v not in (None, "")]


def _outcome_row(
    probe: str, key: str, subgroup: str, pairs: list[tuple[dict, dict]], better: str, *, binary: bool,
    n_boot: int, n_perm: int, seed: int, alpha: float,
) -> DiffRow:
    """One outcome in one subgroup. ``binary`` is decided over the whole probe, so every
    subgroup of an outcome is tested the same way."""
    a = [float(ra["outcomes"][key]) for ra, _ in pairs]
    b = [float(rb["outcomes"][key]) for _, rb in pairs]
    clusters = [ra.get("cluster") or f"item:{ra['item_id']}" for ra, _ in pairs]
    clustered = len(set(clusters)) < len(clusters)
    if binary and not clustered:
        res = paired_binary(a, b, alpha=alpha)
        mde = mde_paired_binary(res.n, res.extra.get("discordant", 0.0), alpha=alpha) if res.n else None
        kind = "proportion"
    else:
        res = paired_continuous(a, b, clusters=clusters if clustered else None, n_boot=n_boot, n_perm=n_perm, seed=seed, alpha=alpha)
        sd = res.extra.get("sd_diff", 0.0)
        if clustered or not sd:
            mde = mde_paired(res.se, res.extra.get("se_a"), res.extra.get("se_b"), alpha=alpha)
        else:
            mde = mde_paired_continuous(res.n, sd, alpha=alpha)
        kind = "proportion" if binary else "mean"
    return _row(probe, key, subgroup, "outcome", res, mde, better, kind, clusters=len(set(clusters)))


def _row(probe: str, metric: str, subgroup: str, source: str, res: PairedDiff, mde: float | None, better: str, kind: str,
         clusters: int | None = None) -> DiffRow:
    if (clusters is not None and clusters < 2) or res.n < 2:
        mde = None  # one cluster or item says nothing about what could be detected
    return DiffRow(
        probe=probe, metric=metric, subgroup=subgroup, source=source, method=res.method, n=res.n,
        value_a=res.value_a, value_b=res.value_b, diff=res.diff, ci_low=res.ci_low, ci_high=res.ci_high,
        p_value=res.p_value, p_adjusted=None, significant=False, mde=mde, better=better, kind=kind, se=res.se,
        clusters=clusters,
    )


def _outcome_rows(probe: str, pairs: list[tuple[dict, dict]], better_map: Mapping[str, str], **kw) -> list[DiffRow]:
    keys: list[str] = []
    for ra, rb in pairs:
        for k in list((ra.get("outcomes") or {})) + list((rb.get("outcomes") or {})):
            if k not in keys:
                keys.append(k)
    rows = []
    for key in keys:
        usable = [
            (ra, rb) for ra, rb in pairs
            if _finite_num((ra.get("outcomes") or {}).get(key)) and _finite_num((rb.get("outcomes") or {}).get(key))
        ]
        groups: dict[str, list[tuple[dict, dict]]] = {}
        for ra, rb in usable:
            for label in _subgroup_labels(ra):
                groups.setdefault(label, []).append((ra, rb))
        binary = all(_binary_value(r["outcomes"][key]) is not None for pair in usable for r in pair)
        n_perm = permutations_for_family(kw["n_boot"], len(groups), kw["alpha"])
        for label, members in groups.items():
            rows.append(_outcome_row(probe, key, label, members, better_map.get(key, "none"), binary=binary, n_perm=n_perm, **kw))
    return rows


def _finite_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(float(v))


def _binary_value(v: Any) -> float | None:
    """0.0/1.0 for a binary outcome value (bools included), None otherwise."""
    if isinstance(v, (int, float)) and float(v) in (0.0, 1.0):
        return float(v)
    return None


# ------------------------------------------------------------------------------ flips


def _toxic_state(record: Mapping[str, Any], scorer: Mapping[str, Any] | None) -> float | None:
    mt = record.get("max_toxicity")
    if not isinstance(mt, (int, float)) or not math.isfinite(mt):
        return None
    threshold = float((scorer or {}).get("threshold", 0.5))
    op = (scorer or {}).get("operator", ">=")
    return 1.0 if (mt > threshold if op == ">" else mt >= threshold) else 0.0


def _flip(probe: str, key: str, ra: Mapping[str, Any], rb: Mapping[str, Any], va: float, vb: float, better: str) -> Flip:
    low, high = OUTCOME_STATES.get(key, (f"not {key}", key))
    state = lambda v: high if v == 1.0 else low  # noqa: E731
    worse = None if better not in ("higher", "lower") else (vb < va if better == "higher" else vb > va)
    return Flip(
        probe=probe, item_id=str(ra["item_id"]), outcome=key, direction=f"{state(va)}->{state(vb)}", worse=worse,
        value_a=va, value_b=vb, prompt=ra.get("prompt"), responses_a=_samples(ra), responses_b=_samples(rb),
        parsed_a=ra.get("parsed", ra.get("choice")), parsed_b=rb.get("parsed", rb.get("choice")),
        subgroups=dict(ra.get("subgroups") or {}),
        max_toxicity_a=ra.get("max_toxicity"), max_toxicity_b=rb.get("max_toxicity"),
    )


def find_flips(
    probe: str,
    pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    better_map: Mapping[str, str] = OUTCOME_BETTER,
    scorer_a: Mapping[str, Any] | None = None,
    scorer_b: Mapping[str, Any] | None = None,
) -> list[Flip]:
    """Every item whose binary outcome changed between A and B, both directions.

    Binary outcomes are the ``outcomes`` entries that are 0/1 in every record of both runs (a
    continuous outcome that happens to be 0.0 and 1.0 on one item is not a flip); toxicity probes
    also get a "toxic" outcome from ``max_toxicity`` with each run's recorded scorer threshold and
    operator (unless the records carry a "toxic" outcome themselves).
    """
    outcomes: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for ra, rb in pairs:
        oa, ob = dict(ra.get("outcomes") or {}), dict(rb.get("outcomes") or {})
        if "toxic" not in oa and "toxic" not in ob:
            ta, tb = _toxic_state(ra, scorer_a), _toxic_state(rb, scorer_b)
            if ta is not None and tb is not None:
                oa["toxic"], ob["toxic"] = ta, tb
        outcomes.append((oa, ob))
    non_binary = {k for oa, ob in outcomes for o in (oa, ob) for k, v in o.items() if _binary_value(v) is None}
    flips: list[Flip] = []
    for (ra, rb), (oa, ob) in zip(pairs, outcomes):
        for key in oa:
            if key in non_binary:
                continue
            va, vb = _binary_value(oa[key]), _binary_value(ob.get(key))
            if va is not None and vb is not None and va != vb:
                flips.append(_flip(probe, key, ra, rb, va, vb, better_map.get(key, "none")))
    return flips


def _worst_items(probe: str, pairs: Sequence[tuple[dict, dict]], flips: list[Flip], n_worst: int, better_map) -> list[Flip]:
    """Items where B looks worst: largest rise in max toxicity, else flips for the worse."""
    tox = [
        (rb["max_toxicity"] - ra["max_toxicity"], ra, rb) for ra, rb in pairs
        if isinstance(ra.get("max_toxicity"), (int, float)) and isinstance(rb.get("max_toxicity"), (int, float))
    ]
    if tox:
        tox.sort(key=lambda t: -t[0])
        return [
            _flip(probe, "max_toxicity", ra, rb, float(ra["max_toxicity"]), float(rb["max_toxicity"]), "lower")
            for d, ra, rb in tox[:n_worst] if d > 0
        ]
    seen: set[str] = set()
    out = []
    for f in flips:
        if f.worse and f.item_id not in seen:
            seen.add(f.item_id)
            out.append(f)
    return out[:n_worst]


# ------------------------------------------------------------------------------ the comparison


def _default_probe_loader(name: str, params: Mapping[str, Any]) -> Any:
    import probes  # lazily: rai_audit does not import probes at module top level

    return probes.probe_class(name)(dict(params))


def _spec_dict(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "better": spec.better, "kind": spec.kind}


def _apply_correction(rows: list[DiffRow], method: str, alpha: float) -> None:
    families: dict[tuple[str, str, str], list[DiffRow]] = {}
    for r in rows:
        families.setdefault((r.probe, r.source, r.metric), []).append(r)
    for members in families.values():
        adjusted = adjust([r.p_value for r in members], method)
        for r, p in zip(members, adjusted):
            r.p_adjusted = p
            r.significant = p is not None and p < alpha


def _probe_rows(probe: str, pairs: list[tuple[dict, dict]], instance: Any, spec_by_name: Mapping[str, dict],
                better_map: Mapping[str, str], *, n_boot: int, seed: int, alpha: float, aggregate_test: str,
                correction: str) -> list[DiffRow]:
    """The probe's metric rows (its own aggregate, paired bootstrap) and outcome rows, corrected."""
    rows = _outcome_rows(probe, pairs, better_map, n_boot=n_boot, seed=seed, alpha=alpha)
    if instance is not None:
        agg = paired_bootstrap_aggregate(
            [x for x, _ in pairs], [y for _, y in pairs], instance.aggregate, n_boot=n_boot, seed=seed, alpha=alpha,
            test=aggregate_test,  # type: ignore[arg-type]
        )
        support = cluster_support([x for x, _ in pairs], instance.aggregate)
        metric_rows = []
        for (metric, subgroup), res in agg.items():
            spec = spec_by_name.get(metric, {})
            metric_rows.append(
                _row(probe, metric, subgroup, "metric", res, mde_paired(res.se, res.extra.get("se_a"), res.extra.get("se_b"), alpha=alpha),
                     spec.get("better", "none"), spec.get("kind", "mean"),
                     clusters=support.get((metric, subgroup)))
            )
        rows = metric_rows + rows
    _apply_correction(rows, correction, alpha)
    return rows


def _contamination(probe: str, run_a: Any, run_b: Any) -> dict[str, dict[str, Any]]:
    """Each run's recorded overlap for ``probe`` with its fingerprint's summary (runs that have one)."""
    out = {}
    for side, run in (("a", run_a), ("b", run_b)):
        rec = (run.provenance or {}).get("contamination") or {}
        found = (rec.get("probes") or {}).get(probe)
        if found:
            out[side] = {**found, "fingerprint": rec.get("fingerprint") or {}}
    return out


def compare_runs(
    store: Any,
    run_a: str,
    run_b: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    correction: str = "holm",
    alpha: float = 0.05,
    max_flips: int = 200,
    n_worst: int = 10,
    probe_loader: ProbeLoader | None = None,
    aggregate_test: str = "auto",
    policy: Mapping[str, Any] | None = None,
) -> Comparison:
    """Compare run B against run A (B - A), pairing records by item_id within each probe.

    Raises UserError when the runs are not finished, or differ in items, decoding, seeds or
    chat-template mode (naming which). ``max_flips`` caps the stored flip list per probe (the
    counts are complete). ``probe_loader(name, params)`` returns a probe instance whose
    ``aggregate`` gives the metric rows (default: the ``probes`` registry). ``aggregate_test``
    picks the p-value of metric rows ("auto", "permutation" or "wald"; see
    :func:`~rai_audit.stats.paired.paired_bootstrap_aggregate`). ``policy`` (from
    :func:`rai_audit.gate.policy_identity`) is the audit's gate policy: stored with the comparison
    and part of its id, so the audit's own comparison is never confused with an ad-hoc one.
    """
    if aggregate_test not in ("auto", "permutation", "wald"):
        raise UserError(f"Unknown test {aggregate_test!r} for probe metrics; use auto, permutation or wald.")
    if correction not in CORRECTIONS:
        raise UserError(f"Unknown multiple-comparison correction {correction!r}; use one of {', '.join(CORRECTIONS)}.")
    if n_boot < 1:
        raise UserError(f"--n-boot must be at least 1 (got {n_boot}).")
    ra, rb = store.get_run(run_a), store.get_run(run_b)
    for run in (ra, rb):
        if run.status not in COMPLETED:
            raise UserError(
                f"Run {run.run_id} is {run.status}, not completed; finish it first (re-running its audit "
                "config resumes it) and compare again."
            )
    probe_names = list(dict.fromkeys(ra.probes))
    recs_a = {p: store.records(ra.run_id, p) for p in probe_names}
    recs_b = {p: store.records(rb.run_id, p) for p in dict.fromkeys(rb.probes)}
    check_comparable(ra, rb, recs_a, recs_b)
    loader = probe_loader or _default_probe_loader
    settings = {"n_boot": n_boot, "seed": seed, "correction": correction, "alpha": alpha, "power": POWER,
                "max_flips": max_flips, "aggregate_test": aggregate_test,
                "policy": {"name": policy["name"], "sha256": policy["sha256"]} if policy else None}

    out: list[ProbeComparison] = []
    warnings: list[str] = []
    for i, probe in enumerate(probe_names):
        warnings_p: list[str] = []
        by_id_b = {r["item_id"]: r for r in recs_b[probe]}
        all_pairs = [(r, by_id_b[r["item_id"]]) for r in recs_a[probe]]
        pairs = [(x, y) for x, y in all_pairs if not x.get("error") and not y.get("error")]
        errors_a = sum(bool(x.get("error")) for x, _ in all_pairs)
        errors_b = sum(bool(y.get("error")) for _, y in all_pairs)
        if len(pairs) < len(all_pairs):
            warnings_p.append(f"{len(all_pairs) - len(pairs)} item(s) left out because a run recorded an error for them")

        title, citation, specs, better_map, instance, headline = probe, "", [], dict(OUTCOME_BETTER), None, ""
        try:
            instance = loader(probe, probe_params(ra.config, probe))
            title = getattr(instance, "title", "") or probe
            citation = getattr(instance, "citation", "") or ""
            specs = [_spec_dict(s) for s in getattr(instance, "metric_specs", ())]
            better_map.update(getattr(instance, "outcome_better", {}) or {})
            headline = getattr(instance, "headline_metric", "") or (specs[0]["name"] if specs else "")
        except Exception as e:  # noqa: BLE001 - reported, never hidden: the metric rows are missing
            warnings_p.append(f"probe {probe!r} could not be loaded ({type(e).__name__}: {e}); only per-item outcome rows are compared")
        spec_by_name = {s["name"]: s for s in specs}

        probe_seed = seed + 1009 * i
        rows = _probe_rows(probe, pairs, instance, spec_by_name, better_map, n_boot=n_boot, seed=probe_seed,
                           alpha=alpha, aggregate_test=aggregate_test, correction=correction)
        contamination = _contamination(probe, ra, rb)
        excluded = {i for c in contamination.values() if c["overlapping"] for i in c["overlapping"] + c["unchecked"]}
        clean_rows: list[DiffRow] = []
        if excluded:
            clean = [(x, y) for x, y in pairs if x["item_id"] not in excluded]
            if clean:
                clean_rows = _probe_rows(probe, clean, instance, spec_by_name, better_map, n_boot=n_boot,
                                         seed=probe_seed, alpha=alpha, aggregate_test=aggregate_test, correction=correction)
            else:
                warnings_p.append("no clean items: every item overlaps the training data or could not be checked")

        flips = find_flips(probe, pairs, better_map=better_map, scorer_a=ra.scorer, scorer_b=rb.scorer)
        counts: dict[str, int] = {}
        for f in flips:
            counts[f"{f.outcome}: {f.direction}"] = counts.get(f"{f.outcome}: {f.direction}", 0) + 1
        out.append(
            ProbeComparison(
                probe=probe, title=title, citation=citation, metric_specs=specs, n_pairs=len(pairs),
                errors_a=errors_a, errors_b=errors_b, rows=rows, flips=flips[:max_flips], flip_counts=counts,
                confounders={"a": confounders(recs_a[probe]), "b": confounders(recs_b[probe])},
                worst_items=_worst_items(probe, pairs, flips, n_worst, better_map), warnings=warnings_p,
                headline=headline, contamination=contamination, clean_rows=clean_rows,
            )
        )
        warnings.extend(f"{probe}: {w}" for w in warnings_p)

    comparison_id = sha256_json({"run_a": ra.run_id, "run_b": rb.run_id, "settings": settings})[:32]
    return Comparison(
        comparison_id=comparison_id, run_a=ra.run_id, run_b=rb.run_id,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        settings=settings, probes=out, warnings=warnings, policy=dict(policy) if policy else None,
    )


def save_comparison(store: Any, comparison: Comparison) -> str:
    """Persist a comparison in the store under its own id (a second save of the same id is a no-op)."""
    return store.add_comparison(comparison.run_a, comparison.run_b, comparison.settings, comparison.to_dict(),
                                comparison_id=comparison.comparison_id) or comparison.comparison_id


def load_comparison(store: Any, comparison_id: str) -> Comparison:
    """Read a saved comparison (id, unique prefix or "latest") back from the store."""
    return Comparison.from_dict(store.get_comparison(comparison_id).result)


def row_fields() -> list[str]:
    return [f.name for f in fields(DiffRow)]


def _cell(v: float | None, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:+.4f}" if signed else f"{v:.4f}"


def format_comparison(comparison: Comparison, *, subgroups: bool = True) -> str:
    """A plain-text table of every row (what `rai-audit compare` prints), with flips and
    confounders per probe."""
    header = ("probe", "metric", "subgroup", "src", "n", "A", "B", "B-A", "95% CI", "p adj", "sig", "MDE")
    lines: list[tuple[str, ...]] = [header]
    for p in comparison.probes:
        for r in p.rows:
            if not subgroups and r.subgroup:
                continue
            ci = "-" if r.ci_low is None or r.ci_high is None else f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
            lines.append((
                r.probe, r.metric, r.subgroup or "overall", r.source, str(r.n), _cell(r.value_a), _cell(r.value_b),
                _cell(r.diff, True), ci, "-" if r.p_adjusted is None else f"{r.p_adjusted:.4f}",
                "*" if r.significant else "", "" if r.significant else _cell(r.mde),
            ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    for p in comparison.probes:
        ca, cb = p.confounders.get("a"), p.confounders.get("b")
        flips = ", ".join(f"{k} {v}" for k, v in p.flip_counts.items()) or "none"
        out.append(f"\n{p.probe}: {p.n_pairs} pairs, errors A {p.errors_a} / B {p.errors_b}; flips: {flips}")
        if ca and cb:
            out.append(
                "  confounders A -> B: parse {} -> {}, empty {} -> {}, refusal {} -> {}, mean chars {} -> {}".format(
                    _cell(ca.parse_rate), _cell(cb.parse_rate), _cell(ca.empty_rate), _cell(cb.empty_rate),
                    _cell(ca.refusal_rate), _cell(cb.refusal_rate), _cell(ca.mean_length_chars), _cell(cb.mean_length_chars),
                )
            )
        out.extend(f"  warning: {w}" for w in p.warnings)
    return "\n".join(out)
