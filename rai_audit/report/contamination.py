"""Training-data overlap (contamination) as the reports and the dashboard show it: per probe, each
run's counts, fingerprint and a few overlapping items, with the clean-only rows beside the full
ones (:func:`contamination_detail`); for page 1, one flag per contaminated probe and run and one
sentence for the probes no run recorded training data for (:func:`contamination_headline`).

"Not checked" is never "clean": a probe without a recorded check has no block at all.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rai_audit.report.data import CleanPair, ContaminationDetail, ContaminationHeadline, ContaminationFlag, Fingerprint
from rai_audit.report.data import OverlapExample, RunOverlap
from rai_audit.report.formatting import row_ci_text

#: Overlapping items quoted per probe and run in the contamination block (the JSON report keeps
#: every example the run recorded, and the comparison every overlapping id).
SHOW_CONTAMINATION_EXAMPLES = 5
#: Characters of an overlapping item's (normalised) text quoted beside its matching n-gram.
CONTAMINATION_TEXT_CHARS = 160


def run_contamination(run: Any) -> dict[str, dict[str, Any]]:
    """A single run's recorded overlap per probe, in the comparison's shape (side "a")."""
    rec = (getattr(run, "provenance", None) or {}).get("contamination") or {}
    return {probe: {"a": {**found, "fingerprint": rec.get("fingerprint") or {}}}
            for probe, found in (rec.get("probes") or {}).items() if found}


def overlap_text(side: str, rec: Mapping[str, Any]) -> str:
    """The gate's and the CLI's wording of one run's overlap (:mod:`rai_audit.contamination.describe`)."""
    from rai_audit.contamination.describe import overlap_sentence

    return overlap_sentence(side, rec)


def _clean_pairs(p: Mapping[str, Any]) -> list[CleanPair]:
    """The probe's overall rows on all items beside the same rows on the clean subset (headline
    first; probe-metric rows, or outcome rows where the probe has none)."""
    clean = {(r["metric"], r["source"]): r for r in p.get("clean_rows") or [] if r.get("subgroup") == ""}
    if not clean:
        return []
    full = [r for r in p.get("rows") or [] if r.get("subgroup") == ""]
    shown = [r for r in full if r.get("source") == "metric"] or full
    headline = p.get("headline")
    shown.sort(key=lambda r: not (r["metric"] == headline and r.get("source") == "metric"))
    out = []
    for r in shown:
        c = clean.get((r["metric"], r["source"]))
        if c is None:
            continue
        out.append(CleanPair(
            metric=r["metric"], source=r["source"], headline=r["metric"] == headline and r["source"] == "metric",
            better=r.get("better"),
            n=r.get("n"), value_a=r.get("value_a"), value_b=r.get("value_b"), diff=r.get("diff"),
            ci_text=row_ci_text(r), significant=bool(r.get("significant")),
            clean_n=c.get("n"), clean_value_a=c.get("value_a"), clean_value_b=c.get("value_b"),
            clean_diff=c.get("diff"), clean_ci_low=c.get("ci_low"), clean_ci_high=c.get("ci_high"),
            clean_ci_text=row_ci_text(c), clean_p_adjusted=c.get("p_adjusted"),
            clean_significant=bool(c.get("significant")), clean_mde=c.get("mde"),
        ))
    return out


def _clip_text(text: Any) -> str:
    s = str(text or "")
    return s[:CONTAMINATION_TEXT_CHARS] + ("…" if len(s) > CONTAMINATION_TEXT_CHARS else "")


def detail_model(p: Mapping[str, Any], runs: Mapping[str, Mapping[str, Any]] | None = None) -> ContaminationDetail | None:
    """:func:`contamination_detail` as its model."""
    c = p.get("contamination") or {}
    if not c:
        return None
    runs = runs or {}
    sides = []
    for side in ("a", "b"):
        rec = c.get(side)
        if not rec:
            continue
        fp = rec.get("fingerprint") or {}
        examples = [OverlapExample(item_id=str(e.get("item_id", "")), ngram=str(e.get("ngram") or ""), text=_clip_text(e.get("text")))
                    for e in (rec.get("examples") or [])[:SHOW_CONTAMINATION_EXAMPLES]]
        n_over = len(rec.get("overlapping") or [])
        sides.append(RunOverlap(
            side=side, model_reference=(runs.get(side) or {}).get("model_reference"),
            checked=int(rec.get("checked") or 0), overlapping=n_over, unchecked=len(rec.get("unchecked") or []),
            fraction=rec.get("fraction"), contaminated=n_over > 0, text=overlap_text(side, rec),
            fingerprint_id=rec.get("fingerprint_id") or fp.get("fingerprint_id"),
            source=fp.get("source") or fp.get("path") or "", path=fp.get("path") or "",
            documents=fp.get("documents"), ngram_sizes=list(fp.get("ngram_sizes") or []),
            examples=examples, n_examples=len(rec.get("examples") or []),
        ))
    contaminated = any(s.contaminated for s in sides)
    clean = _clean_pairs(p)
    no_clean = contaminated and not clean and "clean_rows" in p  # a single run has no clean-only rows to recompute
    return ContaminationDetail(probe=p.get("probe"), contaminated=contaminated, runs=sides, clean=clean,
                               clean_n=clean[0].clean_n if clean else (0 if no_clean else None), no_clean_items=no_clean)


def contamination_detail(p: Mapping[str, Any], runs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any] | None:
    """A probe's contamination block: per run that recorded training data, the counts (checked,
    overlapping, fraction, too short to check), the fingerprint (source, documents, n-gram sizes)
    and up to :data:`SHOW_CONTAMINATION_EXAMPLES` examples; and the clean-only rows beside the
    full ones. None when neither run recorded training data ("not checked", never "clean").
    ``p`` is a probe of a comparison dict (``ProbeComparison.to_dict``) or of a report."""
    d = detail_model(p, runs)
    return None if d is None else d.model_dump(mode="json")


def headline_model(probes: Sequence[Mapping[str, Any]], runs: Mapping[str, Mapping[str, Any]] | None = None) -> ContaminationHeadline:
    """:func:`contamination_headline` as its model."""
    flags, checked, not_checked, sides = [], [], [], set()
    fingerprints: dict[tuple[str, Any], Fingerprint] = {}
    for p in probes:
        d = p.get("contamination_detail") if "contamination_detail" in p else contamination_detail(p, runs)
        if d is None:
            not_checked.append(p["probe"])
            continue
        d = d if isinstance(d, ContaminationDetail) else ContaminationDetail.model_validate(d)
        checked.append(p["probe"])
        for s in d.runs:
            sides.add(s.side)
            fingerprints.setdefault((s.side, s.fingerprint_id), Fingerprint(
                side=s.side, model_reference=s.model_reference, fingerprint_id=s.fingerprint_id,
                source=s.source, path=s.path, documents=s.documents, ngram_sizes=s.ngram_sizes))
            if s.contaminated:
                flags.append(ContaminationFlag(probe=p["probe"], side=s.side, model_reference=s.model_reference,
                                               overlapping=s.overlapping, checked=s.checked, unchecked=s.unchecked,
                                               fraction=s.fraction, clean_n=d.clean_n, detail=s.text,
                                               text=f"{p['probe']}: {s.text}"))
    single = len(runs or {}) == 1
    who = " and ".join(f"run {x.upper()}" for x in sorted(sides)) or "no run"
    how = "rai-audit probe --training-data, or a model exported by rai-audit finetune"
    contaminated = sorted({f.probe for f in flags})
    if not checked:
        sentence = (f"Contamination not checked: the run recorded no training data for its model ({how})." if single else
                    f"Contamination not checked: neither run recorded its model's training data ({how}), so whether "
                    "the benchmark items were trained on is unknown.")
    else:
        where = "; clean-only rows under Training-data overlap" if not single else ""
        sentence = f"Contamination checked against {who}'s training data for {len(checked)} of {len(probes)} probe(s): "
        sentence += f"{len(contaminated)} contaminated ({', '.join(contaminated)}{where})." if flags else "no item overlaps it."
        if not_checked:
            sentence += f" Not checked (no training data recorded): {', '.join(not_checked)}."
    # under the headline table, short (page 1 is full): what the flags above it do not already say
    if not checked:
        note = ("Contamination not checked: the run recorded no training data." if single else
                "Contamination not checked: neither run recorded its model's training data.")
    elif not flags:
        note = f"Contamination checked against {who}'s training data: no item overlaps it."
    else:
        note = None
    if checked and not_checked:
        note = ((note + " ") if note else "") + f"Contamination not checked for {', '.join(not_checked)} (no training data recorded)."
    return ContaminationHeadline(checked=checked, not_checked=not_checked, flags=flags, contaminated=contaminated,
                                 sentence=sentence, note=note, fingerprints=list(fingerprints.values()))


def contamination_headline(probes: Sequence[Mapping[str, Any]], runs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """What page 1 (and the dashboard's overview) says about contamination: one flag per
    contaminated probe and run, the probes checked, and one sentence for the probes no run
    recorded training data for (all of them: one sentence, not a row per probe)."""
    return headline_model(probes, runs).model_dump(mode="json")
