"""A report is an ordered list of sections (:class:`~rai_audit.report.sections.base.Section`):
page 1 (cover, verdict, what was audited, headline table, gate box, summary), the body (results,
the Flan appendix C tables of a battery audit, the trajectory of a model audited during tuning,
training-data overlap, confounders, flips, worst items, methodology, data sets, limitations,
compliance map, sign-off) and the appendices
(subgroups, passing gate rows, provenance).

Each section is one module here: its pydantic model, its builder, and ``SECTION``; its templates
are ``templates/html/<name>.html.j2`` and ``templates/md/<name>.md.j2``. To add one: write the
model and builder, one template per format, and one line in :data:`SECTIONS` (or, from outside
the package, :func:`register_section`).
"""

from __future__ import annotations

from rai_audit.report.sections import audited, compliance, confounders, contamination, cover, datasets, flan_appendix_c, flips, gate
from rai_audit.report.sections import gate_rows, headline_table, limitations, methodology, provenance, results, signoff
from rai_audit.report.sections import subgroups, summary, trajectory, verdict, worst_items
from rai_audit.report.data import ReportData
from rai_audit.report.sections.base import Section, SectionContext

#: The report's sections in the order every format shows them.
SECTIONS: list[Section] = [
    cover.SECTION,
    verdict.SECTION,
    audited.SECTION,
    headline_table.SECTION,
    gate.SECTION,
    summary.SECTION,
    results.SECTION,
    flan_appendix_c.SECTION,
    trajectory.SECTION,
    contamination.SECTION,
    confounders.SECTION,
    flips.SECTION,
    worst_items.SECTION,
    methodology.SECTION,
    datasets.SECTION,
    limitations.SECTION,
    compliance.SECTION,
    signoff.SECTION,
    subgroups.SECTION,
    gate_rows.SECTION,
    provenance.SECTION,
]


def register_section(section: Section, *, after: str | None = None, before: str | None = None) -> Section:
    """Add a section to every report from now on: after the section named ``after``, before the
    one named ``before``, else at the end. A section of the same name is replaced. A stored
    section's name is its key in the JSON report, so it cannot be one the report already has."""
    if section.stored and (section.name in ReportData.model_fields or section.name in ("schema", "manifest")):
        raise ValueError(f"a stored section cannot be named {section.name!r}: the JSON report has that key")
    unregister_section(section.name)
    names = [s.name for s in SECTIONS]
    if after is not None:
        SECTIONS.insert(names.index(after) + 1, section)
    elif before is not None:
        SECTIONS.insert(names.index(before), section)
    else:
        SECTIONS.append(section)
    return section


def unregister_section(name: str) -> None:
    """Remove the section named ``name`` (nothing when there is none)."""
    SECTIONS[:] = [s for s in SECTIONS if s.name != name]


def section(name: str) -> Section:
    """The registered section named ``name`` (KeyError when there is none)."""
    for s in SECTIONS:
        if s.name == name:
            return s
    raise KeyError(name)


__all__ = ["SECTIONS", "Section", "SectionContext", "register_section", "section", "unregister_section"]
