"""NNX models of the finetune stage and the contract the training code calls.

Families: Llama / SmolLM2 / Mistral / Qwen2 (:class:`~finetune.models.decoder.Decoder`), GPT-2
(:class:`~finetune.models.gpt2.GPT2`), T5 v1.1 / Flan-T5 / T5 (:class:`~finetune.models.t5.T5`).
Build one with :func:`from_hf_config`, or load real weights with
:func:`finetune.checkpoint_io.hf_import.load_hf_model`.

Call contract
-------------
Decoders (``cfg.family in ("llama", "gpt2")``)::

    logits = model(input_ids, *, positions, segment_ids, deterministic=True, dropout_rng=None)

- ``input_ids``, ``positions``, ``segment_ids``: int32 ``[B, T]``. ``positions`` restart at 0
  for each packed example; ``segment_ids`` number the examples of a row 1, 2, ... and 0 marks
  padding. Attention is causal AND restricted to equal segment ids, so a packed row computes
  exactly what separate unpacked rows would. Both default to "one example per row, no padding".
- returns float32 logits ``[B, T, V]``.
- ``model.hidden_states(...)`` (same arguments) returns the final-normed ``[B, T, D]``,
  ``model.logits_from_hidden(h)`` applies the LM head, and ``model.head_operands(h)`` returns
  ``(x, table)`` with logits ``= x @ table.T``: the trainer's fused loss
  (:mod:`finetune.head_loss`) uses these two and never builds differentiable logits.

T5 (``cfg.family == "t5"``)::

    logits = model(encoder_input_ids, decoder_input_ids, *, encoder_segment_ids,
                   decoder_segment_ids, encoder_positions, decoder_positions,
                   deterministic=True, dropout_rng=None)

- encoder self-attention: same segment; decoder self-attention: causal and same segment;
  cross-attention: decoder segment k sees encoder segment k only. Inputs and targets are
  packed separately but with the same segment numbering per row.
- ``decoder_input_ids`` are the targets shifted right inside each segment, starting with
  ``cfg.decoder_start_token_id`` (the training code builds them).
- returns float32 logits ``[B, T_dec, V]``. Also ``model.encode(...)``,
  ``model.decode_hidden(...)``, ``model.hidden_states(...)`` (same arguments as the call: the
  decoder's final hidden states), ``model.logits_from_hidden(h)`` and ``model.head_operands(h)``.

Dropout: with ``deterministic=False`` and a config dropout rate > 0, each residual branch is
dropped with a key derived from ``dropout_rng`` (a ``jax.random`` key; no RNG state lives in
the model, so ``nnx.state(model)`` holds only ``nnx.Param`` s).

Precision: parameters are float32 ``nnx.Param`` s; ``cfg.dtype="bfloat16"`` casts activations
and matmul inputs to bfloat16 (norms, softmax and logits stay float32). Change it with
``cfg.with_options(dtype="bfloat16")`` before building, or pass ``dtype=`` to the factory.

Sharding: each parameter has logical axis names (``vocab``, ``embed``, ``heads``, ``kv_heads``,
``qkv``, ``mlp``, ``positions``, ``buckets``, ``heads_bias``, ``norm``) in its ``out_sharding``
metadata. :func:`finetune.models.axes.partition_specs` maps them through a rule table (default
``{"embed": "fsdp"}``: shard every weight's d_model dimension over the ``fsdp`` mesh axis)::

    specs = partition_specs(nnx.state(model), {"embed": "fsdp"}, mesh_sizes=dict(mesh.shape))
    state = jax.device_put(nnx.state(model), jax.tree.map(lambda s: NamedSharding(mesh, s), specs))

Adding a family: a config dataclass and a branch in ``configs.config_from_hf``; one model
file whose parameter names mirror HF's; one ``finetune/checkpoint_io/mapping_<family>.py``
listing every HF tensor name with its NNX path (and whether to transpose); a branch in
``build_model`` and ``checkpoint_io.mapping_for``; a parity case in
``tests/test_finetune_parity.py``. Import and export then work without further code.
"""

from __future__ import annotations

from typing import Any, Mapping

from flax import nnx

from finetune.models.axes import FSDP_RULES, partition_specs
from finetune.models.configs import (
    DecoderConfig,
    GPT2ModelConfig,
    ModelConfig,
    T5ModelConfig,
    config_from_hf,
)

__all__ = [
    "DecoderConfig",
    "FSDP_RULES",
    "GPT2ModelConfig",
    "ModelConfig",
    "T5ModelConfig",
    "build_model",
    "config_from_hf",
    "from_hf_config",
    "is_encoder_decoder",
    "partition_specs",
]


def build_model(cfg: ModelConfig, *, seed: int = 0) -> nnx.Module:
    """A randomly initialised model for ``cfg`` (float32 params)."""
    rngs = nnx.Rngs(params=seed)
    if cfg.family == "llama":
        from finetune.models.decoder import Decoder

        return Decoder(cfg, rngs=rngs)
    if cfg.family == "gpt2":
        from finetune.models.gpt2 import GPT2

        return GPT2(cfg, rngs=rngs)
    if cfg.family == "t5":
        from finetune.models.t5 import T5

        return T5(cfg, rngs=rngs)
    raise ValueError(f"unknown family {cfg.family!r}")


def from_hf_config(hf_config: Mapping[str, Any], *, seed: int = 0, dtype: str | None = None,
                   remat: bool | None = None, attention_impl: str | None = None) -> tuple[ModelConfig, nnx.Module]:
    """(config, randomly initialised model) from an HF ``config.json`` dict.

    Raises :class:`rai_audit.errors.UserError` for an unsupported architecture.
    """
    cfg = config_from_hf(hf_config, dtype=dtype, remat=remat, attention_impl=attention_impl)
    return cfg, build_model(cfg, seed=seed)


def is_encoder_decoder(cfg: ModelConfig) -> bool:
    return cfg.family == "t5"
