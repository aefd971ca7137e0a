"""The one Markdown escaper (rai_audit.report.escaping), which the model-card report and the
dashboard share: every character either former escaper handled (the report's Markdown set plus
HTML, the dashboard's set with ``< > $``) is neutralised, and text rendered by a CommonMark
renderer reads as itself: no tag, link, image, emphasis, code span, heading, list, quote or
fence, and a table row keeps its cells."""

from __future__ import annotations

import html
import re

import pytest

from rai_audit.report.escaping import MD_SYNTAX, md_cell, md_escape, md_text

#: Every character the report's escaper (Markdown syntax, then html.escape) and the dashboard's
#: (Markdown syntax with < > $) escaped.
UNION = "\\`*_{}[]()#+-.!|~:$<>&\"'"
ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#x27;"}
EVIL = ("<script>alert('x')</script><img src=x onerror=alert(1)> **bold** _it_ [l](javascript:alert(3)) "
        "![i](http://x/i.png) `code` ~~s~~ $x^2$ <!-- c --> &amp; a|b # h")
MULTILINE = "first line\n# heading\n- item\n1. item\n> quote\n```\nfence\n```\n    indented\n<div>block</div>\n| a | b |\n|---|---|"


def test_every_character_of_both_former_escapers_is_escaped():
    for ch in UNION:
        want = ENTITIES.get(ch, "\\" + ch)
        assert md_escape(ch) == want, ch
    assert set(UNION) == set(MD_SYNTAX) | set(ENTITIES)
    assert md_escape("plain words 123") == "plain words 123"


def test_script_tags_and_links_arrive_as_text():
    assert md_escape("<script>alert('x')</script>") == "&lt;script&gt;alert\\(&#x27;x&#x27;\\)&lt;/script&gt;"
    out = md_escape(EVIL)
    assert "<" not in out and "](" not in out and "**" not in out and "`" not in out.replace("\\`", "")


def test_one_line_clips_and_cells_keep_names():
    assert md_text("line one\n\n  line two\t!") == "line one line two \\!"
    assert md_text("a" * 10, limit=4) == "aaaa […]"
    assert md_text(None) == "" and md_escape(None) == ""
    # a name in a table cell reads as itself (max_toxicity stays unescaped) but cannot break the table or open a tag
    assert md_cell("max_toxicity") == "max_toxicity"
    assert md_cell("gender=female|male <b>\nx") == "gender=female\\|male &lt;b&gt; x"


def _render(text: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough").render(text)


def _text(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered))


@pytest.mark.parametrize("value", [UNION, EVIL, MULTILINE])
def test_escaped_text_renders_as_itself_in_a_table_cell(value):
    row = f"| probe | value |\n|---|---|\n| p | {md_escape(value, one_line=True)} |\n"
    out = _render(row)
    cells = re.findall(r"<td>(.*?)</td>", out, flags=re.S)
    assert len(cells) == 2, out  # pipes in the value did not add cells
    assert _text(cells[1]) == " ".join(value.split())
    for tag in ("<script", "<img", "<a ", "<em>", "<strong>", "<code>", "<s>", "<div"):
        assert tag not in out, (tag, out)


@pytest.mark.parametrize("value", [UNION, EVIL, MULTILINE])
def test_escaped_multiline_text_opens_no_block(value):
    out = _render(md_escape(value))  # the dashboard keeps line breaks
    for tag in ("<h1", "<h2", "<ul", "<ol", "<blockquote", "<pre", "<table", "<script", "<img", "<a ", "<em>", "<strong>",
                "<code>", "<div"):
        assert tag not in out, (tag, out)
    assert " ".join(_text(out).split()) == " ".join(value.split())


def test_the_dashboard_uses_this_escaper():
    pytest.importorskip("streamlit")
    from pathlib import Path

    from dashboards import verdicts

    assert verdicts.md_escape is md_escape
    root = Path(__file__).resolve().parent.parent
    for path in [*(root / "dashboards").rglob("*.py"), *(root / "rai_audit" / "report").rglob("*.py")]:
        if path.name == "escaping.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "def md_escape" not in text and "html.escape(" not in text and "_MD_SPECIAL" not in text, path
