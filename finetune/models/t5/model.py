"""T5 encoder-decoder (T5 v1.1 / Flan-T5, and original T5) in Flax NNX.

The Flan paper's own family (Chung et al. 2022 finetune T5 v1.1 into Flan-T5). What makes T5
T5, and what this file reproduces to match ``transformers`` ``T5ForConditionalGeneration``:

- no absolute positions: each stack adds a learned bias per (relative-position bucket, head) to
  the attention scores; the table lives in the first layer in HF and is shared by all layers
  of that stack. The encoder's buckets are bidirectional, the decoder's causal; cross-attention
  has no position bias;
- attention scores are NOT scaled by 1/sqrt(d_kv) (T5 folds that into the initialisation);
- RMSNorm without bias ("T5LayerNorm"), pre-norm residual blocks;
- MLP ``wo(gelu_new(wi_0 x) * wi_1 x)`` (v1.1 "gated-gelu") or ``wo(relu(wi x))`` (original);
- v1.1: separate LM head; original T5: head tied to the shared embedding and the decoder
  output scaled by d_model**-0.5 first.

Packing: encoder self-attention, decoder causal self-attention and cross-attention are all
restricted to equal segment ids (segment 0 = padding). Relative positions come from the
``*_positions`` arrays, so a packed example sees the same biases as it would alone.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from finetune.models.t5.config import T5ModelConfig
from finetune.models.layers import (
    Dense,
    Embed,
    RMSNorm,
    acc_dtype,
    activation,
    attention_mask,
    default_positions,
    default_segments,
    dropout,
    multihead_attention,
)


def bucket_table(num_buckets: int, max_distance: int) -> np.ndarray:
    """Bucket of a non-negative distance n, for n = 0..max_distance (larger n -> last entry).

    T5's rule (Raffel et al. 2020, and ``T5Attention._relative_position_bucket``): half of the
    buckets are exact distances 0..max_exact-1, the rest log-spaced up to ``max_distance``,
    everything beyond sharing the last bucket. Computed in float32 like the reference so the
    bucket boundaries agree exactly.
    """
    max_exact = num_buckets // 2
    n = np.arange(max_distance + 1, dtype=np.int64)
    safe = np.maximum(n, 1).astype(np.float32)
    large = (np.log(safe / np.float32(max_exact)) / np.float32(math.log(max_distance / max_exact))
             * np.float32(num_buckets - max_exact)).astype(np.float32)
    large = max_exact + large.astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return np.where(n < max_exact, n, large).astype(np.int32)


def relative_buckets(rel: jax.Array, *, bidirectional: bool, num_buckets: int, max_distance: int) -> jax.Array:
    """Bucket ids for relative positions ``rel = key_pos - query_pos`` (any integer array)."""
    if bidirectional:
        half = num_buckets // 2
        table = jnp.asarray(bucket_table(half, max_distance))
        offset = jnp.where(rel > 0, half, 0)
        n = jnp.abs(rel)
    else:
        table = jnp.asarray(bucket_table(num_buckets, max_distance))
        offset = 0
        n = jnp.maximum(-rel, 0)
    return offset + table[jnp.minimum(n, max_distance)]


class RelativeBias(nnx.Module):
    """Learned [num_buckets, num_heads] table -> additive scores bias [B, N, T, S]."""

    def __init__(self, cfg: T5ModelConfig, *, bidirectional: bool, rngs: nnx.Rngs):
        self.embedding = Embed(cfg.relative_attention_num_buckets, cfg.num_heads, ("buckets", "heads_bias"),
                               std=cfg.initializer_factor * cfg.d_model ** -0.5, rngs=rngs)
        self.bidirectional = bidirectional
        self.cfg = cfg

    def __call__(self, q_positions, k_positions):
        rel = k_positions[:, None, :] - q_positions[:, :, None]  # [B, T, S]
        buckets = relative_buckets(rel, bidirectional=self.bidirectional,
                                   num_buckets=self.cfg.relative_attention_num_buckets,
                                   max_distance=self.cfg.relative_attention_max_distance)
        values = jnp.take(self.embedding.embedding[...], buckets, axis=0)  # [B, T, S, N]
        return jnp.transpose(values, (0, 3, 1, 2))


class Attention(nnx.Module):
    def __init__(self, cfg: T5ModelConfig, rngs: nnx.Rngs):
        d, inner, f = cfg.d_model, cfg.num_heads * cfg.d_kv, cfg.initializer_factor
        self.q = Dense(d, inner, ("embed", "heads"), use_bias=False, std=f * (d * cfg.d_kv) ** -0.5, rngs=rngs)
        self.k = Dense(d, inner, ("embed", "heads"), use_bias=False, std=f * d ** -0.5, rngs=rngs)
        self.v = Dense(d, inner, ("embed", "heads"), use_bias=False, std=f * d ** -0.5, rngs=rngs)
        self.o = Dense(inner, d, ("heads", "embed"), use_bias=False, std=f * inner ** -0.5, rngs=rngs)
        self.cfg = cfg

    def __call__(self, x, kv, mask, bias):
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        b, t, _ = x.shape
        s = kv.shape[1]
        q = self.q(x, dt).reshape(b, t, cfg.num_heads, cfg.d_kv)
        k = self.k(kv, dt).reshape(b, s, cfg.num_heads, cfg.d_kv)
        v = self.v(kv, dt).reshape(b, s, cfg.num_heads, cfg.d_kv)
        out = multihead_attention(q, k, v, mask, scale=1.0, bias=bias, impl=cfg.attention_impl)
        return self.o(out.reshape(b, t, -1), dt)


class MLP(nnx.Module):
    def __init__(self, cfg: T5ModelConfig, rngs: nnx.Rngs):
        d, f, s = cfg.d_model, cfg.d_ff, cfg.initializer_factor
        if cfg.gated:
            self.wi_0 = Dense(d, f, ("embed", "mlp"), use_bias=False, std=s * d ** -0.5, rngs=rngs)
            self.wi_1 = Dense(d, f, ("embed", "mlp"), use_bias=False, std=s * d ** -0.5, rngs=rngs)
        else:
            self.wi = Dense(d, f, ("embed", "mlp"), use_bias=False, std=s * d ** -0.5, rngs=rngs)
        self.wo = Dense(f, d, ("mlp", "embed"), use_bias=False, std=s * f ** -0.5, rngs=rngs)
        self.cfg = cfg

    def __call__(self, x, dt):
        act = activation(self.cfg.activation)
        if self.cfg.gated:
            return self.wo(act(self.wi_0(x, dt)) * self.wi_1(x, dt), dt)
        return self.wo(act(self.wi(x, dt)), dt)


class EncoderBlock(nnx.Module):
    def __init__(self, cfg: T5ModelConfig, rngs: nnx.Rngs):
        self.attn_norm = RMSNorm(cfg.d_model, cfg.layer_norm_eps)
        self.attn = Attention(cfg, rngs)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.layer_norm_eps)
        self.mlp = MLP(cfg, rngs)
        self.cfg = cfg

    def __call__(self, x, mask, bias, rng, deterministic):
        dt, rate = jnp.dtype(self.cfg.dtype), self.cfg.dropout_rate
        r1, r2 = jax.random.split(rng) if rng is not None else (None, None)
        h = self.attn_norm(x, dt)
        x = x + dropout(self.attn(h, h, mask, bias), rate, r1, deterministic)
        x = x + dropout(self.mlp(self.mlp_norm(x, dt), dt), rate, r2, deterministic)
        return x


class DecoderBlock(nnx.Module):
    def __init__(self, cfg: T5ModelConfig, rngs: nnx.Rngs):
        self.self_attn_norm = RMSNorm(cfg.d_model, cfg.layer_norm_eps)
        self.self_attn = Attention(cfg, rngs)
        self.cross_attn_norm = RMSNorm(cfg.d_model, cfg.layer_norm_eps)
        self.cross_attn = Attention(cfg, rngs)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.layer_norm_eps)
        self.mlp = MLP(cfg, rngs)
        self.cfg = cfg

    def __call__(self, x, enc, self_mask, self_bias, cross_mask, rng, deterministic):
        dt, rate = jnp.dtype(self.cfg.dtype), self.cfg.dropout_rate
        r1, r2, r3 = jax.random.split(rng, 3) if rng is not None else (None, None, None)
        h = self.self_attn_norm(x, dt)
        x = x + dropout(self.self_attn(h, h, self_mask, self_bias), rate, r1, deterministic)
        x = x + dropout(self.cross_attn(self.cross_attn_norm(x, dt), enc, cross_mask, None), rate, r2, deterministic)
        x = x + dropout(self.mlp(self.mlp_norm(x, dt), dt), rate, r3, deterministic)
        return x


def _run_enc(block, x, mask, bias, rng, deterministic):
    return block(x, mask, bias, rng, deterministic)


def _run_dec(block, x, enc, self_mask, self_bias, cross_mask, rng, deterministic):
    return block(x, enc, self_mask, self_bias, cross_mask, rng, deterministic)


_run_enc_remat = nnx.remat(_run_enc, static_argnums=(5,))
_run_dec_remat = nnx.remat(_run_dec, static_argnums=(7,))


class Encoder(nnx.Module):
    def __init__(self, cfg: T5ModelConfig, rngs: nnx.Rngs):
        self.relative_bias = RelativeBias(cfg, bidirectional=True, rngs=rngs)
        self.layers = nnx.List([EncoderBlock(cfg, rngs) for _ in range(cfg.num_layers)])
        self.final_norm = RMSNorm(cfg.d_model, cfg.layer_norm_eps)
        self.cfg = cfg


class DecoderStack(nnx.Module):
    def __init__(self, cfg: T5ModelConfig, rngs: nnx.Rngs):
        self.relative_bias = RelativeBias(cfg, bidirectional=False, rngs=rngs)
        self.layers = nnx.List([DecoderBlock(cfg, rngs) for _ in range(cfg.num_decoder_layers)])
        self.final_norm = RMSNorm(cfg.d_model, cfg.layer_norm_eps)
        self.cfg = cfg


class T5(nnx.Module):
    """Encoder-decoder LM. See :mod:`finetune.models` for the call contract."""

    def __init__(self, cfg: T5ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.shared = Embed(cfg.vocab_size, cfg.d_model, ("vocab", "embed"), std=cfg.initializer_factor, rngs=rngs)
        self.encoder = Encoder(cfg, rngs)
        self.decoder = DecoderStack(cfg, rngs)
        self.lm_head = None if cfg.tie_word_embeddings else Embed(
            cfg.vocab_size, cfg.d_model, ("vocab", "embed"), std=cfg.initializer_factor * cfg.d_model ** -0.5,
            rngs=rngs)

    def encode(self, encoder_input_ids, *, encoder_segment_ids=None, encoder_positions=None,
               deterministic=True, dropout_rng=None):
        """Encoder output [B, S, D] (final-normed, compute dtype)."""
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        seg = default_segments(encoder_input_ids) if encoder_segment_ids is None else encoder_segment_ids
        pos = default_positions(encoder_input_ids) if encoder_positions is None else encoder_positions
        mask = attention_mask(seg, seg, causal=False)
        bias = self.encoder.relative_bias(pos, pos).astype(dt)
        x = self.shared(encoder_input_ids, dt)
        run = _run_enc_remat if cfg.remat else _run_enc
        for i, block in enumerate(self.encoder.layers):
            rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, i)
            x = run(block, x, mask, bias, rng, deterministic)
        return self.encoder.final_norm(x, dt)

    def decode_hidden(self, encoder_output, decoder_input_ids, *, encoder_segment_ids=None,
                      decoder_segment_ids=None, decoder_positions=None, deterministic=True, dropout_rng=None):
        """Decoder final-normed hidden states [B, T, D] given the encoder output."""
        cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        enc_seg = (jnp.ones(encoder_output.shape[:2], jnp.int32) if encoder_segment_ids is None
                   else encoder_segment_ids)
        seg = default_segments(decoder_input_ids) if decoder_segment_ids is None else decoder_segment_ids
        pos = default_positions(decoder_input_ids) if decoder_positions is None else decoder_positions
        self_mask = attention_mask(seg, seg, causal=True)
        cross_mask = attention_mask(seg, enc_seg, causal=False)
        bias = self.decoder.relative_bias(pos, pos).astype(dt)
        x = self.shared(decoder_input_ids, dt)
        run = _run_dec_remat if cfg.remat else _run_dec
        for i, block in enumerate(self.decoder.layers):
            rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, 1000 + i)
            x = run(block, x, encoder_output, self_mask, bias, cross_mask, rng, deterministic)
        return self.decoder.final_norm(x, dt)

    def head_operands(self, h):
        """(head input, table [V, D]), both in the compute dtype: logits are ``input @ table.T``.

        The tied head of original T5 scales the decoder output by ``d_model ** -0.5`` first."""
        dt = jnp.dtype(self.cfg.dtype)
        if self.cfg.scale_decoder_outputs:
            h = h * (self.cfg.d_model ** -0.5)
        head = self.shared if self.lm_head is None else self.lm_head
        return h.astype(dt), head.table(dt)

    def logits_from_hidden(self, h):
        x, table = self.head_operands(h)
        return jnp.einsum("...d,vd->...v", x, table, preferred_element_type=acc_dtype(x.dtype))

    def hidden_states(self, encoder_input_ids, decoder_input_ids, *, encoder_segment_ids=None,
                      decoder_segment_ids=None, encoder_positions=None, decoder_positions=None,
                      deterministic=True, dropout_rng=None):
        """Decoder final-normed hidden states [B, T_dec, D] (encode, then decode); same arguments
        as ``__call__``."""
        enc_rng = dec_rng = None
        if dropout_rng is not None:
            enc_rng, dec_rng = jax.random.split(dropout_rng)
        enc = self.encode(encoder_input_ids, encoder_segment_ids=encoder_segment_ids,
                          encoder_positions=encoder_positions, deterministic=deterministic,
                          dropout_rng=enc_rng)
        return self.decode_hidden(enc, decoder_input_ids, encoder_segment_ids=encoder_segment_ids,
                                  decoder_segment_ids=decoder_segment_ids, decoder_positions=decoder_positions,
                                  deterministic=deterministic, dropout_rng=dec_rng)

    def __call__(self, encoder_input_ids, decoder_input_ids, *, encoder_segment_ids=None,
                 decoder_segment_ids=None, encoder_positions=None, decoder_positions=None,
                 deterministic=True, dropout_rng=None):
        return self.logits_from_hidden(self.hidden_states(
            encoder_input_ids, decoder_input_ids, encoder_segment_ids=encoder_segment_ids,
            decoder_segment_ids=decoder_segment_ids, encoder_positions=encoder_positions,
            decoder_positions=decoder_positions, deterministic=deterministic, dropout_rng=dropout_rng))
