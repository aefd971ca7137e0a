"""The probe runner against the real store with fake probes, backend and scorer: records,
metrics with CIs, reuse, resume after a crash, and errors as rows (never scores)."""

from __future__ import annotations

import pytest

import probes
from rai_audit.config import parse_config
from rai_audit.runner import run_probe_suite, select_items
from rai_audit.probe import Item
from rai_audit.store import Store
from tests.fakes import FAKE_MODEL, FakeBackend, FakeScorer, SimulatedCrash


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(probes.REGISTRY, "fake_mc", "tests.fakes:FakeMC")
    monkeypatch.setitem(probes.REGISTRY, "fake_gen", "tests.fakes:FakeGen")


@pytest.fixture
def store(db_url):
    """The runner's behaviour must not depend on the back-end: SQLite and PostgreSQL."""
    s = Store.open(db_url)
    yield s
    s.close()


def cfg(**kw):
    base = {"probes": ["fake_mc", "fake_gen"], "runtime": {"bootstrap": 200}, "seed": 3}
    base.update(kw)
    return parse_config(base)


def run(store, backend, scorer=None, **kw):
    return run_probe_suite(cfg(**kw), model_ref="fake:model", store=store, model_info=FAKE_MODEL,
                           backend_loader=lambda info: backend, scorer=scorer or FakeScorer())


def test_run_writes_records_and_metrics_with_ci(store):
    backend = FakeBackend()
    out = run(store, backend)
    r = out.run
    assert r.status == "completed" and r.probes == ["fake_mc", "fake_gen"]
    assert len(store.records(r.run_id, "fake_mc")) == 40
    assert len(store.records(r.run_id, "fake_gen")) == 12
    m = {(x.probe, x.name, x.subgroup): x for x in store.metrics(r.run_id)}
    acc = m[("fake_mc", "accuracy", "")]
    recs = store.records(r.run_id, "fake_mc")
    assert acc.value == pytest.approx(sum(x["correct"] for x in recs) / 40)
    assert acc.n == 40 and acc.ci_low <= acc.value <= acc.ci_high
    assert m[("fake_gen", "items_errored", "")].value == 0
    assert r.scorer["name"] == "fake-scorer" and r.scorer["operator"] == ">="
    assert r.provenance["model"]["model_id"] == FAKE_MODEL.model_id
    assert "packages" in r.provenance or "python" in r.provenance


def test_identical_rerun_is_reused_without_loading_the_model(store):
    run(store, FakeBackend())
    again = FakeBackend()
    out = run(store, again)
    assert out.reused and again.calls == 0


def test_fast_mode_is_its_own_run_with_its_own_answers(store):
    """A bfloat16 run (the fast mode) is not the float32 run: another run key, its settings say
    so, and its answers are computed rather than taken from the float32 ones."""
    first = run(store, FakeBackend())
    fast_backend = FakeBackend()
    fast = run(store, fast_backend, runtime={"bootstrap": 200, "dtype": "bfloat16"})
    assert not fast.reused and fast.run.run_id != first.run.run_id
    assert fast_backend.calls > 0
    assert fast.run.provenance["precision"] == "bfloat16" and first.run.provenance["precision"] == "auto"
    assert fast.run.config["runtime"]["dtype"] == "bfloat16"
    again = FakeBackend()
    assert run(store, again, runtime={"bootstrap": 200, "dtype": "bfloat16"}).reused and again.calls == 0


def test_fresh_rerun_answers_from_cache(store):
    first = run(store, FakeBackend())
    again = FakeBackend()
    out = run_probe_suite(cfg(), model_ref="x", store=store, model_info=FAKE_MODEL,
                          backend_loader=lambda i: again, scorer=FakeScorer(), fresh=True)
    assert out.run.run_id != first.run.run_id and again.calls == 0
    a = {(m.probe, m.name, m.subgroup): m.value for m in store.metrics(first.run.run_id)}
    b = {(m.probe, m.name, m.subgroup): m.value for m in store.metrics(out.run.run_id)}
    assert a == b


def test_resume_after_crash_gives_identical_metrics_and_no_duplicates(tmp_path, store):
    reference = Store.open(f"sqlite:///{tmp_path / 'ref.sqlite'}")
    ref = run(reference, FakeBackend())
    want = {(m.probe, m.name, m.subgroup): (m.value, m.ci_low, m.ci_high) for m in reference.metrics(ref.run.run_id)}

    import rai_audit.runner as runner_mod

    old = runner_mod.CHUNK_ROWS
    runner_mod.CHUNK_ROWS = 10  # several chunks, so the crash lands mid-probe
    try:
        with pytest.raises(SimulatedCrash):
            run(store, FakeBackend(die_after_calls=3))
        crashed = store.list_runs()[0]
        done_before = len(store.records(crashed.run_id, "fake_mc"))
        assert 0 < done_before < 40
        backend = FakeBackend()
        out = run(store, backend)
    finally:
        runner_mod.CHUNK_ROWS = old
    assert out.resumed and out.run.run_id == crashed.run_id
    ids = [r["item_id"] for r in store.records(out.run.run_id, "fake_mc")]
    assert len(ids) == len(set(ids)) == 40
    assert backend.rows == 2 * (40 - done_before) + 12  # only missing MC items, then all gen prompts
    got = {(m.probe, m.name, m.subgroup): (m.value, m.ci_low, m.ci_high) for m in store.metrics(out.run.run_id)}
    assert got == want
    reference.close()


def test_scorer_failure_is_an_error_row_not_a_zero(store):
    class Boom(FakeBackend):
        def generate(self, requests):
            res = super().generate(requests)
            return [type(r)(texts=tuple(t + (" BOOM" if "number 5" in q.prompt else "") for t in r.texts),
                            n_tokens=r.n_tokens, finish=r.finish) for r, q in zip(res, requests)]

    out = run(store, Boom())
    assert out.run.status == "completed_with_errors"
    assert out.run.status_detail["errors"] == {"fake_gen": 1}
    recs = store.records(out.run.run_id, "fake_gen")
    bad = [r for r in recs if r.get("error")]
    assert len(bad) == 1 and bad[0]["item_id"] == "p005" and "scorer" in bad[0]["error"]
    assert "max_toxicity" not in bad[0]
    emt = next(m for m in store.metrics(out.run.run_id, "fake_gen") if m.name == "expected_max_toxicity")
    assert emt.n == 11


def test_model_failure_on_one_item_is_that_items_error(store):
    out = run(store, FakeBackend(fail_on="q007"))
    recs = {r["item_id"]: r for r in store.records(out.run.run_id, "fake_mc")}
    assert "model error" in recs["q007"]["error"]
    assert sum(1 for r in recs.values() if r.get("error")) == 1
    assert out.run.status == "completed_with_errors"


def test_select_items_is_seeded_stable_and_keeps_clusters():
    items = [Item(id=f"i{i}", data={}, cluster=f"c{i // 2}") for i in range(20)]
    a = select_items(items, 6, seed=1)
    assert [i.id for i in a] == [i.id for i in select_items(list(reversed(items)), 6, seed=1)][::-1] or \
        sorted(i.id for i in a) == sorted(i.id for i in select_items(list(reversed(items)), 6, seed=1))
    assert len(a) == 6
    clusters = {}
    for it in a:
        clusters.setdefault(it.cluster, 0)
        clusters[it.cluster] += 1
    assert all(v == 2 for v in clusters.values())
    assert select_items(items, 6, seed=2) != a
    assert select_items(items, None, seed=1) == items


def test_select_items_spreads_large_clusters_and_respects_limit():
    items = [Item(id=f"i{i}", data={}, cluster=f"t{i // 50}") for i in range(500)]  # 10 templates of 50
    a = select_items(items, 40, seed=0)
    assert len(a) == 40
    assert len({it.cluster for it in a}) == 10  # every template represented, 4 each


def test_bootstrap_ci_is_none_with_a_single_cluster():
    from rai_audit.stats.bootstrap import bootstrap_metrics

    recs = [{"item_id": str(i), "cluster": "only", "x": float(i % 2)} for i in range(10)]
    agg = lambda rs: {("mean", ""): (sum(r["x"] for r in rs) / len(rs), len(rs))}  # noqa: E731
    assert bootstrap_metrics(recs, agg, n_boot=50)[("mean", "")] == (0.5, 10, None, None)
    recs2 = [dict(r, cluster=str(i)) for i, r in enumerate(recs)]
    v, n, lo, hi = bootstrap_metrics(recs2, agg, n_boot=200)[("mean", "")]
    assert lo < 0.5 < hi


def test_resume_after_metrics_were_written_keeps_the_error_count(store):
    # First process: the MC probe finishes (with one error row) and writes its metrics, then the
    # process dies in the generation probe. The resumed run must still end completed_with_errors.
    with pytest.raises(SimulatedCrash):
        # MC: one batched call that fails on q007, then 40 item-by-item calls; the 42nd call
        # (the generation probe's) dies.
        run(store, FakeBackend(fail_on="q007", die_after_calls=41))
    crashed = store.list_runs()[0]
    assert any(m.name == "items_errored" for m in store.metrics(crashed.run_id, "fake_mc"))
    out = run(store, FakeBackend(fail_on="q007"))
    assert out.resumed and out.run.status == "completed_with_errors"
    assert out.run.status_detail["errors"] == {"fake_mc": 1}
