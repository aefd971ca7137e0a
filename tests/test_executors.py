"""The executor interface (rai_audit.executors): both executors implement ``Executor.run(jobs, ctx)``
on the shared pieces of rai_audit.execution and import nothing of the runner; the local one is
what ``run_probe_suite(executor="local")`` runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import probes
from rai_audit.config import parse_config
from rai_audit.errors import UserError
from rai_audit.execution import LazyBackend, ProbeRunner, chunks
from rai_audit.executors import get_executor
from rai_audit.executors.base import ExecutionContext, Executor
from rai_audit.executors.local import LocalExecutor
from rai_audit.requests import GenerationRequest, LoglikRequest, Sampling
from rai_audit.runner import prepare_jobs, run_probe_suite
from rai_audit.store import Store
from tests.fakes import FAKE_MODEL, FakeBackend, FakeScorer

EXECUTORS_DIR = Path(__file__).resolve().parent.parent / "rai_audit" / "executors"


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(probes.REGISTRY, "fake_mc", "tests.fakes:FakeMC")
    monkeypatch.setitem(probes.REGISTRY, "fake_gen", "tests.fakes:FakeGen")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("path", sorted(EXECUTORS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_executors_never_import_the_runner(path):
    assert "rai_audit.runner" not in _imports(path)


def test_execution_imports_no_executor_and_no_runner():
    mods = _imports(EXECUTORS_DIR.parent / "execution.py")
    assert not any(m == "rai_audit.runner" or m.startswith("rai_audit.executors") for m in mods), mods


def test_get_executor_gives_objects_of_the_interface():
    local = get_executor("local")
    assert isinstance(local, Executor) and local.name == "local"
    pytest.importorskip("ray")
    ray_exec = get_executor("ray", {"shard_rows": 5})
    assert isinstance(ray_exec, Executor) and ray_exec.name == "ray" and ray_exec.options == {"shard_rows": 5}
    with pytest.raises(UserError, match="Unknown executor"):
        get_executor("dask")


def test_chunks_count_model_rows():
    from rai_audit.probe import Item

    items = [Item(id=str(i), data={}) for i in range(5)]
    reqs = {"0": [LoglikRequest("a", "b")] * 2, "1": [GenerationRequest("p", Sampling(n=5))],
            "2": [LoglikRequest("a", "b")], "3": [], "4": [GenerationRequest("p", Sampling(n=9))]}
    assert [[it.id for it in c] for c in chunks(items, reqs, 6)] == [["0"], ["1", "2"], ["3"], ["4"]]


def test_the_local_executor_on_its_own_writes_records_and_metrics(tmp_path):
    """What run_probe_suite does around an executor, by hand: the executor alone fills the run."""
    store = Store.open(f"sqlite:///{tmp_path / 'x.sqlite'}")
    jobs, _ = prepare_jobs([("fake_mc", {"n_items": 9}), ("fake_gen", {"n_items": 4})], None, limit=None, seed=0)
    run_id = store.create_run(kind="probe", run_key="k", model_id=FAKE_MODEL.model_id, model_reference="fake",
                              probes=[j.name for j in jobs], config={}, provenance={}, scorer=None, datasets={}, seed=0)
    from rai_audit.scorer_cache import CachedScorer

    scorer = FakeScorer()
    lazy = LazyBackend(FAKE_MODEL, lambda info: FakeBackend())
    work = ProbeRunner(store, lazy, scorer_cache=CachedScorer(scorer, store), scorer_identity=scorer.identity,
                       n_boot=20)
    ctx = ExecutionContext(run_id=run_id, work=work, model=FAKE_MODEL, backend_loader=lambda info: FakeBackend(),
                           chunk_rows=4)
    timing = LocalExecutor().run(jobs, ctx)["probe_timing"]  # each probe's time and work, for the next plan's estimate
    assert {k: (v["items"], v["work"]) for k, v in timing.items()} == {"fake_mc": (9, 18), "fake_gen": (4, 60)}
    assert len(store.records(run_id, "fake_mc")) == 9 and len(store.records(run_id, "fake_gen")) == 4
    assert {m.probe for m in store.metrics(run_id)} == {"fake_mc", "fake_gen"}
    assert work.counts["items_computed"] == 13 and work.counts["errors"] == {"fake_mc": 0, "fake_gen": 0}
    again = ProbeRunner(store, LazyBackend(FAKE_MODEL, lambda info: pytest.fail("nothing to compute")), n_boot=20)
    LocalExecutor().run(jobs, ExecutionContext(run_id, again, FAKE_MODEL, lambda info: FakeBackend(), chunk_rows=4))
    assert again.counts["items_computed"] == 0 and again.counts["errors"] == {"fake_mc": 0, "fake_gen": 0}
    store.close()


def test_run_probe_suite_hands_the_jobs_to_the_named_executor(tmp_path, monkeypatch):
    import rai_audit.executors as executors_mod

    seen = {}

    class Recording(LocalExecutor):
        def run(self, jobs, ctx):
            seen.update(jobs=[j.name for j in jobs], chunk_rows=ctx.chunk_rows, model=ctx.model)
            return {**super().run(jobs, ctx), "executor": {"name": "recording"}}

    monkeypatch.setattr(executors_mod, "get_executor", lambda name, options=None: Recording())
    cfg = parse_config({"probes": ["fake_mc"], "runtime": {"bootstrap": 10}})
    with Store.open(f"sqlite:///{tmp_path / 'r.sqlite'}") as store:
        out = run_probe_suite(cfg, model_ref="fake", store=store, model_info=FAKE_MODEL,
                              backend_loader=lambda info: FakeBackend())
        assert out.run.status == "completed" and out.counts["executor"] == {"name": "recording"}
    import rai_audit.runner as runner_mod

    assert seen == {"jobs": ["fake_mc"], "chunk_rows": runner_mod.CHUNK_ROWS, "model": FAKE_MODEL}
