"""What a report section is: a name, a pydantic model (the one object its templates read), a
builder, and one template per format (``html/<name>.html.j2``, ``md/<name>.md.j2``).

A section without a template for a format does not appear in that format (the Markdown model
card is shorter than the HTML/PDF report). The JSON report is the report's data
(:class:`~rai_audit.report.data.ReportData`); a section that brings facts of its own
(``stored=True``) adds its model's ``model_dump(mode="json")`` to it under its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from pydantic import BaseModel

from rai_audit.report.data import ReportData

#: The package's templates: ``html/`` and ``md/``, one file per section and format.
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
FORMAT_SUFFIX = {"html": ".html.j2", "md": ".md.j2"}


@dataclass(frozen=True)
class SectionContext:
    """What a section's builder reads: the report's data, and the store while the report is
    being built (None when a built report is rendered)."""

    report: ReportData
    store: Any = None


@dataclass(frozen=True)
class Section:
    """One section of the report.

    ``build(ctx)`` returns the section's ``model`` instance, or None when the section has nothing
    to show for this report (e.g. the gate box of an ungated report). A ``stored`` section is
    built once, from the store, when the report is built; its model is kept in the JSON report
    under ``name`` and read back from there to render. Other sections are views of the report's
    data, built when the report is rendered. ``templates``: the folder holding the section's
    ``html/<name>.html.j2`` and ``md/<name>.md.j2`` (default: the package's).
    """

    name: str
    model: type[BaseModel]
    build: Callable[[SectionContext], Optional[BaseModel]]
    stored: bool = False
    templates: Optional[Path] = None

    def template(self, fmt: str) -> str:
        """The template's name for a format ("html" or "md")."""
        return f"{fmt}/{self.name}{FORMAT_SUFFIX[fmt]}"

    def has_template(self, fmt: str) -> bool:
        return (Path(self.templates or TEMPLATES) / self.template(fmt)).is_file()

    def instance(self, report: ReportData) -> Optional[BaseModel]:
        """The section object to render for ``report`` (None: not shown)."""
        if self.stored:
            data = (report.model_extra or {}).get(self.name)
            return None if data is None else self.model.model_validate(data)
        return self.build(SectionContext(report=report))
