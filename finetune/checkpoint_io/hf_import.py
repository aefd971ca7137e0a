"""Load Hugging Face checkpoints into the NNX models.

Sources, all ending in the same table-driven copy (:func:`import_tensors`):

- a local directory with ``config.json`` and ``model.safetensors`` (or sharded
  ``model-0000x-of-0000n.safetensors`` + ``model.safetensors.index.json``; ``pytorch_model.bin``
  as a last resort);
- a ``.gguf`` file (the embedded default model is SmolLM2-135M-Instruct Q4_1): read through its
  converted copy, the float32 safetensors directory that transformers' dequantisation makes on
  first use and that the probe runner shares (``rai_audit.models.default_model``), so a finetune
  reads the same tensors in under a second instead of re-parsing and dequantising the file
  (about 30 s for the 135M model: its metadata parse is pure Python and ran three times);
- a hub id ``org/name`` (downloads config, weights and tokenizer files; needs network).

The model is first built abstractly (``nnx.eval_shape``: no random init, no memory) and each
parameter is then filled from its HF tensor, so a 1B model costs one copy of its weights.
Every HF tensor must be used and every parameter filled: otherwise a :class:`ModelLoadError`
names the keys, because a silently half-loaded model would make the audit meaningless.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping as TMapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from finetune.checkpoint_io import mapping_for, normalize_key
from finetune.models import build_model, config_from_hf
from finetune.models.configs import ModelConfig
from finetune.models.registry import family_of
from rai_audit.errors import ModelLoadError

_HUB_PATTERNS = ["config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
                 "tokenizer*", "special_tokens_map.json", "vocab.json", "merges.txt", "spiece.model",
                 "added_tokens.json", "chat_template.*"]


class TensorSource:
    """Read-only name -> float32 numpy array view over a checkpoint, loading tensors lazily."""

    def __init__(self, keys: Iterable[str], getter: Callable[[str], np.ndarray]):
        self._keys = list(keys)
        self._get = getter

    def keys(self) -> list[str]:
        return list(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __getitem__(self, key: str) -> np.ndarray:
        return self._get(key)


def _to_numpy(t) -> np.ndarray:
    import torch

    return t.detach().to(torch.float32).cpu().numpy()


def tensors_from_torch_state(state: TMapping[str, Any]) -> TensorSource:
    return TensorSource(state.keys(), lambda k: _to_numpy(state[k]))


def tensors_from_safetensors(files: list[Path]) -> TensorSource:
    from safetensors import safe_open

    where: dict[str, Path] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as h:
                for k in h.keys():
                    where[k] = f
        except Exception as exc:  # corrupt / truncated file
            raise ModelLoadError(
                f"Cannot read weights file {f}: {exc}. The file is corrupt or incomplete; "
                "download the checkpoint again."
            ) from exc

    def get(key: str) -> np.ndarray:
        with safe_open(str(where[key]), framework="pt") as h:
            return _to_numpy(h.get_tensor(key))

    return TensorSource(where.keys(), get)


def _weight_files(d: Path) -> TensorSource:
    index = d / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted({d / f for f in weight_map.values()})
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ModelLoadError(f"{index} lists shards that are not there: {', '.join(missing)}. "
                                 "Download the complete checkpoint.")
        return tensors_from_safetensors(files)
    if (d / "model.safetensors").is_file():
        return tensors_from_safetensors([d / "model.safetensors"])
    shards = sorted(d.glob("*.safetensors"))
    if shards:
        return tensors_from_safetensors(shards)
    bins = sorted(d.glob("pytorch_model*.bin"))
    if bins:
        import torch

        state: dict[str, Any] = {}
        for b in bins:
            state.update(torch.load(b, map_location="cpu", weights_only=True))
        return tensors_from_torch_state(state)
    raise ModelLoadError(f"No weights found in {d}: expected model.safetensors (or shards with "
                         "model.safetensors.index.json). Point the config at a Hugging Face model directory.")


def gguf_directory(d: Path, gguf_file: str) -> Path:
    """The converted copy of ``d / gguf_file`` (config, float32 safetensors, tokenizer), made on
    first use. Keyed by the file's sha256, the model's identity on the probe side too, so the
    finetune stage and the probe runner convert a GGUF once between them."""
    from rai_audit.hashing import sha256_file
    from rai_audit.models.default_model import ensure_converted

    return ensure_converted(d / gguf_file, sha256_file(d / gguf_file))


def resolve(ref: str | Path, gguf_file: str | None = None, revision: str | None = None) -> tuple[Path, str | None]:
    """(directory, gguf file name or None) for a model reference."""
    p = Path(ref).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return p.parent, p.name
    if p.is_dir():
        if gguf_file is None and not (p / "config.json").is_file():
            ggufs = sorted(x.name for x in p.glob("*.gguf"))
            if len(ggufs) == 1:
                return p, ggufs[0]
            raise ModelLoadError(f"{p} has no config.json; it is not a Hugging Face model directory. "
                                 "Point the config at one (or at a .gguf file).")
        return p, gguf_file
    if p.exists() or str(ref).startswith((".", "/", "~")) or str(ref).count("/") != 1:
        raise ModelLoadError(f"Model {ref!r} not found: give an existing HF model directory, a .gguf file, "
                             "or a hub id like 'org/name'.")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(str(ref), revision=revision, allow_patterns=_HUB_PATTERNS)
    except Exception as exc:
        raise ModelLoadError(f"Cannot download {ref!r} from the Hugging Face hub: {exc}. Check the name and "
                             "your network, or download it and give the local directory.") from exc
    return Path(local), gguf_file


def load_hf_model(ref: str | Path, *, gguf_file: str | None = None, revision: str | None = None,
                  dtype: str | None = None, remat: bool | None = None, attention_impl: str | None = None,
                  shardings: Callable[[tuple, tuple[int, ...]], Any] | None = None) -> tuple[ModelConfig, nnx.Module]:
    """(config, model with the checkpoint's weights) for a directory, ``.gguf`` file or hub id.

    ``dtype`` / ``remat`` / ``attention_impl`` set the runtime options (see
    :mod:`finetune.models.configs`). ``shardings(path, shape)``, if given, returns a
    ``jax.sharding.Sharding`` for each parameter so weights are placed sharded as they load.
    """
    d, gguf = resolve(ref, gguf_file, revision)
    src = gguf_directory(d, gguf) if gguf is not None else d
    try:
        hf = json.loads((src / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"Cannot read {src / 'config.json'}: {exc}. Fix or re-download it.") from exc
    tensors = _weight_files(src)
    cfg = config_from_hf(hf, dtype=dtype, remat=remat, attention_impl=attention_impl)
    cfg = dataclasses.replace(cfg, source=str(d), gguf_file=gguf)
    return import_tensors(cfg, tensors, shardings=shardings, where=str(d / gguf) if gguf else str(d))


def _fmt(keys: Iterable[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def import_tensors(cfg: ModelConfig, tensors: TensorSource | TMapping[str, Any], *,
                   shardings: Callable[[tuple, tuple[int, ...]], Any] | None = None,
                   where: str = "the checkpoint") -> tuple[ModelConfig, nnx.Module]:
    """Fill a new model of ``cfg`` from HF-named tensors; returns the (possibly untied) config too."""
    if not isinstance(tensors, TensorSource):
        tensors = tensors_from_torch_state(tensors) if _is_torch(tensors) else TensorSource(
            tensors.keys(), lambda k, t=tensors: np.asarray(t[k], np.float32))
    names = {normalize_key(cfg, k): k for k in tensors.keys()}

    def read(name: str) -> np.ndarray:
        return tensors[names[name]]

    m = mapping_for(cfg)
    # A head the config calls tied but the checkpoint stores with other values: untie it (as
    # transformers does) rather than silently dropping trained weights.
    for alias, source in m.tied.items():
        if alias in m.untie_if_different and alias in names and source in names:
            if not np.array_equal(read(alias), read(source)):
                cfg = dataclasses.replace(cfg, tie_word_embeddings=False)
                m = mapping_for(cfg)
                break
    expected = {r.hf_key for r in m.rules}
    available = set(names)
    missing = {k for k in expected - available if m.fallbacks.get(k) not in available}
    ignored = {k for k in available if any(re.search(p, k) for p in m.ignored)}
    unexpected = available - expected - set(m.tied) - ignored
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors: {_fmt(missing)}")
        if unexpected:
            parts.append(f"tensors the {m.architecture} mapping does not know: {_fmt(unexpected)}")
        raise ModelLoadError(
            f"{where} does not match its config ({cfg.family} family, {m.architecture}): "
            + "; ".join(parts) + ". The weights belong to another architecture or size, or the file is "
            "incomplete; use the config.json that came with these weights.")

    abstract = nnx.eval_shape(lambda: build_model(cfg))
    graphdef, state = nnx.split(abstract)
    flat = nnx.to_flat_state(state)
    by_path = {r.path: r for r in m.rules}
    for path, var in flat:
        rule = by_path.get(tuple(path))
        if rule is None:
            raise AssertionError(f"mapping has no rule for parameter {path}")  # a bug in the mapping
        key = rule.hf_key if rule.hf_key in available else m.fallbacks[rule.hf_key]
        arr = read(key)
        if rule.transpose:
            arr = arr.T
        want = tuple(var.get_value().shape)
        if tuple(arr.shape) != want:
            raise ModelLoadError(
                f"{where}: tensor {key} has shape {tuple(arr.shape)}{' (transposed)' if rule.transpose else ''} "
                f"but the config implies {want}. The weights do not match config.json.")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        value = jax.device_put(arr, shardings(tuple(path), want)) if shardings else jnp.asarray(arr)
        var.set_value(value)
    model = nnx.merge(graphdef, nnx.from_flat_state(flat))
    return cfg, model


def _is_torch(tensors) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    first = next(iter(tensors.values()), None) if hasattr(tensors, "values") else None
    return isinstance(first, torch.Tensor)


def weights_digest(d: Path, gguf_file: str | None) -> str:
    """Content hash of the weight files (what the manifest cites as the base model hash)."""
    from rai_audit.hashing import combine, sha256_files

    if gguf_file:
        files = [d / gguf_file]
    else:
        files = sorted(p for p in d.iterdir() if p.is_file() and p.name.endswith((".safetensors", ".bin")))
    return combine(sha256_files(files, root=d))


def load_tokenizer(d: Path, gguf_file: str | None, tokenizer: str | Path | None = None):
    """The model's own tokenizer (from its directory or the GGUF's converted copy), or the one
    ``tokenizer`` names."""
    from transformers import AutoTokenizer

    try:
        if tokenizer is not None:
            return AutoTokenizer.from_pretrained(str(tokenizer))
        return AutoTokenizer.from_pretrained(str(gguf_directory(d, gguf_file) if gguf_file else d))
    except Exception as exc:
        what = tokenizer if tokenizer is not None else (d / gguf_file if gguf_file else d)
        raise ModelLoadError(f"Cannot load a tokenizer from {what}: {exc}. Give 'tokenizer' as a directory or "
                             "hub id of the model's tokenizer.") from exc


def load_base_model(ref: str | Path, *, dtype: str = "float32", tokenizer: str | Path | None = None,
                    gguf_file: str | None = None, revision: str | None = None, remat: bool | None = None,
                    attention_impl: str | None = None) -> dict[str, Any]:
    """Everything the finetune stage needs about its base model, in one dict.

    Keys: ``model`` (NNX module, weights loaded), ``model_config`` (our config),
    ``hf_config`` (config.json dict), ``tokenizer`` (transformers tokenizer), ``kind`` (the
    family's layout name: "decoder" or "t5"), ``vocab_size``, ``decoder_start_token_id``
    (encoder-decoder families; else None), ``info``
    (reference, model_id = weights sha256, family, architecture, parameter count, source, gguf).
    """
    d, gguf = resolve(ref, gguf_file, revision)
    cfg, model = load_hf_model(d / gguf if gguf else d, dtype=dtype, remat=remat, attention_impl=attention_impl)
    tok = load_tokenizer(d, gguf, tokenizer)
    n_params = sum(int(np.prod(v.get_value().shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))
    layout = family_of(cfg).layout
    return {
        "model": model,
        "model_config": cfg,
        "hf_config": dict(cfg.hf_config),
        "tokenizer": tok,
        "kind": layout.name,
        "vocab_size": cfg.vocab_size,
        "decoder_start_token_id": cfg.decoder_start_token_id if layout.encoder_decoder else None,
        "info": {
            "reference": str(ref),
            "model_id": weights_digest(d, gguf),
            "family": cfg.family,
            "architecture": mapping_for(cfg).architecture,
            "num_params": n_params,
            "source": str(d),
            "gguf_file": gguf,
            "revision": revision,
        },
    }
