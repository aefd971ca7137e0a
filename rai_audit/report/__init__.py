"""Reports of a comparison or a run: HTML, PDF, Markdown (Hugging Face model card) and JSON.

``build_report`` gathers everything into the report's data (the JSON report,
:class:`~rai_audit.report.data.ReportData`); a report is an ordered list of sections
(:mod:`rai_audit.report.sections`), each a pydantic model rendered by one template per format;
the PDF is the HTML's rendering. Every format embeds a sha256 manifest that ``verify`` checks
against the file and the store. Renderers import their heavy dependencies (matplotlib,
WeasyPrint, huggingface_hub) lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from rai_audit.errors import UserError
from rai_audit.report.build import build_report
from rai_audit.report.manifest import VerifyResult, verify
from rai_audit.report.sections import Section, SectionContext, register_section, unregister_section

FORMATS = ("html", "pdf", "md", "json")


def parse_formats(spec: str | Iterable[str]) -> list[str]:
    """"html,pdf" -> ["html", "pdf"]; UserError naming unknown formats."""
    items = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [s for s in items if s not in FORMATS]
    if unknown or not items:
        raise UserError(f"Unknown report format(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)} (comma-separated).")
    return list(dict.fromkeys(items))


def write_report(report: Mapping[str, Any], out_dir: str | Path, formats: str | Iterable[str] = FORMATS, *, stem: str = "report") -> dict[str, Path]:
    """Write the report in each format to ``out_dir/stem.<ext>``; returns format -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for fmt in parse_formats(formats):
        if fmt == "html":
            from rai_audit.report.html import write_html

            paths[fmt] = write_html(report, out / f"{stem}.html")
        elif fmt == "pdf":
            from rai_audit.report.pdf import write_pdf

            paths[fmt] = write_pdf(report, out / f"{stem}.pdf")
        elif fmt == "md":
            from rai_audit.report.markdown import write_markdown

            paths[fmt] = write_markdown(report, out / f"{stem}.md")
        else:
            from rai_audit.report.json_report import write_json

            paths[fmt] = write_json(report, out / f"{stem}.json")
    return paths


__all__ = ["FORMATS", "Section", "SectionContext", "VerifyResult", "build_report", "parse_formats", "register_section",
           "unregister_section", "verify", "write_report"]
