"""Self-contained HTML report: Jinja2 with autoescaping on, charts embedded as SVG data URIs.

Everything from the report dict is escaped by the template engine (model outputs are untrusted);
a Content-Security-Policy meta tag forbids scripts and remote loads as a second line of defence.
The same HTML (without the manifest comment) is what WeasyPrint turns into the PDF.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator, Mapping

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from rai_audit.report.build import SHOW_CONTAMINATION_EXAMPLES, SHOW_SUBGROUPS, SHOW_WORST, ci_text, mde_text
from rai_audit.report.charts import forest_plot
from rai_audit.report.manifest import embed_text

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_CHARS = 500  # generated text shown per response in the worst-items table


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _num(v: Any, digits: int = 4) -> str:
    if _missing(v):
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:.{digits}f}"


def _signed(v: Any, digits: int = 4) -> str:
    return "—" if _missing(v) else f"{v:+.{digits}f}"


def _pval(v: Any) -> str:
    if _missing(v):
        return "—"
    return "<0.0001" if v < 1e-4 else f"{v:.4f}"


def _pct(v: Any) -> str:
    return "—" if _missing(v) else f"{100 * v:.1f}%"


def _ci(lo: Any, hi: Any, n: Any = None, clusters: Any = None) -> str:
    return ci_text(lo, hi, n, clusters)


def _short(v: Any, n: int = 12) -> str:
    s = "" if v is None else str(v)
    return s if len(s) <= n + 1 else s[:n] + "…"


def _wbr_path(text: Any) -> Markup:
    """Escaped text with break opportunities (<wbr>) after "/", "," and "=", so a long path or
    subgroup label wraps between its parts, never inside a word."""
    escaped = str(escape("" if text is None else str(text)))
    for ch in ("/", ",", "="):
        escaped = escaped.replace(ch, ch + "<wbr>")
    return Markup(escaped)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]}


def _clip(text: Any, limit: int = MAX_CHARS) -> str:
    """Generated text for a report cell: at most ``limit`` characters, control characters shown as
    ``\\xNN`` (a reader sees they are there; fonts have no glyph for them)."""
    s = "" if text is None else str(text)
    s = s if len(s) <= limit else s[:limit] + " […]"
    return s.translate(_CONTROL)


def _flat(d: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(d, Mapping):
        for k, v in d.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list) and d and all(isinstance(x, Mapping) for x in d):
        for i, v in enumerate(d):
            yield from _flat(v, f"{prefix}[{i}]")
    else:
        text = d if isinstance(d, str) else json.dumps(d, default=str)
        yield prefix, _clip(text, 300)


def _flatten(d: Any, base: Any = None, label: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, short value) pairs of a nested mapping, for provenance tables; with ``base``,
    only the pairs that differ from (or are absent in) ``base``'s; ``label`` prefixes each key."""
    seen = dict(_flat(base)) if isinstance(base, Mapping) else {}
    for k, v in _flat(d):
        if k in seen and seen[k] == v:
            continue
        yield f"{label}{k}", v


def _tojson_text(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html", "j2", "html.j2"), default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_num, signed=_signed, pval=_pval, pct=_pct, clip=_clip, flatten=_flatten, tojson_text=_tojson_text,
                       short=_short, wbr_path=_wbr_path)
    env.globals.update(ci=_ci, mde=mde_text, max_chars=MAX_CHARS, show_worst=SHOW_WORST, show_subgroups=SHOW_SUBGROUPS,
                       show_contamination_examples=SHOW_CONTAMINATION_EXAMPLES)
    return env


def headline_chart(report: Mapping[str, Any]) -> str | None:
    """One forest plot of the headline rows: per probe, the change B - A of its headline metric
    with its 95% CI (comparison), or the headline value with its CI (single run). Every other
    number is in the tables."""
    rows = (report.get("headline") or {}).get("rows") or []
    if not rows:
        return None
    labels = [f"{r['probe']}: {r.get('metric') or '—'}" for r in rows]
    if report["kind"] == "comparison":
        return forest_plot(
            labels, [r.get("diff") for r in rows],
            [None if _ci_na(r) else r.get("ci_low") for r in rows], [None if _ci_na(r) else r.get("ci_high") for r in rows],
            title="Headline metrics: change B − A (95% CI)", xlabel="B − A",
            highlight=[r.get("verdict") == "fail" or bool(r.get("significant") and r.get("worse")) for r in rows], width=7.5, row_height=0.2,
        )
    return forest_plot(labels, [r.get("value_a") for r in rows], [r.get("ci_low") for r in rows], [r.get("ci_high") for r in rows],
                       title="Headline metrics (95% CI)", xlabel="value", reference=None, width=7.5, row_height=0.2)


def _ci_na(row: Mapping[str, Any]) -> bool:
    return ci_text(row.get("ci_low"), row.get("ci_high"), row.get("n"), row.get("clusters")).startswith("n/a")


def render_html_body(report: Mapping[str, Any]) -> str:
    """The report as HTML without its manifest (what the PDF is made from)."""
    return environment().get_template("report.html.j2").render(r=report, chart=headline_chart(report))


def render_html(report: Mapping[str, Any]) -> str:
    """The self-contained HTML report with its sha256 manifest embedded."""
    return embed_text(render_html_body(report), "html", report.get("inputs") or {})


def write_html(report: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_html(report), encoding="utf-8")
    return path
