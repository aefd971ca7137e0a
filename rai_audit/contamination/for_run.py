"""Finding the tuned model's training data for a probe run, and checking the run's items.

A probe run looks for a fingerprint in this order: the training data the user names
(``--training-data`` / ``models.tuned_training_data``), then the ``training_fingerprint.npz`` the
finetune stage exported beside a local model. None found means "not checked", which reports say;
it never means "clean".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from rai_audit.contamination.check import check_items
from rai_audit.contamination.fingerprint import FINGERPRINT_NAME, TrainingFingerprint, load_training_data


def find_fingerprint(model_path: str | None, training_data: str | None) -> tuple[TrainingFingerprint, str] | None:
    """The fingerprint to check a run against and the path it came from, or None."""
    if training_data:
        return load_training_data(training_data), str(Path(training_data).expanduser().resolve())
    if model_path and Path(model_path).is_dir():
        path = Path(model_path) / FINGERPRINT_NAME
        if path.is_file():
            return TrainingFingerprint.load(path), str(path.resolve())
    return None


def check_jobs(jobs: Sequence[Any], fingerprint: TrainingFingerprint, source: str) -> dict[str, Any]:
    """The run's contamination record: the fingerprint's summary and, per probe, its overlap
    (``ProbeContamination.to_dict``) over the items the run actually evaluates."""
    probes = {
        job.name: check_items(((it.id, job.probe.content_texts(it)) for it in job.items), fingerprint).to_dict()
        for job in jobs
    }
    return {"fingerprint": {**fingerprint.summary(), "path": source}, "probes": probes}
