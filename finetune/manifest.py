"""The training manifest: what the audit report cites about how a tuned model was made.

Written as ``<output_dir>/finetune_manifest.json`` next to the exported model. It records the
base model (reference and content hash), the mixture (sources with file hashes, per-task
counts, seed, format and template tallies), every hyperparameter, steps, tokens seen, the final
loss, wall time, devices, package versions and the sha256 of each exported weight file, so an
audit of the tuned model can be traced back to its exact inputs. ``training_fingerprint`` is the
summary of the n-gram fingerprint of the training examples (:mod:`finetune.fingerprint`) with the
path and sha256 of its ``.npz``; the copy inside the exported model folder is listed under
``export.files`` (it is not a weight, so neither ``weights_sha256`` nor the model id includes it).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from rai_audit.hashing import combine, sha256_file

MANIFEST_NAME = "finetune_manifest.json"

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "transformers", "tokenizers",
             "safetensors", "torch", "rai-audit")


def package_versions() -> dict[str, Any]:
    """Provenance from rai_audit when it offers it, else the versions of the packages we use."""
    try:
        from rai_audit.provenance import collect_provenance  # type: ignore[import-not-found]

        return {"provenance": collect_provenance()}
    except Exception:  # noqa: BLE001 - not there yet or failed: fall back, never block a manifest
        pass
    out: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info() -> dict[str, Any]:
    import jax

    devs = jax.devices()
    return {
        "platform": devs[0].platform,
        "device_kind": getattr(devs[0], "device_kind", ""),
        "count": len(devs),
        "process_count": jax.process_count(),
    }


def weight_hashes(model_dir: Path) -> dict[str, str]:
    """sha256 of every weight file (and config/tokenizer files) in an exported model folder."""
    out = {}
    for p in sorted(Path(model_dir).rglob("*")):
        if p.is_file():
            out[str(p.relative_to(model_dir))] = sha256_file(p, use_cache=False)
    return out


def build_manifest(
    *, config: dict[str, Any], base_model: dict[str, Any], mixture: dict[str, Any], packing: dict[str, Any],
    optimizer: dict[str, Any], steps: int, tokens_seen: int, target_tokens_seen: int, final_loss: float | None,
    losses: list[float], wall_s: float, export_dir: Path | None, resumed_from: int | None,
    train_s: float = 0.0, tokens_this_run: int = 0, training_fingerprint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest dict. ``tokens_per_s`` is over this invocation's training loop (with a resume,
    the steps run before it are not in ``train_s``)."""
    files = weight_hashes(export_dir) if export_dir and export_dir.is_dir() else {}
    weights = {k: v for k, v in files.items() if k.endswith((".safetensors", ".bin", ".gguf"))}
    return {
        "kind": "finetune",
        "created_at": datetime.now(timezone.utc).isoformat(),
        "base_model": base_model,
        "mixture": mixture,
        "training_fingerprint": training_fingerprint,
        "packing": packing,
        "hyperparameters": config,
        "optimizer": optimizer,
        "steps": steps,
        "tokens_seen": tokens_seen,
        "target_tokens_seen": target_tokens_seen,
        "final_loss": final_loss,
        "loss_curve": losses,
        "wall_s": round(wall_s, 3),
        "train_s": round(train_s, 3),
        "tokens_per_s": round(tokens_this_run / train_s, 1) if train_s > 0 else None,
        "resumed_from_step": resumed_from,
        "devices": device_info(),
        "packages": package_versions(),
        "export": {
            "dir": str(export_dir) if export_dir else None,
            "files": files,
            "weights_sha256": weights,
            "weights_digest": combine(weights) if weights else None,
        },
        "host": {"hostname": platform.node(), "pid": os.getpid()},
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path
