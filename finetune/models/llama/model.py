"""Llama-family decoder (Llama, SmolLM2, Mistral without sliding window, Qwen2) in Flax NNX.

One pre-norm block repeated ``num_layers`` times::

    h = x + o(attn(rope(q(norm(x))), rope(k(norm(x))), v(norm(x))))      # GQA, causal, same-segment
    y = h + down(silu(gate(norm(h))) * up(norm(h)))                       # SwiGLU

then a final RMSNorm and the LM head (the embedding transposed when ``tie_word_embeddings``).
Matches ``transformers`` ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` numerically (see
``tests/test_finetune_parity.py``); the parameter names mirror HF's so the mapping file
(``finetune/models/llama/params.py``) reads like a table.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from finetune.models.llama.config import DecoderConfig
from finetune.models.layers import (
    Dense,
    Embed,
    RMSNorm,
    apply_rope,
    attention_mask,
    default_positions,
    default_segments,
    dropout,
    multihead_attention,
    rope_cos_sin,
)


class Attention(nnx.Module):
    def __init__(self, cfg: DecoderConfig, rngs: nnx.Rngs):
        d, h = cfg.hidden_size, cfg.head_dim
        std = cfg.initializer_range
        self.q_proj = Dense(d, cfg.num_heads * h, ("embed", "heads"), use_bias=cfg.qkv_bias, std=std, rngs=rngs)
        self.k_proj = Dense(d, cfg.num_kv_heads * h, ("embed", "kv_heads"), use_bias=cfg.qkv_bias, std=std, rngs=rngs)
        self.v_proj = Dense(d, cfg.num_kv_heads * h, ("embed", "kv_heads"), use_bias=cfg.qkv_bias, std=std, rngs=rngs)
        self.o_proj = Dense(cfg.num_heads * h, d, ("heads", "embed"), use_bias=cfg.o_bias, std=std, rngs=rngs)
        self.cfg = cfg

    def __call__(self, x, cos, sin, mask):
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        b, t, _ = x.shape
        q = self.q_proj(x, dt).reshape(b, t, cfg.num_heads, cfg.head_dim)
        k = self.k_proj(x, dt).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        v = self.v_proj(x, dt).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = multihead_attention(q, k, v, mask, scale=cfg.head_dim ** -0.5, impl=cfg.attention_impl)
        return self.o_proj(out.reshape(b, t, -1), dt)


class MLP(nnx.Module):
    def __init__(self, cfg: DecoderConfig, rngs: nnx.Rngs):
        d, f, std = cfg.hidden_size, cfg.intermediate_size, cfg.initializer_range
        self.gate_proj = Dense(d, f, ("embed", "mlp"), use_bias=cfg.mlp_bias, std=std, rngs=rngs)
        self.up_proj = Dense(d, f, ("embed", "mlp"), use_bias=cfg.mlp_bias, std=std, rngs=rngs)
        self.down_proj = Dense(f, d, ("mlp", "embed"), use_bias=cfg.mlp_bias, std=std, rngs=rngs)

    def __call__(self, x, dt):
        return self.down_proj(jax.nn.silu(self.gate_proj(x, dt)) * self.up_proj(x, dt), dt)


class Block(nnx.Module):
    def __init__(self, cfg: DecoderConfig, rngs: nnx.Rngs):
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, rngs)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg, rngs)
        self.cfg = cfg

    def __call__(self, x, cos, sin, mask, rng, deterministic):
        dt, rate = jnp.dtype(self.cfg.dtype), self.cfg.dropout_rate
        r1, r2 = jax.random.split(rng) if rng is not None else (None, None)
        x = x + dropout(self.self_attn(self.input_layernorm(x, dt), cos, sin, mask), rate, r1, deterministic)
        x = x + dropout(self.mlp(self.post_attention_layernorm(x, dt), dt), rate, r2, deterministic)
        return x


def _run_block(block, x, cos, sin, mask, rng, deterministic):
    return block(x, cos, sin, mask, rng, deterministic)


_run_block_remat = nnx.remat(_run_block, static_argnums=(6,))


class Decoder(nnx.Module):
    """Causal LM. See :mod:`finetune.models` for the call contract."""

    def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed_tokens = Embed(cfg.vocab_size, cfg.hidden_size, ("vocab", "embed"),
                                  std=cfg.initializer_range, rngs=rngs)
        self.layers = nnx.List([Block(cfg, rngs) for _ in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = None if cfg.tie_word_embeddings else Embed(
            cfg.vocab_size, cfg.hidden_size, ("vocab", "embed"), std=cfg.initializer_range, rngs=rngs)

    def hidden_states(self, input_ids, *, positions=None, segment_ids=None, deterministic=True,
                      dropout_rng=None):
        """Final-normed hidden states [B, T, D] in the compute dtype."""
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        positions = default_positions(input_ids) if positions is None else positions
        segment_ids = default_segments(input_ids) if segment_ids is None else segment_ids
        cos, sin = rope_cos_sin(positions, cfg.rope_inv_freq())
        mask = attention_mask(segment_ids, segment_ids, causal=True)
        x = self.embed_tokens(input_ids, dt)
        run = _run_block_remat if cfg.remat else _run_block
        for i, block in enumerate(self.layers):
            rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, i)
            x = run(block, x, cos, sin, mask, rng, deterministic)
        return self.norm(x, dt)

    def head_operands(self, h):
        """(head input, table [V, D]), both in the compute dtype: logits are ``input @ table.T``."""
        dt = jnp.dtype(self.cfg.dtype)
        head = self.embed_tokens if self.lm_head is None else self.lm_head
        return h.astype(dt), head.table(dt)

    def logits_from_hidden(self, h):
        """LM head: [.., D] -> float32 logits [.., V]."""
        head = self.embed_tokens if self.lm_head is None else self.lm_head
        return head.attend(h, jnp.dtype(self.cfg.dtype))

    def __call__(self, input_ids, *, positions=None, segment_ids=None, deterministic=True,
                 dropout_rng=None):
        h = self.hidden_states(input_ids, positions=positions, segment_ids=segment_ids,
                               deterministic=deterministic, dropout_rng=dropout_rng)
        return self.logits_from_hidden(h)
