"""The GPT-2 family (``GPT2LMHeadModel``).

``config.py`` (:class:`GPT2ModelConfig` from HF), ``model.py`` (:class:`GPT2`), ``params.py``
(the HF <-> NNX table, and the renames of the original OpenAI checkpoints' tensor names).
Registered by :mod:`finetune.models.registry`.
"""

from __future__ import annotations

from finetune.models.family import DECODER_ONLY, ModelFamily
from finetune.models.gpt2.config import GPT2ModelConfig, from_hf
from finetune.models.gpt2.model import GPT2
from finetune.models.gpt2.params import mapping, normalize_key

FAMILY = ModelFamily(
    name="gpt2",
    supported="GPT-2 (GPT2LMHeadModel)",
    architectures=frozenset({"GPT2LMHeadModel"}),
    model_types=frozenset({"gpt2"}),
    config_from_hf=from_hf,
    model=GPT2,
    param_mapping=mapping,
    layout=DECODER_ONLY,
    normalize_key=normalize_key,
)

__all__ = ["FAMILY", "GPT2", "GPT2ModelConfig"]
