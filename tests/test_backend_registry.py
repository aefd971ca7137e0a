"""The backend registry (rai_audit.models.registry): a new model kind plugs in with one
``register_backend`` call and runs probes through the unchanged runner.

The recipe (docs cite it): write a loader ``(ModelInfo, BackendOptions) -> Backend`` and, for
references of your own form, a resolver ``"KIND:..." -> ModelInfo``; register both under the kind.
"""

from __future__ import annotations

import hashlib
import pickle

import pytest

import probes
from rai_audit.backend import Backend, ModelInfo
from rai_audit.config import parse_config
from rai_audit.errors import ModelLoadError
from rai_audit.models import registry
from rai_audit.requests import LoglikResult
from rai_audit.runner import run_probe_suite
from rai_audit.store import Store

LOADED: list[tuple[str, registry.BackendOptions]] = []


class ToyBackend:
    """Prefers the continuation whose text hashes lower: deterministic, no weights."""

    def __init__(self, info: ModelInfo):
        self.info = info
        self.calls = 0

    def loglikelihood(self, requests):
        self.calls += 1
        return [LoglikResult(logprob=-int(hashlib.sha256((r.context + r.continuation).encode()).hexdigest()[:6], 16) / 1e6,
                             n_tokens=1, is_greedy=False) for r in requests]

    def generate(self, requests):
        raise NotImplementedError

    def pseudo_loglikelihood(self, requests):
        raise NotImplementedError


def load_toy(info: ModelInfo, options: registry.BackendOptions) -> Backend:
    LOADED.append((info.reference, options))
    return ToyBackend(info)


def resolve_toy(ref: str) -> ModelInfo:
    return ModelInfo(model_id=hashlib.sha256(ref.encode()).hexdigest(), reference=ref, kind="toy",
                     architecture="Toy")


@pytest.fixture
def toy_kind():
    registry.register_backend("toy", load_toy, resolver=resolve_toy)
    LOADED.clear()
    yield "toy"
    registry.unregister_backend("toy")


@pytest.fixture(autouse=True)
def _fake_probes(monkeypatch):
    monkeypatch.setitem(probes.REGISTRY, "fake_mc", "tests.fakes:FakeMC")


def test_a_registered_kind_runs_a_probe_through_the_runner(toy_kind, tmp_path):
    cfg = parse_config({"probes": ["fake_mc"], "runtime": {"bootstrap": 20, "batch_size": 3}, "seed": 1})
    with Store.open(f"sqlite:///{tmp_path / 'toy.sqlite'}") as store:
        out = run_probe_suite(cfg, model_ref="toy:tiny-v1", store=store)  # no loader, no ModelInfo
        assert out.run.status == "completed" and out.counts["model_loaded"]
        assert LOADED == [("toy:tiny-v1", registry.BackendOptions(device="auto", dtype="auto", batch_size=3))]
        assert out.run.model_reference == "toy:tiny-v1"
        records = store.records(out.run.run_id, "fake_mc")
        assert len(records) == 40 and not any(r.get("error") for r in records)
        assert {m.name for m in store.metrics(out.run.run_id)} >= {"accuracy", "items_errored"}
        again = run_probe_suite(cfg, model_ref="toy:tiny-v1", store=store, fresh=True)
        assert again.counts["model_loaded"] is False  # every answer cached under the toy's model id
        assert len(LOADED) == 1


def test_load_backend_resolves_and_loads_through_the_registry(toy_kind):
    from rai_audit.models import load_backend

    backend = load_backend("toy:other", batch_size=2)
    assert isinstance(backend, ToyBackend) and backend.info.kind == "toy"
    assert LOADED[-1][1].batch_size == 2


def test_an_unregistered_kind_fails_before_a_run_row_is_written(tmp_path):
    info = ModelInfo(model_id="e" * 64, reference="nowhere:x", kind="nowhere")
    cfg = parse_config({"probes": ["fake_mc"], "runtime": {"bootstrap": 10}})
    with Store.open(f"sqlite:///{tmp_path / 'none.sqlite'}") as store:
        with pytest.raises(ModelLoadError, match="No model backend is registered for models of kind 'nowhere'"):
            run_probe_suite(cfg, model_ref=info.reference, store=store, model_info=info)
        assert store.list_runs() == []


def test_builtin_kinds_and_registration_rules(toy_kind):
    assert {"hf", "dir", "gguf", "toy"} <= set(registry.backend_kinds())
    assert registry.get_loader("gguf") is registry.load_transformers
    with pytest.raises(ValueError, match="already registered"):
        registry.register_backend("toy", load_toy)
    registry.register_backend("toy", load_toy, replace=True)
    with pytest.raises(ValueError):
        registry.register_backend("bad:kind", load_toy)
    # hub references, directories and .gguf files still resolve as before (no resolver for "hf")
    with pytest.raises(ModelLoadError, match="Cannot resolve the model reference"):
        registry.resolve_model("no/such/dir-here")


def test_a_bound_loader_travels_by_pickle(toy_kind):
    """The Ray executor ships the loader to its workers."""
    loader = registry.bound_loader("toy", registry.BackendOptions(batch_size=4))
    again = pickle.loads(pickle.dumps(loader))
    backend = again(resolve_toy("toy:x"))
    assert isinstance(backend, ToyBackend) and LOADED[-1] == ("toy:x", registry.BackendOptions(batch_size=4))
    hf = pickle.loads(pickle.dumps(registry.bound_loader("dir", registry.BackendOptions(device="cpu"))))
    assert hf.args[0] is registry.load_transformers
