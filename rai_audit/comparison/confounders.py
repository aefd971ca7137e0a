"""Confounders: output properties that can masquerade as safety gains (a "safer" model that
merely refuses more, or answers less, is visible as such)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from rai_audit.comparison.model import Confounders
from rai_audit.comparison.outcomes import samples
from rai_audit.refusals import is_refusal


def confounders(records: Sequence[Mapping[str, Any]]) -> Confounders:
    """Parse, empty-output and refusal rates and mean output length over a run's records of a
    probe. Rates are None where they do not apply (no generated text, nothing to parse)."""
    ok = [r for r in records if not r.get("error")]
    parse_flags = [r.get("parsed") is not None for r in ok if "parsed" in r]
    texts = [t for r in ok for t in samples(r)]
    n_texts = len(texts)
    return Confounders(
        n_records=len(records),
        n_errors=len(records) - len(ok),
        n_texts=n_texts,
        parse_rate=sum(parse_flags) / len(parse_flags) if parse_flags else None,
        empty_rate=sum(not t.strip() for t in texts) / n_texts if n_texts else None,
        refusal_rate=sum(is_refusal(t) for t in texts) / n_texts if n_texts else None,
        mean_length_chars=float(np.mean([len(t) for t in texts])) if n_texts else None,
        mean_length_words=float(np.mean([len(t.split()) for t in texts])) if n_texts else None,
    )
