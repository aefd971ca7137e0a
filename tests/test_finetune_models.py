"""Unit tests of the NNX models and the checkpoint mapping: configs, errors, sharding axes,
T5 buckets, packing invariants, dtype, remat, dropout, sharded safetensors.

Parity with transformers lives in ``tests/test_finetune_parity.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from finetune.models import config_from_hf, from_hf_config, partition_specs  # noqa: E402
from rai_audit.errors import ModelLoadError, UserError  # noqa: E402

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 50, "hidden_size": 16,
         "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": True}
GPT2 = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50, "n_embd": 16, "n_layer": 1,
        "n_head": 2, "n_positions": 32}
T5 = {"architectures": ["T5ForConditionalGeneration"], "model_type": "t5", "vocab_size": 50, "d_model": 16,
      "d_kv": 4, "d_ff": 24, "num_layers": 1, "num_heads": 4, "feed_forward_proj": "gated-gelu",
      "tie_word_embeddings": False}


# ---------------------------------------------------------------------------- configs


def test_config_from_hf_reads_llama_qwen_gpt2_t5_fields():
    c = config_from_hf(LLAMA)
    assert (c.family, c.num_kv_heads, c.head_dim, c.tie_word_embeddings, c.qkv_bias) == ("llama", 2, 4, True, False)
    q = config_from_hf({**LLAMA, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"})
    assert q.qkv_bias and not q.o_bias
    g = config_from_hf(GPT2)
    assert (g.family, g.intermediate_size, g.head_dim, g.tie_word_embeddings) == ("gpt2", 64, 8, True)
    t = config_from_hf(T5)
    assert (t.family, t.gated, t.activation, t.tie_word_embeddings, t.num_decoder_layers) == ("t5", True, "gelu_new", False, 1)
    # transformers 5 writes tie_word_embeddings=true + scale_decoder_outputs=false for v1.1
    t5v5 = config_from_hf({**T5, "tie_word_embeddings": True, "scale_decoder_outputs": False})
    assert not t5v5.tie_word_embeddings and not t5v5.scale_decoder_outputs
    orig = config_from_hf({**T5, "feed_forward_proj": "relu", "tie_word_embeddings": True})
    assert orig.tie_word_embeddings and orig.scale_decoder_outputs and not orig.gated


def test_rope_parameters_both_spellings_and_llama3():
    new = config_from_hf({**LLAMA, "rope_parameters": {"rope_type": "linear", "rope_theta": 500.0, "factor": 2.0}})
    old = config_from_hf({**LLAMA, "rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 2.0}})
    assert new == old and new.rope_type == "linear"
    base = config_from_hf({**LLAMA, "rope_theta": 500.0})
    np.testing.assert_allclose(new.rope_inv_freq(), base.rope_inv_freq() / 2)
    # hand value: head_dim 4 -> inv_freq = [1, 1/sqrt(theta)]
    np.testing.assert_allclose(base.rope_inv_freq(), [1.0, 500.0 ** -0.5], rtol=1e-6)


@pytest.mark.parametrize("bad, needle", [
    ({"architectures": ["MambaForCausalLM"], "model_type": "mamba"}, "MambaForCausalLM"),
    ({**LLAMA, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "yarn"),
    ({**LLAMA, "architectures": ["MistralForCausalLM"], "model_type": "mistral", "sliding_window": 4096}, "sliding"),
    ({**LLAMA, "hidden_act": "gelu"}, "hidden_act"),
    ({**T5, "feed_forward_proj": "gated-tanh-x"}, "feed_forward_proj"),
    ({k: v for k, v in LLAMA.items() if k != "vocab_size"}, "vocab_size"),
])
def test_unsupported_configs_raise_user_error_naming_the_thing(bad, needle):
    with pytest.raises(UserError, match=needle):
        config_from_hf(bad)


def test_bad_runtime_options_raise():
    with pytest.raises(UserError, match="float16"):
        config_from_hf(LLAMA, dtype="float16")
    with pytest.raises(UserError, match="flash"):
        config_from_hf(LLAMA, attention_impl="flash")


# ---------------------------------------------------------------------------- forward contract


def _packed(vocab=50, t=12, a=7, b=4, seed=0):
    rng = np.random.RandomState(seed)
    ids = np.zeros((1, t), np.int32)
    ids[0, :a + b] = rng.randint(1, vocab, a + b)
    pos = np.zeros((1, t), np.int32)
    pos[0, :a], pos[0, a:a + b] = np.arange(a), np.arange(b)
    seg = np.zeros((1, t), np.int32)
    seg[0, :a], seg[0, a:a + b] = 1, 2
    return ids, pos, seg


@pytest.mark.parametrize("hf", [LLAMA, GPT2], ids=["llama", "gpt2"])
def test_decoder_packing_equals_separate_runs_and_is_causal(hf):
    cfg, model = from_hf_config(hf, seed=1)
    ids, pos, seg = _packed()
    f = nnx.jit(lambda m, i, p, s: m(i, positions=p, segment_ids=s))
    packed = np.asarray(f(model, ids, pos, seg))
    alone_a = np.asarray(f(model, ids[:, :7], pos[:, :7], seg[:, :7]))
    np.testing.assert_allclose(packed[:, :7], alone_a, atol=1e-5)
    ids_b = np.zeros_like(ids)
    ids_b[0, :4] = ids[0, 7:11]
    pos_b = np.zeros_like(pos)
    pos_b[0, :4] = np.arange(4)
    seg_b = (np.arange(12) < 4).astype(np.int32)[None]
    alone_b = np.asarray(f(model, ids_b, pos_b, seg_b))
    np.testing.assert_allclose(packed[:, 7:11], alone_b[:, :4], atol=1e-5)
    # causal: changing a later token never changes earlier logits
    ids2 = ids.copy()
    ids2[0, 5] = (ids2[0, 5] + 1) % 50
    changed = np.asarray(f(model, ids2, pos, seg))
    np.testing.assert_allclose(changed[:, :5], packed[:, :5], atol=1e-6)
    assert np.abs(changed[:, 5] - packed[:, 5]).max() > 1e-4
    assert np.isfinite(packed).all()  # padding rows (segment 0) are finite too


def test_t5_segments_isolate_examples_in_encoder_and_cross_attention():
    cfg, model = from_hf_config(T5, seed=2)
    e_ids, e_pos, e_seg = _packed(t=12, a=6, b=5, seed=3)
    d_ids, d_pos, d_seg = _packed(t=8, a=4, b=3, seed=4)
    f = nnx.jit(lambda m, *a: m(a[0], a[1], encoder_segment_ids=a[2], decoder_segment_ids=a[3],
                                encoder_positions=a[4], decoder_positions=a[5]))
    out = np.asarray(f(model, e_ids, d_ids, e_seg, d_seg, e_pos, d_pos))
    e2 = e_ids.copy()
    e2[0, 8] = (e2[0, 8] + 1) % 50  # a token of encoder example 2
    out2 = np.asarray(f(model, e2, d_ids, e_seg, d_seg, e_pos, d_pos))
    np.testing.assert_allclose(out2[:, :4], out[:, :4], atol=1e-6)  # decoder example 1 unaffected
    assert np.abs(out2[:, 4:7] - out[:, 4:7]).max() > 1e-5          # decoder example 2 sees it
    assert np.isfinite(out).all()


def test_t5_bucket_table_matches_transformers():
    torch = pytest.importorskip("torch")
    from transformers.models.t5.modeling_t5 import T5Attention

    from finetune.models.t5.model import relative_buckets

    rel = np.arange(-300, 301)[None, :]
    for bidirectional in (True, False):
        for nb, md in ((32, 128), (8, 10), (16, 20)):
            ref = T5Attention._relative_position_bucket(torch.tensor(rel), bidirectional=bidirectional,
                                                        num_buckets=nb, max_distance=md).numpy()
            ours = np.asarray(jax.jit(relative_buckets, static_argnames=("bidirectional", "num_buckets",
                                                                         "max_distance"))(
                jnp.asarray(rel), bidirectional=bidirectional, num_buckets=nb, max_distance=md))
            np.testing.assert_array_equal(ours, ref)


def test_bf16_compute_keeps_fp32_params_and_logits_close():
    cfg, model = from_hf_config(LLAMA, seed=3)
    ids = np.random.RandomState(0).randint(0, 50, (2, 8))
    fwd = nnx.jit(lambda m, x: m(x))
    f32 = np.asarray(fwd(model, ids))
    bf_cfg, bf = from_hf_config(LLAMA, seed=3, dtype="bfloat16")
    out = fwd(bf, ids)
    assert out.dtype == jnp.float32
    assert all(v.get_value().dtype == jnp.float32 for _, v in nnx.to_flat_state(nnx.state(bf, nnx.Param)))
    assert 0 < np.abs(np.asarray(out) - f32).max() < 0.05


def test_remat_gives_same_logits_and_grads():
    _, plain = from_hf_config(GPT2, seed=4)
    _, remat = from_hf_config(GPT2, seed=4, remat=True)
    ids = jnp.asarray(np.random.RandomState(0).randint(0, 50, (1, 6)))

    def loss(m):
        return m(ids).mean()

    grad = nnx.jit(nnx.grad(loss))
    g1 = grad(plain)
    g2 = grad(remat)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_dropout_only_when_not_deterministic_and_needs_a_key():
    _, model = from_hf_config({**GPT2, "resid_pdrop": 0.5}, seed=5)
    ids = jnp.asarray(np.random.RandomState(0).randint(0, 50, (1, 6)))
    fwd = nnx.jit(lambda m, x, key, det: m(x, deterministic=det, dropout_rng=key), static_argnums=3)
    det = np.asarray(fwd(model, ids, None, True))
    drop = np.asarray(fwd(model, ids, jax.random.key(0), False))
    assert np.abs(drop - det).max() > 1e-3
    with pytest.raises(ValueError, match="dropout_rng"):
        model(ids, deterministic=False)


def test_dot_product_attention_impl_matches_einsum():
    _, a = from_hf_config(LLAMA, seed=6)
    _, b = from_hf_config(LLAMA, seed=6, attention_impl="dot_product_attention")
    ids, pos, seg = _packed()
    fwd = nnx.jit(lambda m, i, p, s: m(i, positions=p, segment_ids=s))
    np.testing.assert_allclose(np.asarray(fwd(a, ids, pos, seg)), np.asarray(fwd(b, ids, pos, seg)), atol=1e-5)



def test_grouped_query_attention_equals_a_per_head_loop():
    """The stacked-rows layout of ``multihead_attention`` against the textbook loop: query head
    i reads key/value head i // G; additive bias; same-segment causal mask; a padding row."""
    from finetune.models.layers import attention_mask, multihead_attention

    rng = np.random.default_rng(0)
    b, t, n, kh, h = 2, 7, 6, 2, 4
    q, k, v = (rng.normal(size=s).astype(np.float32) for s in [(b, t, n, h), (b, t, kh, h), (b, t, kh, h)])
    bias = rng.normal(size=(1, n, t, t)).astype(np.float32)
    seg = np.array([[1, 1, 1, 2, 2, 2, 0], [1] * 7], np.int32)
    mask = np.asarray(attention_mask(jnp.asarray(seg), jnp.asarray(seg), causal=True))
    ref = np.zeros((b, t, n, h), np.float32)
    for bi in range(b):
        for i in range(n):
            s = q[bi, :, i] @ k[bi, :, i // (n // kh)].T * h ** -0.5 + bias[0, i]
            s = np.where(mask[bi, 0], s, -1e30)
            p = np.exp(s - s.max(-1, keepdims=True))
            ref[bi, :, i] = (p / p.sum(-1, keepdims=True)) @ v[bi, :, i // (n // kh)]
    out = multihead_attention(*(jnp.asarray(a) for a in (q, k, v, mask)), scale=h ** -0.5, bias=jnp.asarray(bias))
    np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5)

# ---------------------------------------------------------------------------- sharding axes


def test_every_param_has_logical_axes_and_fsdp_rule_shards_embed():
    for hf in (LLAMA, GPT2, T5):
        _, model = from_hf_config(hf)
        specs = partition_specs(nnx.state(model, nnx.Param), {"embed": "fsdp"})
        flat = {tuple(p): v.get_value() for p, v in nnx.to_flat_state(specs)}
        assert flat, hf
        for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param)):
            axes = v.get_metadata()["out_sharding"]
            assert len(axes) == v.get_value().ndim, path
            spec = flat[tuple(path)]
            assert tuple(spec) == tuple("fsdp" if a == "embed" else None for a in axes), (path, spec)
    _, model = from_hf_config(LLAMA)
    specs = partition_specs(model, {"embed": "fsdp", "vocab": "fsdp"}, mesh_sizes={"fsdp": 4})
    emb = {tuple(p): v.get_value() for p, v in nnx.to_flat_state(specs)}[("embed_tokens", "embedding")]
    assert emb == P(None, "fsdp")  # vocab 50 is not divisible by 4 and a mesh axis is used once


# ---------------------------------------------------------------------------- checkpoint io


def _tiny_llama_dir(tmp_path, tie=False):
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tie,
                                     bos_token_id=1, eos_token_id=2))
    d = tmp_path / "hf"
    m.save_pretrained(d)
    return d


def _rewrite(d, fn):
    from safetensors.torch import load_file, save_file

    sd = fn(load_file(str(d / "model.safetensors")))
    save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})


def test_missing_and_unexpected_keys_are_named(tmp_path):
    from finetune.checkpoint_io.hf_import import load_hf_model

    d = _tiny_llama_dir(tmp_path)
    _rewrite(d, lambda sd: {**{k: v for k, v in sd.items() if "mlp.up_proj" not in k}, "model.extra.weight": sd["model.norm.weight"].clone()})
    with pytest.raises(ModelLoadError) as e:
        load_hf_model(d)
    assert "model.layers.0.mlp.up_proj.weight" in str(e.value) and "model.extra.weight" in str(e.value)


def test_shape_mismatch_is_named(tmp_path):
    from finetune.checkpoint_io.hf_import import load_hf_model

    d = _tiny_llama_dir(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 32}))
    with pytest.raises(ModelLoadError, match=r"mlp\.\w+_proj\.weight has shape"):
        load_hf_model(d)


def test_unsupported_and_missing_references(tmp_path):
    from finetune.checkpoint_io.hf_import import load_hf_model

    with pytest.raises(ModelLoadError, match="not found"):
        load_hf_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json"):
        load_hf_model(tmp_path / "empty")
    d = _tiny_llama_dir(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "architectures": ["FalconForCausalLM"], "model_type": "falcon"}))
    with pytest.raises(UserError, match="FalconForCausalLM"):
        load_hf_model(d)


def test_tied_config_with_distinct_head_is_untied(tmp_path):
    torch = pytest.importorskip("torch")
    from finetune.checkpoint_io.hf_import import load_hf_model

    d = _tiny_llama_dir(tmp_path, tie=True)
    _rewrite(d, lambda sd: {**sd, "lm_head.weight": torch.randn(50, 16)})
    cfg, model = load_hf_model(d)
    assert not cfg.tie_word_embeddings and model.lm_head is not None
    same = _tiny_llama_dir(tmp_path / "b", tie=True)
    _rewrite(same, lambda sd: {**sd, "lm_head.weight": sd["model.embed_tokens.weight"].clone()})
    cfg2, model2 = load_hf_model(same)
    assert cfg2.tie_word_embeddings and model2.lm_head is None


def test_sharded_export_reimports_identically(tmp_path):
    from finetune.checkpoint_io.hf_export import export_hf
    from finetune.checkpoint_io.hf_import import load_hf_model

    _, model = from_hf_config(LLAMA, seed=7)
    with pytest.warns(UserWarning, match="no tokenizer"):
        out = export_hf(model, tmp_path / "out", max_shard_bytes=4096)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    _, back = load_hf_model(out)
    for (p1, v1), (p2, v2) in zip(nnx.to_flat_state(nnx.state(model, nnx.Param)),
                                  nnx.to_flat_state(nnx.state(back, nnx.Param))):
        assert p1 == p2
        np.testing.assert_array_equal(np.asarray(v1.get_value()), np.asarray(v2.get_value()))


def test_gpt2_keys_without_transformer_prefix_load(tmp_path):
    from finetune.checkpoint_io.hf_export import hf_tensors
    from finetune.checkpoint_io.hf_import import import_tensors

    cfg, model = from_hf_config(GPT2, seed=8)
    old_style = {k.removeprefix("transformer."): v for k, v in hf_tensors(model).items()}
    old_style["h.0.attn.bias"] = np.tril(np.ones((32, 32), np.float32))  # legacy causal-mask buffer
    _, back = import_tensors(cfg, old_style)
    ids = np.arange(6)[None] % 50
    fwd = nnx.jit(lambda m, x: m(x))
    np.testing.assert_array_equal(np.asarray(fwd(back, ids)), np.asarray(fwd(model, ids)))


def test_export_writes_tokenizer_and_generation_config(tmp_path):
    pytest.importorskip("torch")
    from finetune.checkpoint_io.hf_export import export_hf

    tok = _word_tokenizer()
    cfg, model = from_hf_config({**LLAMA, "bos_token_id": 1, "eos_token_id": 2})
    out = export_hf(model, tmp_path / "out", tokenizer=tok, save_dtype="bfloat16")
    assert (out / "tokenizer.json").is_file()
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["bos_token_id"] == 1 and gen["eos_token_id"] == 2
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def _word_tokenizer(n=50):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({f"w{i}": i for i in range(n)}, unk_token="w0"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="w0")


def test_load_base_model_bundle(tmp_path):
    pytest.importorskip("torch")
    from transformers import LlamaForCausalLM

    from finetune.checkpoint_io.hf_import import load_base_model

    d = _tiny_llama_dir(tmp_path)
    _word_tokenizer().save_pretrained(d)
    base = load_base_model(d, dtype="bfloat16")
    assert base["kind"] == "decoder" and base["vocab_size"] == 50 and base["decoder_start_token_id"] is None
    assert base["model_config"].dtype == "bfloat16" and base["model"].cfg.dtype == "bfloat16"
    assert base["tokenizer"]("w3 w7")["input_ids"] == [3, 7]
    info = base["info"]
    n_torch = sum(p.numel() for p in LlamaForCausalLM.from_pretrained(d).parameters())
    assert info["num_params"] == n_torch and info["architecture"] == "LlamaForCausalLM"
    assert len(info["model_id"]) == 64 and info["model_id"] == load_base_model(d)["info"]["model_id"]


def test_a_broken_gguf_is_a_model_load_error_and_leaves_no_converted_copy(tmp_path, monkeypatch):
    """The finetune stage reads a GGUF through the probe runner's converted-copy cache; a file
    transformers cannot read is a clear ModelLoadError, and no half-made copy is left to trust."""
    from finetune.checkpoint_io.hf_import import load_hf_model

    monkeypatch.setenv("RAI_AUDIT_HOME", str(tmp_path / "home"))
    bad = tmp_path / "m" / "broken.gguf"
    bad.parent.mkdir()
    bad.write_bytes(b"GGUF but not really a model file")
    with pytest.raises(ModelLoadError, match="could not load the GGUF file"):
        load_hf_model(bad)
    models = tmp_path / "home" / "models"
    assert not models.exists() or not any(models.iterdir())
