"""Where an export's files go, checked before anything is written.

``--output`` is a folder (created if missing), or, for the table formats, a file with the
format's suffix (``results.csv``): a run's table is written there and a comparison's diff table
beside it (``results.diff.csv``). A path that cannot be created or written is a UserError (exit 2)
naming it, raised before the first file is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, TypeVar

from rai_audit.errors import UserError

T = TypeVar("T")


def _problem(path: Path, e: OSError | None = None) -> UserError:
    why = f": {e.strerror or e}" if e is not None else ""
    return UserError(f"Cannot write the export to {str(path)!r}{why}. Choose a writable --output "
                     "(a folder, or for csv/parquet/jsonl a file with that suffix).")


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) and check it is a writable folder."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _problem(path, e) from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise _problem(path)
    return path


def check_files(paths: Mapping[str, Path]) -> None:
    """Each target file's folder exists and is writable, and no target is a folder."""
    for path in paths.values():
        if path.is_dir():
            raise UserError(f"Cannot write the export to {str(path)!r}: it is a folder. Name a file, or a folder "
                            "without the format's suffix.")
        ensure_dir(path.parent)


def table_paths(output: Path, stem: str, names: list[str], suffix: str) -> dict[str, Path]:
    """Target path of each table: ``<output>/<stem>.<name><suffix>``, or ``output`` itself for the
    first table (and ``<output stem>.<name><suffix>`` beside it for the others) when ``output``
    ends with ``suffix``."""
    if output.suffix.lower() == suffix:
        return {name: output if i == 0 else output.with_name(f"{output.stem}.{name}{suffix}") for i, name in enumerate(names)}
    return {name: output / f"{stem}.{name}{suffix}" for name in names}


def write_all(paths: Mapping[str, Path], contents: Mapping[str, T], write_one: Callable[[T, Path], None]) -> list[Path]:
    """Write each content to its path; an OSError becomes a UserError naming the path."""
    check_files(paths)
    out = []
    for name, path in paths.items():
        try:
            write_one(contents[name], path)
        except OSError as e:
            raise _problem(path, e) from None
        out.append(path)
    return out
