"""Self-contained HTML report: the sections rendered with Jinja2 (autoescaping on), charts
embedded as SVG data URIs (:mod:`rai_audit.report.render`).

Everything from the report is escaped by the template engine (model outputs are untrusted); a
Content-Security-Policy meta tag forbids scripts and remote loads as a second line of defence.
The same HTML (without the manifest comment) is what WeasyPrint turns into the PDF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from rai_audit.report.manifest import embed_text
from rai_audit.report.render import render_sections


def render_html_body(report: Mapping[str, Any]) -> str:
    """The report as HTML without its manifest (what the PDF is made from)."""
    return render_sections(report, "html")


def render_html(report: Mapping[str, Any]) -> str:
    """The self-contained HTML report with its sha256 manifest embedded."""
    return embed_text(render_html_body(report), "html", report.get("inputs") or {})


def write_html(report: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_html(report), encoding="utf-8")
    return path
