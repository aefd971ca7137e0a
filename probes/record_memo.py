"""Per-record columns memoised by record identity, so bootstrap aggregates read each record once.

The runner re-runs a probe's ``aggregate`` on ~1000 bootstrap resamples that reuse the same
record dicts. A table built on :class:`RecordMemo` reads the fields of every record it has seen
into arrays once (:meth:`RecordMemo._build`); a later call costs one dictionary lookup per
record (:meth:`RecordMemo.index`) plus array arithmetic on the rows it returns. Records are
treated as immutable once aggregated (the runner never edits them); the table keeps a reference
to each so their ids stay unique.

Two tables use it: :class:`probes.toxicity_aggregate.RecordTable` (toxicity of generations)
and :class:`probes.yes_no.ClassificationTable` (yes/no classification).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

LabelsOf = Callable[[dict[str, Any]], Iterable[str]]


class RecordMemo:
    """Rows of every record seen, by identity; ``valid`` marks the error-free ones.

    Subclasses implement :meth:`_build`, which recomputes their arrays from all records."""

    MAX_RECORDS = 2_000_000

    def __init__(self, labels_of: LabelsOf):
        self.labels_of = labels_of
        self._pos: dict[int, int] = {}
        self._records: list[dict[str, Any]] = []
        self._built = 0
        self.valid = np.zeros(0, dtype=bool)

    @classmethod
    def of(cls, owner: Any, *args: Any, **kwargs: Any):
        """``owner``'s table of this class (a probe instance keeps one; created on first use)."""
        attr = f"_memo_{cls.__name__}"
        table = getattr(owner, attr, None)
        if table is None:
            table = cls(*args, **kwargs)
            setattr(owner, attr, table)
        return table

    @property
    def size(self) -> int:
        return len(self._records)

    def index(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """Table rows of the valid (error-free) records, in order."""
        if len(self._records) > self.MAX_RECORDS:  # a caller that rebuilds its dicts every call
            self._pos, self._records, self._built = {}, [], 0
        pos = self._pos
        rows = list(map(pos.get, map(id, records)))
        if None in rows:
            for i, r in enumerate(records):
                if rows[i] is None:
                    j = pos.get(id(r))
                    if j is None:
                        j = len(self._records)
                        self._records.append(r)
                        pos[id(r)] = j
                    rows[i] = j
        if self._built != len(self._records):
            ok = [None if r.get("error") else r for r in self._records]  # the store writes "error": None
            self.valid = np.array([r is not None for r in ok], dtype=bool)
            self._build(ok)
            self._built = len(ok)
        idx = np.asarray(rows, dtype=np.int64)
        return idx[self.valid[idx]] if idx.size else idx

    def members(self, ok: Sequence[dict[str, Any] | None]) -> dict[str, list[int]]:
        """label -> rows of the valid records carrying it (``labels_of``), in first-seen order."""
        out: dict[str, list[int]] = {}
        for j, r in enumerate(ok):
            if r is not None:
                for lab in self.labels_of(r):
                    out.setdefault(lab, []).append(j)
        return out

    def _build(self, ok: Sequence[dict[str, Any] | None]) -> None:
        """Recompute the subclass's arrays; ``ok[j]`` is record j, or None when it is an error."""
        raise NotImplementedError
