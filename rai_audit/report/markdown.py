"""Markdown for a Hugging Face model card: the audit as a card section (the sections' Markdown
templates, :mod:`rai_audit.report.render`), with the tuned model's results in the card metadata
through ``huggingface_hub.ModelCard``: YAML front matter whose ``model-index`` names the model
(its Hub id when the reference is ``hf:org/name[@revision]``, else its label or reference) and
lists, per probe, ``task`` (``text-generation``), ``dataset`` (type = probe, name = its title,
revision) and ``metrics`` (type = metric, value, name), one per overall metric value that is
defined; ``huggingface_hub.repocard_data.model_index_to_eval_results`` reads it back
(tests/test_model_card.py). The front matter is written by ``ModelCardData.to_yaml`` (YAML
quoting), never by string formatting, so a label cannot add keys.

Model outputs and prompts are untrusted: the templates pass them through the one Markdown
escaper (:mod:`rai_audit.report.escaping`), which flattens them to one line, escapes Markdown
syntax and HTML (so ``<script>`` arrives as ``&lt;script&gt;`` and cannot open a tag, link, image
or heading), and truncates them; names in table cells have HTML and pipes escaped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from rai_audit.report.manifest import embed_text
from rai_audit.report.render import render_sections


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
            if value is None or not math.isfinite(float(value)):
                continue  # an undefined metric has no value to publish
            out.append(EvalResult(
                task_type="text-generation", dataset_type=str(p["probe"]), dataset_name=str(p.get("title") or p["probe"]),
                dataset_revision=ds.get("revision"), metric_type=str(metric), metric_value=round(float(value), 6),
                metric_name=f"{metric} (rai-audit {p['probe']})",
            ))
    return out


def hub_id(reference: Any) -> str | None:
    """``org/name`` of a model reference ``hf:org/name[@revision]``; None for other references."""
    text = str(reference or "")
    if not text.startswith("hf:"):
        return None
    return text[3:].split("@", 1)[0].strip() or None


def card_model_name(report: Mapping[str, Any]) -> str:
    """The audited (tuned) model's name in the card: its Hub id, else its label or reference."""
    model = report["runs"]["b" if report["kind"] == "comparison" else "a"]
    return hub_id(model.get("model_reference")) or str(model.get("label") or model.get("model_reference") or "model")


def card_data(report: Mapping[str, Any]):
    """The card's metadata (``huggingface_hub.ModelCardData``): tags and the model-index."""
    from huggingface_hub import ModelCardData

    return ModelCardData(model_name=card_model_name(report), tags=["rai-audit", "responsible-ai", "bias", "toxicity"],
                         eval_results=eval_results(report) or None)


def model_card(report: Mapping[str, Any]):
    """A ``huggingface_hub.ModelCard`` with eval results in its metadata and the audit section."""
    from huggingface_hub import ModelCard

    data = card_data(report)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{render_sections(report, 'md')}")


def render_markdown(report: Mapping[str, Any]) -> str:
    """The model card text with the sha256 manifest embedded as a final HTML comment."""
    return embed_text(str(model_card(report)), "md", report.get("inputs") or {})


def write_markdown(report: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_markdown(report), encoding="utf-8")
    return path
