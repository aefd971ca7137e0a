"""Resolve a model reference into a :class:`~rai_audit.backend.ModelInfo` without loading weights.

Accepted forms (docs/architecture.md, "The nouns"):

- ``hf:org/name`` or ``hf:org/name@revision``: a Hugging Face hub model. Fetched with
  ``huggingface_hub.snapshot_download`` (config, tokenizer, weights only) when online; offline
  (``HF_HUB_OFFLINE=1`` or no network) only the local HF cache is used. ``revision`` records the
  commit actually resolved, so a branch name is pinned at resolve time.
- a local directory in Hugging Face layout (``config.json`` + weights + tokenizer), e.g. the
  finetune stage's output.
- a ``.gguf`` file (loaded by transformers with ``gguf_file=``; see :mod:`.default_model` for the
  converted-copy cache).
- ``default``: the embedded SmolLM2-135M-Instruct GGUF (:mod:`.default_model`).

``model_id`` is the content hash of the weights: :func:`rai_audit.hashing.combine` over the
sha256 of each weight file (named relative to the model directory) for directories and hub
snapshots, and the plain sha256 of the file for ``.gguf`` files. Configuration and tokenizer files
are not part of it: a model is its weights (a changed chat template does change prompts, and
prompts are part of every cache key).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rai_audit.backend import ModelInfo
from rai_audit.errors import ModelLoadError
from rai_audit.hashing import combine, sha256_files, sha256_file

ACCEPTED_FORMS = (
    "'hf:ORG/NAME' or 'hf:ORG/NAME@REVISION' (a Hugging Face hub model), a local directory with "
    "config.json and weights in Hugging Face layout, a path to a .gguf file, or 'default' (the "
    "embedded SmolLM2-135M-Instruct)"
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
# Files fetched from the hub: everything needed to build the model and tokenizer, no extras
# (ONNX, TF/Flax weights, images).
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken", "*.py"]
_HUB_BIN_PATTERNS = ["pytorch_model*.bin"]

# GGUF general.architecture -> transformers class (the ones transformers can load from GGUF).
_GGUF_ARCH = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen2moe": "Qwen2MoeForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "gpt2": "GPT2LMHeadModel",
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "falcon": "FalconForCausalLM",
    "bloom": "BloomForCausalLM",
    "starcoder2": "Starcoder2ForCausalLM",
    "stablelm": "StableLmForCausalLM",
    "mamba": "MambaForCausalLM",
    "t5": "T5ForConditionalGeneration",
}


def resolve(ref: str) -> ModelInfo:
    """Turn a model reference into a :class:`ModelInfo` (hashes weights; loads nothing).

    Raises :class:`ModelLoadError` naming the reference and the accepted forms when it cannot.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ModelLoadError(f"Empty model reference. Give one of: {ACCEPTED_FORMS}.")
    ref = ref.strip()
    if ref == "default":
        from rai_audit.models.default_model import default_gguf_path

        return _resolve_gguf(default_gguf_path(), reference="default")
    if ref.startswith("hf:"):
        return _resolve_hub(ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        return _resolve_dir(path, reference=ref)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelLoadError(
                f"The GGUF model file {ref!r} does not exist. Check the path, or use another "
                f"reference: {ACCEPTED_FORMS}."
            )
        return _resolve_gguf(path, reference=ref)
    if path.exists():
        raise ModelLoadError(
            f"The model reference {ref!r} is a file but not a .gguf file. Accepted forms: "
            f"{ACCEPTED_FORMS}."
        )
    hint = ""
    if _HUB_ID.match(ref) and "/" in ref:
        hint = f" If you meant the Hugging Face hub model, write 'hf:{ref}'."
    raise ModelLoadError(
        f"Cannot resolve the model reference {ref!r}: it is not an existing directory or .gguf "
        f"file.{hint} Accepted forms: {ACCEPTED_FORMS}."
    )


def describe(ref: str, info: ModelInfo | None = None) -> dict[str, Any]:
    """What ``rai-audit models REF`` prints: the resolved info plus sizes and cache locations.
    ``info``: ``ref`` already resolved (the CLI resolves through the backend registry, so that
    registered kinds such as ``openai-compat:`` are described too)."""
    info = info or resolve(ref)
    out: dict[str, Any] = asdict(info)
    size = 0
    if info.path:
        p = Path(info.path)
        if p.is_file():
            size = p.stat().st_size
        else:
            size = sum((p / name).stat().st_size for name in info.files if (p / name).exists())
    out["weights_bytes"] = size
    if info.kind == "gguf":
        from rai_audit.models.default_model import converted_dir

        d = converted_dir(info.model_id)
        out["converted_copy"] = str(d)
        out["converted_copy_ready"] = (d / "config.json").is_file()
    return out


# --------------------------------------------------------------------------------------------
# hub
# --------------------------------------------------------------------------------------------


def parse_hub_ref(ref: str) -> tuple[str, str | None]:
    """``hf:org/name@rev`` -> ("org/name", "rev"); ModelLoadError when malformed."""
    body = ref[3:]
    repo, _, revision = body.partition("@")
    if not _HUB_ID.match(repo) or (_ and not revision):
        raise ModelLoadError(
            f"The model reference {ref!r} is not a valid hub reference. Write 'hf:ORG/NAME' or "
            f"'hf:ORG/NAME@REVISION' (a branch, tag or commit). Accepted forms: {ACCEPTED_FORMS}."
        )
    return repo, (revision or None)


def _resolve_hub(ref: str) -> ModelInfo:
    repo, revision = parse_hub_ref(ref)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub import constants as hf_constants
        from huggingface_hub import errors as hf_errors
    except ImportError as e:  # pragma: no cover - a core dependency
        raise ModelLoadError(f"huggingface_hub is needed for {ref!r}: pip install huggingface_hub") from e

    offline = bool(hf_constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "") in ("1", "true", "TRUE", "yes")

    def fetch(patterns: list[str]) -> str:
        return snapshot_download(repo, revision=revision, allow_patterns=patterns, local_files_only=offline)

    try:
        snap = fetch(_HUB_PATTERNS)
        if not _weight_files(Path(snap)):
            snap = fetch(_HUB_PATTERNS + _HUB_BIN_PATTERNS)
    except (hf_errors.GatedRepoError,) as e:
        raise ModelLoadError(
            f"The hub model {repo!r} ({ref!r}) is gated: accept its licence on huggingface.co and log "
            "in with `hf auth login` (or set HF_TOKEN), then retry."
        ) from e
    except (hf_errors.RepositoryNotFoundError,) as e:
        raise ModelLoadError(
            f"The hub model {repo!r} ({ref!r}) does not exist or is private. Check the name, or log in "
            "with `hf auth login` for a private model."
        ) from e
    except (hf_errors.RevisionNotFoundError,) as e:
        raise ModelLoadError(
            f"The hub model {repo!r} has no revision {revision!r} ({ref!r}). Use an existing branch, "
            "tag or commit hash."
        ) from e
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled, OSError, ValueError) as e:
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if offline else "the hub could not be reached"
        raise ModelLoadError(
            f"The hub model {repo!r} ({ref!r}) is not in the local Hugging Face cache and {why}. "
            "Fix: connect to the internet and unset HF_HUB_OFFLINE so it can be downloaded; or "
            f"pre-download it on a connected machine (`hf download {repo}"
            f"{' --revision ' + revision if revision else ''}`) into the HF cache (HF_HOME); or "
            "pass a local directory with the model in Hugging Face layout instead."
        ) from e
    info = _resolve_dir(Path(snap), reference=ref, kind="hf")
    commit = Path(snap).name
    return _replace(info, revision=commit if re.fullmatch(r"[0-9a-f]{40}", commit) else revision)


# --------------------------------------------------------------------------------------------
# local directory
# --------------------------------------------------------------------------------------------


def _weight_files(d: Path) -> list[Path]:
    st = sorted(d.glob("*.safetensors"))
    if st:
        return st
    return sorted(p for p in d.glob("*.bin") if p.name != "training_args.bin")


def _resolve_dir(d: Path, *, reference: str, kind: str = "dir") -> ModelInfo:
    d = d.resolve()
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        ggufs = sorted(d.glob("*.gguf"))
        if len(ggufs) == 1:
            return _resolve_gguf(ggufs[0], reference=reference)
        raise ModelLoadError(
            f"The model directory {str(d)!r} (from {reference!r}) has no config.json, so it is not a "
            "model in Hugging Face layout. Point at a directory saved with save_pretrained (config.json, "
            f"*.safetensors, tokenizer files) or at a .gguf file. Accepted forms: {ACCEPTED_FORMS}."
        )
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"The model config {str(cfg_path)!r} (from {reference!r}) is not valid JSON ({e}). "
            "Re-save or re-download the model."
        ) from e
    weights = _weight_files(d)
    if not weights:
        raise ModelLoadError(
            f"The model directory {str(d)!r} (from {reference!r}) has no weight files (*.safetensors or "
            "pytorch_model*.bin). The download or save may be incomplete: re-save or re-download it."
        )
    files = sha256_files(weights, root=d)
    archs = cfg.get("architectures") or []
    arch = archs[0] if archs else None
    return ModelInfo(
        model_id=combine(files),
        reference=reference,
        kind=kind,
        path=str(d),
        architecture=arch,
        is_encoder_decoder=bool(cfg.get("is_encoder_decoder", False)),
        is_masked_lm=bool(arch and arch.endswith("ForMaskedLM")),
        has_chat_template=_dir_has_chat_template(d),
        n_parameters=_count_parameters(weights),
        files=files,
    )


def _dir_has_chat_template(d: Path) -> bool:
    if (d / "chat_template.jinja").is_file() or (d / "chat_template.json").is_file():
        return True
    tc = d / "tokenizer_config.json"
    if tc.is_file():
        try:
            return bool(json.loads(tc.read_text(encoding="utf-8")).get("chat_template"))
        except (OSError, ValueError):
            return False
    return False


def _count_parameters(weights: list[Path]) -> int | None:
    """Exact parameter count from safetensors headers (no tensor is read); None for .bin files."""
    total = 0
    for p in weights:
        if p.suffix != ".safetensors":
            return None
        try:
            with open(p, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            size = p.stat().st_size
        except (OSError, ValueError, struct.error) as e:
            raise ModelLoadError(
                f"The weight file {str(p)!r} is not a valid safetensors file ({e}). It may be truncated: "
                "re-save or re-download the model."
            ) from e
        # The header names each tensor's byte range; a file shorter than the last range is cut off
        # (an interrupted download or copy), found here before any run is created.
        end = max((int(m["data_offsets"][1]) for k, m in header.items() if k != "__metadata__" and isinstance(m, dict)
                   and "data_offsets" in m), default=0)
        if size < 8 + n + end:
            raise ModelLoadError(
                f"The weight file {str(p)!r} is truncated: it has {size} bytes, its header describes "
                f"{8 + n + end}. Re-save or re-download the model."
            )
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for s in meta.get("shape", []):
                count *= int(s)
            total += count
    return total


# --------------------------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------------------------


def _resolve_gguf(path: Path, *, reference: str) -> ModelInfo:
    path = Path(path).resolve()
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"Cannot read the GGUF file {str(path)!r} ({e}).") from e
    if magic != b"GGUF":
        raise ModelLoadError(
            f"The file {str(path)!r} (from {reference!r}) is not a GGUF model (no GGUF header). It may "
            "be truncated or another format: re-download it, or pass a Hugging Face model directory."
        )
    from rai_audit.models.gguf_header import GGUFFormatError, read_header

    try:
        head = read_header(path)
    except (GGUFFormatError, OSError) as e:
        raise ModelLoadError(
            f"The GGUF file {str(path)!r} (from {reference!r}) cannot be parsed ({e}). It may be "
            "truncated or corrupt: re-download it."
        ) from e
    arch = head.metadata.get("general.architecture")
    arch = str(arch) if arch is not None else None
    has_chat = "tokenizer.chat_template" in head.metadata
    n_params = head.n_parameters
    digest = sha256_file(path)
    return ModelInfo(
        model_id=digest,
        reference=reference,
        kind="gguf",
        path=str(path),
        architecture=_GGUF_ARCH.get(arch or "", arch),
        is_encoder_decoder=arch == "t5",
        is_masked_lm=False,
        has_chat_template=has_chat,
        n_parameters=n_params,
        files={path.name: digest},
    )


def _replace(info: ModelInfo, **changes) -> ModelInfo:
    from dataclasses import replace

    return replace(info, **changes)
