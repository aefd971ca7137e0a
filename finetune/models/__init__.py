"""NNX models of the finetune stage and the contract the training code calls.

Families, one folder each (``config.py``, ``model.py``, ``params.py``; registered in
:mod:`finetune.models.registry`): Llama / SmolLM2 / Mistral / Qwen2
(:class:`~finetune.models.llama.model.Decoder`), GPT-2 (:class:`~finetune.models.gpt2.model.GPT2`),
T5 v1.1 / Flan-T5 / T5 (:class:`~finetune.models.t5.model.T5`). Build one with
:func:`from_hf_config`, or load real weights with
:func:`finetune.checkpoint_io.hf_import.load_hf_model`.

Call contract
-------------
Decoder-only families (layout ``DECODER_ONLY``, kind "decoder": Llama, GPT-2)::

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

Encoder-decoder families (layout ``ENCODER_DECODER``, kind "t5": T5)::

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

Adding a family: a folder ``finetune/models/<name>/`` with a config dataclass and its HF reader
(``config.py``), a model whose parameter names mirror HF's (``model.py``), the HF-name <-> NNX-path
table (``params.py``), and a ``ModelFamily`` in ``__init__.py`` given to
:func:`~finetune.models.registry.register_family`; a parity case in
``tests/test_finetune_parity.py``. Import, export and training then work without further code
(recipe: "Adding a model family" in ``docs/finetune.md``).
"""

from __future__ import annotations

from typing import Any, Mapping

from flax import nnx

from finetune.models.axes import FSDP_RULES, partition_specs
from finetune.models.configs import ModelConfig
from finetune.models.family import DECODER_ONLY, ENCODER_DECODER, Layout, ModelFamily
from finetune.models.gpt2 import GPT2ModelConfig
from finetune.models.llama import DecoderConfig
from finetune.models.registry import (
    config_from_hf,
    families,
    family_for_hf_config,
    family_of,
    get_family,
    get_layout,
    register_family,
    unregister_family,
)
from finetune.models.t5 import T5ModelConfig

__all__ = [
    "DECODER_ONLY",
    "DecoderConfig",
    "ENCODER_DECODER",
    "FSDP_RULES",
    "GPT2ModelConfig",
    "Layout",
    "ModelConfig",
    "ModelFamily",
    "T5ModelConfig",
    "build_model",
    "config_from_hf",
    "families",
    "family_for_hf_config",
    "family_of",
    "from_hf_config",
    "get_family",
    "get_layout",
    "is_encoder_decoder",
    "partition_specs",
    "register_family",
    "unregister_family",
]


def build_model(cfg: ModelConfig, *, seed: int = 0) -> nnx.Module:
    """A randomly initialised model for ``cfg`` (float32 params)."""
    return family_of(cfg).model(cfg, rngs=nnx.Rngs(params=seed))


def from_hf_config(hf_config: Mapping[str, Any], *, seed: int = 0, dtype: str | None = None,
                   remat: bool | None = None, attention_impl: str | None = None) -> tuple[ModelConfig, nnx.Module]:
    """(config, randomly initialised model) from an HF ``config.json`` dict.

    Raises :class:`rai_audit.errors.UserError` for an unsupported architecture.
    """
    cfg = config_from_hf(hf_config, dtype=dtype, remat=remat, attention_impl=attention_impl)
    return cfg, build_model(cfg, seed=seed)


def is_encoder_decoder(cfg: ModelConfig) -> bool:
    return family_of(cfg).layout.encoder_decoder
