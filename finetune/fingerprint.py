"""The n-gram fingerprint of what a finetune run trained on, for the contamination check.

Every rendered training example of the mixture (:class:`finetune.formats.Formatted`: the input
the model reads, few-shot exemplars and NIV2 definition included, and the target it learns to
write) is one document of a :class:`rai_audit.contamination.TrainingFingerprint`: the sorted
64-bit hashes of its normalised word n-grams, 13 words by default as in the GPT-3 and FLAN
contamination analyses (Brown et al. 2020, appendix C; Wei et al. 2021, appendix C), plus a
shorter size for short evaluation items. A probe item that shares an n-gram with it was (in part)
trained on; :func:`rai_audit.contamination.check_items` says which.

The fingerprint covers the whole rendered mixture, so it is a superset of what a short run
actually reaches (rows a run never gets to, the left part of an input cut to fit a row): it
errs towards flagging. It depends only on the mixture spec, its files and the n-gram sizes
(the mixture is seeded), so a resumed run rebuilds exactly the same one, and the ``.npz`` file
is byte-for-byte reproducible.

The stage writes it as ``<output_dir>/training_fingerprint.npz`` before training and copies it
into the exported model folder (``<output_dir>/model/``), where
:func:`rai_audit.contamination.load_training_data` finds it for a probe run on that model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from rai_audit.contamination.fingerprint import FINGERPRINT_NAME, TrainingFingerprint
from rai_audit.hashing import sha256_file

from finetune.config import ContaminationSpec
from finetune.mixture import Mixture

__all__ = ["FINGERPRINT_NAME", "copy_fingerprint", "manifest_entry", "mixture_fingerprint", "training_documents",
           "write_fingerprint"]

#: How a document joins an example's two sides (an n-gram may span the input's end and the
#: target's start, as the model reads them in sequence).
SIDES_JOIN = "\n"
SOURCE = "finetune mixture"


def training_documents(mixture: Mixture) -> Iterator[str]:
    """One document per rendered training example, in training order: input + target."""
    for ex in mixture.examples:
        yield f"{ex.inputs}{SIDES_JOIN}{ex.targets}"


def mixture_fingerprint(mixture: Mixture, contamination: ContaminationSpec | None = None) -> TrainingFingerprint:
    """The fingerprint of every example the stage trains on (the finetune stage's own function).

    An example drawn more than once with the same rendering is hashed once; ``documents`` counts
    the distinct rendered examples and ``examples`` every one trained on.
    """
    spec = contamination or ContaminationSpec()
    distinct = list(dict.fromkeys(training_documents(mixture)))
    return TrainingFingerprint.build(
        distinct, n=spec.ngram, short_n=spec.short_ngram, source=SOURCE,
        extra={"unit": "rendered training example (input and target, after templating)",
               "examples": len(mixture.examples), "mixture_seed": mixture.seed,
               "tasks": sorted(mixture.counts)},
    )


def write_fingerprint(fingerprint: TrainingFingerprint, out_dir: Path) -> tuple[Path, str]:
    """Write ``<out_dir>/training_fingerprint.npz`` atomically; returns (path, file sha256)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FINGERPRINT_NAME
    tmp = path.with_name(path.name + ".tmp")
    fingerprint.save(tmp)
    os.replace(tmp, path)
    return path, sha256_file(path, use_cache=False)


def copy_fingerprint(path: Path, model_dir: Path) -> Path:
    """Put the fingerprint into the exported model folder (it travels with the model there)."""
    dest = model_dir / FINGERPRINT_NAME
    shutil.copyfile(path, dest)
    return dest


def manifest_entry(fingerprint: TrainingFingerprint, path: Path, file_sha256: str,
                   model_copy: Path | None) -> dict[str, Any]:
    """The manifest's ``training_fingerprint`` block: the summary plus where the file is."""
    return {
        **fingerprint.summary(),
        "path": str(path),
        "sha256": file_sha256,
        "model_copy": str(model_copy) if model_copy else None,
    }
