"""Config of the GPT-2 family (``GPT2LMHeadModel``) from HF."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rai_audit.errors import UserError

from finetune.models.configs import BaseModelConfig, required


@dataclass(frozen=True)
class GPT2ModelConfig(BaseModelConfig):
    """GPT-2: learned positions, pre-LayerNorm, GELU MLP, fused qkv (Conv1D) weights."""

    family: str = "gpt2"
    vocab_size: int = 0
    hidden_size: int = 0
    intermediate_size: int = 0
    num_layers: int = 0
    num_heads: int = 0
    max_position_embeddings: int = 1024
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_new"
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    tie_word_embeddings: bool = True
    dropout_rate: float = 0.0
    initializer_range: float = 0.02

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def from_hf(d: Mapping[str, Any], arch: str, opts: dict[str, Any]) -> GPT2ModelConfig:
    """:class:`GPT2ModelConfig` from an HF ``config.json`` dict ``d``; ``arch`` names the model in messages,
    ``opts`` are the runtime options. :class:`UserError` for settings this family does not implement."""
    arch = "GPT2LMHeadModel"  # messages name the HF class even when config.json has only model_type
    hidden = int(d.get("n_embd") or required(d, "hidden_size", arch))
    act = d.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu", "relu", "silu"):
        raise UserError(f"GPT-2 activation_function={act!r} is not supported.")
    if d.get("add_cross_attention"):
        raise UserError("GPT-2 with add_cross_attention=true is not supported by the finetune stage.")
    return GPT2ModelConfig(
        vocab_size=int(required(d, "vocab_size", arch)),
        hidden_size=hidden,
        intermediate_size=int(d.get("n_inner") or 4 * hidden),
        num_layers=int(d.get("n_layer") or required(d, "num_hidden_layers", arch)),
        num_heads=int(d.get("n_head") or required(d, "num_attention_heads", arch)),
        max_position_embeddings=int(d.get("n_positions") or d.get("max_position_embeddings") or 1024),
        layer_norm_eps=float(d.get("layer_norm_epsilon", 1e-5)),
        activation=act,
        scale_attn_weights=bool(d.get("scale_attn_weights", True)),
        scale_attn_by_inverse_layer_idx=bool(d.get("scale_attn_by_inverse_layer_idx", False)),
        tie_word_embeddings=bool(d.get("tie_word_embeddings", True)),
        dropout_rate=float(d.get("resid_pdrop", 0.0) or 0.0),
        initializer_range=float(d.get("initializer_range", 0.02)),
        hf_config=dict(d),
        **opts,
    )
