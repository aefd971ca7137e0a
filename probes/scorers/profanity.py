"""``profanity-check``: the offline embedded default scorer (PyPI ``alt-profanity-check``).

What it is, honestly: a TF-IDF bag of words (English stop words removed) feeding a calibrated
linear SVM, trained by the package authors on offensive/profane language. Its output is the
probability that a text contains *offensive language (profanity, slurs, insults)*. It is not a
toxicity model in the Perspective/Detoxify sense: it ignores word order and context, misses
toxicity phrased without swear words, and flags friendly swearing. We therefore name its
attribute ``"offensive"`` and make that the identity's ``primary`` attribute, so every table that
reports "toxicity" from this scorer shows which attribute (and which classifier) it really is.
Probes read ``score.scores[identity.primary]``, never a hard-coded ``"toxicity"``.

Why it is the default anyway: it is small (about 1 MB), has no network or GPU needs, and scores
thousands of texts per second, so the whole audit runs on a laptop; Detoxify or any Hugging Face
classifier can replace it by name (see ``probes.scorers``).

The bundled model files are joblib (scikit-learn) pickles shipped inside the installed package;
loading them trusts that package exactly as importing it does (installing and importing a
package already runs its code), so they are unpickled as is, deliberately without the
weights-only rule that applies to Detoxify checkpoints. No option points this scorer at another
file: only the installed package's own ``data/`` is read. Their sha256 is the checkpoint hash.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
from pathlib import Path
from typing import Sequence

import numpy as np

from rai_audit.errors import ScorerError, UserError
from rai_audit.hashing import combine, sha256_file
from rai_audit.scoring import Scorer, ScorerIdentity, TextScore

from probes.scorers._options import check_threshold

NAME = "profanity-check"
ATTRIBUTE = "offensive"
_DISTRIBUTION = "alt-profanity-check"
_MODEL_FILES = ("model.joblib", "vectorizer.joblib")


def _data_dir() -> Path:
    try:
        return Path(str(importlib.resources.files("profanity_check") / "data"))
    except ModuleNotFoundError:
        raise UserError(
            "The profanity-check scorer needs the package 'alt-profanity-check', which is not "
            "installed. Install it with `pip install alt-profanity-check`, or choose another "
            "scorer (e.g. --scorer detoxify:original)."
        ) from None


@functools.lru_cache(maxsize=1)
def _load() -> tuple[object, object, int, str]:
    """(vectorizer, model, column of the offensive class, combined sha256 of the files)."""
    import joblib

    data = _data_dir()
    files = [data / name for name in _MODEL_FILES]
    digest = combine({p.name: sha256_file(p) for p in files})
    model = joblib.load(data / "model.joblib")
    vectorizer = joblib.load(data / "vectorizer.joblib")
    classes = [int(c) for c in getattr(model, "classes_", [0, 1])]
    if classes != [0, 1]:
        raise ScorerError(f"profanity-check model has unexpected classes {classes}; expected [0, 1]")
    return vectorizer, model, 1, digest


class ProfanityCheckScorer(Scorer):
    """Probability of offensive language per text, from the ``alt-profanity-check`` model."""

    batch_size = 16384  # TF-IDF + linear model: memory is small, one call amortises overhead

    def __init__(self, *, threshold: float = 0.5, operator: str = ">=", batch_size: int | None = None):
        threshold, operator = check_threshold(threshold, operator)
        if batch_size is not None:
            self.batch_size = int(batch_size)
        self._vectorizer, self._model, self._column, digest = _load()
        self.identity = ScorerIdentity(
            name=NAME,
            version=importlib.metadata.version(_DISTRIBUTION),
            checkpoint_sha256=digest,
            threshold=threshold,
            operator=operator,  # type: ignore[arg-type]
            primary=ATTRIBUTE,
            attributes=(ATTRIBUTE,),
            max_length=None,
            length_unit="chars",
            description=(
                "Offensive-language (profanity) classifier: TF-IDF words + calibrated linear SVM "
                "(alt-profanity-check). 'offensive' is P(text contains offensive/profane "
                "language); it is not a contextual toxicity model like Perspective or Detoxify."
            ),
            extra={"scikit-learn": importlib.metadata.version("scikit-learn")},
        )

    def score(self, texts: Sequence[str]) -> list[TextScore]:
        """In input order, in chunks: a bag of words has no padding, so sorting buys nothing."""
        out: list[TextScore] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(self.score_batch(texts[start : start + self.batch_size]))
        return out

    def score_batch(self, texts: Sequence[str]) -> list[TextScore]:
        for t in texts:
            if not isinstance(t, str):
                raise ScorerError(f"profanity-check scores strings, got {type(t).__name__}")
        if not texts:
            return []
        probs = self._model.predict_proba(self._vectorizer.transform(list(texts)))[:, self._column]
        if not np.isfinite(probs).all():
            raise ScorerError("profanity-check returned a non-finite probability")
        return [TextScore(scores={ATTRIBUTE: p}, truncated=False) for p in probs.tolist()]
