"""Relative links in the user documentation point at files and headings that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Every page of the user documentation: the README and each docs/*.md (served-models.md,
# trajectories.md and any page added later are checked without editing this list).
PAGES = ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))]
# Pages other engineers are writing at the same time; drop an entry once the page is in the repo.
PENDING: set[str] = set()
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {slug(h) for h in re.findall(r"^#+ +(.+?) *$", text, flags=re.MULTILINE)}


def test_the_page_list_holds_every_docs_page():
    for page in ("docs/metrics.md", "docs/served-models.md", "docs/trajectories.md", "docs/architecture.md"):
        assert page in PAGES


def test_slug_matches_github():
    assert slug("Shared formulas: yes/no toxicity recognition") == "shared-formulas-yesno-toxicity-recognition"
    assert slug("Upgrades and migrations") == "upgrades-and-migrations"


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    src = REPO / page
    bad = []
    for target in _LINK.findall(src.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # absolute URL
        file_part, _, anchor = target.partition("#")
        dest = (src.parent / file_part).resolve() if file_part else src
        rel = dest.relative_to(REPO).as_posix() if dest.is_relative_to(REPO) else str(dest)
        if not dest.exists():
            if rel not in PENDING:
                bad.append(target)
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(target)
    assert not bad, f"{page}: broken links {bad}"
