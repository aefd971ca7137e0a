"""Saved comparisons and gate verdicts as the dashboard shows them: what the pickers list (the
audit's own comparison first), policy and comparison labels, verdict colours and titles, and the
gate result under the audit's policy or a what-if policy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from dashboards.run_labels import when
from rai_audit.report.escaping import md_escape


def comparison_summary(comparison_id: str, run_a: str, run_b: str, created_at: Any, settings: Mapping[str, Any] | None,
                       result: Any) -> dict[str, Any]:
    """What the pickers need of a stored comparison (its result left out: it is big): ids, time,
    settings, the audit policy it was made under (name and sha256; None for an ad-hoc
    ``rai-audit compare``), and whether the result is in the shape the pages read."""
    result = result if isinstance(result, Mapping) else {}
    settings = dict(settings or result.get("settings") or {})
    policy = next((p for p in (result.get("policy"), settings.get("policy")) if isinstance(p, Mapping)), None)
    return {
        "comparison_id": comparison_id, "run_a": run_a, "run_b": run_b, "created_at": created_at,
        "settings": {k: v for k, v in settings.items() if k != "policy"},
        "policy": {"name": str(policy.get("name") or "?"), "sha256": str(policy.get("sha256") or "")} if policy else None,
        "valid": "probes" in result and "run_a" in result,
    }


def audit_comparison(comparisons: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The audit's own comparison among those of one pair (newest first): the newest whose
    result records a policy; else the newest (an ad-hoc comparison); None when there is none."""
    if not comparisons:
        return None
    return next((c for c in comparisons if c.get("policy")), comparisons[0])


def policy_text(policy: Mapping[str, Any] | None) -> str:
    """ "demo (sha256 abcd1234)", or "none" for an ad-hoc comparison."""
    if not policy:
        return "none"
    sha = str(policy.get("sha256") or "")
    return f"{policy.get('name') or '?'}" + (f" (sha256 {sha[:8]})" if sha else "")


def comparison_label(c: Mapping[str, Any]) -> str:
    """How a comparison is named in the picker: whose it is, its settings, policy and time."""
    cfg = c.get("settings") or {}
    who = "audit's comparison" if c.get("policy") else "ad-hoc comparison"
    bits = [who, f"policy {policy_text(c.get('policy'))}", f"n_boot {cfg.get('n_boot', '?')}", f"seed {cfg.get('seed', '?')}",
            f"correction {cfg.get('correction', '?')}"]
    created = c.get("created_at")
    bits.append(when(created) if isinstance(created, datetime) else str(created or "-"))
    bits.append(f"id {str(c['comparison_id'])[:8]}")
    return " · ".join(bits)


VERDICTS = ("fail", "error", "inconclusive", "insufficient", "pass")
VERDICT_COLOR = {  # Streamlit's named Markdown colours (":green[PASS]")
    "pass": "green", "fail": "red", "error": "red", "inconclusive": "orange", "insufficient": "gray", "skipped": "gray",
}
VERDICT_CELL = {  # table cells: background and text colour
    "pass": "background-color: #d7f0dd; color: #14532d",
    "fail": "background-color: #fbd5d5; color: #7f1d1d",
    "error": "background-color: #fbd5d5; color: #7f1d1d",
    "inconclusive": "background-color: #fde8c4; color: #7c4a03",
    "insufficient": "background-color: #ececec; color: #4b4b4b",
    "skipped": "background-color: #ececec; color: #4b4b4b",
}


def verdict_color(verdict: Any) -> str:
    """pass green, fail and error red, inconclusive amber (orange), insufficient grey."""
    return VERDICT_COLOR.get(str(verdict).lower(), "gray")


def verdict_cell_style(verdict: Any) -> str:
    return VERDICT_CELL.get(str(verdict).lower(), "")


def style_verdicts(frame: pd.DataFrame, digits: int = 4) -> Any:
    """A table with its verdict cells ("gate"/"verdict" columns) coloured by verdict, numbers to
    ``digits`` decimals (a pandas Styler; the values themselves are unchanged)."""
    cols = [c for c in ("gate", "verdict") if c in frame.columns]
    if frame.empty or not cols:
        return frame
    return frame.style.map(verdict_cell_style, subset=cols).format(precision=digits, na_rep="")


def row_verdict(verdicts: Iterable[str]) -> str:
    """One verdict for a table row judged by several rules: the worst (fail, error, inconclusive,
    insufficient, then pass; "skipped" from older gates counts as insufficient); "-" if none."""
    got = {"insufficient" if v == "skipped" else v for v in verdicts}
    return next((v for v in VERDICTS if v in got), "-")


def gate_title(gate: Mapping[str, Any]) -> str:
    """ "Gate: PASS — audit policy: demo (sha256 abcd1234)" (plain text)."""
    sha = str(gate.get("policy_sha256") or "")
    label = str(gate.get("label") or "")
    return f"Gate: {str(gate['verdict']).upper()} — {label}" + (f" (sha256 {sha[:8]})" if sha else "")


def gate_title_md(gate: Mapping[str, Any]) -> str:
    """:func:`gate_title` as Markdown: the verdict in its colour, the rest escaped (the policy
    name comes from the store)."""
    verdict = str(gate["verdict"]).upper()
    rest = gate_title(gate)[len(f"Gate: {verdict}"):]
    return f"Gate: :{verdict_color(gate['verdict'])}[{md_escape(verdict)}]{md_escape(rest)}"


def counts_text(gate: Mapping[str, Any]) -> str:
    c = gate.get("counts") or {}
    return ", ".join(f"{c.get(v, 0)} {v}" for v in ("pass", "fail", "inconclusive", "insufficient", "error"))


def gate_verdicts(comp: Mapping[str, Any], policy: str | None = None) -> dict[str, Any]:
    """The gate result (dict) of a comparison: under the audit's own policy when ``policy`` is
    None, else under the bundled or file policy ``policy``, labelled a what-if
    (:func:`rai_audit.gate.gate_for_comparison`)."""
    from rai_audit.gate import gate_for_comparison

    return gate_for_comparison(comp, policy).to_dict()


def bundled_policies() -> list[str]:
    """Names of the policies bundled under rai_audit/assets/policies/."""
    from rai_audit.gate import bundled_policy_names

    return bundled_policy_names()
