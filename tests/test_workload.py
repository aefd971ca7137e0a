"""The plan a run prints before any work (rai_audit.workload) and the audit-wide progress and ETA
(rai_audit.audit_progress): costs counted by hand, rates read back from a real run's recorded
timings (an instance of a probe falls back to its probe's rate), and ETA lines from a fake clock."""

from __future__ import annotations

import pytest

import probes
from rai_audit.audit_progress import AuditProgress
from rai_audit.config import parse_config
from rai_audit.execution import ProbeJob
from rai_audit.runner import prepare_jobs, run_probe_suite
from rai_audit.store import Store
from rai_audit.workload import ProbeCost, Rate, costs_of, estimate_seconds, measured_rates, plan_lines
from tests.fakes import FAKE_MODEL, FakeBackend, FakeGen, FakeMC, FakeScorer


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(probes.REGISTRY, "fake_mc", "tests.fakes:FakeMC")
    monkeypatch.setitem(probes.REGISTRY, "fake_gen", "tests.fakes:FakeGen")


def _jobs():
    mc, gen = FakeMC(), FakeGen()
    return [ProbeJob(mc, *mc.load()), ProbeJob(gen, *gen.load(), instance="fake_gen@two")]


def test_costs_by_hand():
    mc, gen = costs_of(_jobs())
    # FakeMC: 40 items x 2 log-likelihood requests; FakeGen: 12 items x 1 request for 3 samples of 5 tokens.
    assert (mc.name, mc.items, mc.requests, mc.loglik, mc.samples, mc.tokens, mc.work) == ("fake_mc", 40, 80, 80, 0, 0, 80)
    assert (gen.name, gen.items, gen.requests, gen.loglik, gen.samples, gen.tokens, gen.generated_tokens, gen.work) == \
        ("fake_gen@two", 12, 12, 0, 36, 5, 180, 180)
    assert mc.describe() == "40 items x 2 requests = 80 log-likelihoods"
    assert gen.describe() == "12 items x 3 samples x 5 tokens = 180 tokens"


def test_plan_lines_with_and_without_measured_rates():
    costs = costs_of(_jobs())
    models = [("base", "m1"), ("tuned", "m2")]
    lines = plan_lines(costs, models, {})
    assert lines[0] == "plan: 2 probes x 2 models (base m1; tuned m2), per model:"
    assert "fake_gen@two" in lines[2] and "180 tokens" in lines[2]
    assert "52 items, 92 model requests: 36 samples (180 tokens at most) and 80 log-likelihoods" in lines[3]
    assert "no measured rate" in lines[-1] and "follows the first probe" in lines[-1]
    rates = {"fake_mc": Rate(0.5, "r" * 32, "fake_mc"), "fake_gen@two": Rate(0.1, "s" * 32, "fake_gen")}
    assert estimate_seconds(costs, rates) == (pytest.approx(80 * 0.5 + 180 * 0.1), [])
    last = plan_lines(costs, models, rates)[-1]
    assert last.startswith("  estimated 1.9 min for 2 models (58 s each; rates measured in runs rrrrrrrrrrrr, ssssssssssss")
    partial = plan_lines(costs, models, {"fake_mc": rates["fake_mc"]})[-1]
    assert "fake_gen@two not measured yet" in partial


def test_rates_come_from_the_runs_recorded_timings(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 's.sqlite'}")
    cfg = parse_config({"probes": ["fake_mc", "fake_gen"], "runtime": {"bootstrap": 20}})
    out = run_probe_suite(cfg, model_ref="fake:model", store=store, model_info=FAKE_MODEL,
                          backend_loader=lambda info: FakeBackend(), scorer=FakeScorer())
    timing = out.run.status_detail["probe_timing"]
    assert timing["fake_mc"]["work"] == 80 and timing["fake_gen"]["work"] == 180
    assert timing["fake_mc"]["items"] == 40 and timing["fake_mc"]["computed"] == 80
    rates = measured_rates(store, "fake:model", ["fake_mc", "fake_gen@two", "other"], cfg.runtime.model_dump())
    assert set(rates) == {"fake_mc", "fake_gen@two"}  # an instance borrows its probe's rate; "other" has none
    assert rates["fake_gen@two"].probe == "fake_gen" and rates["fake_mc"].run_id == out.run.run_id
    assert rates["fake_mc"].seconds_per_unit == pytest.approx(timing["fake_mc"]["wall_s"] / 80)
    assert measured_rates(store, "fake:model", ["fake_mc"], {"device": "cuda", "dtype": "auto"}) == {}  # other device
    assert measured_rates(store, "another:model", ["fake_mc"]) == {}
    # A run whose answers all came from the cache measured nothing: the older rate stands.
    again = run_probe_suite(cfg, model_ref="fake:model", store=store, model_info=FAKE_MODEL,
                            backend_loader=lambda info: FakeBackend(), scorer=FakeScorer(), fresh=True)
    assert again.run.status_detail["probe_timing"]["fake_mc"]["computed"] == 0
    assert measured_rates(store, "fake:model", ["fake_mc"])["fake_mc"].run_id == out.run.run_id
    store.close()


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Inner:
    def __init__(self):
        self.calls = []

    def add_task(self, description, total, completed=0):
        self.calls.append(("add", description, total, completed))
        return f"task-{len(self.calls)}"

    def advance(self, task, n=1):
        self.calls.append(("advance", task, n))


def test_audit_progress_wraps_the_probe_progress_and_estimates_what_is_left():
    costs = [ProbeCost("a", 10, 10, 10, 0, 0, 0), ProbeCost("b", 4, 4, 0, 40, 10, 400)]  # a: 10 units, b: 400
    clock, lines, inner = Clock(), [], Inner()
    p = AuditProgress(inner, costs, 2, {}, lines.append, clock=clock)
    t = p.add_task("a", total=10)
    clock.t = 20.0
    p.advance(t, 10)  # a measured: 2 s per unit
    assert inner.calls == [("add", "a", 10, 0), ("advance", "task-1", 10)]  # the inner progress sees every call
    # Left: b (400 units) twice and a once; b unmeasured: the overall rate so far (2 s/unit), said to be rough.
    assert lines[-1] == "audit progress: 1 of 4 planned probe runs done, 20 s elapsed; about 27.0 min left (rough: some probes not measured yet)"
    t = p.add_task("b", total=4)
    clock.t = 60.0
    p.advance(t, 2)
    assert len(lines) == 1  # lines only when a probe ends
    p.advance(t, 2)  # b measured: 40 s / 400 units = 0.1 s per unit
    assert lines[-1] == "audit progress: 2 of 4 planned probe runs done, 60 s elapsed; about 60 s left"  # a: 10 x 2, b: 400 x 0.1
    p.skip_run(["a"])  # a's second run reused from the store
    t = p.add_task("b", total=4, completed=0)
    clock.t = 100.0
    p.advance(t, 4)
    assert lines[-1] == "audit progress: 3 of 3 planned probe runs done, 1.7 min elapsed; no probe work left"


def test_store_rates_come_first_then_the_same_probes_other_instance():
    costs = [ProbeCost("x", 2, 2, 2, 0, 0, 0), ProbeCost("x@y", 2, 2, 2, 0, 0, 0)]
    clock, lines = Clock(), []
    p = AuditProgress(None, costs, 1, {"x@y": Rate(5.0, "r", "x@y")}, lines.append, clock=clock)
    assert p.seconds_left() == (None, False)  # x has no rate yet, and nothing has been measured
    t = p.add_task("x", total=2)
    clock.t = 2.0
    p.advance(t, 2)  # x: 1 s per unit; x@y keeps the store's 5 s per unit
    assert p.seconds_left() == (pytest.approx(10.0), False)
    p2 = AuditProgress(None, costs, 1, {}, lines.append, clock=clock)
    t = p2.add_task("x", total=2, completed=0)
    clock.t = 6.0
    p2.advance(t, 2)  # x: 2 s per unit; x@y borrows it, marked rough
    assert p2.seconds_left() == (pytest.approx(4.0), True)


def test_prepared_instances_keep_their_names_and_params():
    jobs, _ = prepare_jobs([("fake_gen", {}), ("fake_gen@more", {"k": 5})], None, limit=None, seed=0)
    assert [j.name for j in jobs] == ["fake_gen", "fake_gen@more"] and [j.probe.params.k for j in jobs] == [3, 5]
    assert [c.samples for c in costs_of(jobs)] == [36, 60]
