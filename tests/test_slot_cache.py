"""Decoding from the in-place KV cache (rai_audit/models/slot_cache.py) answers exactly what the
transformers DynamicCache loop answers, on tiny random models, with batch limits small enough that
prompts are prefilled in several chunks, requests fall into several decode groups and finished
rows are dropped (compaction) mid-decode."""

from __future__ import annotations

import pytest
import torch

from rai_audit.models import generation
from rai_audit.models.batching import BatchPolicy
from rai_audit.models.hf_backend import HFBackend
from rai_audit.models.reference import resolve
from rai_audit.models.slot_cache import SlotCache, supports_slot_cache
from rai_audit.requests import GenerationRequest, Sampling
from tests.tiny_models import tiny_model_dir

# Rows decoded together <= 9, cache <= 220 token slots, prefill chunks <= 40 padded tokens.
SMALL = BatchPolicy(max_rows=4, max_tokens=40, max_logits=1 << 20, gen_rows=9, gen_cache_tokens=220)

REQUESTS = [
    GenerationRequest("The doctor asked the nurse", Sampling(max_new_tokens=8, n=3, seed=1, top_k=20)),
    GenerationRequest("Once upon a time there was a little house near the river. The old man",
                      Sampling(max_new_tokens=12, temperature=0.0)),
    GenerationRequest("A", Sampling(max_new_tokens=5, n=4, seed=2)),
    GenerationRequest("It was the best of times, it was the worst of times.", Sampling(max_new_tokens=10, n=2, seed=3,
                                                                                     stop=("e",))),
    GenerationRequest("The doctor asked the nurse", Sampling(max_new_tokens=6, n=2, seed=1, top_p=0.8)),
    GenerationRequest("Question: Who wrote the letter? Answer:", Sampling(max_new_tokens=0, n=2)),
    GenerationRequest("Hi", Sampling(max_new_tokens=7, temperature=0.7, seed=4)),
    GenerationRequest("My neighbour thanked the baker because", Sampling(max_new_tokens=9, n=5, seed=5, top_k=3)),
]


def _load(kind: str) -> HFBackend:
    b = HFBackend.load(resolve(str(tiny_model_dir(kind))), device="cpu")
    b.policy = SMALL
    return b


@pytest.fixture
def spies(monkeypatch):
    """Counts of slot caches allocated, compactions and prefill chunks of the slot path."""
    seen = {"caches": 0, "compactions": 0, "chunks": 0}
    allocate, select, write = SlotCache.allocate.__func__, SlotCache.select_rows, SlotCache.write_prompts

    def counting_allocate(cls, *a, **k):
        seen["caches"] += 1
        return allocate(cls, *a, **k)

    def counting_select(self, rows):
        seen["compactions"] += 1
        return select(self, rows)

    def counting_write(self, *a, **k):
        seen["chunks"] += 1
        return write(self, *a, **k)

    monkeypatch.setattr(SlotCache, "allocate", classmethod(counting_allocate))
    monkeypatch.setattr(SlotCache, "select_rows", counting_select)
    monkeypatch.setattr(SlotCache, "write_prompts", counting_write)
    return seen


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2"])
def test_slot_cache_answers_what_the_dynamic_cache_answers(kind, spies, monkeypatch):
    b = _load(kind)
    assert supports_slot_cache(b.model)
    slot = b.generate(REQUESTS)
    assert spies["caches"] >= 3, "the small policy should make several decode groups"
    assert spies["chunks"] > spies["caches"], "some group should be prefilled in more than one chunk"
    assert spies["compactions"] >= 1, "finished rows should have been dropped at least once"
    monkeypatch.setattr(generation, "supports_slot_cache", lambda model: False)
    dynamic = b.generate(REQUESTS)
    assert slot == dynamic
    assert sum(sum(r.n_tokens) for r in slot) > 40  # real text was generated, not only empty rows
    # and one request at a time, with the default (large) limits, gives the same answers again
    alone = [_load(kind).generate([r])[0] for r in REQUESTS]
    assert alone == slot


def test_decoding_past_the_cache_width_is_refused():
    b = _load("llama")
    ids = torch.tensor([[5, 6, 7]])
    res = b.model(input_ids=ids, use_cache=True)
    from rai_audit.models.kv import output_cache

    cache = SlotCache.allocate(output_cache(res), rows=1, width=4)
    cache.write_prompts(output_cache(res), torch.tensor([0]), torch.tensor([0]), 3)
    layer = cache.layers[0]
    k = torch.zeros_like(layer.keys[:, :, :1])
    layer.update(k, k)
    assert layer.length == 4 and cache.layers[1].length == 3
    with pytest.raises(RuntimeError, match="full"):
        layer.update(k, k)


def test_slot_groups_by_hand():
    """Requests come longest prompt first; a group holds <= 9 samples and <= 220 cache slots
    (samples x (longest prompt + most new tokens))."""
    prompts = [[1] * 30, [1] * 20, [1] * 10, [1] * 10, [1] * 2]
    reqs = [GenerationRequest("x", Sampling(n=n, max_new_tokens=m)) for n, m in [(2, 5), (3, 5), (4, 20), (1, 5), (12, 1)]]
    # 0: 2 x 35 = 70; +1: 5 x 35 = 175; +2: 9 x (30 + 20) = 450 > 220 -> cut;
    # 2: 4 x 30 = 120; +3: 5 x 30 = 150; +4: 17 rows > 9 -> cut; 4 alone (12 > 9 rows, a group of its own)
    assert generation.slot_groups(range(5), prompts, reqs, SMALL) == [[0, 1], [2, 3], [4]]


def test_which_models_decode_from_the_slot_cache():
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    small = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1)
    assert supports_slot_cache(LlamaForCausalLM(LlamaConfig(**small)))
    assert not supports_slot_cache(LlamaForCausalLM(LlamaConfig(**small, attn_implementation="eager")))
    assert not supports_slot_cache(MistralForCausalLM(MistralConfig(**small, sliding_window=8)))
    assert supports_slot_cache(MistralForCausalLM(MistralConfig(**small, sliding_window=None)))
    assert not supports_slot_cache(_load("t5").model)


def test_the_cpu_decode_cache_budget_is_in_bytes():
    """3 GiB of keys and values per decode group on CPU: 2 layers x 2 (keys, values) x 2 key/value
    heads x head dim 8 x 4 bytes = 256 bytes a token in float32, so 12,582,912 tokens; half as
    many bytes a token in bfloat16, twice the tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rai_audit.models.batching import CPU_CACHE_BYTES, kv_bytes_per_token

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    assert kv_bytes_per_token(model) == 256
    cpu = torch.device("cpu")
    assert BatchPolicy.auto(model, cpu, None).gen_cache_tokens == CPU_CACHE_BYTES // 256 == 12_582_912
    assert kv_bytes_per_token(model.to(torch.bfloat16)) == 128
    assert BatchPolicy.auto(model, cpu, None).gen_cache_tokens == 2 * 12_582_912
