"""``llama-cpp:...`` references -> :class:`LlamaCppModelInfo` (nothing loaded).

Syntax::

    llama-cpp:PATH.gguf[?threads=N]     a GGUF file (or a directory holding exactly one)
    llama-cpp:default[?threads=N]       the embedded SmolLM2-135M-Instruct GGUF (``default``)

``threads``: llama.cpp's CPU threads (default: the cores this process may use). It lives in the
reference for the reason the served backend's options do (the registry hands loaders only device,
dtype and batch size, and the reference travels to Ray workers), and it is not part of the model
id: llama.cpp splits a matrix product by output rows, so every number is computed by one thread
whatever their count (the tests check it).

``model_id`` is sha256 over the GGUF file's sha256 and the engine's name (as the vllm backend
does): llama.cpp runs the quantised weights with its own kernels, so its log-probabilities differ
from the transformers backend's on the same file (tenths of a nat, docs/backends.md) and its
answers must never be served from, or to, that backend's cache entries (kind ``gguf``, whose id
is the file's plain sha256). The file's sha256 stays in ``files`` and ``engine``; the engine's
version and build (CPU features) are recorded in ``engine`` and so in every run's provenance,
not in the id (as for transformers' version with the transformers backend).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl

from rai_audit.backend import ModelInfo
from rai_audit.errors import ModelLoadError
from rai_audit.hashing import sha256_json

KIND = "llama-cpp"
SYNTAX = "llama-cpp:PATH.gguf or llama-cpp:default (option: ?threads=N)"
_OPTIONS = {"threads"}


@dataclass(frozen=True)
class LlamaCppModelInfo(ModelInfo):
    """``kind == "llama-cpp"``; ``path`` is the GGUF file, ``engine`` what runs it."""

    engine: dict[str, Any] = field(default_factory=dict)


def engine_model_id(weights_sha256: str) -> str:
    """The llama-cpp model id of the GGUF file whose sha256 is ``weights_sha256``."""
    return sha256_json({"weights": weights_sha256, "engine": KIND})


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse(ref: str) -> tuple[str, dict[str, Any]]:
    """``llama-cpp:BODY?OPTIONS`` -> (BODY, options); ModelLoadError naming the problem."""
    ref = ref.strip()
    if not ref.startswith(KIND + ":"):
        raise ModelLoadError(f"The reference {ref!r} does not start with '{KIND}:'. Write {SYNTAX}.")
    body, _, query = ref[len(KIND) + 1:].strip().partition("?")
    if not body.strip():
        raise ModelLoadError(f"The reference {ref!r} names no model. Write {SYNTAX}.")
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _OPTIONS:
            raise ModelLoadError(f"The reference {ref!r} has an unknown option {name!r} (accepted: threads). "
                                 f"Write {SYNTAX}.")
        try:
            options[name] = int(value)
        except ValueError:
            options[name] = 0
        if not 1 <= options[name] <= 1024:
            raise ModelLoadError(f"The reference {ref!r}: threads={value!r} must be a whole number from 1 to 1024.")
    return body.strip(), options


def threads_of(info: ModelInfo) -> int:
    """The thread count the reference asks for, else :func:`default_threads`."""
    return int(parse(info.reference)[1].get("threads") or default_threads())


def resolve(ref: str) -> LlamaCppModelInfo:
    """The resolver registered for kind ``llama-cpp``: hashes the file, loads nothing but the
    llama.cpp library (to record its version and build, and to fail now, with the install command,
    where it is missing)."""
    from rai_audit.models.llamacpp.engine import engine_version
    from rai_audit.models.reference import resolve as resolve_weights

    body, _ = parse(ref)
    if importlib.util.find_spec("llama_cpp") is None:
        from rai_audit.models.llamacpp.engine import INSTALL_HINT

        raise ModelLoadError(f"The model {ref.strip()!r} needs llama-cpp-python, which is not installed here. "
                             f"Install it with: {INSTALL_HINT}.")
    try:
        info = resolve_weights(body)
    except ModelLoadError as e:
        raise ModelLoadError(f"{e} (In a '{KIND}:' reference, write {SYNTAX}.)") from e
    if info.kind != "gguf" or not info.path:
        raise ModelLoadError(
            f"The reference {ref.strip()!r} is not a GGUF file (it resolved to a {info.kind!r} model). The llama-cpp "
            f"backend runs GGUF files; write {SYNTAX}, or audit a Hugging Face model without the prefix."
        )
    if info.is_encoder_decoder:
        raise ModelLoadError(f"The reference {ref.strip()!r} is an encoder-decoder GGUF; the llama-cpp backend runs "
                             "decoder-only models. Audit it without the 'llama-cpp:' prefix (transformers backend).")
    weights = info.model_id
    engine = {**engine_version(), "weights_sha256": weights, "gguf_file": info.path}
    return LlamaCppModelInfo(**{**_fields(info), "kind": KIND, "reference": ref.strip(),
                                "model_id": engine_model_id(weights)}, engine=engine)


def _fields(info: ModelInfo) -> dict[str, Any]:
    return {f.name: getattr(info, f.name) for f in fields(ModelInfo)}
