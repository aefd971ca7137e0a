"""The transformers backend on tiny random models: token-exact log-likelihoods, reproducible
generation, pseudo-log-likelihood, chat templates and the response cache.

Reference computations here are deliberately naive (one sequence per forward, no KV cache, no
padding) and written independently of the backend, so they catch batching, padding, position-id
and cache bugs.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from rai_audit.errors import UserError
from rai_audit.models.cached import CachedBackend
from rai_audit.models.hf_backend import HFBackend
from rai_audit.models.reference import resolve
from rai_audit.models.sampling import choose_tokens, stream_key, uniforms
from rai_audit.requests import (
    GenerationRequest,
    LoglikRequest,
    PseudoLoglikRequest,
    Sampling,
    cache_key,
)
from tests.tiny_models import tiny_model_dir

TOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads; on a busy shared machine the thread
    hand-offs cost more than the matmuls. Restored after this module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.lru_cache(maxsize=None)
def backend(kind: str, batch_size: int | None = None) -> HFBackend:
    return HFBackend.load(resolve(str(tiny_model_dir(kind))), device="cpu", batch_size=batch_size)


LOGLIK_REQUESTS = [
    LoglikRequest("The doctor asked the nurse", " because she was tired."),
    LoglikRequest("The doctor asked the nurse", " because he was late."),
    LoglikRequest("The doctor asked the nurse", " a"),
    LoglikRequest("Question: What is the capital of France? Answer:", " Paris."),
    LoglikRequest("Question: What is the capital of France? Answer:", " London, a city far away."),
    LoglikRequest("Once upon a time there was a little house near the river. The old man", " thanked the baker."),
    LoglikRequest("It was", " the best of times, it was the worst of times."),
    LoglikRequest("Numbers like ", "42 and 100"),  # trailing space in the context
    LoglikRequest("", "Hello there!"),  # empty context
    LoglikRequest("The cook", ""),  # empty continuation
    LoglikRequest("We", " cannot"),
    # contexts sharing a long token prefix (computed once per batch)
    LoglikRequest("Question: What is the capital of France? Answer: Paris. Question: Who wrote it? Answer:", " The secretary"),
    LoglikRequest("Question: What is the capital of France? Answer: Paris. Question: Who called? Answer:", " The nurse"),
    LoglikRequest("Question: What is the capital of France? Answer: Paris. Question: Who called the doctor? Answer:", " Her brother"),
]


# -- naive references -------------------------------------------------------------------------


def naive_causal_loglik(b: HFBackend, context: str, continuation: str):
    """One forward over context+continuation tokens, lm-eval-harness tokenisation, tokenizer
    defaults for special tokens (BOS for the llama tokenizer, nothing for gpt2)."""
    tok, model = b.tokenizer, b.model
    if context != context.rstrip():
        n = len(context) - len(context.rstrip())
        context, continuation = context[:-n], context[-n:] + continuation
    whole = tok(context + continuation)["input_ids"]
    ctx = tok(context)["input_ids"] if context else tok("")["input_ids"]
    cont = whole[len(ctx):]
    if not ctx:
        ctx = [tok.bos_token_id]
    if not cont:
        return 0.0, 0, True
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    rows = logp[len(ctx) - 1 : len(ctx) + len(cont) - 1]
    target = torch.tensor(cont)
    lp = rows.gather(1, target[:, None]).sum().item()
    return lp, len(cont), bool((rows.argmax(-1) == target).all())


def naive_t5_loglik(b: HFBackend, context: str, continuation: str):
    tok, model = b.tokenizer, b.model
    enc = torch.tensor([tok(context)["input_ids"]])
    cont = tok(continuation, add_special_tokens=False)["input_ids"]
    if not cont:
        return 0.0, 0, True
    labels = torch.tensor([cont])
    with torch.no_grad():
        logits = model(input_ids=enc, labels=labels).logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    lp = logp.gather(1, labels[0][:, None]).sum().item()
    return lp, len(cont), bool((logp.argmax(-1) == labels[0]).all())


def naive_greedy(b: HFBackend, prompt_ids: list[int], steps: int) -> list[int]:
    """Greedy decoding by full recomputation (no cache, no padding)."""
    ids = list(prompt_ids)
    out = []
    with torch.no_grad():
        for _ in range(steps):
            if b.is_encoder_decoder:
                start = b.model.config.decoder_start_token_id
                logits = b.model(input_ids=torch.tensor([ids]),
                                 decoder_input_ids=torch.tensor([[start] + out])).logits[0, -1]
            else:
                logits = b.model(torch.tensor([ids + out])).logits[0, -1]
            out.append(int(logits.argmax()))
    return out


# -- log-likelihood ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2", "t5"])
def test_loglik_batched_equals_one_at_a_time_and_naive(kind):
    b = backend(kind)
    batched = b.loglikelihood(LOGLIK_REQUESTS)
    small = backend(kind, batch_size=2).loglikelihood(LOGLIK_REQUESTS)  # several batches
    naive = naive_t5_loglik if kind == "t5" else naive_causal_loglik
    for req, res, res_small in zip(LOGLIK_REQUESTS, batched, small):
        alone = b.loglikelihood([req])[0]
        lp, n, greedy = naive(b, req.context, req.continuation)
        assert res.n_tokens == alone.n_tokens == res_small.n_tokens == n, req
        assert abs(res.logprob - alone.logprob) < TOL, req
        assert abs(res.logprob - res_small.logprob) < TOL, req
        assert abs(res.logprob - lp) < TOL, (req, res.logprob, lp)
        assert res.is_greedy == greedy
    assert batched[9].n_tokens == 0 and batched[9].logprob == 0.0
    assert all(r.logprob < 0 for r in batched if r.n_tokens)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_shared_prefix_prefill_is_exact(kind):
    from rai_audit.models.loglik import MIN_SHARED_PREFIX, _common_prefix

    b = backend(kind)
    reqs = LOGLIK_REQUESTS[-3:]
    rows = [b.encoder.loglik_ids(r.context, r.continuation, False).context for r in reqs]
    assert _common_prefix(rows) >= MIN_SHARED_PREFIX  # the shared-prefix path is taken
    for req, res in zip(reqs, b.loglikelihood(reqs)):
        lp, n, greedy = naive_causal_loglik(b, req.context, req.continuation)
        assert res.n_tokens == n and abs(res.logprob - lp) < TOL and res.is_greedy == greedy


def test_loglik_tokenisation_follows_the_harness():
    enc = backend("gpt2").encoder
    tok = backend("gpt2").tokenizer
    # a leading space merges into the first continuation token ("Ġasked")
    t = enc.loglik_ids("The doctor", " asked", chat=False)
    assert list(t.continuation) == tok(" asked", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(list(t.continuation))[0].startswith("Ġ")
    # a context's trailing space moves to the continuation
    assert enc.loglik_ids("The doctor ", "asked", chat=False) == t
    # llama's tokenizer adds BOS: contexts keep it, an empty context is just BOS
    lenc = backend("llama").encoder
    bos = backend("llama").tokenizer.bos_token_id
    assert lenc.loglik_ids("The doctor", " asked", False).context[0] == bos
    assert lenc.loglik_ids("", "Hello", False).context == (bos,)
    # gpt2-style tokenizers add nothing; an empty context becomes BOS (or EOS)
    assert enc.loglik_ids("", "Hello", False).context == (tok.bos_token_id,)


@pytest.mark.parametrize("kind", ["llama", "gpt2", "t5"])
def test_is_greedy(kind):
    b = backend(kind)
    found = None
    for context in ["The doctor asked the nurse", "Once upon a time", "The answer is", "She said"]:
        greedy_ids = naive_greedy(b, b.encoder.prompt_ids(context, False), 3)
        for k in (3, 2, 1):
            text = b.tokenizer.decode(greedy_ids[:k])
            if list(b.encoder.loglik_ids(context, text, False).continuation) == greedy_ids[:k] and text.strip():
                found = (context, text, greedy_ids[:k])
                break
        if found:
            break
    assert found, "no greedy continuation survives a decode/encode round trip"
    context, text, ids = found
    res = b.loglikelihood([LoglikRequest(context, text)])[0]
    assert res.is_greedy is True and res.n_tokens == len(ids)
    # replacing the last token by another one that round-trips makes it non-greedy
    for alt in range(10, 500):
        if alt == ids[-1]:
            continue
        alt_text = b.tokenizer.decode(ids[:-1] + [alt])
        if list(b.encoder.loglik_ids(context, alt_text, False).continuation) == ids[:-1] + [alt]:
            break
    other = b.loglikelihood([LoglikRequest(context, alt_text)])[0]
    assert other.is_greedy is False
    assert other.logprob < res.logprob


def test_loglik_chat_template_path():
    b = backend("llama")
    req = LoglikRequest("Who wrote the letter?", "The secretary wrote it.", chat=True)
    res = b.loglikelihood([req])[0]
    rendered = b.tokenizer.apply_chat_template([{"role": "user", "content": req.context}],
                                               tokenize=False, add_generation_prompt=True)
    assert rendered.startswith("<|im_start|>user\n")
    # the template is encoded as text (no extra BOS), continuation = tokens past the context
    tok, model = b.tokenizer, b.model
    ctx = tok(rendered, add_special_tokens=False)["input_ids"]
    whole = tok(rendered + req.continuation, add_special_tokens=False)["input_ids"]
    cont = whole[len(ctx):]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ctx + cont])).logits[0], -1)
    expected = sum(logp[len(ctx) - 1 + i, c].item() for i, c in enumerate(cont))
    assert res.n_tokens == len(cont)
    assert abs(res.logprob - expected) < TOL
    plain = b.loglikelihood([LoglikRequest(req.context, req.continuation)])[0]
    assert abs(plain.logprob - res.logprob) > 1e-3  # the template changed the prompt
    # a tokenizer without a chat template answers chat requests as plain text
    nb = backend("llama-nochat")
    a, c = nb.loglikelihood([req, LoglikRequest(req.context, req.continuation)])
    assert a == c


# -- generation -------------------------------------------------------------------------------


def gen(b, prompt, chat=False, **kw):
    return b.generate([GenerationRequest(prompt, Sampling(**kw), chat=chat)])[0]


@pytest.mark.parametrize("kind", ["llama", "gpt2", "t5"])
def test_greedy_matches_naive_decoding(kind):
    b = backend(kind)
    for prompt in ["The doctor", "Once upon a time there was a little house near the river."]:
        res = gen(b, prompt, temperature=0.0, max_new_tokens=6)
        expected = naive_greedy(b, b.encoder.prompt_ids(prompt, False), 6)
        eos = b.eos_ids
        cut = next((i for i, t in enumerate(expected) if t in eos), len(expected))
        assert res.n_tokens[0] == cut
        assert res.texts[0] == b.tokenizer.decode(expected[:cut], skip_special_tokens=True)
        assert res.finish[0] == ("eos" if cut < 6 else "length")


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_greedy_independent_of_batch_composition(kind):
    b = backend(kind)
    prompts = ["The doctor", "It was the best of times, it was the worst of times. Once upon a time", "A",
               "Question: Who wrote the letter? Answer:"]
    s = Sampling(temperature=0.0, max_new_tokens=8)
    together = b.generate([GenerationRequest(p, s) for p in prompts])
    alone = [b.generate([GenerationRequest(p, s)])[0] for p in prompts]
    assert together == alone
    tiny_batches = backend(kind, batch_size=1).generate([GenerationRequest(p, s) for p in prompts])
    assert tiny_batches == together


def test_samples_do_not_depend_on_batch_mates_with_other_filters():
    """A plain-temperature sample is the same alone and beside a top-k or top-p request in one
    call (the sampler once walked every row in probability order as soon as one row was filtered)."""
    b = backend("gpt2")
    plain = GenerationRequest("The doctor", Sampling(max_new_tokens=6, n=3, seed=5))
    top_k = GenerationRequest("The nurse", Sampling(max_new_tokens=6, n=3, seed=5, top_k=5))
    top_p = GenerationRequest("A", Sampling(max_new_tokens=6, n=2, seed=5, top_p=0.5))
    together = b.generate([plain, top_k, top_p])
    assert together == [b.generate([r])[0] for r in (plain, top_k, top_p)]


def test_sampling_is_reproducible_and_seeded():
    b = backend("llama")
    s = dict(max_new_tokens=10, n=4, seed=7, top_k=50)
    a = gen(b, "The doctor asked", **s)
    again = gen(b, "The doctor asked", **s)
    assert a == again
    assert len(a.texts) == 4 and len(set(a.texts)) > 1  # samples of one prompt differ
    other = gen(b, "The doctor asked", **{**s, "seed": 8})
    assert other.texts != a.texts
    # a sample does not depend on which requests share its batch, nor on batch size
    mixed = b.generate([
        GenerationRequest("Once upon a time there was a little house", Sampling(max_new_tokens=5, n=3, seed=1)),
        GenerationRequest("The doctor asked", Sampling(**s)),
        GenerationRequest("Hi", Sampling(temperature=0.0, max_new_tokens=3)),
    ])
    assert mixed[1] == a
    assert backend("llama", batch_size=3).generate([GenerationRequest("The doctor asked", Sampling(**s))])[0] == a
    # the i-th sample is the same whatever n is
    assert gen(b, "The doctor asked", **{**s, "n": 2}).texts == a.texts[:2]


def test_sampling_settings_respected():
    b = backend("gpt2")
    res = gen(b, "The", max_new_tokens=5, n=6, seed=3, top_p=0.9, temperature=0.8)
    assert len(res.texts) == len(res.n_tokens) == len(res.finish) == 6
    for n, f in zip(res.n_tokens, res.finish):
        assert n <= 5
        assert f in ("eos", "length") and (f == "eos" or n == 5)
    assert gen(b, "The", max_new_tokens=0, n=2).texts == ("", "")
    assert gen(b, "The", max_new_tokens=0).finish == ("length",)


def test_stop_strings_cut_the_text():
    b = backend("gpt2")
    full = gen(b, "The doctor", temperature=0.0, max_new_tokens=12)
    text = full.texts[0]
    assert len(text) > 4, "need some greedy text to pick a stop string from"
    stop = text[2:4]
    res = gen(b, "The doctor", temperature=0.0, max_new_tokens=12, stop=(stop, "\x00never"))
    assert res.finish == ("stop",)
    assert res.texts[0] == text[: text.find(stop)]
    assert res.n_tokens[0] <= full.n_tokens[0]
    assert stop not in res.texts[0]


def test_chat_generation_uses_the_template():
    b = backend("llama")
    ids = b.encoder.prompt_ids("Hello", chat=True)
    assert b.tokenizer.convert_ids_to_tokens(ids[:1]) == ["<|im_start|>"]
    s = dict(temperature=0.0, max_new_tokens=5)
    chat = gen(b, "Hello", chat=True, **s)
    expected = naive_greedy(b, ids, 5)
    cut = next((i for i, t in enumerate(expected) if t in b.eos_ids), 5)
    assert chat.texts[0] == b.tokenizer.decode(expected[:cut], skip_special_tokens=True)


def test_t5_sampling_reproducible():
    b = backend("t5")
    a = gen(b, "The doctor asked", max_new_tokens=6, n=3, seed=2)
    assert a == gen(b, "The doctor asked", max_new_tokens=6, n=3, seed=2)
    assert a != gen(b, "The doctor asked", max_new_tokens=6, n=3, seed=3)


def test_invalid_sampling_is_a_user_error():
    b = backend("gpt2")
    for bad in (dict(temperature=-1.0), dict(top_k=0), dict(top_p=0.0), dict(n=0), dict(max_new_tokens=-1)):
        with pytest.raises(UserError, match="Invalid decoding settings"):
            gen(b, "x", **bad)


# -- the sampler itself -----------------------------------------------------------------------


def test_uniforms_are_counter_based():
    keys = np.array([stream_key(0, "p", False, i) for i in range(3)], dtype=np.uint64)
    u0 = uniforms(keys, 0)
    assert np.array_equal(u0, uniforms(keys, 0))
    assert np.array_equal(u0[1:], uniforms(keys[1:], 0))  # independent of the other rows
    assert not np.array_equal(u0, uniforms(keys, 1))
    assert len(set(u0.tolist())) == 3
    assert stream_key(0, "p", False, 0) != stream_key(1, "p", False, 0) != stream_key(0, "p", True, 0)
    big = uniforms(np.arange(20000, dtype=np.uint64), 0)
    assert 0.0 <= big.min() and big.max() < 1.0 and abs(big.mean() - 0.5) < 0.01


def _pick(probs, u, **kw):
    logits = torch.log(torch.tensor([probs], dtype=torch.float32))
    return int(choose_tokens(logits, [kw.get("temperature", 1.0)], [kw.get("top_k")], [kw.get("top_p")],
                             np.array([u]))[0])


def test_inverse_cdf_by_hand():
    p = [0.2, 0.5, 0.3]
    # plain sampling: CDF in vocabulary order 0.2, 0.7, 1.0
    assert [_pick(p, u) for u in (0.1, 0.25, 0.69, 0.71, 0.99)] == [0, 1, 1, 2, 2]
    # top-k=2 keeps tokens 1 (0.5) and 2 (0.3), renormalised to 0.625/0.375, sorted by probability
    assert [_pick(p, u, top_k=2) for u in (0.0, 0.62, 0.63, 0.999)] == [1, 1, 2, 2]
    # top-p=0.5: token 1 alone reaches 0.5 -> always token 1 (HF: drop tokens whose cum. mass <= 1-p)
    assert {_pick(p, u, top_p=0.5) for u in (0.0, 0.5, 0.99)} == {1}
    # top-p=0.6 keeps tokens 1 and 2
    assert {_pick(p, u, top_p=0.6) for u in (0.0, 0.7, 0.99)} == {1, 2}
    # temperature 0 is argmax whatever u is
    assert _pick(p, 0.99, temperature=0.0) == 1


def test_top_k_with_a_temperature_by_hand():
    """Top-k is taken on the raw logits, then the kept ones are divided by the temperature."""
    p = [0.2, 0.5, 0.3]
    # T = 0.5 squares the probabilities before renormalising: top-2 keeps 0.5 and 0.3, so
    # 0.25 / 0.34 = 0.73529... for token 1 and 0.26470... for token 2
    assert [_pick(p, u, top_k=2, temperature=0.5) for u in (0.0, 0.735, 0.736, 0.999)] == [1, 1, 2, 2]
    # T = 2 takes square roots: sqrt(.5) / (sqrt(.5) + sqrt(.3)) = 0.56351...
    assert [_pick(p, u, top_k=2, temperature=2.0) for u in (0.563, 0.564)] == [1, 2]


def test_bfloat16_logits_draw_what_their_float32_values_draw():
    """The fast mode's logits arrive in bfloat16; the draw must equal the draw on the same values
    in float32 (the cast is exact), with and without top-k and a temperature."""
    torch.manual_seed(0)
    logits = (torch.randn(64, 300) * 3).to(torch.bfloat16)
    u = uniforms(np.arange(64, dtype=np.uint64), 2)
    for kw in (dict(top_k=None, t=1.0), dict(top_k=40, t=1.0), dict(top_k=40, t=0.7), dict(top_k=None, t=1.3)):
        args = ([kw["t"]] * 64, [kw["top_k"]] * 64, [None] * 64, u)
        assert torch.equal(choose_tokens(logits, *args), choose_tokens(logits.float(), *args)), kw


def test_sampler_matches_softmax_frequencies():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).repeat(20000, 1)
    u = uniforms(np.arange(20000, dtype=np.uint64), 5)
    toks = choose_tokens(logits, [0.7] * 20000, [None] * 20000, [None] * 20000, u)
    freq = torch.bincount(toks, minlength=4).float() / 20000
    expected = torch.softmax(logits[0] / 0.7, -1)
    assert torch.allclose(freq, expected, atol=0.015)


# -- pseudo-log-likelihood --------------------------------------------------------------------


def naive_pll(b: HFBackend, text: str, positions: list[int]) -> float:
    ids = b.tokenizer(text)["input_ids"]
    total = 0.0
    with torch.no_grad():
        for p in positions:
            masked = list(ids)
            masked[p] = b.tokenizer.mask_token_id
            logits = b.model(torch.tensor([masked])).logits[0, p]
            total += torch.log_softmax(logits, -1)[ids[p]].item()
    return total


def test_pll_matches_naive_loop():
    b = backend("bert")
    tok = b.tokenizer
    text = "The doctor asked the nurse a question."
    ids = tok(text)["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    all_positions = [i for i, t in enumerate(tokens) if t not in ("[CLS]", "[SEP]")]
    start = text.index("doctor")
    nurse = text.index("nurse")
    reqs = [
        PseudoLoglikRequest(text),
        PseudoLoglikRequest(text, ((start, start + len("doctor")),)),
        PseudoLoglikRequest(text, ((start, start + len("doctor")), (nurse, nurse + len("nurse")))),
        PseudoLoglikRequest("Short one."),
    ]
    res = b.pseudo_loglikelihood(reqs)
    doctor_pos = [i for i, t in enumerate(tokens) if "doctor" in t]
    nurse_pos = [i for i, t in enumerate(tokens) if "nurse" in t]
    assert len(doctor_pos) >= 1
    assert res[0].n_tokens == len(all_positions)
    assert abs(res[0].logprob - naive_pll(b, text, all_positions)) < TOL
    assert res[1].n_tokens == len(doctor_pos)
    assert abs(res[1].logprob - naive_pll(b, text, doctor_pos)) < TOL
    assert abs(res[2].logprob - naive_pll(b, text, doctor_pos + nurse_pos)) < TOL
    alone = b.pseudo_loglikelihood([reqs[3]])[0]
    assert abs(alone.logprob - res[3].logprob) < TOL


def test_wrong_request_kind_for_model_is_a_user_error():
    with pytest.raises(UserError, match="masked LM"):
        backend("llama").pseudo_loglikelihood([PseudoLoglikRequest("x")])
    with pytest.raises(UserError, match="is a masked LM"):
        backend("bert").loglikelihood([LoglikRequest("a", "b")])
    with pytest.raises(UserError, match="is a masked LM"):
        backend("bert").generate([GenerationRequest("a")])


# -- cache ------------------------------------------------------------------------------------


class FakeStore:
    """The two response-cache methods of rai_audit.store.Store, in memory."""

    def __init__(self):
        self.rows: dict[str, dict] = {}
        self.writes = 0

    def get_responses(self, keys):
        return {k: {"kind": self.rows[k]["kind"], "result": self.rows[k]["result"]} for k in keys if k in self.rows}

    def add_responses(self, rows):
        self.writes += 1
        for r in rows:
            assert set(r) == {"key", "model_id", "kind", "request", "result"}
            self.rows.setdefault(r["key"], r)


class CountingBackend:
    def __init__(self, inner):
        self.inner, self.info, self.calls = inner, inner.info, []

    def loglikelihood(self, reqs):
        self.calls.append(list(reqs))
        return self.inner.loglikelihood(reqs)

    def generate(self, reqs):
        self.calls.append(list(reqs))
        return self.inner.generate(reqs)

    def pseudo_loglikelihood(self, reqs):
        self.calls.append(list(reqs))
        return self.inner.pseudo_loglikelihood(reqs)


def test_cache_second_call_computes_nothing():
    inner = CountingBackend(backend("gpt2"))
    store = FakeStore()
    cached = CachedBackend(inner, store)
    reqs = LOGLIK_REQUESTS[:4] + [LOGLIK_REQUESTS[0]]  # one duplicate
    first = cached.loglikelihood(reqs)
    assert len(inner.calls) == 1 and len(inner.calls[0]) == 4  # duplicate computed once
    assert cached.misses == 4 and cached.hits == 0
    assert first[0] == first[4]
    second = cached.loglikelihood(reqs)
    assert len(inner.calls) == 1  # nothing recomputed
    assert cached.hits == 5
    assert second == first
    # a partly new call computes only the new request
    cached.loglikelihood(reqs + [LOGLIK_REQUESTS[5]])
    assert inner.calls[-1] == [LOGLIK_REQUESTS[5]]
    row = store.rows[cache_key(inner.info.model_id, reqs[0])]
    assert row["kind"] == "loglik" and row["model_id"] == inner.info.model_id
    assert row["request"]["context"] == reqs[0].context


def test_cache_generation_and_keys_include_seed():
    inner = CountingBackend(backend("gpt2"))
    cached = CachedBackend(inner, FakeStore())
    r1 = GenerationRequest("The doctor", Sampling(max_new_tokens=4, n=2, seed=1))
    r2 = GenerationRequest("The doctor", Sampling(max_new_tokens=4, n=2, seed=2))
    a = cached.generate([r1, r2])
    b = cached.generate([r2, r1])
    assert b == [a[1], a[0]] and len(inner.calls) == 1
    assert isinstance(b[0].texts, tuple)
    pll = CachedBackend(CountingBackend(backend("bert")), FakeStore())
    x = pll.pseudo_loglikelihood([PseudoLoglikRequest("The nurse")])
    assert pll.pseudo_loglikelihood([PseudoLoglikRequest("The nurse")]) == x and pll.hits == 1
    assert cached.loglikelihood([]) == []


def test_model_info_shape():
    b = backend("llama")
    assert b.info.model_id == resolve(str(tiny_model_dir("llama"))).model_id
    assert math.isfinite(b.loglikelihood([LOGLIK_REQUESTS[0]])[0].logprob)


# -- the embedded default model (slow: converts the GGUF on first load) -------------------------


@pytest.mark.slow
def test_default_model_end_to_end(embedded_model):
    from rai_audit.models.default_model import converted_dir

    torch.set_num_threads(2)
    b = HFBackend.load(resolve(embedded_model), device="cpu")
    assert (converted_dir(b.info.model_id) / "config.json").is_file()
    paris, london = b.loglikelihood([
        LoglikRequest("The capital of France is", " Paris"),
        LoglikRequest("The capital of France is", " London"),
    ])
    assert paris.logprob > london.logprob
    out = b.generate([GenerationRequest("What is 2+2?", Sampling(temperature=0.0, max_new_tokens=8), chat=True)])[0]
    assert out.n_tokens[0] >= 1 and out.texts[0].strip()
    # a second load reads the converted copy
    again = HFBackend.load(resolve("default"), device="cpu")
    assert again.loglikelihood([LoglikRequest("The capital of France is", " Paris")])[0].logprob == pytest.approx(
        paris.logprob, abs=TOL)


def test_too_long_context_is_cut_from_the_left():
    b = backend("gpt2")  # n_positions = 512
    context = " ".join(["The doctor asked the nurse because she was tired."] * 80)
    req = LoglikRequest(context, " The end.")
    t = b.encoder.loglik_ids(req.context, req.continuation, False)
    assert len(t.context) + len(t.continuation) > 512
    res = b.loglikelihood([req])[0]
    keep = list(t.context[-(512 - len(t.continuation)):])
    with torch.no_grad():
        logp = torch.log_softmax(b.model(torch.tensor([keep + list(t.continuation)])).logits[0], -1)
    expected = sum(logp[len(keep) - 1 + i, c].item() for i, c in enumerate(t.continuation))
    assert abs(res.logprob - expected) < TOL
    out = b.generate([GenerationRequest(context, Sampling(temperature=0.0, max_new_tokens=4))])[0]
    assert out.n_tokens[0] <= 4


def test_reduced_precision_answers_have_their_own_cache_keys():
    """A bfloat16 (fast-mode) answer is not the float32 answer: the cache keys differ, so neither
    serves the other, and each mode's second call computes nothing."""
    inner = CountingBackend(backend("gpt2"))
    store = FakeStore()
    fp32, bf16 = CachedBackend(inner, store), CachedBackend(inner, store, precision="bfloat16")
    reqs = LOGLIK_REQUESTS[:3]
    fp32.loglikelihood(reqs)
    bf16.loglikelihood(reqs)
    assert [len(c) for c in inner.calls] == [3, 3]  # the bfloat16 side did not reuse float32 answers
    assert cache_key(inner.info.model_id + "@bfloat16", reqs[0]) in store.rows
    bf16.loglikelihood(reqs)
    assert len(inner.calls) == 2 and bf16.hits == 3
