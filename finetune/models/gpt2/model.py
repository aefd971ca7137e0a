"""GPT-2 in Flax NNX: learned positions, pre-LayerNorm blocks, GELU MLP, fused qkv projection.

Kept as its own small file rather than a flag soup on the Llama decoder: GPT-2 differs in the
norm (LayerNorm with bias), the positions (a learned table, no RoPE), the MLP (no gate), the
biases (everywhere) and the weight layout (HF's ``Conv1D`` stores ``[in, out]``, and q|k|v are
one fused ``c_attn`` matrix, which we keep fused so the mapping stays one-to-one).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from finetune.models.gpt2.config import GPT2ModelConfig
from finetune.models.layers import (
    Dense,
    Embed,
    LayerNorm,
    activation,
    attention_mask,
    default_positions,
    default_segments,
    dropout,
    multihead_attention,
)


class Attention(nnx.Module):
    def __init__(self, cfg: GPT2ModelConfig, layer_idx: int, rngs: nnx.Rngs):
        d, std = cfg.hidden_size, cfg.initializer_range
        self.c_attn = Dense(d, 3 * d, ("embed", "qkv"), use_bias=True, std=std, rngs=rngs)
        self.c_proj = Dense(d, d, ("heads", "embed"), use_bias=True, std=std, rngs=rngs)
        scale = cfg.head_dim ** -0.5 if cfg.scale_attn_weights else 1.0
        if cfg.scale_attn_by_inverse_layer_idx:
            scale /= float(layer_idx + 1)
        self.scale = scale
        self.cfg = cfg

    def __call__(self, x, mask):
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        b, t, d = x.shape
        q, k, v = jnp.split(self.c_attn(x, dt), 3, axis=-1)
        shape = (b, t, cfg.num_heads, cfg.head_dim)
        out = multihead_attention(q.reshape(shape), k.reshape(shape), v.reshape(shape), mask,
                                  scale=self.scale, impl=cfg.attention_impl)
        return self.c_proj(out.reshape(b, t, d), dt)


class MLP(nnx.Module):
    def __init__(self, cfg: GPT2ModelConfig, rngs: nnx.Rngs):
        d, f, std = cfg.hidden_size, cfg.intermediate_size, cfg.initializer_range
        self.c_fc = Dense(d, f, ("embed", "mlp"), use_bias=True, std=std, rngs=rngs)
        self.c_proj = Dense(f, d, ("mlp", "embed"), use_bias=True, std=std, rngs=rngs)
        self.act_name = cfg.activation

    def __call__(self, x, dt):
        return self.c_proj(activation(self.act_name)(self.c_fc(x, dt)), dt)


class Block(nnx.Module):
    def __init__(self, cfg: GPT2ModelConfig, layer_idx: int, rngs: nnx.Rngs):
        self.ln_1 = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps)
        self.attn = Attention(cfg, layer_idx, rngs)
        self.ln_2 = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps)
        self.mlp = MLP(cfg, rngs)
        self.cfg = cfg

    def __call__(self, x, mask, rng, deterministic):
        dt, rate = jnp.dtype(self.cfg.dtype), self.cfg.dropout_rate
        r1, r2 = jax.random.split(rng) if rng is not None else (None, None)
        x = x + dropout(self.attn(self.ln_1(x, dt), mask), rate, r1, deterministic)
        x = x + dropout(self.mlp(self.ln_2(x, dt), dt), rate, r2, deterministic)
        return x


def _run_block(block, x, mask, rng, deterministic):
    return block(x, mask, rng, deterministic)


_run_block_remat = nnx.remat(_run_block, static_argnums=(4,))


class GPT2(nnx.Module):
    """GPT-2 causal LM. Same call contract as :class:`finetune.models.llama.model.Decoder`."""

    def __init__(self, cfg: GPT2ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        std = cfg.initializer_range
        self.wte = Embed(cfg.vocab_size, cfg.hidden_size, ("vocab", "embed"), std=std, rngs=rngs)
        self.wpe = Embed(cfg.max_position_embeddings, cfg.hidden_size, ("positions", "embed"), std=std, rngs=rngs)
        self.h = nnx.List([Block(cfg, i, rngs) for i in range(cfg.num_layers)])
        self.ln_f = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps)
        self.lm_head = None if cfg.tie_word_embeddings else Embed(
            cfg.vocab_size, cfg.hidden_size, ("vocab", "embed"), std=std, rngs=rngs)

    def hidden_states(self, input_ids, *, positions=None, segment_ids=None, deterministic=True,
                      dropout_rng=None):
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        positions = default_positions(input_ids) if positions is None else positions
        segment_ids = default_segments(input_ids) if segment_ids is None else segment_ids
        mask = attention_mask(segment_ids, segment_ids, causal=True)
        x = self.wte(input_ids, dt) + self.wpe(positions, dt)
        run = _run_block_remat if cfg.remat else _run_block
        for i, block in enumerate(self.h):
            rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, i)
            x = run(block, x, mask, rng, deterministic)
        return self.ln_f(x, dt)

    def head_operands(self, h):
        """(head input, table [V, D]), both in the compute dtype: logits are ``input @ table.T``."""
        dt = jnp.dtype(self.cfg.dtype)
        head = self.wte if self.lm_head is None else self.lm_head
        return h.astype(dt), head.table(dt)

    def logits_from_hidden(self, h):
        head = self.wte if self.lm_head is None else self.lm_head
        return head.attend(h, jnp.dtype(self.cfg.dtype))

    def __call__(self, input_ids, *, positions=None, segment_ids=None, deterministic=True,
                 dropout_rng=None):
        h = self.hidden_states(input_ids, positions=positions, segment_ids=segment_ids,
                               deterministic=deterministic, dropout_rng=dropout_rng)
        return self.logits_from_hidden(h)
