"""The Ray executor on a local Ray instance: the same records and metrics as the local executor,
resume of a run the local executor left half-done, and workers killed mid-shard (before and after
their commit) retried by Ray without duplicate records. Skipped when Ray is not installed."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

import probes
from rai_audit.config import parse_config
from rai_audit.errors import UserError
from rai_audit.runner import run_probe_suite
from rai_audit.store import Store
from tests.fakes import FAKE_MODEL, FakeBackend, FakeScorer, SimulatedCrash

REPO = Path(__file__).resolve().parent.parent

try:
    import ray
except ImportError:  # the optional extra rai-audit[ray]
    ray = None


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the module (starting one takes several seconds)."""
    if ray is None:
        pytest.skip("Ray is not installed (pip install 'rai-audit[ray]')")
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "RAI_AUDIT_DATA": os.environ["RAI_AUDIT_DATA"]}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(probes.REGISTRY, "fake_mc", "tests.fakes:FakeMC")
    monkeypatch.setitem(probes.REGISTRY, "fake_gen", "tests.fakes:FakeGen")


def _open(path: Path) -> Store:
    return Store.open(f"sqlite:///{path}")


def _cfg():
    return parse_config({"probes": ["fake_mc", "fake_gen"], "runtime": {"bootstrap": 200}, "seed": 3})


def _fake_loader(info, marker: str | None = None):
    return KillOnceBackend(marker) if marker else FakeBackend()


class KillOnceBackend(FakeBackend):
    """Kills its whole worker process on its first loglikelihood call ever (a marker file
    remembers across processes), as the OOM killer or a lost node would."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def loglikelihood(self, requests):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return super().loglikelihood(requests)


def _kill_after_first_commit(marker: str, probe: str, item_ids: list[str]) -> None:
    """Dies after a shard's records are committed, before Ray hears the shard is done."""
    if not os.path.exists(marker):
        Path(marker).write_text(",".join(item_ids))
        os._exit(1)


def _run(store, executor="local", loader=None, **options):
    return run_probe_suite(_cfg(), model_ref="fake:model", store=store, model_info=FAKE_MODEL,
                           backend_loader=loader or _fake_loader, scorer=FakeScorer(),
                           executor=executor, executor_options=options or None)


def _metrics(store, run_id):
    return {(m.probe, m.name, m.subgroup): (m.value, m.n, m.ci_low, m.ci_high) for m in store.metrics(run_id)}


def _records(store, run_id):
    out = {}
    for r in store.records(run_id):
        key = (r["probe"], r["item_id"])
        assert key not in out, f"duplicate record {key}"
        out[key] = r
    return out


@pytest.fixture
def reference(tmp_path):
    s = _open(tmp_path / "local.sqlite")
    out = _run(s)
    yield _metrics(s, out.run.run_id), _records(s, out.run.run_id)
    s.close()


def test_ray_gives_the_local_executors_records_and_metrics(ray_local, reference, db_url):
    store = Store.open(db_url)  # workers reopen it by URL (PostgreSQL: with its search_path)
    out = _run(store, "ray", shard_rows=10)
    want_metrics, want_records = reference
    assert out.run.status == "completed"
    assert _records(store, out.run.run_id) == want_records
    assert _metrics(store, out.run.run_id) == want_metrics  # CIs too: records are read in item order
    detail = out.run.status_detail
    assert detail["executor"]["workers"] == 2 and detail["executor"]["shards"] > 2
    assert detail["items_computed"] == 52 and detail["model_loaded"]
    again = _run(store, "ray")
    assert again.reused and again.run.run_id == out.run.run_id
    store.close()


def test_ray_resumes_a_run_the_local_executor_left_half_done(ray_local, reference, tmp_path, monkeypatch):
    import rai_audit.runner as runner_mod

    store = _open(tmp_path / "resume.sqlite")
    monkeypatch.setattr(runner_mod, "CHUNK_ROWS", 10)
    with pytest.raises(SimulatedCrash):
        _run(store, loader=lambda info: FakeBackend(die_after_calls=3))
    crashed = store.list_runs()[0]
    done_before = len(store.records(crashed.run_id, "fake_mc"))
    assert 0 < done_before < 40
    out = _run(store, "ray")
    assert out.resumed and out.run.run_id == crashed.run_id
    assert out.run.status_detail["items_computed"] == (40 - done_before) + 12
    assert _records(store, out.run.run_id) == reference[1]
    assert _metrics(store, out.run.run_id) == reference[0]
    store.close()


def test_workers_killed_mid_shard_are_retried_without_duplicates(ray_local, reference, tmp_path):
    store = _open(tmp_path / "kill.sqlite")
    before_commit = tmp_path / "killed-before-commit"
    after_commit = tmp_path / "killed-after-commit"
    out = _run(store, "ray", shard_rows=10,
               loader=functools.partial(_fake_loader, marker=str(before_commit)),
               on_shard_committed=functools.partial(_kill_after_first_commit, str(after_commit)))
    assert before_commit.exists() and after_commit.exists()  # both kills happened
    records = _records(store, out.run.run_id)  # raises on a duplicate (run, probe, item)
    assert records == reference[1]
    assert _metrics(store, out.run.run_id) == reference[0]
    # The shard that died after its commit was retried and found its items already recorded.
    committed_then_killed = after_commit.read_text().split(",")
    assert out.run.status_detail["executor"]["items_skipped_on_retry"] == len(committed_then_killed)
    store.close()


def test_metrics_do_not_depend_on_the_order_shards_were_committed(reference, tmp_path):
    """Parallel workers commit shards in any order; the bootstrap (which resamples clusters in
    order of first appearance) must still see the records in item order."""
    from rai_audit.execution import ProbeRunner
    from rai_audit.runner import prepare_jobs

    want_metrics, want_records = reference
    store = _open(tmp_path / "order.sqlite")
    jobs, _ = prepare_jobs([("fake_mc", {}), ("fake_gen", {})], None, limit=None, seed=3)
    run_id = store.create_run(kind="probe", run_key="k", model_id=FAKE_MODEL.model_id, model_reference="fake",
                              probes=[j.name for j in jobs], config={}, provenance={}, scorer=None, datasets={},
                              seed=3)
    runner = ProbeRunner(store, FakeBackend(), seed=3, n_boot=200)
    for job in jobs:
        store.add_dataset(job.dataset)
        store.add_items(job.dataset.dataset_id, job.name, job.items)
        recs = [{k: v for k, v in r.items() if k != "probe"} for (p, _), r in want_records.items() if p == job.name]
        shards = [recs[i : i + 5] for i in range(0, len(recs), 5)]
        for shard in reversed(shards):  # last shard first
            store.add_records(run_id, job.name, shard)
        assert store.records(run_id, job.name)[0]["item_id"] != job.items[0].id
        runner.write_metrics(run_id, job)
    assert _metrics(store, run_id) == want_metrics
    store.close()


def test_a_shard_written_twice_keeps_one_record_per_item(tmp_path):
    """What a race between a retried shard and its first attempt would do: the second commit of
    the same items is skipped, and even forced through it adds no row (first write wins)."""
    from rai_audit.executors.ray import ShardWorker
    from rai_audit.runner import prepare_jobs

    store = _open(tmp_path / "twice.sqlite")
    jobs, _ = prepare_jobs([("fake_mc", {"n_items": 8})], None, limit=None, seed=0)
    job = jobs[0]
    store.add_dataset(job.dataset)
    store.add_items(job.dataset.dataset_id, job.name, job.items)
    run_id = store.create_run(kind="probe", run_key="k", model_id=FAKE_MODEL.model_id, model_reference="fake",
                              probes=[job.name], config={}, provenance={}, scorer=None, datasets={}, seed=0)
    worker = ShardWorker(store.url, FAKE_MODEL, _fake_loader)
    first = worker.run_shard(run_id, job, job.items)
    second = worker.run_shard(run_id, job, job.items)
    assert (first["items_computed"], second["items_computed"], second["items_skipped"]) == (8, 0, 8)
    runner = worker.runner
    records = runner.records_for_chunk(job, job.items, {it.id: job.probe.requests(it) for it in job.items})
    with runner.store.transaction():
        runner.store.add_records(run_id, job.name, records)
    ids = [r["item_id"] for r in store.records(run_id, job.name)]
    assert sorted(ids) == sorted(it.id for it in job.items)
    store.close()


def test_unknown_executor_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="Unknown executor 'dask'"):
        _run(_open(tmp_path / "x.sqlite"), "dask")


def test_the_local_executor_never_imports_ray(tmp_path):
    code = (
        "import sys, probes\n"
        "probes.REGISTRY['fake_mc'] = 'tests.fakes:FakeMC'\n"
        "from rai_audit.config import parse_config\n"
        "from rai_audit.runner import run_probe_suite\n"
        "from rai_audit.store import Store\n"
        "from tests.fakes import FAKE_MODEL, FakeBackend\n"
        f"s = Store.open({str('sqlite:///' + str(tmp_path / 'l.sqlite'))!r})\n"
        "out = run_probe_suite(parse_config({'probes': ['fake_mc'], 'runtime': {'bootstrap': 10}}), model_ref='x',\n"
        "    store=s, model_info=FAKE_MODEL, backend_loader=lambda i: FakeBackend())\n"
        "assert out.run.status == 'completed'\n"
        "import rai_audit.cli\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_ray_actors_load_a_real_model_with_the_local_loader(ray_local, tmp_path):
    """A tiny transformers model through the default (HF) loader: each actor loads it itself, and
    answers (log-likelihoods and seeded samples) equal the local executor's."""
    from rai_audit.models.reference import resolve
    from tests.tiny_models import tiny_model_dir

    info = resolve(str(tiny_model_dir("llama")))
    cfg = parse_config({"probes": ["fake_mc", "fake_gen"], "runtime": {"bootstrap": 100, "device": "cpu"},
                        "seed": 5, "limit": 12})
    results = {}
    for executor in ("local", "ray"):
        store = _open(tmp_path / f"{executor}.sqlite")
        out = run_probe_suite(cfg, model_ref=info.reference, store=store, model_info=info, scorer=FakeScorer(),
                              executor=executor, executor_options={"shard_rows": 8} if executor == "ray" else None)
        assert out.run.status == "completed" and out.counts["model_loaded"]
        results[executor] = (_records(store, out.run.run_id), _metrics(store, out.run.run_id))
        store.close()
    assert results["ray"] == results["local"]


def test_a_worker_refuses_a_local_model_that_differs_from_the_drivers(tmp_path):
    """Records are keyed by the driver's model hash; a node with other weights at the path fails."""
    import dataclasses

    from rai_audit.errors import ModelLoadError
    from rai_audit.executors.ray import ShardWorker
    from rai_audit.models.reference import resolve
    from rai_audit.runner import prepare_jobs
    from tests.tiny_models import tiny_model_dir

    info = resolve(str(tiny_model_dir("llama")))
    stale = dataclasses.replace(info, model_id="0" * 64)
    store = _open(tmp_path / "m.sqlite")
    jobs, _ = prepare_jobs([("fake_mc", {"n_items": 2})], None, limit=None, seed=0)
    job = jobs[0]
    run_id = store.create_run(kind="probe", run_key="k", model_id=stale.model_id, model_reference=stale.reference,
                              probes=[job.name], config={}, provenance={}, scorer=None, datasets={}, seed=0)
    store.add_dataset(job.dataset)
    store.add_items(job.dataset.dataset_id, job.name, job.items)
    loaded = []
    worker = ShardWorker(store.url, stale, lambda i: loaded.append(i) or FakeBackend())
    with pytest.raises(ModelLoadError, match="not the one"):
        worker.run_shard(run_id, job, job.items)
    assert loaded == [] and store.records(run_id) == []
    ok = ShardWorker(store.url, info, lambda i: loaded.append(i) or FakeBackend())
    assert ok.run_shard(run_id, job, job.items)["items_computed"] == 2 and len(loaded) == 1
    store.close()


def test_a_worker_error_reaches_the_driver_as_itself(ray_local, tmp_path):
    """A UserError raised in an actor (here: a stale local model on the node) ends the run as that
    error, with its own message and exit code, not as Ray's wrapper with a remote traceback."""
    import dataclasses

    from rai_audit.errors import ModelLoadError
    from rai_audit.models.reference import resolve
    from tests.tiny_models import tiny_model_dir

    stale = dataclasses.replace(resolve(str(tiny_model_dir("llama"))), model_id="0" * 64)
    store = _open(tmp_path / "err.sqlite")
    cfg = parse_config({"probes": ["fake_mc"], "runtime": {"bootstrap": 10}})
    with pytest.raises(ModelLoadError) as info:
        run_probe_suite(cfg, model_ref=stale.reference, store=store, model_info=stale, executor="ray",
                        executor_options={"max_retries": 0})
    assert type(info.value) is ModelLoadError and str(info.value).startswith("The model at ")
    assert store.list_runs()[0].status == "failed"
    store.close()


def test_ray_executor_without_ray_installed_says_how_to_install_it(monkeypatch):
    import importlib.util

    from rai_audit.executors import check_executor

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install 'rai-audit\[ray\]'"):
        check_executor("ray")
    check_executor("local")
