"""The Llama family: Llama, SmolLM2, Mistral (no sliding window), Qwen2 (q/k/v biases).

``config.py`` (:class:`DecoderConfig` from HF), ``model.py`` (:class:`Decoder`), ``params.py``
(the HF <-> NNX table). Registered by :mod:`finetune.models.registry`.
"""

from __future__ import annotations

from finetune.models.family import DECODER_ONLY, ModelFamily
from finetune.models.llama.config import DecoderConfig, from_hf
from finetune.models.llama.model import Decoder
from finetune.models.llama.params import mapping

FAMILY = ModelFamily(
    name="llama",
    supported="Llama/SmolLM2/Mistral/Qwen2 (LlamaForCausalLM, Qwen2ForCausalLM)",
    architectures=frozenset({"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"}),
    model_types=frozenset({"llama", "mistral", "qwen2"}),
    config_from_hf=from_hf,
    model=Decoder,
    param_mapping=mapping,
    layout=DECODER_ONLY,
)

__all__ = ["FAMILY", "Decoder", "DecoderConfig"]
