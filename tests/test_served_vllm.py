"""The vllm backend (rai_audit.models.vllm_backend).

Resolution and the refusals run everywhere (no vLLM needed). The engine tests need vLLM and a
CUDA GPU and are skipped otherwise; on a GPU machine run them with (docs/scaling.md):

    pip install 'rai-audit[vllm]'
    python -m pytest -q tests/test_served_vllm.py -p no:cacheprovider

They load the tiny random llama of tests/tiny_models.py in vLLM (float32) and check its
log-likelihoods and greedy generations against the transformers backend on the same directory.
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from rai_audit.errors import ModelLoadError, UserError
from rai_audit.models import registry
from rai_audit.models.reference import resolve as resolve_weights
from rai_audit.models.vllm_backend import engine_model_id
from rai_audit.requests import GenerationRequest, LoglikRequest, Sampling
from tests.tiny_models import tiny_model_dir

#: vLLM (float32, its own kernels) vs transformers (float32) on the same tiny model, nats/request.
LOGLIK_TOLERANCE = 1e-3


def test_a_vllm_reference_resolves_to_the_weights_with_the_engine_in_its_id(tmp_path):
    d = tiny_model_dir("llama")
    info = registry.resolve_model(f"vllm:{d}")
    weights = resolve_weights(str(d))
    assert info.kind == "vllm" and info.files == weights.files and info.path == weights.path
    assert info.model_id == engine_model_id(weights.model_id) != weights.model_id  # never the HF backend's cache
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"not really")
    with pytest.raises(ModelLoadError):
        registry.resolve_model(f"vllm:{gguf}")
    with pytest.raises(ModelLoadError, match="names no model"):
        registry.resolve_model("vllm:")
    with pytest.raises(ModelLoadError, match="not a decoder-only"):
        registry.resolve_model(f"vllm:{tiny_model_dir('t5')}")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_loading_says_how_to_install_it():
    info = registry.resolve_model(f"vllm:{tiny_model_dir('llama')}")
    with pytest.raises(ModelLoadError, match=r"rai-audit\[vllm\]") as e:
        registry.load_backend(info)
    assert e.value.exit_code == 2
    with pytest.raises(UserError, match="CUDA"):
        registry.load_backend(info, registry.BackendOptions(device="cpu"))


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("the vllm backend needs a CUDA GPU")
    d = tmp_path_factory.mktemp("vllm") / "llama"
    shutil.copytree(tiny_model_dir("llama"), d)
    opts = registry.BackendOptions(device="auto", dtype="float32")
    vllm_backend = registry.load_backend(registry.resolve_model(f"vllm:{d}"), opts)
    hf = registry.load_backend(resolve_weights(str(d)), registry.BackendOptions(device="cuda", dtype="float32"))
    return vllm_backend, hf


@pytest.mark.slow
def test_vllm_logliks_match_the_transformers_backend(engines):
    vllm_backend, hf = engines
    reqs = [LoglikRequest("The doctor asked", " the patient"), LoglikRequest("The nurse ", "helped them"),
            LoglikRequest("Hello", " world", chat=True), LoglikRequest("", "A farmer")]
    got, want = vllm_backend.loglikelihood(reqs), hf.loglikelihood(reqs)
    for g, w in zip(got, want):
        assert g.n_tokens == w.n_tokens and g.is_greedy == w.is_greedy
        assert abs(g.logprob - w.logprob) <= LOGLIK_TOLERANCE


@pytest.mark.slow
def test_vllm_greedy_generation_matches_and_samples_reproduce(engines):
    vllm_backend, hf = engines
    greedy = [GenerationRequest("The teacher", Sampling(max_new_tokens=8, temperature=0.0)),
              GenerationRequest("Hi", Sampling(max_new_tokens=6, temperature=0.0), chat=True)]
    assert [r.texts for r in vllm_backend.generate(greedy)] == [r.texts for r in hf.generate(greedy)]
    sampled = [GenerationRequest("The cook", Sampling(max_new_tokens=8, temperature=1.0, top_k=20, n=3, seed=5))]
    first, again = vllm_backend.generate(sampled), vllm_backend.generate(sampled)
    assert first == again and len(first[0].texts) == 3
