"""What every family's model config shares: runtime options, validation, ``config.json`` helpers.

Why our own dataclasses instead of the transformers config objects: the NNX modules keep their
config as a static attribute (part of the graph definition), so it must be immutable and
hashable, hold only what the forward pass needs, and be free of torch. Each config still
carries the original HF dict (``hf_config``, excluded from hashing) so the exporter can write a
``config.json`` that transformers loads back into the same architecture.

Each family's own config dataclass subclasses :class:`BaseModelConfig` and lives in its folder
(``finetune/models/<family>/config.py``) with the function that reads it from an HF
``config.json`` dict; :func:`finetune.models.registry.config_from_hf` picks the family.
Built-in families (``family`` field): ``"llama"`` (Llama, SmolLM2, Mistral without sliding
window, Qwen2), ``"gpt2"``, ``"t5"`` (T5 v1.1 / Flan-T5, original T5).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from rai_audit.errors import UserError

COMPUTE_DTYPES = ("float32", "bfloat16", "float64")  # float64: exactness tests only (needs jax x64)
ATTENTION_IMPLS = ("einsum", "dot_product_attention")


@dataclass(frozen=True)
class BaseModelConfig:
    """Options shared by every family; not part of the HF config.

    dtype: compute dtype of activations and matmuls ("float32" or "bfloat16"). Parameters stay
        float32 (the optimizer state follows them); logits are returned in float32. ("float64"
        exists for exactness checks under ``jax.enable_x64``; params must be cast by the caller.)
    remat: recompute each block in the backward pass (``nnx.remat``) to save activation memory.
    attention_impl: "einsum" (our masked softmax; exact; default) or "dot_product_attention"
        (``jax.nn.dot_product_attention``: lets XLA/cuDNN pick a fused kernel on GPU).
    """

    dtype: str = "float32"
    remat: bool = False
    attention_impl: str = "einsum"
    hf_config: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    # where the weights came from (a directory, or the directory of ``gguf_file``); the exporter
    # copies tokenizer and generation config from there unless given others
    source: str | None = field(default=None, compare=False, hash=False)
    gguf_file: str | None = field(default=None, compare=False, hash=False)

    def with_options(self, **kw: Any):
        """A copy with fields changed (runtime options: dtype, remat, attention_impl)."""
        out = dataclasses.replace(self, **kw)
        check_options(out)
        return out


ModelConfig = BaseModelConfig  # the type of any registered family's config


def check_options(cfg: BaseModelConfig) -> None:
    if cfg.dtype not in COMPUTE_DTYPES:
        raise UserError(f"Unsupported compute dtype {cfg.dtype!r}: use one of {', '.join(COMPUTE_DTYPES)}.")
    if cfg.attention_impl not in ATTENTION_IMPLS:
        raise UserError(
            f"Unsupported attention_impl {cfg.attention_impl!r}: use one of {', '.join(ATTENTION_IMPLS)}."
        )


def required(d: Mapping[str, Any], key: str, arch: str) -> Any:
    """``d[key]``, or a :class:`UserError` naming the incomplete ``config.json`` of ``arch``."""
    if d.get(key) is None:
        raise UserError(
            f"The {arch} config.json has no {key!r}; the checkpoint's config is incomplete. "
            "Re-download the model or fix its config.json."
        )
    return d[key]
