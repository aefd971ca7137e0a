"""The data sets the runs read: name, source, revision, license, and the sha256 of every file
(a file list shared by several probes is listed once)."""

from __future__ import annotations

import json
from typing import Any, Optional

from pydantic import BaseModel

from rai_audit.report.data import DatasetEntry
from rai_audit.report.sections.base import Section, SectionContext


class FileList(BaseModel):
    probe: str
    files: dict[str, Any]
    same_as: Optional[str] = None  # the probe whose identical file list is already listed


class Datasets(BaseModel):
    entries: list[DatasetEntry]
    files: list[FileList]


def build(ctx: SectionContext) -> Datasets:
    entries = ctx.report.datasets
    seen: dict[str, str] = {}
    files = []
    for d in entries:
        if not d.files:
            continue
        token = json.dumps(d.files, sort_keys=True, default=str)
        files.append(FileList(probe=d.probe, files=d.files, same_as=seen.get(token)))
        seen.setdefault(token, d.probe)
    return Datasets(entries=entries, files=files)


SECTION = Section("datasets", Datasets, build)
