"""Text normalisation and word n-gram hashing for the contamination check.

Normalisation is what makes an overlap an overlap and not a formatting accident: Unicode NFKC,
case folding, and words as runs of letters and digits (punctuation and whitespace dropped), as in
the GPT-3 study's filtering. An n-gram is hashed to 64 bits (blake2b); with the ~10^7 n-grams of
a large mixture the chance that an unrelated n-gram collides with one of them is ~10^-12 per
n-gram checked, far below what any report could show.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterable

import numpy as np

#: Bumped whenever :func:`words` or :func:`ngram_hashes` change, so that fingerprints made by
#: another version are refused instead of silently never matching.
NORMALIZATION = "nfkc-casefold-words-v1"

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """The normalised words of ``text``."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def _hash(gram: Iterable[str]) -> int:
    digest = hashlib.blake2b("\x1f".join(gram).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def ngram_hashes(tokens: list[str], n: int) -> np.ndarray:
    """Sorted, unique uint64 hashes of every n-gram of ``tokens`` (empty when shorter than n)."""
    if len(tokens) < n:
        return np.empty(0, dtype=np.uint64)
    hashes = np.fromiter((_hash(tokens[i:i + n]) for i in range(len(tokens) - n + 1)), dtype=np.uint64)
    return np.unique(hashes)
