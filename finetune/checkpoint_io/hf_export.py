"""Write an NNX model as a Hugging Face checkpoint directory that transformers loads.

Output (what ``save_pretrained`` would write, so ``AutoModelForCausalLM`` /
``AutoModelForSeq2SeqLM.from_pretrained(out_dir)`` and the probe runner's transformers backend
load it unchanged):

- ``model.safetensors`` (or ``model-0000i-of-0000n.safetensors`` shards plus
  ``model.safetensors.index.json`` above ``max_shard_bytes``), tensors named and laid out by the
  family's ``params.py`` table, tied copies left out as transformers does;
- ``config.json``: the source config with ``architectures``, ``dtype`` and the tie flags set
  from our config;
- tokenizer files: from ``tokenizer`` (a tokenizer object or a directory) or else from the
  directory / GGUF file the model was imported from;
- ``generation_config.json``: given, or copied from the source, or built from the config's
  bos/eos/pad/decoder-start token ids.

Multi-host: parameters sharded over several processes are gathered; only process 0 writes.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from finetune.checkpoint_io import mapping_for
from finetune.models.configs import ModelConfig
from finetune.models.registry import family_of
from rai_audit.errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "spiece.model", "tokenizer.model", "added_tokens.json", "chat_template.jinja",
                   "chat_template.json")
SAVE_DTYPES = ("float32", "bfloat16", "float16")


def _gather(value: jax.Array) -> np.ndarray:
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        from jax.experimental import multihost_utils

        value = multihost_utils.process_allgather(value, tiled=True)
    return np.array(jax.device_get(value), dtype=np.float32)  # a writable copy (torch.from_numpy)


def hf_tensors(model: nnx.Module, cfg: ModelConfig | None = None) -> dict[str, np.ndarray]:
    """HF name -> float32 array for every tensor the mapping writes."""
    cfg = cfg or model.cfg
    m = mapping_for(cfg)
    flat = {tuple(p): v for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    out = {}
    for r in m.rules:
        arr = _gather(flat[r.path].get_value())
        out[r.hf_key] = np.ascontiguousarray(arr.T if r.transpose else arr)
    return out


def hf_config_dict(cfg: ModelConfig, save_dtype: str = "float32") -> dict[str, Any]:
    """The ``config.json`` contents for ``cfg``."""
    family = family_of(cfg)
    d = {k: v for k, v in dict(cfg.hf_config).items() if not k.startswith("_")}
    d.pop("transformers_version", None)
    d["architectures"] = [family.param_mapping(cfg).architecture]
    d["dtype"] = save_dtype
    d["torch_dtype"] = save_dtype
    family.export_hf_config(cfg, d)  # the tie flag, as the family's transformers class reads it
    d.pop("use_cache", None)
    return d


def _write_weights(tensors: dict[str, np.ndarray], out: Path, save_dtype: str, max_shard_bytes: int) -> None:
    import torch
    from safetensors.torch import save_file

    tdtype = getattr(torch, save_dtype)
    torch_tensors = {k: torch.from_numpy(v).to(tdtype).contiguous() for k, v in tensors.items()}
    shards: list[dict[str, Any]] = [{}]
    size = 0
    for k, t in torch_tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = t
        size += nbytes
    meta = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], str(out / "model.safetensors"), metadata=meta)
        return
    weight_map, n = {}, len(shards)
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{n:05d}.safetensors"
        save_file(shard, str(out / name), metadata=meta)
        weight_map.update({k: name for k in shard})
    total = sum(t.numel() * t.element_size() for t in torch_tensors.values())
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))


def _write_tokenizer(cfg: ModelConfig, tokenizer: Any, out: Path) -> bool:
    if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(out))
        return True
    src = Path(tokenizer) if tokenizer is not None else (Path(cfg.source) if cfg.source else None)
    if src is None:
        return False
    if tokenizer is None and cfg.gguf_file:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(src), gguf_file=cfg.gguf_file).save_pretrained(str(out))
        return True
    copied = False
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
            copied = True
    if tokenizer is not None and not copied:
        raise UserError(f"No tokenizer files in {src}: expected one of {', '.join(TOKENIZER_FILES)}.")
    return copied


def _generation_config(cfg: ModelConfig, given: Any, out: Path) -> None:
    if given is not None:
        d = given.to_dict() if hasattr(given, "to_dict") else dict(given)
    elif cfg.source and (Path(cfg.source) / "generation_config.json").is_file() and not cfg.gguf_file:
        shutil.copy2(Path(cfg.source) / "generation_config.json", out / "generation_config.json")
        return
    else:
        keys = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
        d = {k: cfg.hf_config[k] for k in keys if cfg.hf_config.get(k) is not None}
    (out / "generation_config.json").write_text(json.dumps(d, indent=2, default=str))


def export_hf(model: nnx.Module, out_dir: str | Path, *, tokenizer: Any = None, generation_config: Any = None,
              save_dtype: str = "float32", max_shard_bytes: int = 2 * 1024**3) -> Path:
    """Write ``model`` (with its ``model.cfg``) as an HF checkpoint into ``out_dir``; returns it.

    ``tokenizer``: a transformers tokenizer, a directory holding tokenizer files, or None (take
    them from where the model was imported; a warning if there are none, e.g. a random model).
    ``save_dtype``: float32 (default; exact round trip), bfloat16 or float16.
    """
    if save_dtype not in SAVE_DTYPES:
        raise UserError(f"Unsupported export dtype {save_dtype!r}: use one of {', '.join(SAVE_DTYPES)}.")
    cfg: ModelConfig = model.cfg
    tensors = hf_tensors(model, cfg)  # every process takes part in the gather
    out = Path(out_dir)
    if jax.process_index() != 0:
        return out
    out.mkdir(parents=True, exist_ok=True)
    _write_weights(tensors, out, save_dtype, max_shard_bytes)
    (out / "config.json").write_text(json.dumps(hf_config_dict(cfg, save_dtype), indent=2, default=str))
    if not _write_tokenizer(cfg, tokenizer, out):
        warnings.warn(f"export_hf: no tokenizer given or found for {out}; the checkpoint has no tokenizer files.",
                      stacklevel=2)
    _generation_config(cfg, generation_config, out)
    return out


def export_model(model: nnx.Module, out_dir: str | Path, *, tokenizer: Any = None, **kw: Any) -> Path:
    """Alias of :func:`export_hf` (the name the training code calls)."""
    return export_hf(model, out_dir, tokenizer=tokenizer, **kw)
