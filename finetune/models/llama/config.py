"""Config of the Llama family (Llama, SmolLM2, Mistral without sliding window, Qwen2) from HF.

One family, not three: Mistral without a sliding window is a Llama, and Qwen2 is a Llama with
biases on q/k/v (``qkv_bias``). RoPE types ``default``, ``linear``, ``llama3``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from rai_audit.errors import UserError

from finetune.models.configs import BaseModelConfig, required


@dataclass(frozen=True)
class DecoderConfig(BaseModelConfig):
    """Llama-style decoder: RoPE, RMSNorm, SwiGLU MLP, grouped-query attention."""

    family: str = "llama"
    vocab_size: int = 0
    hidden_size: int = 0
    intermediate_size: int = 0
    num_layers: int = 0
    num_heads: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_type: str = "default"
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_positions: int = 8192
    max_position_embeddings: int = 2048
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    tie_word_embeddings: bool = False
    hidden_act: str = "silu"
    dropout_rate: float = 0.0
    initializer_range: float = 0.02

    def rope_inv_freq(self) -> np.ndarray:
        """Inverse frequencies [head_dim // 2] (float32), as transformers computes them."""
        dim = self.head_dim
        inv = 1.0 / (self.rope_theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim))
        inv = inv.astype(np.float32)
        if self.rope_type == "linear":
            inv = inv / np.float32(self.rope_factor)
        elif self.rope_type == "llama3":
            factor, lo, hi = self.rope_factor, self.rope_low_freq_factor, self.rope_high_freq_factor
            old = self.rope_original_max_positions
            low_wl, high_wl = old / lo, old / hi
            wavelen = 2 * math.pi / inv
            scaled = np.where(wavelen > low_wl, inv / factor, inv)
            smooth = (old / wavelen - lo) / (hi - lo)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
            inv = np.where(medium, smoothed, scaled).astype(np.float32)
        return inv


def _rope(d: Mapping[str, Any]) -> dict[str, Any]:
    """RoPE settings from either transformers-5 ``rope_parameters`` or the older ``rope_theta`` /
    ``rope_scaling`` keys."""
    params = dict(d.get("rope_parameters") or {})
    legacy = d.get("rope_scaling") or {}
    if not params:
        params = dict(legacy)
        if "type" in params and "rope_type" not in params:
            params["rope_type"] = params.pop("type")
    theta = params.get("rope_theta", d.get("rope_theta", 10000.0))
    rope_type = params.get("rope_type", "default") or "default"
    if rope_type not in ("default", "linear", "llama3"):
        raise UserError(
            f"RoPE scaling type {rope_type!r} is not supported by the finetune stage (supported: "
            "default, linear, llama3). Pick a model without that rope scaling, or remove it from "
            "config.json if you only train on short sequences."
        )
    out = {"rope_theta": float(theta), "rope_type": rope_type}
    if rope_type in ("linear", "llama3"):
        out["rope_factor"] = float(params.get("factor", 1.0))
    if rope_type == "llama3":
        out["rope_low_freq_factor"] = float(params.get("low_freq_factor", 1.0))
        out["rope_high_freq_factor"] = float(params.get("high_freq_factor", 4.0))
        out["rope_original_max_positions"] = int(
            params.get("original_max_position_embeddings", d.get("max_position_embeddings", 8192))
        )
    if float(params.get("partial_rotary_factor", 1.0)) != 1.0:
        raise UserError("Partial rotary embeddings (partial_rotary_factor != 1) are not supported.")
    return out


def from_hf(d: Mapping[str, Any], arch: str, opts: dict[str, Any]) -> DecoderConfig:
    """:class:`DecoderConfig` from an HF ``config.json`` dict ``d``; ``arch`` names the model in messages,
    ``opts`` are the runtime options. :class:`UserError` for settings this family does not implement."""
    model_type = d.get("model_type", "llama")
    if d.get("use_sliding_window") or (model_type == "mistral" and d.get("sliding_window")):
        raise UserError(
            f"{arch} with sliding-window attention is not supported by the finetune stage; "
            "set use_sliding_window=false / sliding_window=null in config.json or pick another model."
        )
    act = d.get("hidden_act", "silu")
    if act != "silu":
        raise UserError(f"{arch} with hidden_act={act!r} is not supported (only 'silu', i.e. SwiGLU).")
    hidden = int(required(d, "hidden_size", arch))
    heads = int(required(d, "num_attention_heads", arch))
    is_qwen2 = model_type == "qwen2"
    attention_bias = bool(d.get("attention_bias", False))
    return DecoderConfig(
        vocab_size=int(required(d, "vocab_size", arch)),
        hidden_size=hidden,
        intermediate_size=int(required(d, "intermediate_size", arch)),
        num_layers=int(required(d, "num_hidden_layers", arch)),
        num_heads=heads,
        num_kv_heads=int(d.get("num_key_value_heads") or heads),
        head_dim=int(d.get("head_dim") or hidden // heads),
        rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
        max_position_embeddings=int(d.get("max_position_embeddings", 2048)),
        qkv_bias=True if is_qwen2 else attention_bias,
        o_bias=False if is_qwen2 else attention_bias,
        mlp_bias=bool(d.get("mlp_bias", False)),
        tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
        dropout_rate=float(d.get("attention_dropout", 0.0) or 0.0),
        initializer_range=float(d.get("initializer_range", 0.02)),
        hf_config=dict(d),
        **_rope(d),
        **opts,
    )
