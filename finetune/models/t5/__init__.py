"""The T5 family: T5 v1.1 / Flan-T5 (gated GELU, untied head) and original T5 (ReLU, tied, scaled).

``config.py`` (:class:`T5ModelConfig` from HF, and how the tie flag is written back),
``model.py`` (:class:`T5`), ``params.py`` (the HF <-> NNX table). Trained with the
encoder-decoder layout. Registered by :mod:`finetune.models.registry`.
"""

from __future__ import annotations

from finetune.models.family import ENCODER_DECODER, ModelFamily
from finetune.models.t5.config import T5ModelConfig, export_hf_config, from_hf
from finetune.models.t5.model import T5
from finetune.models.t5.params import mapping

FAMILY = ModelFamily(
    name="t5",
    supported="T5/Flan-T5 (T5ForConditionalGeneration)",
    architectures=frozenset({"T5ForConditionalGeneration"}),
    model_types=frozenset({"t5"}),
    config_from_hf=from_hf,
    model=T5,
    param_mapping=mapping,
    layout=ENCODER_DECODER,
    export_hf_config=export_hf_config,
)

__all__ = ["FAMILY", "T5", "T5ModelConfig"]
