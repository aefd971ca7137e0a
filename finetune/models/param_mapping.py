"""The shape of a family's parameter mapping (``finetune/models/<family>/params.py``).

A mapping is a table of :class:`ParamRule` s, one per HF tensor name, built from the model
config (the number of layers and the optional biases decide which names exist). The importer
and the exporter both read the same table, so a checkpoint round-trips by construction.

Conventions:

- ``hf_key``: the tensor name in HF ``model.safetensors`` (as ``save_pretrained`` writes it).
- ``path``: the NNX parameter path, as ``nnx.to_flat_state(nnx.state(model))`` lists it.
- ``transpose``: torch ``nn.Linear.weight`` is ``[out, in]``, our kernels are ``[in, out]``.
  Embedding tables, norm scales, biases and GPT-2's ``Conv1D`` weights are stored as is.
- ``tied``: HF names that are copies of another tensor when weights are tied (e.g.
  ``lm_head.weight`` -> ``model.embed_tokens.weight``). They may or may not be present in a
  checkpoint; when present they must equal their source, unless the mapping lists them in
  ``untie_if_different`` (then the importer unties the head, as transformers does).
- ``fallbacks``: HF names that, when missing, are read from another name.
- ``ignored``: regular expressions for non-parameter buffers some checkpoints carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ParamRule:
    hf_key: str
    path: tuple[str | int, ...]
    transpose: bool = False


@dataclass(frozen=True)
class Mapping:
    rules: list[ParamRule]
    tied: dict[str, str] = field(default_factory=dict)
    untie_if_different: frozenset[str] = frozenset()
    fallbacks: dict[str, str] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    architecture: str = ""
    auto_class: str = "AutoModelForCausalLM"


def dense(hf_prefix: str, path: tuple, *, bias: bool, transpose: bool = True) -> list[ParamRule]:
    """Rules for an HF linear layer ``{prefix}.weight`` (+ ``.bias``) -> our ``Dense``."""
    out = [ParamRule(f"{hf_prefix}.weight", path + ("kernel",), transpose)]
    if bias:
        out.append(ParamRule(f"{hf_prefix}.bias", path + ("bias",)))
    return out
