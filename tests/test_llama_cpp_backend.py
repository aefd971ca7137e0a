"""The in-process llama.cpp backend (kind ``llama-cpp``, rai_audit/models/llamacpp/, docs/backends.md)
on the embedded SmolLM2-135M-Instruct Q4_1 GGUF, against the transformers backend on the same file.

What is shown:

(a) log-likelihoods agree with the transformers backend within :data:`LOGLIK_TOLERANCE` nats per
    request (and :data:`MEAN_TOLERANCE` on average), on exactly the same tokens (token counts equal),
    for plain, empty-context and chat requests;
(b) greedy generation: every token llama.cpp picks is the transformers model's argmax or within
    :data:`GREEDY_MARGIN` nats of it (a near-tie the two arithmetics break differently); the texts
    are therefore not always equal (why: docs/backends.md);
(c) answers depend on their request only: seeded sampling is reproducible, and a request's answer
    is the same alone, in a batch, and on 1 or 2 threads (engine.UBATCH says why this needs care);
(d) ``rai-audit probe --model llama-cpp:default`` runs 5 winogender items end to end, and the run's
    provenance names the engine, its version and the GGUF's sha256.

Skipped where llama-cpp-python is not importable (CI builds it, .ci/run) or the embedded model is
not installed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from unittest import mock

import numpy as np
import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (see docs/backends.md)")

from rai_audit.errors import ModelLoadError, UserError  # noqa: E402
from rai_audit.models import registry  # noqa: E402
from rai_audit.requests import GenerationRequest, LoglikRequest, PseudoLoglikRequest, Sampling  # noqa: E402

pytestmark = pytest.mark.slow

#: Largest accepted |llama.cpp - transformers| log-likelihood of one request, in nats. The
#: difference is the engines' arithmetic only (same tokens, same weights): llama.cpp multiplies the
#: Q4_1 blocks with activations rounded to 8 bits (Q8_1), transformers the dequantised float32
#: weights with float32 activations. Measured on 600 multiple-choice requests (bench/llama_cpp.py,
#: 1-6 tokens each): max 0.66, mean 0.14, median 0.11, 99th percentile 0.47 nats; on this module's
#: 22 requests (longer continuations) max 0.62, mean 0.21 (docs/backends.md). A wrong
#: context/continuation boundary or a wrong position would move a request by a whole token's
#: log-probability (2-15 nats here) and usually change its token count, which must match exactly.
LOGLIK_TOLERANCE = 1.0
MEAN_TOLERANCE = 0.3
#: Largest accepted gap, under the transformers model, between its top token and the token llama.cpp
#: chose greedily. Measured over 20 prompts x 20 tokens: 384 of 399 tokens are the transformers argmax,
#: the other 15 within 0.247 nats of it. A decoding bug (wrong position, wrong sequence, stale logits)
#: picks tokens several nats below the top.
GREEDY_MARGIN = 0.5

CONTEXTS = [
    ("Read the context and answer the question.\nContext: A nurse and a surgeon waited at the bus stop.\n"
     "Question: Who was rude?\nAnswer:"),
    "The engineer told the customer that",
    "Complete the sentence: My neighbour is a",
]
OPTIONS = [" The nurse", " The surgeon", " Unknown", " she would fix it", " he would fix it", " doctor"]
PROMPTS = ["The best way to spend a rainy afternoon is", "My neighbour told me that",
           "The reason people disagree about politics is", "Once upon a time,"]


def _requests() -> list[LoglikRequest]:
    reqs = [LoglikRequest(c, o) for c in CONTEXTS for o in OPTIONS]
    reqs += [LoglikRequest("", "The nurse said she was tired."), LoglikRequest("Say hello.", "Hello!", chat=True),
             LoglikRequest("Trailing space ", "moves to the continuation"), LoglikRequest("Nothing", "")]
    return reqs


@pytest.fixture(scope="module")
def backends(_converted_default):
    """(llama-cpp backend, transformers backend) on the embedded GGUF, loaded once for the module,
    in the session's home that holds the converted copy (both read the tokenizer from it)."""
    home = _converted_default[1].parent.parent
    with mock.patch.dict(os.environ, {"RAI_AUDIT_HOME": str(home)}):
        llama = registry.load_backend(registry.resolve_model("llama-cpp:default?threads=2"))
        hf = registry.load_backend(registry.resolve_model("default"), registry.BackendOptions(device="cpu"))
    yield llama, hf
    llama.close()


def test_resolution_identity_and_refusals(backends, tmp_path):
    llama, hf = backends
    from rai_audit.models.llamacpp.reference import KIND, engine_model_id

    info = llama.info
    sha = hf.info.model_id  # the GGUF's sha256 (kind "gguf")
    assert info.kind == KIND and registry.get_loader(KIND) is registry.load_llama_cpp
    assert info.model_id == engine_model_id(sha) != sha  # never shares cache entries with transformers
    assert info.files == hf.info.files and info.path == hf.info.path and info.has_chat_template
    assert info.engine["name"] == "llama.cpp" and info.engine["weights_sha256"] == sha
    assert info.engine["version"] and "AVX" in info.engine["system_info"]
    # threads are an option of the reference, not part of the model's identity
    assert info.model_id == registry.resolve_model(f"llama-cpp:{info.path}?threads=1").model_id
    with pytest.raises(ModelLoadError, match="unknown option"):
        registry.resolve_model("llama-cpp:default?thread=2")
    with pytest.raises(ModelLoadError, match="names no model"):
        registry.resolve_model("llama-cpp:")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        registry.resolve_model(f"llama-cpp:{tmp_path / 'm'}")
    with pytest.raises(UserError, match="pseudo-log-likelihood"):
        llama.pseudo_loglikelihood([PseudoLoglikRequest("a text")])
    with pytest.raises(UserError, match="Invalid decoding settings"):
        llama.generate([GenerationRequest("x", Sampling(top_p=0.0))])
    with pytest.raises(UserError, match="'tpu'"):
        registry.check_options(KIND, registry.BackendOptions(device="tpu"))


def test_logliks_agree_with_the_transformers_backend(backends):
    llama, hf = backends
    reqs = _requests()
    ours, theirs = llama.loglikelihood(reqs), hf.loglikelihood(reqs)
    assert [a.n_tokens for a in ours] == [b.n_tokens for b in theirs]  # the same tokens are scored
    assert ours[-1].n_tokens == 0 and ours[-1].logprob == 0.0 and ours[-1].is_greedy
    gaps = np.array([abs(a.logprob - b.logprob) for a, b in zip(ours, theirs)])
    print(f"\nllama.cpp vs transformers over {len(reqs)} requests: max |gap| {gaps.max():.3f} nats, "
          f"mean {gaps.mean():.3f}, greedy flags equal {sum(a.is_greedy == b.is_greedy for a, b in zip(ours, theirs))}")
    assert gaps.max() <= LOGLIK_TOLERANCE and gaps.mean() <= MEAN_TOLERANCE
    # batch composition does not change a request's answer (one round vs many, alone vs shared)
    assert llama.loglikelihood(reqs[4:5]) == ours[4:5]
    assert llama.loglikelihood(reqs[::-1]) == ours[::-1]


def test_greedy_tokens_are_the_transformers_argmax_up_to_near_ties(backends):
    import torch

    from rai_audit.models.llamacpp.sampling_loop import sample

    llama, hf = backends
    reqs = [GenerationRequest(p, Sampling(max_new_tokens=16, temperature=0.0)) for p in PROMPTS]
    prompts = [llama.encoder.prompt_ids(r.prompt, r.chat) for r in reqs]
    samples = sample(llama.engine, llama.tokenizer, prompts, reqs, eos_ids=llama.eos_ids)
    margins, same = [], 0
    with torch.inference_mode():
        for p, (s,) in zip(prompts, samples):
            # the transformers model teacher-forced on llama.cpp's tokens: how far below its own
            # top token each of them is (0 everywhere = transformers' greedy text is the same)
            ids = torch.tensor([list(p) + s.tokens])
            logp = hf.model(ids).logits[0, len(p) - 1: len(p) - 1 + len(s.tokens)].float().log_softmax(-1)
            gap = (logp.max(-1).values - logp[torch.arange(len(s.tokens)), torch.tensor(s.tokens)]).tolist()
            margins += gap
            same += max(gap) == 0
    print(f"\ngreedy: {sum(m == 0 for m in margins)}/{len(margins)} tokens are the transformers argmax, max margin "
          f"{max(margins):.3f} nats; {same}/{len(reqs)} texts the same as transformers' greedy ones")
    assert max(margins) <= GREEDY_MARGIN
    assert [r.texts[0] for r in llama.generate(reqs)] == [llama.tokenizer.decode(s.tokens, skip_special_tokens=True)
                                                          for (s,) in samples]


def test_seeded_sampling_is_reproducible_and_batch_independent(backends):
    llama, _ = backends
    reqs = [GenerationRequest(p, Sampling(max_new_tokens=10, n=4, top_k=40, top_p=0.9, seed=7)) for p in PROMPTS[:2]]
    reqs.append(GenerationRequest(PROMPTS[2], Sampling(max_new_tokens=10, n=2, seed=7, stop=(".",)), chat=True))
    first = llama.generate(reqs)
    assert llama.generate(reqs) == first
    assert llama.generate(reqs[1:2]) == first[1:2]  # alone = in a batch
    assert len(set(first[0].texts)) > 1 and all(n <= 10 for r in first for n in r.n_tokens)
    other_seed = llama.generate([GenerationRequest(PROMPTS[0], Sampling(max_new_tokens=10, n=4, top_k=40, top_p=0.9,
                                                                        seed=8))])
    assert other_seed[0].texts != first[0].texts
    assert all(t.find(".") < 0 for t in first[2].texts)
    zero = llama.generate([GenerationRequest("x", Sampling(max_new_tokens=0, n=2))])[0]
    assert zero.texts == ("", "") and zero.finish == ("length", "length")
    # llama.cpp computes each number on one thread: the thread count changes nothing
    from rai_audit.models.llamacpp.backend import LlamaCppBackend
    from rai_audit.models.llamacpp.engine import Engine

    single = LlamaCppBackend(llama.info, Engine(llama.info.path, threads=1), llama.tokenizer)
    try:
        assert single.generate(reqs[:1]) == first[:1]
        assert single.loglikelihood(_requests()[:6]) == llama.loglikelihood(_requests()[:6])
    finally:
        single.close()
    # nor does the batch size: 3 sequences per decode split requests across groups and rounds
    small = LlamaCppBackend(llama.info, llama.engine, llama.tokenizer, batch_size=3)
    assert small.generate(reqs) == first
    assert small.loglikelihood(_requests()[:8]) == llama.loglikelihood(_requests()[:8])


def test_cli_probe_runs_winogender_with_llama_cpp(embedded_model_converted, shared_data, tmp_path):
    from rai_audit.cli import main

    db = tmp_path / "llama.sqlite"
    code = main(["-q", "probe", "--model", "llama-cpp:default", "--probe", "winogender", "--limit", "5",
                 "--db", f"sqlite:///{db}", "--bootstrap", "20"])
    assert code == 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (run_id, provenance), = conn.execute("SELECT run_id, provenance FROM runs").fetchall()
        records = conn.execute("SELECT error FROM records WHERE run_id = ?", (run_id,)).fetchall()
    model = json.loads(provenance)["model"]
    assert model["kind"] == "llama-cpp" and model["engine"]["name"] == "llama.cpp" and model["engine"]["version"]
    assert model["engine"]["weights_sha256"] in model["files"].values()
    assert len(records) == 5 and all(e is None for (e,) in records)
