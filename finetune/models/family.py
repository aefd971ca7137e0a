"""What a model family is: the :class:`ModelFamily` record and the :class:`Layout` it trains with.

A family is one folder ``finetune/models/<name>/`` (``config.py``: its config dataclass and
the reader of HF ``config.json``; ``model.py``: the NNX module; ``params.py``: the HF <-> NNX
parameter table) whose ``__init__.py`` builds one ``FAMILY = ModelFamily(...)``. The registry
(:mod:`finetune.models.registry`) registers the built-in ones once; everything else (import,
export, training, the CLI's architecture check) asks the registry for the family's object and
calls it, instead of testing the family's name.

A :class:`Layout` is what the training code needs to know about a model beyond its weights:
how packed rows are built and fed to it, and the default optimiser. Families share layouts:
every decoder-only family uses :data:`DECODER_ONLY`, T5 uses :data:`ENCODER_DECODER`. A
layout's ``name`` is the ``kind`` string of the training API (``PackedData.kind``,
``load_base_model()["kind"]``, ``Trainer(model, kind, ...)``).

This module imports no family, so family folders can import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

# --------------------------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------------------------


def _decoder_inputs(batch: Mapping[str, Any], extra: dict[str, Any]) -> tuple[tuple, dict]:
    return (batch["input_ids"],), dict(positions=batch["positions"], segment_ids=batch["segment_ids"], **extra)


def _encoder_decoder_inputs(batch: Mapping[str, Any], extra: dict[str, Any]) -> tuple[tuple, dict]:
    return (batch["encoder_input_ids"], batch["decoder_input_ids"]), dict(
        encoder_segment_ids=batch["encoder_segment_ids"], decoder_segment_ids=batch["decoder_segment_ids"],
        encoder_positions=batch["encoder_positions"], decoder_positions=batch["decoder_positions"], **extra)


def _pack_decoder(examples: Sequence[Any], tokenizer: Any, *, seq_len: int, target_len: int | None,
                  decoder_start_id: int) -> Any:
    from finetune.packing import pack_decoder  # data code; imported when packing, not with the models

    return pack_decoder(examples, tokenizer, seq_len)


def _pack_encoder_decoder(examples: Sequence[Any], tokenizer: Any, *, seq_len: int, target_len: int | None,
                          decoder_start_id: int) -> Any:
    from finetune.packing import pack_t5

    return pack_t5(examples, tokenizer, seq_len, target_len or max(seq_len // 2, 4), decoder_start_id=decoder_start_id)


@dataclass(frozen=True)
class Layout:
    """How packed rows reach a model, and the optimiser ``optimizer: auto`` picks for it.

    name: the training code's ``kind`` ("decoder", "t5").
    encoder_decoder: inputs and targets go to separate stacks (the model has a decoder start
        token, ``cfg.decoder_start_token_id``).
    default_optimizer: "adamw" (decoders: AdamW + cosine) or "adafactor" (T5X's Flan-T5
        recipe: Adafactor + constant).
    token_segments: the packed arrays whose non-zero entries count as tokens seen.
    model_inputs: ``(batch, extra) -> (args, kwargs)`` of the model call (and of
        ``hidden_states``) for a packed batch; ``extra`` holds ``deterministic`` /
        ``dropout_rng``.
    pack: ``(examples, tokenizer, *, seq_len, target_len, decoder_start_id) -> PackedData``.
    """

    name: str
    encoder_decoder: bool
    default_optimizer: str
    token_segments: tuple[str, ...]
    model_inputs: Callable[[Mapping[str, Any], dict[str, Any]], tuple[tuple, dict]] = field(repr=False)
    pack: Callable[..., Any] = field(repr=False)


DECODER_ONLY = Layout("decoder", encoder_decoder=False, default_optimizer="adamw", token_segments=("segment_ids",),
                      model_inputs=_decoder_inputs, pack=_pack_decoder)
# "t5": the kind string the training API has always used for encoder-decoder rows
ENCODER_DECODER = Layout("t5", encoder_decoder=True, default_optimizer="adafactor",
                         token_segments=("decoder_segment_ids", "encoder_segment_ids"),
                         model_inputs=_encoder_decoder_inputs, pack=_pack_encoder_decoder)


# --------------------------------------------------------------------------------------------
# families
# --------------------------------------------------------------------------------------------


def _same_key(key: str) -> str:
    return key


def _write_tie_flag(cfg: Any, d: dict[str, Any]) -> None:
    d["tie_word_embeddings"] = bool(cfg.tie_word_embeddings)


@dataclass(frozen=True)
class ModelFamily:
    """Everything the finetune stage knows about one model family.

    name: the ``family`` field of the family's config (``cfg.family``), unique.
    supported: how the "unsupported architecture" error lists it, e.g. "GPT-2 (GPT2LMHeadModel)".
    architectures: HF ``architectures[0]`` values it reads.
    model_types: HF ``model_type`` values it reads when ``config.json`` names no architecture.
    config_from_hf: ``(hf_config, arch, options) -> config``; ``arch`` names the model in
        messages, ``options`` are the runtime options (dtype, remat, attention_impl). Raises
        :class:`~rai_audit.errors.UserError` for settings the family does not implement.
    model: the NNX module class (or factory), called as ``model(cfg, rngs=rngs)``.
    param_mapping: ``config -> finetune.models.param_mapping.Mapping``: the HF name <-> NNX path
        table that both the importer and the exporter read.
    layout: how the training code feeds it (:data:`DECODER_ONLY` or :data:`ENCODER_DECODER`).
    normalize_key: renames legacy HF tensor names on import (GPT-2 without ``transformer.``).
    export_hf_config: ``(cfg, config_dict) -> None``: writes the tie flag (and any other
        family-specific key) into the exported ``config.json`` dict, in place.
    """

    name: str
    supported: str
    architectures: frozenset[str]
    model_types: frozenset[str]
    config_from_hf: Callable[[Mapping[str, Any], str, dict[str, Any]], Any] = field(repr=False)
    model: Callable[..., Any] = field(repr=False)
    param_mapping: Callable[[Any], Any] = field(repr=False)
    layout: Layout = DECODER_ONLY
    normalize_key: Callable[[str], str] = field(default=_same_key, repr=False)
    export_hf_config: Callable[[Any, dict[str, Any]], None] = field(default=_write_tie_flag, repr=False)

    def handles(self, arch: str | None, model_type: str | None) -> bool:
        """Whether an HF config with this ``architectures[0]`` (or, without one, ``model_type``) is ours."""
        return arch in self.architectures or (arch is None and model_type in self.model_types)
