"""Config of the T5 family (``T5ForConditionalGeneration``: T5 v1.1 / Flan-T5 gated-GELU,
original T5 ReLU) from HF, and the T5 way of writing the tie flag back into ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rai_audit.errors import UserError

from finetune.models.configs import BaseModelConfig, required


@dataclass(frozen=True)
class T5ModelConfig(BaseModelConfig):
    """T5 encoder-decoder: relative position buckets, RMSNorm without bias, (gated) GELU/ReLU MLP.

    ``tie_word_embeddings`` here means "the LM head is the shared embedding", and then (original
    T5) the decoder output is scaled by d_model**-0.5 before it (``scale_decoder_outputs``).
    T5 v1.1 / Flan-T5 have an untied head and no scaling.
    """

    family: str = "t5"
    vocab_size: int = 0
    d_model: int = 0
    d_kv: int = 0
    d_ff: int = 0
    num_layers: int = 0
    num_decoder_layers: int = 0
    num_heads: int = 0
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_eps: float = 1e-6
    gated: bool = True
    activation: str = "gelu_new"
    tie_word_embeddings: bool = False
    scale_decoder_outputs: bool = False
    dropout_rate: float = 0.0
    initializer_factor: float = 1.0
    decoder_start_token_id: int = 0


def from_hf(d: Mapping[str, Any], arch: str, opts: dict[str, Any]) -> T5ModelConfig:
    """:class:`T5ModelConfig` from an HF ``config.json`` dict ``d``; ``arch`` names the model in messages,
    ``opts`` are the runtime options. :class:`UserError` for settings this family does not implement."""
    arch = "T5ForConditionalGeneration"  # messages name the HF class even when config.json has only model_type
    proj = str(d.get("feed_forward_proj", "relu"))
    parts = proj.split("-")
    gated = parts[0] == "gated"
    act = parts[-1]
    if proj == "gated-gelu":
        act = "gelu_new"
    if len(parts) > 2 or (len(parts) == 2 and not gated) or act not in ("relu", "gelu_new", "gelu", "silu"):
        raise UserError(f"T5 feed_forward_proj={proj!r} is not supported (use relu, gated-gelu, gated-silu).")
    # transformers 5 writes tie_word_embeddings=true for every T5 and records the original
    # meaning in scale_decoder_outputs; older configs (the hub's Flan-T5) say
    # tie_word_embeddings=false for T5 v1.1. Either way: v1.1 = untied head, no scaling.
    if "scale_decoder_outputs" in d:
        scale = bool(d["scale_decoder_outputs"])
    else:
        scale = d.get("tie_word_embeddings", True) is not False
    num_layers = int(required(d, "num_layers", arch))
    return T5ModelConfig(
        vocab_size=int(required(d, "vocab_size", arch)),
        d_model=int(required(d, "d_model", arch)),
        d_kv=int(required(d, "d_kv", arch)),
        d_ff=int(required(d, "d_ff", arch)),
        num_layers=num_layers,
        num_decoder_layers=int(d.get("num_decoder_layers") or num_layers),
        num_heads=int(required(d, "num_heads", arch)),
        relative_attention_num_buckets=int(d.get("relative_attention_num_buckets", 32)),
        relative_attention_max_distance=int(d.get("relative_attention_max_distance", 128)),
        layer_norm_eps=float(d.get("layer_norm_epsilon", 1e-6)),
        gated=gated,
        activation=act,
        tie_word_embeddings=scale,
        scale_decoder_outputs=scale,
        dropout_rate=float(d.get("dropout_rate", 0.0) or 0.0),
        initializer_factor=float(d.get("initializer_factor", 1.0)),
        decoder_start_token_id=int(d.get("decoder_start_token_id") or 0),
        hf_config=dict(d),
        **opts,
    )


def export_hf_config(cfg: T5ModelConfig, d: dict[str, Any]) -> None:
    """Set the tie flag of an exported ``config.json`` (``d``, in place).

    The old-style flag: transformers 4 and 5 both read "false" as T5 v1.1 (untied, no scaling).
    """
    d["tie_word_embeddings"] = bool(cfg.scale_decoder_outputs)
    d.pop("scale_decoder_outputs", None)
