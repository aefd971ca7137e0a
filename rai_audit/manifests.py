"""Dataset manifests under ``rai_audit/assets/manifests/<name>.json`` (package data).

A manifest records where a benchmark comes from and what exactly was measured: source (hub id
and/or release URL), pinned revision/commit, sha256 of each release file, license and citation
(docs/architecture.md, "The rooms": rai_audit/assets/). Probes compare the local files they read with the pinned hashes
(:mod:`probes.release_info`): a pinned file whose sha256 differs is refused (exit 2) unless the
run allows modified data, and then the run records both hashes; a file the manifest does not pin
is read and recorded as unpinned. ``hf_revision`` pins the hub copy (null: resolved to a commit
and recorded at run time) and ``hf_checksums`` may pin the content read from it, keyed
``<config>/<split>`` (see :func:`probes.release_info.rows_sha256`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rai_audit.data_root import assets_dir
from rai_audit.errors import DataError


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    hf_id: str | None
    hf_revision: str | None
    release_url: str | None
    release_commit: str | None
    license: str
    citation: str
    files: dict[str, str] = field(default_factory=dict)  # release-relative path -> sha256
    # "<config>/<split>" -> sha256 of the rows read from the hub at hf_revision (rows_sha256)
    hf_checksums: dict[str, str] = field(default_factory=dict)
    layout: str = ""  # human description of the expected local layout, for error messages
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def manifest_path(name: str) -> Path:
    return assets_dir() / "manifests" / f"{name}.json"


def load_manifest(name: str) -> Manifest:
    path = manifest_path(name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"No dataset manifest for {name!r} at {path}.") from None
    except ValueError as e:
        raise DataError(f"The dataset manifest {path} is not valid JSON: {e}.") from None
    known = {f for f in Manifest.__dataclass_fields__}
    extra = {k: v for k, v in raw.items() if k not in known}
    return Manifest(**{k: v for k, v in raw.items() if k in known}, extra=extra)


def check_files(manifest: Manifest, actual: dict[str, str]) -> list[str]:
    """Names of files whose sha256 differs from the pinned one (files not pinned are ignored)."""
    return sorted(n for n, h in actual.items() if n in manifest.files and manifest.files[n] != h)


def modified_files(pinned: dict[str, str], actual: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(name, actual sha256, pinned sha256)`` of each file whose hash differs from its pin."""
    return [(n, actual[n], pinned[n]) for n in sorted(actual) if n in pinned and pinned[n] != actual[n]]
