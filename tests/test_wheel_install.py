"""`pip install rai-audit` from a built wheel works outside the checkout, reading its data files
(dataset manifests, gate policies, identity terms) from the installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from tests.tiny_models import tiny_model_dir

REPO = Path(__file__).resolve().parent.parent
#: What the wheel is built from: the project's metadata and its four packages.
SOURCES = ("pyproject.toml", "README.md", "rai_audit", "probes", "finetune", "dashboards")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} exited {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_probes_from_its_own_data(tmp_path):
    """Build the wheel from a copy of the sources, install it into a new virtual environment, and
    run ``rai-audit probe`` on a tiny model from a folder outside the checkout.

    Borrowed, not installed: the third-party dependencies (torch, transformers, pandas,
    alt-profanity-check, ...). Installing them from PyPI into the new environment would download
    several GB and take minutes (and needs the network), so the wheel is installed with
    ``--no-deps`` and a ``.pth`` file in the new environment's site-packages adds one line: the
    checkout venv's site-packages folder (``sysconfig``'s purelib of the interpreter running the
    tests). A path line is only appended to ``sys.path``; the ``.pth`` files inside that folder are
    not processed, so the checkout's editable install of rai-audit (a ``.pth`` import hook there)
    is not active: ``rai_audit``, ``probes`` and the console script come from the wheel, as the
    test checks. The wheel is built offline with the checkout venv's setuptools
    (``pip wheel --no-build-isolation``).
    """
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = REPO / name
        (shutil.copytree(path, src / name, ignore=ignore) if path.is_dir() else shutil.copy2(path, src / name))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist), str(src)])
    [wheel] = dist.glob("rai_audit-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    borrowed = sysconfig.get_paths()["purelib"]
    (site / "_rai_audit_test_borrowed_deps.pth").write_text(borrowed + "\n", encoding="utf-8")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAI_AUDIT_DB", "VIRTUAL_ENV")}
    env["RAI_AUDIT_HOME"] = str(tmp_path / "home")
    where = _run([str(py), "-c", (
        "import rai_audit, probes, rai_audit.data_root as d, rai_audit.manifests as m, rai_audit.gate.policy as g\n"
        "print(rai_audit.__file__); print(probes.__file__); print(d.assets_dir())\n"
        "print(m.manifest_path('crows_pairs')); print(g.bundled_policy_path('default'))")],
        cwd=elsewhere, env=env).stdout.split()
    for path in where:
        assert Path(path).resolve().is_relative_to(site.resolve()), (path, site)
        assert not Path(path).resolve().is_relative_to(REPO)
    assert Path(where[3]).is_file() and Path(where[4]).is_file()

    model = tiny_model_dir("llama")
    names = "identity_toxicity" + (",crows_pairs_english" if SHARED_DATA.is_dir() else "")  # an lm-eval alias too
    db = tmp_path / "store.sqlite"
    res = _run([str(venv / "bin" / "rai-audit"), "-q", "probe", "--model", str(model), "--probe", names, "--limit", "3",
                "--scorer", "profanity-check", "--bootstrap", "0", "--db", str(db)], cwd=elsewhere, env=env)
    assert "identity_toxicity" in res.stdout

    from rai_audit.store import Store

    store = Store.open(f"sqlite:///{db}")
    run = store.get_run("latest")
    assert run.status == "completed" and run.provenance["rai_audit_version"]
    own = Path(run.datasets["identity_toxicity"]["source"]).resolve()
    assert own == (site / "rai_audit" / "assets" / "identity_terms").resolve()  # the installed package's copy
    assert run.datasets["identity_toxicity"]["files"]  # checked against the packaged manifest's pins
    if SHARED_DATA.is_dir():
        assert run.probes == ["identity_toxicity", "crows_pairs"]  # the alias is recorded as its probe
        assert run.datasets["crows_pairs"]["license"]  # from the packaged crows_pairs manifest
    store.close()
