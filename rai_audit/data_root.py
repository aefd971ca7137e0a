"""Where local benchmark files live.

The data root is a directory with one folder per benchmark in its original release layout
(``winogender/templates.tsv``, ``bbq/Age.jsonl``, ...). It comes from ``--data-dir`` or the
``RAI_AUDIT_DATA`` environment variable; without one, probes fall back to the Hugging Face hub.
The project's own assets (dataset manifests, gate policies, identity-term templates, the demo
mixture) ship inside the package, in ``rai_audit/assets/``, found by :func:`assets_dir` through
:mod:`importlib.resources`: an installed wheel reads its own copy, never a checkout's.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from rai_audit.errors import DataError


def resolve_data_root(flag: str | os.PathLike | None = None) -> Path | None:
    value = flag or os.environ.get("RAI_AUDIT_DATA")
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        raise DataError(
            f"The benchmark data directory {str(root)!r} (from {'--data-dir' if flag else 'RAI_AUDIT_DATA'}) "
            "does not exist. Point it at a directory with one folder per benchmark in its release "
            "layout (e.g. winogender/templates.tsv), or unset it to load from the Hugging Face hub."
        )
    return root


def benchmark_dir(data_root: Path | None, name: str) -> Path | None:
    """``data_root/name`` if it exists, else None (the caller then tries the hub)."""
    if data_root is None:
        return None
    d = data_root / name
    return d if d.is_dir() else None


def assets_dir() -> Path:
    """The package's own assets folder, ``rai_audit/assets/`` of the installed package: dataset
    manifests (``manifests/``), gate policies (``policies/``), identity-term templates
    (``identity_terms/``) and the demo's instruction mixture and finetune config
    (``demo_mixture/``). Read with :mod:`importlib.resources`, so a wheel install (files on disk,
    as pip installs them) reads the copy it shipped with."""
    root = importlib.resources.files("rai_audit") / "assets"
    path = Path(str(root))
    if not path.is_dir():  # a zip import: there is no folder to hand out
        raise DataError(f"rai-audit's assets folder {root} is not a directory; install rai-audit as files "
                        "(pip install rai-audit), not as a zipped package.")
    return path
