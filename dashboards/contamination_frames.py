"""Training-data overlap (contamination) on the Compare page: the same flags and sentence as page 1
of the report, each probe's overlap per run, its clean-only rows beside the full ones, and a few
overlapping items (plain-text cells).
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from dashboards.numbers import number


def contamination_overview(comp: Mapping[str, Any], runs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the Compare page's top says about training-data overlap: the same flags and sentence
    as page 1 of the report (:func:`rai_audit.report.contamination.contamination_headline`).
    ``runs``: side ("a", "b") -> RunRecord, for the flagged runs' model references."""
    from rai_audit.report.contamination import contamination_headline

    info = {k: {"model_reference": getattr(r, "model_reference", None)} for k, r in (runs or {}).items()}
    return contamination_headline(comp.get("probes") or [], info or {"a": {}, "b": {}})


def contamination_detail(comp: Mapping[str, Any], probe: str) -> dict[str, Any] | None:
    """One probe's contamination block (:func:`rai_audit.report.contamination.contamination_detail`);
    None when neither run recorded training data."""
    from rai_audit.report.contamination import contamination_detail as detail

    pc = next((p for p in comp.get("probes") or [] if p["probe"] == probe), None)
    return None if pc is None else detail(pc)


def overlap_cell(comp: Mapping[str, Any], probe: str) -> str:
    """The summary table's overlap column: "B 50/77 (64.9%)" per contaminated run, "none" when
    checked without overlap, "not checked" when no run recorded training data."""
    d = contamination_detail(comp, probe)
    if d is None:
        return "not checked"
    hits = [f"{s['side'].upper()} {s['overlapping']}/{s['checked']} ({100 * s['fraction']:.1f}%)"
            for s in d["runs"] if s["contaminated"] and s["fraction"] is not None]
    return "; ".join(hits) or "none"


def overlap_frame(detail: Mapping[str, Any]) -> pd.DataFrame:
    """Per run that recorded training data: checked, overlapping, fraction, too short to check,
    and its training data (source, documents, n-gram sizes, fingerprint id)."""
    rows = [{"run": s["side"].upper(), "checked": s["checked"], "overlapping": s["overlapping"], "fraction": number(s["fraction"]),
             "too short to check": s["unchecked"], "clean-only items": detail.get("clean_n"),
             "training data": s["source"], "documents": s["documents"],
             "n-gram sizes": ", ".join(str(n) for n in s["ngram_sizes"]), "fingerprint": str(s["fingerprint_id"] or "")[:12]}
            for s in detail.get("runs") or []]
    return pd.DataFrame(rows, columns=["run", "checked", "overlapping", "fraction", "too short to check", "clean-only items",
                                       "training data", "documents", "n-gram sizes", "fingerprint"])


def clean_frame(detail: Mapping[str, Any]) -> pd.DataFrame:
    """The probe's overall rows on all paired items beside the same rows on the clean subset
    (items checked and overlapping in neither run), headline first."""
    rows = [{"metric": c["metric"], "headline": c["headline"], "n": c["n"], "A": number(c["value_a"]), "B": number(c["value_b"]),
             "diff (B-A)": number(c["diff"]), "diff CI": c["ci_text"], "significant": c["significant"],
             "n clean": c["clean_n"], "A clean": number(c["clean_value_a"]), "B clean": number(c["clean_value_b"]),
             "diff clean": number(c["clean_diff"]), "diff CI clean": c["clean_ci_text"], "significant clean": c["clean_significant"]}
            for c in detail.get("clean") or []]
    return pd.DataFrame(rows, columns=["metric", "headline", "n", "A", "B", "diff (B-A)", "diff CI", "significant", "n clean",
                                       "A clean", "B clean", "diff clean", "diff CI clean", "significant clean"])


def overlap_examples_frame(detail: Mapping[str, Any]) -> pd.DataFrame:
    """A few overlapping items per run: item id, the first matching n-gram and the start of the
    item's normalised text (plain-text cells)."""
    rows = [{"run": s["side"].upper(), "item_id": e["item_id"], "matching n-gram": e["ngram"], "item text (normalised)": e["text"]}
            for s in detail.get("runs") or [] for e in s.get("examples") or []]
    return pd.DataFrame(rows, columns=["run", "item_id", "matching n-gram", "item text (normalised)"])
