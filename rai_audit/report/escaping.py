"""The one Markdown escaper, for the model-card report and the dashboard.

Text from the store (model outputs, prompts, benchmark items, names, error messages) goes into
Markdown in two places: the report's model card (rendered by the Hugging Face Hub, GitHub, any
CommonMark renderer) and the dashboard's labels and messages (rendered by Streamlit). Both use
:func:`md_escape`, so both neutralise the same characters:

* Markdown syntax is backslash-escaped: :data:`MD_SYNTAX` (emphasis, code spans, links and
  images, headings, lists, block quotes' neighbours, tables' pipes, strikethrough, math ``$``,
  autolink ``:``);
* HTML is entity-escaped (``html.escape``: ``< > & " '``), so ``<script>`` arrives as
  ``&lt;script&gt;`` and no tag, comment or entity from the data can open in either renderer.

``one_line`` flattens whitespace (newlines included) to single spaces: a table row or list item
stays one line. Without it line breaks are kept, and each line is escaped (no line can start a
heading, list, quote or fence: their markers are escaped). ``syntax=False`` keeps Markdown
syntax as it is and escapes only HTML and the table pipe: for names the report shows in a table
cell (metric, subgroup and data-set names) that must read as themselves.

HTML reports escape through Jinja's autoescape (:mod:`rai_audit.report.render`), never by hand.
"""

from __future__ import annotations

import html
import re
from typing import Any

#: Characters escaped with a backslash: the Markdown syntax CommonMark, GitHub-flavoured Markdown
#: and Streamlit act on. ``< > &`` (and quotes) are escaped as HTML entities instead.
MD_SYNTAX = "\\`*_{}[]()#+-.!|~:$"
_SYNTAX_RE = re.compile("([" + re.escape(MD_SYNTAX) + "])")
_PIPE_RE = re.compile(r"(\|)")
#: Appended to text cut at its limit.
CLIPPED = " […]"


def md_escape(text: Any, *, one_line: bool = False, limit: int | None = None, syntax: bool = True) -> str:
    """Text from the data made inert for Markdown and HTML renderers (see the module's doc).

    ``limit``: at most that many characters of the text are kept, and :data:`CLIPPED` marks a cut.
    """
    s = "" if text is None else str(text)
    clipped = limit is not None and len(s) > limit
    if limit is not None:
        s = s[:limit]
    if one_line:
        s = " ".join(s.split())
    s = (_SYNTAX_RE if syntax else _PIPE_RE).sub(r"\\\1", s)
    s = html.escape(s, quote=True)
    return s + (CLIPPED if clipped else "")


def md_cell(text: Any) -> str:
    """A Markdown table cell from a name (metric, subgroup, data set, model reference): one line,
    HTML and pipes escaped, Markdown syntax kept (``max_toxicity`` reads as itself)."""
    return md_escape(text, one_line=True, syntax=False)


def md_text(text: Any, limit: int = 300) -> str:
    """Generated or benchmark text (model outputs, prompts, n-grams) in the model card: one line,
    every Markdown and HTML character escaped, at most ``limit`` characters."""
    return md_escape(text, one_line=True, limit=limit)
