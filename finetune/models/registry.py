"""The model-family registry: the one place that maps names and HF configs to families.

Lookups:

- :func:`family_for_hf_config` (an HF ``config.json`` dict -> its family, by
  ``architectures[0]`` or else ``model_type``) and :func:`config_from_hf` (-> our config);
- :func:`get_family` (a family name) and :func:`family_of` (a config: its ``family`` field);
- :func:`get_layout` (a training ``kind``: "decoder", "t5" -> :class:`Layout`).

The built-in families (``finetune/models/llama``, ``gpt2``, ``t5``) are registered here, once,
when :mod:`finetune.models` is imported. Another family registers itself with
:func:`register_family` (see "Adding a model family" in ``docs/finetune.md``); from then on
import, export, training and the CLI's architecture check handle it like a built-in one.
"""

from __future__ import annotations

from typing import Any, Mapping

from rai_audit.errors import UserError

from finetune.models.configs import ModelConfig, check_options
from finetune.models.family import Layout, ModelFamily
from finetune.models.gpt2 import FAMILY as GPT2_FAMILY
from finetune.models.llama import FAMILY as LLAMA_FAMILY
from finetune.models.t5 import FAMILY as T5_FAMILY

RUNTIME_OPTIONS = ("dtype", "remat", "attention_impl")

_FAMILIES: dict[str, ModelFamily] = {}  # in registration order: the order HF configs are matched in


def register_family(family: ModelFamily) -> ModelFamily:
    """Add ``family``; returns it. Its name, architectures, model types and layout name must not
    clash with a registered family's (a layout may be shared: the same :class:`Layout` object)."""
    if not isinstance(family, ModelFamily):
        raise TypeError(f"register_family expects a ModelFamily, got {type(family).__name__}")
    if family.name in _FAMILIES:
        raise ValueError(f"model family {family.name!r} is already registered")
    for other in _FAMILIES.values():
        clash = (family.architectures & other.architectures) | (family.model_types & other.model_types)
        if clash:
            raise ValueError(f"model family {family.name!r} claims {sorted(clash)}, already handled by {other.name!r}")
        if other.layout.name == family.layout.name and other.layout is not family.layout:
            raise ValueError(f"layout name {family.layout.name!r} is taken by another layout ({other.name!r})")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> ModelFamily:
    """Remove a registered family (tests, plugins that replace one); returns it."""
    try:
        return _FAMILIES.pop(name)
    except KeyError:
        raise ValueError(f"unknown model family {name!r}") from None


def families() -> tuple[ModelFamily, ...]:
    """The registered families, in registration order."""
    return tuple(_FAMILIES.values())


def get_family(name: str) -> ModelFamily:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r} (registered: {', '.join(_FAMILIES)})") from None


def family_of(cfg: Any) -> ModelFamily:
    """The family of a model config (its ``family`` field)."""
    return get_family(cfg.family)


def get_layout(kind: str | Layout) -> Layout:
    """The layout named ``kind`` (the training code's "decoder" / "t5"), from the registered families."""
    if isinstance(kind, Layout):
        return kind
    for fam in _FAMILIES.values():
        if fam.layout.name == kind:
            return fam.layout
    names = sorted({f.layout.name for f in _FAMILIES.values()})
    raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(names)})")


def supported_text() -> str:
    return ", ".join(f.supported for f in _FAMILIES.values())


def family_for_hf_config(hf_config: Mapping[str, Any]) -> ModelFamily:
    """The family that reads this HF ``config.json`` dict; :class:`UserError` naming the
    architecture and the supported ones if none does."""
    if not isinstance(hf_config, Mapping):
        raise UserError(f"Expected a config.json dict, got {type(hf_config).__name__}.")
    archs = list(hf_config.get("architectures") or [])
    model_type = hf_config.get("model_type")
    arch = archs[0] if archs else None
    for fam in _FAMILIES.values():
        if fam.handles(arch, model_type):
            return fam
    what = arch or model_type or "an unnamed architecture"
    raise UserError(
        f"The finetune stage does not support {what} (model_type={model_type!r}). Supported: "
        f"{supported_text()}. Pick a supported base model in the finetune config."
    )


def config_from_hf(hf_config: Mapping[str, Any], **options: Any) -> ModelConfig:
    """Build our config from an HF ``config.json`` dict.

    ``options`` are the runtime options of :class:`~finetune.models.configs.BaseModelConfig`
    (dtype, remat, attention_impl; None = the default). Raises :class:`UserError` for an
    architecture no registered family reads, or settings its family does not implement.
    """
    if not isinstance(hf_config, Mapping):
        raise UserError(f"Expected a config.json dict, got {type(hf_config).__name__}.")
    opts = {k: v for k, v in options.items() if v is not None}
    unknown = set(opts) - set(RUNTIME_OPTIONS)
    if unknown:
        raise TypeError(f"unknown model options: {sorted(unknown)}")
    fam = family_for_hf_config(hf_config)
    archs = list(hf_config.get("architectures") or [])
    arch = archs[0] if archs else None
    cfg = fam.config_from_hf(hf_config, arch or str(hf_config.get("model_type")), opts)
    check_options(cfg)
    return cfg


for _builtin in (LLAMA_FAMILY, GPT2_FAMILY, T5_FAMILY):
    register_family(_builtin)
del _builtin
