"""Provenance of a benchmark, for every probe: pinned local release files, or a hub data set.

**Local files** (:func:`local_dataset_info`). The run records the sha256 of every file read. Each
file is compared with the hash ``rai_audit/assets/manifests/<name>.json`` pins for it:

- all files pinned and matching: the revision is the manifest's release commit;
- a pinned file whose sha256 differs: :class:`~rai_audit.errors.ModifiedDataError` (exit 2)
  naming the file, both hashes, the manifest and the override, unless the run allows modified
  data (``--allow-modified-data``, config ``allow_modified_data: true``). With the override the
  revision starts ``MODIFIED local files accepted by --allow-modified-data:`` and lists each
  file with its actual and pinned hash, so the run records it and its run key differs from a run
  on the pinned files;
- a file the manifest does not pin (a Jigsaw CSV, BBQ's metadata, an unpinned category): read,
  hashed and listed as unpinned in the revision.

**Hub** (:class:`HubSource`). Loads are made at one commit: the manifest's ``hf_revision`` (or the
probe's ``hf_revision`` parameter) when it is a commit sha, else the commit that revision (``main``
when none is pinned) points to now, resolved with ``HfApi().dataset_info`` before loading and
recorded as ``<sha> (resolved from main; not pinned in the manifest)``. The run's ``files`` get
one content checksum per split read, keyed ``<config>/<split>`` (config ``default`` when the set
has none): :func:`rows_sha256`, the sha256 of the rows as canonical JSON lines. Row content is
independent of the ``datasets`` version and cache layout, unlike the Arrow cache files. When the
manifest pins ``hf_checksums`` for its commit, a differing checksum is refused like a modified
local file. Offline with a warm cache, where no commit can be resolved, the revision says so and
the checksums still record what was read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

from rai_audit.errors import DataError, ModifiedDataError
from rai_audit.hashing import sha256_file
from rai_audit.manifests import Manifest, load_manifest, manifest_path, modified_files
from rai_audit.probe import DatasetInfo

#: How the revision of a run that accepted modified local files begins.
MODIFIED_LOCAL = "MODIFIED local files accepted by --allow-modified-data"
MODIFIED_HUB = "MODIFIED hub content accepted by --allow-modified-data"
OVERRIDE_HINT = (
    "to measure these files anyway, rerun with --allow-modified-data (audit config: "
    "allow_modified_data: true); the run then records the actual and the pinned hashes"
)
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _describe(modified: list[tuple[str, str, str]]) -> str:
    return "; ".join(f"{n} sha256 {actual} (manifest pins {pinned})" for n, actual, pinned in modified)


# ----------------------------------------------------------------------------- local files


def local_dataset_info(
    name: str, directory: Path | str, files: Iterable[str | os.PathLike], *, allow_modified: bool = False
) -> DatasetInfo:
    """DatasetInfo for the release files that were read, checked against the manifest ``name``.

    ``files``: a ``str`` is a name relative to ``directory`` (recorded as given); a path object
    is a file as opened, recorded relative to ``directory``. Raises ModifiedDataError for a file
    whose sha256 differs from its pinned hash unless ``allow_modified``.
    """
    manifest = load_manifest(name)
    directory = Path(directory)
    paths: dict[str, Path] = {}
    for f in files:
        if isinstance(f, str):
            paths[f] = directory / f
        else:
            paths[os.path.relpath(f, directory)] = Path(f)
    # Not the (path, size, mtime) hash cache: a check must read the bytes (an edit that keeps the
    # size and restores the mtime would pass a cached hash); the probe reads these files anyway.
    actual = {n: sha256_file(paths[n], use_cache=False) for n in sorted(paths)}
    modified = modified_files(manifest.files, actual)
    if modified and not allow_modified:
        raise ModifiedDataError(_modified_message(manifest, directory, paths, modified))
    return DatasetInfo(
        name=name,
        source=str(directory),
        revision=_local_revision(manifest, actual, modified),
        license=manifest.license,
        citation=manifest.citation,
        files=actual,
    )


def _modified_message(manifest: Manifest, directory: Path, paths: dict[str, Path],
                      modified: list[tuple[str, str, str]]) -> str:
    which = "; ".join(f"{paths[n]} has sha256 {actual} but the manifest pins {pinned}" for n, actual, pinned in modified)
    release = f" (release {manifest.release_commit})" if manifest.release_commit else ""
    origin = f" from {manifest.release_url}" if manifest.release_url else ""
    return (
        f"{manifest.name}: {len(modified)} local file(s) differ from the hashes pinned in "
        f"{manifest_path(manifest.name)}{release}: {which}. The data under {directory} is not the pinned "
        f"release: restore the file(s){origin}, or point RAI_AUDIT_DATA / --data-dir at an unmodified copy; "
        f"or, {OVERRIDE_HINT}."
    )


def _local_revision(manifest: Manifest, actual: dict[str, str], modified: list[tuple[str, str, str]]) -> str | None:
    notes = []
    if modified:
        notes.append(f"{MODIFIED_LOCAL}: {_describe(modified)}")
    unpinned = [n for n in actual if n not in manifest.files]
    if unpinned:
        notes.append(f"unpinned local files (no hash in the manifest): {', '.join(unpinned)}")
    if not notes:
        return manifest.release_commit
    changed = {n for n, _, _ in modified}
    if any(n in manifest.files and n not in changed for n in actual):
        notes.append(f"other files as pinned at {manifest.release_commit or 'the manifest'}")
    return "; ".join(notes)


# ----------------------------------------------------------------------------- hub


def _canonical_rows(rows: Any) -> Iterable[dict[str, Any]]:
    if hasattr(rows, "iter") and hasattr(rows, "column_names"):  # a datasets.Dataset: batches are faster
        for batch in rows.iter(batch_size=1000):
            columns = list(batch)
            for values in zip(*(batch[c] for c in columns)):
                yield dict(zip(columns, values))
    else:
        yield from rows


def rows_sha256(rows: Any) -> str:
    """sha256 of rows as canonical JSON lines: one row per line in split order, keys sorted, UTF-8,
    no whitespace (``json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))``,
    non-JSON values as ``str``), each line ending in ``\\n``."""
    h = hashlib.sha256()
    for row in _canonical_rows(rows):
        h.update(json.dumps(dict(row), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


class HubSource:
    """One hub data set read at one commit; :meth:`info` records the commit and what was read.

    ``hf_id`` / ``revision`` override the manifest's (a probe's ``hf_id`` / ``hf_revision``
    parameters); the manifest's ``hf_revision`` applies only to the manifest's own ``hf_id``.
    """

    def __init__(self, name: str, *, hf_id: str | None = None, revision: str | None = None,
                 allow_modified: bool = False):
        self.manifest = load_manifest(name)
        self.hf_id = hf_id or self.manifest.hf_id
        own = self.hf_id == self.manifest.hf_id
        self.requested = revision if revision is not None else (self.manifest.hf_revision if own else None)
        self.allow_modified = allow_modified
        self.commit: str | None = None
        self.unresolved: str | None = None  # why no commit could be resolved (offline, ...)
        self.checksums: dict[str, str] = {}
        self.modified: list[tuple[str, str, str]] = []

    # -- loading
    def _resolve(self) -> None:
        if self.requested and _COMMIT.fullmatch(self.requested):
            self.commit = self.requested
            return
        try:
            from huggingface_hub import HfApi

            sha = HfApi().dataset_info(self.hf_id, revision=self.requested).sha
        except Exception as e:  # noqa: BLE001 - offline, gated, unknown ref: loading may still work from the cache
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            self.unresolved = f"{type(e).__name__}: {reason}" if reason else type(e).__name__
            return
        if sha:
            self.commit = sha
        else:
            self.unresolved = "the hub returned no commit sha"

    def load(self, config: str | None, split: str):
        """``datasets.load_dataset`` at the resolved commit, with a DataError a user can act on."""
        m = self.manifest
        if not self.hf_id:
            raise DataError(
                f"No local files for {m.name} and no hub id in its manifest. Expected layout: "
                f"{m.layout}. Point RAI_AUDIT_DATA (or --data-dir) at the release files."
            )
        if self.commit is None and self.unresolved is None:
            self._resolve()
        revision = self.commit or self.requested
        try:
            import datasets

            ds = datasets.load_dataset(self.hf_id, config, split=split, revision=revision)
        except Exception as e:  # noqa: BLE001 - offline, gated, renamed: all the user can fix is where data comes from
            raise DataError(
                f"Could not load the Hugging Face data set {self.hf_id!r}"
                f"{' (config ' + repr(config) + ')' if config else ''}, split {split!r}, revision "
                f"{revision or 'main'!r}: {type(e).__name__}: {e}. Either go online (and log in if the set is "
                f"gated), or point RAI_AUDIT_DATA (or --data-dir) at a directory with the release files "
                f"(layout: {m.layout})."
            ) from None
        key = f"{config or 'default'}/{split}"
        digest = rows_sha256(ds)
        self.checksums[key] = digest
        pinned = m.hf_checksums if (self.hf_id == m.hf_id and self.commit and self.commit == m.hf_revision) else {}
        changed = modified_files(pinned, {key: digest})
        if changed:
            if not self.allow_modified:
                raise ModifiedDataError(
                    f"{m.name}: the rows of {self.hf_id} {key} at commit {self.commit} have sha256 {digest} but "
                    f"{manifest_path(m.name)} pins {pinned[key]} (rows_sha256: canonical JSON lines). The hub "
                    f"copy or its conversion changed; use the release files (layout: {m.layout}), or {OVERRIDE_HINT}."
                )
            self.modified.extend(changed)
        return ds

    # -- recording
    @property
    def revision(self) -> str | None:
        if self.commit is not None:
            if self.requested and _COMMIT.fullmatch(self.requested):
                text = self.commit
            elif self.requested:
                text = f"{self.commit} (resolved from {self.requested})"
            else:
                text = f"{self.commit} (resolved from main; not pinned in the manifest)"
        elif self.unresolved is not None:
            text = f"{self.requested or 'main'} (commit not resolved: {self.unresolved}; rows recorded by checksum)"
        else:
            text = self.requested or "main (unpinned)"
        if self.modified:
            text = f"{MODIFIED_HUB}: {_describe(self.modified)}; {text}"
        return text

    def info(self, configs: Iterable[str] = ()) -> DatasetInfo:
        configs = list(configs)
        return DatasetInfo(
            name=self.manifest.name,
            source=(self.hf_id or "") + (f" ({', '.join(configs)})" if configs else ""),
            revision=self.revision,
            license=self.manifest.license,
            citation=self.manifest.citation,
            files=dict(sorted(self.checksums.items())),
        )

    def row_error(self, missing: Iterable[str]) -> DataError:
        return DataError(
            f"The hub data set {self.hf_id} at revision {self.commit or self.requested or 'main'} lacks the "
            f"column(s) {', '.join(missing)} this probe reads. Use the local release files instead "
            f"(layout: {self.manifest.layout})."
        )
