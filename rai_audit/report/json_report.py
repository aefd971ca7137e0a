"""JSON report: the report's data (:class:`~rai_audit.report.data.ReportData`, with what stored
sections add): every number (comparison rows with CIs, p-values and MDEs, flips, confounders,
the runs' stored metrics, the gate table, provenance), strictly valid JSON (NaN becomes null)
with the sha256 manifest under ``"manifest"``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from rai_audit.report.manifest import embed_json


def render_json(report: Mapping[str, Any]) -> str:
    return embed_json(report)


def write_json(report: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_json(report), encoding="utf-8")
    return path
