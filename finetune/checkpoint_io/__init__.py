"""Hugging Face checkpoints in and out of the NNX models.

- :func:`finetune.checkpoint_io.hf_import.load_hf_model`: a local HF directory (safetensors,
  sharded or not), a ``.gguf`` file (through transformers), or a hub id -> (config, model).
- :func:`finetune.checkpoint_io.hf_export.export_hf`: model -> a directory that
  ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM.from_pretrained`` loads.

Both are family-agnostic: each family's ``finetune/models/<family>/params.py`` holds its
HF-name <-> NNX-path table (see :mod:`finetune.models.param_mapping`), reached through the
family registry (:mod:`finetune.models.registry`).
"""

from __future__ import annotations

from finetune.models.param_mapping import Mapping, ParamRule
from finetune.models.registry import family_of


def mapping_for(cfg) -> Mapping:
    """The parameter mapping of ``cfg``'s family."""
    return family_of(cfg).param_mapping(cfg)


def normalize_key(cfg, key: str) -> str:
    """Family-specific renames of old checkpoint names (GPT-2 without ``transformer.``)."""
    return family_of(cfg).normalize_key(key)


__all__ = ["Mapping", "ParamRule", "mapping_for", "normalize_key"]
