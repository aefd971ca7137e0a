"""Hugging Face exports of intermediate training steps, for trajectory audits (issue 16).

A trajectory audit probes the model at chosen steps of one finetune run. Each chosen step is
exported, while training passes it, as a full Hugging Face checkpoint (the same exporter as the
final model, so it loads through the same backend and gives the same log-likelihoods and samples
as any other exported model) to ``<output_dir>/trajectory/step-NNNNNN/``, with the run's training
fingerprint beside the weights so the contamination check covers checkpoints too.

Crash safety: an export is written to ``step-NNNNNN.partial`` and renamed when complete, with a
``trajectory_export.json`` marker, so a killed run never leaves a half-written checkpoint that a
later probe run would load. Exporting happens before the training step's Orbax save, so a resumed
run that restarts from a checkpoint at or after a step always finds that step's export complete;
one that restarts before it retrains the same batches and exports identical weights (resume is
exact: :mod:`finetune.checkpointing`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

from rai_audit.errors import UserError

TRAJECTORY_DIR = "trajectory"
MARKER = "trajectory_export.json"


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / TRAJECTORY_DIR / f"step-{int(step):06d}"


def is_exported(output_dir: Path, step: int) -> bool:
    return (checkpoint_dir(output_dir, step) / MARKER).is_file()


def export_seconds(output_dir: Path, step: int) -> float | None:
    """Seconds the export of ``step`` took, as its marker recorded (None if not exported)."""
    try:
        return float(json.loads((checkpoint_dir(output_dir, step) / MARKER).read_text())["export_s"])
    except (OSError, ValueError, KeyError):
        return None


class CheckpointExporter:
    """Called after each training step; exports the steps it was asked for (once each)."""

    def __init__(self, output_dir: Path, steps: Iterable[int], tokenizer: Any, fingerprint: Path | None = None):
        self.output_dir = Path(output_dir)
        self.steps = sorted({int(s) for s in steps})
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint

    def missing(self, after: int) -> list[int]:
        """Requested steps up to ``after`` that have no complete export: a resumed run that starts
        past them can no longer make them."""
        return [s for s in self.steps if s <= after and not is_exported(self.output_dir, s)]

    def check_resume(self, start_step: int) -> None:
        lost = self.missing(start_step)
        if lost:
            raise UserError(
                f"The trajectory audit needs exports of training steps {', '.join(map(str, lost))}, but the finetune "
                f"in {self.output_dir} already trained past them (it resumes at step {start_step}) without exporting "
                "them, e.g. because it first ran without a trajectory. Delete that folder's 'checkpoints' (and "
                "'model') to retrain with checkpoint exports, or audit only later steps."
            )

    def __call__(self, step: int, trainer: Any, params: Any) -> None:
        if step not in self.steps or is_exported(self.output_dir, step):
            return
        from finetune.checkpoint_io import hf_export

        dest = checkpoint_dir(self.output_dir, step)
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        t0 = time.perf_counter()
        hf_export.export_model(trainer.model_with(params), partial, tokenizer=self.tokenizer)
        if self.fingerprint is not None and self.fingerprint.is_file():
            from finetune.fingerprint import copy_fingerprint

            copy_fingerprint(self.fingerprint, partial)
        seconds = time.perf_counter() - t0
        (partial / MARKER).write_text(json.dumps({"step": step, "export_s": round(seconds, 3)}), encoding="utf-8")
        shutil.rmtree(dest, ignore_errors=True)  # an unmarked leftover of a killed run
        os.replace(partial, dest)
