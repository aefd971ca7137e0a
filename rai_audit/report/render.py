"""Render a report's sections with Jinja: each section's object through its template for the
format, in the order of :data:`rai_audit.report.sections.SECTIONS`, inside the format's document
template (``html/document.html.j2``, ``md/document.md.j2``).

HTML is escaped by Jinja's autoescape (every value from the report; only the chart's data URI
is built by us). Markdown templates escape through two filters of the one Markdown escaper
(:mod:`rai_audit.report.escaping`): ``md`` for generated and benchmark text (every Markdown and
HTML character, one line, clipped) and ``cell`` for names in table cells (HTML and pipes).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from rai_audit.report.data import ReportData
from rai_audit.report.escaping import md_cell, md_text
from rai_audit.report.formatting import MAX_CHARS, ci_text, clip, mde_text, num, pct, pval, short, signed
from rai_audit.report.sections import SECTIONS
from rai_audit.report.sections.base import TEMPLATES

#: Subgroup rows per probe in the Markdown card (significant first, then the largest changes).
MD_SHOW_SUBGROUPS = 5


def _wbr_path(text: Any) -> Markup:
    """Escaped text with break opportunities (<wbr>) after "/", "," and "=", so a long path or
    subgroup label wraps between its parts, never inside a word."""
    escaped = str(escape("" if text is None else str(text)))
    for ch in ("/", ",", "="):
        escaped = escaped.replace(ch, ch + "<wbr>")
    return Markup(escaped)


def _tojson_text(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _chart_uri(chart: Any) -> str | None:
    """The forest plot of a chart model as a ``data:image/svg+xml`` URI (None: nothing to draw)."""
    if chart is None:
        return None
    from rai_audit.report.charts import forest_plot

    return forest_plot(**chart.model_dump())


def _search_path() -> list[str]:
    extra = [str(s.templates) for s in SECTIONS if s.templates is not None]
    return [str(TEMPLATES), *dict.fromkeys(extra)]


def environment(fmt: str) -> Environment:
    """The Jinja environment of a format ("html" or "md"), with the filters both share."""
    env = Environment(
        loader=FileSystemLoader(_search_path()),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), disabled_extensions=("md.j2",),
                                     default_for_string=fmt == "html", default=fmt == "html"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=num, signed=signed, pval=pval, pct=pct, short=short, mde=mde_text)
    env.globals.update(ci=ci_text)
    if fmt == "html":
        env.filters.update(clip=clip, wbr_path=_wbr_path, tojson_text=_tojson_text, chart_uri=_chart_uri)
        env.globals.update(max_chars=MAX_CHARS)
    else:
        env.filters.update(md=md_text, cell=md_cell)
        env.globals.update(md_show_subgroups=MD_SHOW_SUBGROUPS)
    return env


def report_data(report: Mapping[str, Any] | ReportData) -> ReportData:
    return report if isinstance(report, ReportData) else ReportData.model_validate(dict(report))


def render_sections(report: Mapping[str, Any] | ReportData, fmt: str) -> str:
    """The report in a format ("html" or "md"), without its manifest: each section that has a
    template for the format and something to show, in order, inside the document template."""
    data = report_data(report)
    env = environment(fmt)
    parts = []
    for section in list(SECTIONS):
        if not section.has_template(fmt):
            continue
        obj = section.instance(data)
        if obj is None:
            continue
        text = env.get_template(section.template(fmt)).render(s=obj)
        parts.append(Markup(text) if fmt == "html" else text)
    return env.get_template(f"{fmt}/document{'.html.j2' if fmt == 'html' else '.md.j2'}").render(
        sections=parts, title=data.title, version=data.tool.version)
