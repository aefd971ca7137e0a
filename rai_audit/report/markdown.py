"""Markdown for a Hugging Face model card: the audit as a card section, with the tuned model's
results in the card metadata (``model-index`` eval results) through ``huggingface_hub.ModelCard``.

Model outputs and prompts are untrusted: :func:`neutralise` flattens them to one line, escapes
Markdown syntax and HTML (so ``<script>`` arrives as ``&lt;script&gt;`` and cannot open a tag,
link, image or heading), and truncates them. Other strings from the data (metric, subgroup and
data set names) are escaped for table cells with :func:`cell`.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Mapping

from rai_audit.report.build import mde_text
from rai_audit.report.manifest import embed_text

_MD_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:])")  # <, > and & are left to html.escape
SHOW_ITEMS = 3  # worst items quoted per probe
SHOW_SUBGROUPS = 5  # subgroup rows per probe (significant first, then the largest changes)


def neutralise(text: Any, limit: int = 300) -> str:
    """Untrusted text made inert for Markdown and HTML renderers, on one line."""
    s = "" if text is None else str(text)
    clipped = len(s) > limit
    s = " ".join(s[:limit].split())
    s = _MD_SPECIALS.sub(r"\\\1", s)
    s = html.escape(s, quote=True)
    return s + (" […]" if clipped else "")


def cell(text: Any) -> str:
    """A table cell from a non-generated string: one line, HTML-escaped, pipes escaped."""
    s = " ".join(("" if text is None else str(text)).split())
    return html.escape(s, quote=True).replace("|", "\\|")


def _n(v: Any, digits: int = 4, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def eval_results(report: Mapping[str, Any]) -> list[Any]:
    """Overall metric values of the audited (tuned) model as ``huggingface_hub.EvalResult``s."""
    from huggingface_hub import EvalResult

    datasets = {d["probe"]: d for d in report.get("datasets", [])}
    out = []
    for p in report["probes"]:
        ds = datasets.get(p["probe"], {})
        if report["kind"] == "comparison":
            values = [(r["metric"], r["value_b"]) for r in p["rows"] if r["subgroup"] == "" and r["source"] == "metric"]
        else:
            values = [(m["name"], m["value"]) for m in p.get("metrics", []) if m["subgroup"] == ""]
        for metric, value in values:
            if value is None:
                continue
            out.append(EvalResult(
                task_type="text-generation", dataset_type=str(p["probe"]), dataset_name=str(p.get("title") or p["probe"]),
                dataset_revision=ds.get("revision"), metric_type=str(metric), metric_value=round(float(value), 6),
                metric_name=f"{metric} (rai-audit {p['probe']})",
            ))
    return out


def _ci_text(row: Mapping[str, Any]) -> str:
    if row.get("ci_text"):
        return str(row["ci_text"])
    from rai_audit.report.build import ci_text

    return ci_text(row.get("ci_low"), row.get("ci_high"), row.get("n"), row.get("clusters"))


def _probe_cell(row: Mapping[str, Any]) -> str:
    """A headline row's probe, flagged when its items overlap a model's training data."""
    marks = ", ".join(row.get("contamination_marks") or [])
    return cell(row["probe"]) + (f" **(contaminated: {cell(marks)})**" if row.get("contaminated") else "")


def _contamination_section(p: Mapping[str, Any], comparison: bool) -> list[str]:
    """A probe's training-data overlap: counts and fingerprint per run, clean-only rows beside the
    full ones, and the matching n-grams of a few overlapping items (escaped)."""
    d = p.get("contamination_detail")
    if not d:
        return []
    out = [""]
    for s in d["runs"]:
        sizes = ", ".join(str(n) for n in s.get("ngram_sizes") or [])
        docs = "?" if s.get("documents") is None else s["documents"]
        out.append(f"Training-data overlap, run {s['side'].upper()}: {cell(s['text'])}; n-gram sizes {sizes}; training data "
                   f"{neutralise(s.get('source'), 200)} ({docs} documents).")
    if comparison and d["contaminated"]:
        if d["clean"]:
            out += ["", "Clean-only rows (items checked and overlapping in neither run) beside all paired items:", ""]
            out.append(_table(
                ["metric", "n", "change B−A", "95% CI", "n clean", "A clean", "B clean", "change clean", "95% CI clean"],
                [[cell(c["metric"]) + (" (headline)" if c["headline"] else ""), str(c["n"]), _n(c["diff"], signed=True),
                  cell(c["ci_text"]), str(c["clean_n"]), _n(c["clean_value_a"]), _n(c["clean_value_b"]),
                  _n(c["clean_diff"], signed=True), cell(c["clean_ci_text"])] for c in d["clean"]],
            ))
        else:
            out += ["", "No clean items: every item overlaps the training data or could not be checked."]
    examples = [(s, e) for s in d["runs"] for e in s.get("examples") or []]
    if examples:
        out += ["", "Overlapping items (matching n-gram; benchmark text, escaped):", ""]
        out += [f"- run {s['side'].upper()}, {cell(e['item_id'])}: {neutralise(e['ngram'], 200)}" for s, e in examples]
    return out


def _headline_section(r: Mapping[str, Any], comparison: bool) -> list[str]:
    """Page 1 of the report in Markdown: verdict and policy, what was audited, the small-sample
    warning, one row per probe, and the gate rows that did not pass."""
    h = r.get("headline") or {}
    policy = h.get("policy") or {}
    out: list[str] = []
    verdict = f"**Verdict: {r['summary']['verdict'].upper()}**"
    if policy.get("gated"):
        verdict += f" under the {cell(policy.get('label'))} (sha256 `{cell((policy.get('sha256') or '')[:12])}`)"
        if policy.get("what_if"):
            verdict += " **(what-if)**"
    out += [verdict, ""]
    if policy.get("what_if"):
        own = f" ({cell(policy['audit_policy'])})" if policy.get("audit_policy") else ""
        out += [f"> What-if verdict: judged by the {cell(policy.get('name'))} policy, not by the policy its audit used{own}.", ""]
    if h.get("small_sample_warning"):
        out += [f"> **Warning:** {cell(h['small_sample_warning'])}", ""]
    cont = h.get("contamination") or {}
    if cont.get("flags"):
        flags = " · ".join(f"**{cell(f['probe'])}**: {cell(f['detail'])}"
                           + (f" (clean-only subset: n = {f['clean_n']})" if f.get("clean_n") is not None else "")
                           for f in cont["flags"])
        out += [f"> **Contamination:** {flags}." + (" These probes' metrics may measure memorisation: see their clean-only "
                                                    "rows under Training-data overlap." if comparison else ""), ""]
    audited = h.get("audited") or {}
    out += ["### What was audited", ""]
    for m in audited.get("models", []):
        role = f" ({cell(m.get('role'))})" if m.get("role") else ""
        out.append(f"- Model {m['key'].upper()}{role}: {cell(m.get('model_reference'))}, model sha256 `{cell(m.get('model_id'))}`, run `{cell(m.get('run_id'))}`")
    if policy.get("gated"):
        out.append(f"- Policy: {cell(policy.get('name'))}, sha256 `{cell((policy.get('sha256') or '')[:16])}`; minimum support "
                   f"{h.get('min_items')} items / {h.get('min_clusters')} clusters per row")
    if audited.get("store"):
        out.append(f"- Store: `{cell(audited['store'])}`")
    out.append("")
    rows = h.get("rows") or []
    if rows:
        out += ["### Headline results", ""]
        if comparison:
            out.append(_table(
                ["probe", "data set (revision)", "metric", "n", "A", "B", "change B−A", "95% CI", "MDE", "verdict"],
                [[_probe_cell(x), cell(x.get("dataset")) + (f" ({cell(str(x['revision'])[:12])})" if x.get("revision") else ""),
                  cell(x.get("metric") or "—"), ("—" if x.get("n") is None else str(x["n"])) + (" ⚠" if x.get("small_sample") else ""),
                  _n(x.get("value_a")), _n(x.get("value_b")), _n(x.get("diff"), signed=True), _ci_text(x), mde_text(x),
                  cell(str(x.get("verdict", "")).upper())] for x in rows],
            ))
            out += ["", f"MDE: the smallest change detectable at alpha {h.get('alpha', 0.05)} with power {h.get('power', 0.8)} at the row's n."
                    + (" ⚠: below the minimum support." if h.get("small_sample_warning") else ""), ""]
        else:
            out.append(_table(["probe", "data set (revision)", "metric", "n", "value", "95% CI"],
                              [[_probe_cell(x), cell(x.get("dataset")) + (f" ({cell(str(x['revision'])[:12])})" if x.get("revision") else ""),
                                cell(x.get("metric") or "—"), "—" if x.get("n") is None else str(x["n"]), _n(x.get("value_a")), _ci_text(x)]
                               for x in rows]))
            out.append("")
    if cont.get("note"):
        out += [cell(cont["note"]), ""]
    g = h.get("gate")
    if g:
        c = g.get("counts") or {}
        out += ["### Gate", ""]
        out.append(f"{c.get('pass', 0)} rule row(s) passed (counted, not listed), {c.get('fail', 0)} failed, {c.get('inconclusive', 0)} inconclusive, "
                   f"{c.get('insufficient', 0) + c.get('skipped', 0)} with insufficient data (counted apart); errors {g.get('errors')} of "
                   f"{g.get('max_errors')} allowed; exit code {g.get('exit_code')}.")
        if g.get("listed"):
            out += ["", _table(
                ["verdict", "probe", "metric", "subgroup", "n", "change", "95% CI", "limit", "reason"],
                [[cell(x["verdict"].upper()), cell(x["probe"]), cell(x["metric"]), cell(x.get("subgroup") or "overall"),
                  "—" if x.get("n") is None else str(x["n"]), _n(x.get("value"), signed=True), _ci_text(x),
                  "—" if x.get("limit") is None else f"{cell(x.get('bad_direction'))} ≤ {x['limit']:.4f}", cell(x.get("reason"))]
                 for x in g["listed"]],
            )]
        out.append("")
    return out


def _body(report: Mapping[str, Any]) -> str:
    r = report
    comparison = r["kind"] == "comparison"
    runs = r["runs"]
    out = ["## Responsible-AI audit (rai-audit)", ""]
    if comparison:
        out.append(
            f"Before/after comparison of **{cell(runs['b']['model_reference'])}** (B) against "
            f"**{cell(runs['a']['model_reference'])}** (A), paired by item; changes are B − A with 95% CIs. "
            f"Comparison `{r['comparison_id']}`, generated {r['generated_at']} by rai-audit {r['tool']['version']}."
        )
    else:
        out.append(f"Audit of **{cell(runs['a']['model_reference'])}**, generated {r['generated_at']} by rai-audit {r['tool']['version']}.")
    out.append("")
    out += _headline_section(r, comparison)
    out += [f"- {cell(line)}" for line in r["summary"]["lines"]]
    out += ["", "### Results", ""]
    for p in r["probes"]:
        out += [f"#### {cell(p.get('title') or p['probe'])}", ""]
        if comparison:
            out.append(_table(
                ["metric", "n", "A", "B", "change", "95% CI", "p (corrected)", "significant", "MDE"],
                [[cell(x["metric"]) + (" (outcome)" if x["source"] == "outcome" else "") + (" (headline)" if x["metric"] == p.get("headline") and x["source"] == "metric" else ""),
                  str(x["n"]), _n(x["value_a"]), _n(x["value_b"]),
                  _n(x["diff"], signed=True), _ci_text(x), _n(x["p_adjusted"]),
                  "yes" if x["significant"] else "no", mde_text(x)]
                 for x in p["overall_rows"]],
            ))
            detail = p.get("subgroup_detail") or {}
            top = [x for x in detail.get("shown", []) if x.get("significant")] or detail.get("shown", [])[:SHOW_SUBGROUPS]
            if top:
                label = "Significant subgroup changes" if any(x.get("significant") for x in top) else "Largest subgroup changes, none significant"
                out += ["", f"{label} (largest |change| first; {detail.get('n_rows', 0)} subgroup rows in all, every one in the JSON report):", ""]
                out.append(_table(
                    ["metric", "subgroup", "n", "A", "B", "change", "95% CI", "p (corrected)"],
                    [[cell(x["metric"]), cell(x["subgroup"]), str(x["n"]), _n(x["value_a"]), _n(x["value_b"]), _n(x["diff"], signed=True),
                      _ci_text(x), _n(x["p_adjusted"])] for x in top[:SHOW_SUBGROUPS]],
                ))
        else:
            out.append(_table(
                ["metric", "subgroup", "n", "value", "95% CI"],
                [[cell(m["name"]), cell(m["subgroup"] or "overall"), str(m["n"]), _n(m["value"]), _ci_text({**m})]
                 for m in p.get("metrics", [])],
            ))
        out += _contamination_section(p, comparison)
        out.append("")
    out += ["### Confounders", ""]
    out.append(_table(
        ["probe", "model", "parse rate", "empty outputs", "refusals", "mean length (chars)"],
        [[cell(p["probe"]), k.upper(), _pct(c["parse_rate"]), _pct(c["empty_rate"]), _pct(c["refusal_rate"]), _n(c["mean_length_chars"], 1)]
         for p in r["probes"] for k, c in p["confounders"].items()],
    ))
    quoted = [(p, w) for p in r["probes"] for w in p.get("worst_items", [])[:SHOW_ITEMS]]
    if quoted:
        out += ["", "### Worst items", "", "> **Content warning:** quoted model outputs may be offensive, toxic or stereotyping (escaped and truncated).", ""]
        for p, w in quoted:
            a = " / ".join(neutralise(t) for t in w.get("responses_a", []))
            line = f"- `{cell(p['probe'])}` {cell(w['item_id'])}: prompt: {neutralise(w.get('prompt'))}; A: {a}"
            if comparison:
                line += "; B: " + " / ".join(neutralise(t) for t in w.get("responses_b", []))
            out.append(line)
    out += ["", "### Methodology", ""]
    out += [f"- {cell(line)}" for line in r["methodology"]["statistics"]]
    for key, s in r["methodology"]["scorers"].items():
        if s:
            out.append(f"- Scorer ({key.upper()}): {cell(s.get('name'))} {cell(s.get('version'))}, toxic if score {cell(s.get('operator'))} {s.get('threshold')}.")
    out += ["", "### Data sets", ""]
    out.append(_table(["probe", "name", "revision", "license"],
                      [[cell(d["probe"]), cell(d["name"]), cell(d["revision"]), cell(d["license"])] for d in r["datasets"]]))
    out += ["", "### Known limitations", ""]
    out += [f"- {cell(line)}" for line in r["limitations"]]
    out += ["", "Full tables, charts, provenance and the EU AI Act / NIST AI RMF mapping are in the HTML/PDF report.", ""]
    return "\n".join(out)


def model_card(report: Mapping[str, Any]):
    """A ``huggingface_hub.ModelCard`` with eval results in its metadata and the audit section."""
    from huggingface_hub import ModelCard, ModelCardData

    model = report["runs"]["b" if report["kind"] == "comparison" else "a"]
    name = model.get("label") or model.get("model_reference") or "model"
    data = ModelCardData(model_name=str(name), tags=["rai-audit", "responsible-ai", "bias", "toxicity"], eval_results=eval_results(report) or None)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(report)}")


def render_markdown(report: Mapping[str, Any]) -> str:
    """The model card text with the sha256 manifest embedded as a final HTML comment."""
    return embed_text(str(model_card(report)), "md", report.get("inputs") or {})


def write_markdown(report: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_markdown(report), encoding="utf-8")
    return path
