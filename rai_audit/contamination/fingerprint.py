"""The n-gram fingerprint of a training set, and reading one from what a user has.

The finetune stage writes ``training_fingerprint.npz`` next to the model it exports and cites it
in ``finetune_manifest.json``; a probe run on that model finds it there. For a model tuned
elsewhere the user passes the training data itself (``--training-data``: JSON Lines, JSON, plain
text) or a fingerprint file, and the fingerprint is built here.

A fingerprint keeps two n-gram sizes: ``n`` (13 by default, the GPT-3 study's choice) and a
shorter ``short_n`` (8, the smallest N that study used) for items too short to hold a 13-gram;
an item shorter than ``short_n`` words cannot be checked and is counted as such, never as clean.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from rai_audit.contamination.ngrams import NORMALIZATION, ngram_hashes, words
from rai_audit.errors import DataError

FINGERPRINT_NAME = "training_fingerprint.npz"
DEFAULT_N = 13
DEFAULT_SHORT_N = 8


@dataclass(frozen=True)
class TrainingFingerprint:
    """Sorted unique n-gram hashes of every training example, per n-gram size."""

    hashes: dict[int, np.ndarray]
    documents: int
    source: str = ""
    normalization: str = NORMALIZATION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        """N-gram sizes, largest first."""
        return sorted(self.hashes, reverse=True)

    @property
    def fingerprint_id(self) -> str:
        """sha256 of the normalisation, the sizes and the hashes: equal fingerprints, equal ids."""
        h = hashlib.sha256(self.normalization.encode())
        for n in self.sizes:
            h.update(f"|{n}|".encode())
            h.update(np.ascontiguousarray(self.hashes[n], dtype="<u8").tobytes())
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        """What a manifest, a run and a report say about the fingerprint (no hashes)."""
        return {
            "fingerprint_id": self.fingerprint_id,
            "normalization": self.normalization,
            "ngram_sizes": self.sizes,
            "ngrams": {str(n): int(self.hashes[n].size) for n in self.sizes},
            "documents": self.documents,
            "source": self.source,
            **self.extra,
        }

    @classmethod
    def build(cls, documents: Iterable[str], *, n: int = DEFAULT_N, short_n: int = DEFAULT_SHORT_N,
              source: str = "", extra: dict[str, Any] | None = None) -> "TrainingFingerprint":
        if not (1 <= short_n <= n):
            raise ValueError(f"n-gram sizes must satisfy 1 <= short_n ({short_n}) <= n ({n})")
        sizes = sorted({n, short_n}, reverse=True)
        parts: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
        count = 0
        for doc in documents:
            count += 1
            toks = words(doc)
            for s in sizes:
                parts[s].append(ngram_hashes(toks, s))
        hashes = {s: np.unique(np.concatenate(p)) if p else np.empty(0, np.uint64) for s, p in parts.items()}
        return cls(hashes=hashes, documents=count, source=source, extra=dict(extra or {}))

    def save(self, path: Path) -> str:
        """Write the fingerprint (npz); returns its id."""
        meta = {"normalization": self.normalization, "documents": self.documents, "source": self.source,
                "extra": self.extra}
        buf = io.BytesIO()
        np.savez_compressed(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                            **{f"n{n}": self.hashes[n] for n in self.sizes})
        Path(path).write_bytes(buf.getvalue())
        return self.fingerprint_id

    @classmethod
    def load(cls, path: Path) -> "TrainingFingerprint":
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                hashes = {int(k[1:]): z[k].astype(np.uint64) for k in z.files if k.startswith("n")}
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{path} is not a training fingerprint written by rai-audit ({e}).") from None
        if meta.get("normalization") != NORMALIZATION:
            raise DataError(f"{path} was made with text normalisation {meta.get('normalization')!r}; this "
                            f"version uses {NORMALIZATION!r}. Rebuild it from the training data.")
        return cls(hashes=hashes, documents=int(meta["documents"]), source=meta.get("source", ""),
                   extra=meta.get("extra") or {})


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _documents(path: Path) -> Iterator[str]:
    """One training document per JSONL line / JSON list element / text line: all its strings."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"Training data {path} is not UTF-8 text (byte {e.start}).") from None
    if suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield "\n".join(_strings(json.loads(line)))
                except ValueError as e:
                    raise DataError(f"Training data {path}, line {lineno}: not valid JSON ({e}).") from None
    elif suffix == ".json":
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise DataError(f"Training data {path}: not valid JSON ({e}).") from None
        for element in doc if isinstance(doc, list) else [doc]:
            yield "\n".join(_strings(element))
    else:
        yield from (ln for ln in text.splitlines() if ln.strip())


def load_training_data(path: str | Path, *, n: int = DEFAULT_N, short_n: int = DEFAULT_SHORT_N) -> TrainingFingerprint:
    """A fingerprint from what the user points at: a fingerprint file, an exported model folder
    (its ``training_fingerprint.npz``), or training data (``.jsonl``, ``.json``, text lines)."""
    p = Path(path).expanduser()
    if p.is_dir():
        fp = p / FINGERPRINT_NAME
        if not fp.is_file():
            raise DataError(f"{p} has no {FINGERPRINT_NAME}: it was not exported by rai-audit's finetune stage. "
                            "Pass the training data file itself (JSON Lines, JSON or text).")
        return TrainingFingerprint.load(fp)
    if not p.is_file():
        raise DataError(f"Training data {p} does not exist.")
    if p.suffix.lower() == ".npz":
        return TrainingFingerprint.load(p)
    fp = TrainingFingerprint.build(_documents(p), n=n, short_n=short_n, source=str(p))
    if fp.documents == 0:
        raise DataError(f"Training data {p} holds no documents.")
    return fp
