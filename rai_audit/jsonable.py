"""Strictly JSON-serialisable copies of values: the one normalisation that reports, report
manifests and the store's integrity seals apply before hashing or writing JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any, Mapping

import numpy as np


def jsonable(v: Any) -> Any:
    """A strictly JSON-serialisable copy: NaN/inf -> None, numpy scalars -> Python, datetimes ->
    ISO strings, dataclasses and pydantic models -> dicts, sets -> sorted lists."""
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return sorted(jsonable(x) for x in v)
    if isinstance(v, np.generic):
        return jsonable(v.item())
    if isinstance(v, datetime):
        return v.isoformat()
    if is_dataclass(v) and not isinstance(v, type):
        return jsonable(asdict(v))
    if callable(getattr(v, "model_dump", None)) and not isinstance(v, type):  # a pydantic model
        return jsonable(v.model_dump(mode="json"))
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    return str(v)
