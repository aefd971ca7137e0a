"""Building blocks shared by the model families: dense, embedding, norms, masks, attention, dropout.

Conventions (they make the HF mapping files one-liners and sharding a rule table):

- Weights are ``nnx.Param`` in float32. A dense kernel is stored ``[in, out]`` (JAX order; the
  HF torch ``nn.Linear.weight`` is ``[out, in]`` and is transposed on import/export).
- Every ``nnx.Param`` carries logical axis names in its ``out_sharding`` metadata (with
  ``eager_sharding=False`` so building a model needs no mesh). Names used: ``vocab``, ``embed``
  (d_model), ``heads`` (query heads x head_dim), ``kv_heads`` (key/value heads x head_dim),
  ``qkv`` (GPT-2's fused q|k|v), ``mlp`` (hidden of the MLP), ``positions`` (GPT-2 learned
  positions), ``buckets`` and ``heads_bias`` (T5 relative bias), ``norm`` (norm scales/biases).
  :func:`finetune.models.axes.partition_specs` turns them into ``PartitionSpec`` s.
- Activations are cast to the compute dtype before each matmul; norms and softmax run in float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

NEG_INF = -1e30  # finite: a fully masked row (padding) gives a uniform softmax, never NaN


def acc_dtype(dtype) -> jnp.dtype:
    """Dtype for norms, softmax and logits: float32, or float64 in float64 exactness tests."""
    return jnp.dtype(jnp.float64) if jnp.dtype(dtype) == jnp.float64 else jnp.dtype(jnp.float32)


def param(value: jax.Array, axes: tuple[str | None, ...]) -> nnx.Param:
    """An ``nnx.Param`` with logical axis names and no eager sharding."""
    assert len(axes) == value.ndim, (axes, value.shape)
    return nnx.Param(value, out_sharding=tuple(axes), eager_sharding=False)


def normal_init(rngs: nnx.Rngs, shape: tuple[int, ...], std: float) -> jax.Array:
    return std * jax.random.normal(rngs.params(), shape, jnp.float32)


def transposed_for_dot(a: jax.Array) -> jax.Array:
    """``a.T`` as an operand of a following matmul, materialised on CPU.

    XLA folds a transpose into the dot that consumes it; on CPU the folded dot (contracting
    the leading dimension of both operands) runs through a generic path at about half the speed
    of the plain ``[M, K] x [K, N]`` matmul, while writing the transposed copy costs only
    ``a.size`` floats. ``optimization_barrier`` keeps the copy. Other backends handle transposed
    operands natively, so there it is a plain transpose."""
    if jax.default_backend() == "cpu":
        return jax.lax.optimization_barrier(a.T)
    return a.T


@jax.custom_vjp
def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x @ w`` for activations ``x [..., in]`` and a weight ``w [in, out]``.

    The backward pass is written out because of what autodiff gives for a batched ``x``: the
    weight gradient as one dot contracting two dimensions (batch and time) with a transposed
    operand, which XLA's CPU backend runs through a generic path at about half the speed of a
    plain matmul (``bench/finetune.py``). Flattening the leading dimensions and materialising
    ``x^T`` (:func:`transposed_for_dot`) makes it the ``[in, N] x [N, out]`` matmul every
    backend runs well. Same numbers as autodiff (``tests/test_finetune_head_loss.py``)."""
    return jnp.dot(x, w)


def _matmul_fwd(x, w):
    return jnp.dot(x, w), (x, w)


def _matmul_bwd(residuals, dy):
    x, w = residuals
    acc = acc_dtype(x.dtype)
    dx = jnp.einsum("...o,io->...i", dy, w, preferred_element_type=acc).astype(x.dtype)
    x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    dw = jnp.dot(transposed_for_dot(x2), dy2, preferred_element_type=acc).astype(w.dtype)
    return dx, dw


matmul.defvjp(_matmul_fwd, _matmul_bwd)


class Dense(nnx.Module):
    """``y = x @ kernel + bias`` with a float32 ``[in, out]`` kernel and compute-dtype matmul."""

    def __init__(self, din: int, dout: int, axes: tuple[str, str], *, use_bias: bool, std: float,
                 rngs: nnx.Rngs):
        self.kernel = param(normal_init(rngs, (din, dout), std), axes)
        self.bias = param(jnp.zeros((dout,), jnp.float32), (axes[1],)) if use_bias else None

    def __call__(self, x: jax.Array, dtype) -> jax.Array:
        y = matmul(x.astype(dtype), self.kernel[...].astype(dtype))
        if self.bias is not None:
            y = y + self.bias[...].astype(dtype)
        return y


class Embed(nnx.Module):
    """Token (or position) embedding table ``[num, features]``; ``attend`` is the tied LM head."""

    def __init__(self, num: int, features: int, axes: tuple[str, str], *, std: float, rngs: nnx.Rngs):
        self.embedding = param(normal_init(rngs, (num, features), std), axes)

    def __call__(self, ids: jax.Array, dtype) -> jax.Array:
        return jnp.take(self.embedding[...], ids, axis=0).astype(dtype)

    def table(self, dtype) -> jax.Array:
        """The ``[num, features]`` table in ``dtype`` (the LM head's weight, for a fused loss)."""
        return self.embedding[...].astype(dtype)

    def attend(self, x: jax.Array, dtype) -> jax.Array:
        """Logits ``x @ embedding.T`` accumulated and returned in float32."""
        return jnp.einsum("...d,vd->...v", x.astype(dtype), self.table(dtype),
                          preferred_element_type=acc_dtype(dtype))


class RMSNorm(nnx.Module):
    """``x / sqrt(mean(x^2) + eps) * scale`` in float32 (Llama, T5 layer norm: no mean, no bias)."""

    def __init__(self, dim: int, eps: float):
        self.scale = param(jnp.ones((dim,), jnp.float32), ("norm",))
        self.eps = eps

    def __call__(self, x: jax.Array, dtype) -> jax.Array:
        x32 = x.astype(acc_dtype(dtype))
        var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
        y = (x32 * jax.lax.rsqrt(var + self.eps)).astype(dtype)
        return y * self.scale[...].astype(dtype)


class LayerNorm(nnx.Module):
    """Standard LayerNorm with scale and bias, statistics in float32 (GPT-2)."""

    def __init__(self, dim: int, eps: float):
        self.scale = param(jnp.ones((dim,), jnp.float32), ("norm",))
        self.bias = param(jnp.zeros((dim,), jnp.float32), ("norm",))
        self.eps = eps

    def __call__(self, x: jax.Array, dtype) -> jax.Array:
        x32 = x.astype(acc_dtype(dtype))
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]
        return y.astype(dtype)


def activation(name: str):
    """The activation functions HF configs name (``gelu_new`` is the tanh approximation)."""
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: jax.nn.gelu(x, approximate=True)
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    if name == "relu":
        return jax.nn.relu
    if name == "silu":
        return jax.nn.silu
    raise ValueError(f"unknown activation {name!r}")


def dropout(x: jax.Array, rate: float, rng: jax.Array | None, deterministic: bool) -> jax.Array:
    """Inverted dropout; a no-op when deterministic or rate == 0. Needs ``rng`` otherwise."""
    if deterministic or rate <= 0.0:
        return x
    if rng is None:
        raise ValueError("deterministic=False with dropout needs a dropout_rng key")
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def default_positions(ids: jax.Array) -> jax.Array:
    return jnp.broadcast_to(jnp.arange(ids.shape[-1], dtype=jnp.int32), ids.shape)


def default_segments(ids: jax.Array) -> jax.Array:
    return jnp.ones(ids.shape, jnp.int32)


def attention_mask(q_segments: jax.Array, kv_segments: jax.Array, *, causal: bool) -> jax.Array:
    """Boolean mask ``[B, 1, T, S]``: same segment, and (if causal) key index <= query index.

    Causality is by index in the packed row (examples are contiguous), which equals causality
    by position inside each segment.
    """
    mask = q_segments[:, :, None] == kv_segments[:, None, :]
    if causal:
        t, s = q_segments.shape[1], kv_segments.shape[1]
        mask = mask & (jnp.arange(t)[:, None] >= jnp.arange(s)[None, :])[None]
    return mask[:, None]


def multihead_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, *,
                        scale: float, bias: jax.Array | None = None, impl: str = "einsum") -> jax.Array:
    """Grouped-query attention.

    q: [B, T, N, H]; k, v: [B, S, K, H] with N a multiple of K; mask: bool [B, 1, T, S];
    bias: optional additive [1 or B, N, T, S] (T5 relative positions). Returns [B, T, N, H] in
    q's dtype. Scores and softmax are float32.

    Layout: the G = N / K query heads that share a key/value head are stacked as extra query
    rows, ``[B, K, G*T, H]``, so both matmuls are plain batched matmuls over (B, K) and the
    softmax runs in one layout. Written with the group as its own axis, XLA:CPU copied the
    probabilities into a second layout for the value matmul and recomputed the softmax division
    in each (``bench/finetune.py``: 7-8% of the whole train step).
    """
    b, t, n, h = q.shape
    s, kh = k.shape[1], k.shape[2]
    if impl == "dot_product_attention":
        return jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, scale=scale)
    g = n // kh
    acc = acc_dtype(q.dtype)
    qr = q.reshape(b, t, kh, g, h).transpose(0, 2, 3, 1, 4).reshape(b, kh, g * t, h)
    scores = jnp.einsum("bkqh,bksh->bkqs", qr, k.transpose(0, 2, 1, 3), preferred_element_type=acc) * scale
    if bias is not None:
        scores = scores + bias.astype(acc).reshape(bias.shape[0], kh, g * t, s)
    rows_mask = jnp.broadcast_to(mask[:, :, None], (b, 1, g, t, s)).reshape(b, 1, g * t, s)
    scores = jnp.where(rows_mask, scores, NEG_INF)
    # softmax; the max shift does not change the value, so no gradient flows through it
    e = jnp.exp(scores - jax.lax.stop_gradient(scores.max(axis=-1, keepdims=True)))
    probs = (e / e.sum(axis=-1, keepdims=True)).astype(v.dtype)
    out = jnp.einsum("bkqs,bksh->bkqh", probs, v.transpose(0, 2, 1, 3))
    return out.reshape(b, kh, g, t, h).transpose(0, 3, 1, 2, 4).reshape(b, t, n, h)


def rope_cos_sin(positions: jax.Array, inv_freq: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """cos/sin tables [B, T, head_dim] for the rotate-half RoPE convention of HF Llama.

    Always float32, as transformers computes them (autocast off, ``.float()``), whatever the
    model dtype.
    """
    freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq, jnp.float32)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x: [B, T, N, H]. ``x * cos + rotate_half(x) * sin`` (first half / second half pairing)."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos = cos[:, :, None, :].astype(x.dtype)
    sin = sin[:, :, None, :].astype(x.dtype)
    return x * cos + rotated * sin


def init_std(fan_in: int, factor: float = 1.0) -> float:
    return factor / math.sqrt(fan_in)
