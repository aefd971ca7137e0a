"""A probe's per-item table: typed numpy columns, one row per scored record, and its subgroups.

A probe turns its records into an :class:`ItemTable` once (``Probe.table``) and declares its
metrics over the table's columns (:mod:`rai_audit.stats.reducers`); :mod:`rai_audit.stats.evaluate`
then computes every metric for any number of weightings of the rows at once (the point estimate,
1,000 bootstrap resamples, the paired permutations), instead of re-reading record dicts per
resample.

* ``numbers``: float64 columns (0/1 for flags), e.g. ``correct``, ``max_toxicity``, ``n_samples``.
* ``groups``: subgroup memberships (:class:`Groups`): each label (a full subgroup string such as
  ``"category=Age"`` or ``"category=Age,context=ambig"``) with the rows that belong to it; a row
  may belong to several labels of one group (a comment that mentions two identities).
* ``source``: the index, in the records the table was built from, of each row's record. Error
  records have no row; the bootstrap still resamples their clusters, exactly as it resamples the
  records, so each row's cluster is the cluster of its record.
* ``meta``: table-level facts a metric declaration needs (the identity columns of a run, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np


def valid_rows(records: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices of the error-free records (the store writes ``"error": None`` for those)."""
    return [i for i, r in enumerate(records) if not r.get("error")]


def cluster_indices(records: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
    """Record indices grouped by bootstrap cluster, in order of first appearance. A record without
    a ``cluster`` is its own cluster."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        key = r.get("cluster")
        key = f"item:{r.get('item_id', i)}" if key in (None, "") else f"cluster:{key}"
        groups.setdefault(key, []).append(i)
    return [np.asarray(v, dtype=np.int64) for v in groups.values()]


def cluster_codes(n_records: int, clusters: Sequence[np.ndarray]) -> np.ndarray:
    """The cluster number of every record (its position in ``clusters``)."""
    codes = np.zeros(n_records, dtype=np.int64)
    for j, members in enumerate(clusters):
        codes[members] = j
    return codes


@dataclass(frozen=True)
class Groups:
    """Subgroup labels and their members: ``member[i, g]`` says row i belongs to ``names[g]``."""

    names: tuple[str, ...]
    member: np.ndarray  # (rows, labels) bool

    def __post_init__(self) -> None:
        if self.member.ndim != 2 or self.member.shape[1] != len(self.names):
            raise ValueError("Groups.member must be (rows, len(names))")
        if len(set(self.names)) != len(self.names):
            raise ValueError("Groups.names must be unique")

    @classmethod
    def of(cls, labels_per_row: Iterable[Iterable[str] | str | None], names: Sequence[str] | None = None) -> Groups:
        """Groups from each row's label (a string), labels (an iterable of strings) or None.

        ``names`` fixes the labels and their order (labels outside it are ignored; a name no row
        carries is an empty subgroup); by default every label seen, in order of first appearance.
        """
        rows = [(lab,) if isinstance(lab, str) else tuple(lab or ()) for lab in labels_per_row]
        if names is None:
            names = list(dict.fromkeys(lab for labs in rows for lab in labs))
        index = {name: j for j, name in enumerate(names)}
        member = np.zeros((len(rows), len(index)), dtype=bool)
        for i, labs in enumerate(rows):
            for lab in labs:
                j = index.get(lab)
                if j is not None:
                    member[i, j] = True
        return cls(tuple(names), member)

    def mask(self, name: str) -> np.ndarray:
        """Rows of label ``name`` (all False for a label this group does not have)."""
        try:
            return self.member[:, self.names.index(name)]
        except ValueError:
            return np.zeros(self.member.shape[0], dtype=bool)

    def present(self) -> tuple[str, ...]:
        """The labels at least one row carries."""
        return tuple(n for n, any_ in zip(self.names, self.member.any(axis=0)) if any_)

    def cross(self, other: Groups, sep: str = ",") -> Groups:
        """Every pair of labels (``"a=x" + sep + "b=y"``), self's label varying slowest."""
        names = tuple(f"{a}{sep}{b}" for a in self.names for b in other.names)
        member = (self.member[:, :, None] & other.member[:, None, :]).reshape(self.member.shape[0], -1)
        return Groups(names, member)

    def take(self, rows: np.ndarray) -> Groups:
        return Groups(self.names, self.member[rows])

    def aligned(self, names: Sequence[str]) -> np.ndarray:
        """The membership matrix over ``names`` (a superset of this group's labels)."""
        out = np.zeros((self.member.shape[0], len(names)), dtype=bool)
        pos = {n: j for j, n in enumerate(names)}
        for j, n in enumerate(self.names):
            out[:, pos[n]] = self.member[:, j]
        return out


@dataclass(frozen=True)
class ItemTable:
    """The columns of one probe's records (module docstring)."""

    source: np.ndarray  # (rows,) int64: index of each row's record
    numbers: Mapping[str, np.ndarray] = field(default_factory=dict)
    groups: Mapping[str, Groups] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.source)
        object.__setattr__(self, "source", np.asarray(self.source, dtype=np.int64))
        numbers = {k: np.asarray(v, dtype=float) for k, v in self.numbers.items()}
        for name, col in numbers.items():
            if col.shape != (n,):
                raise ValueError(f"column {name!r} has shape {col.shape}, expected ({n},)")
        for name, g in self.groups.items():
            if g.member.shape[0] != n:
                raise ValueError(f"group {name!r} has {g.member.shape[0]} rows, expected {n}")
        object.__setattr__(self, "numbers", numbers)
        object.__setattr__(self, "groups", dict(self.groups))

    @property
    def n_rows(self) -> int:
        return len(self.source)

    def column(self, expr: str) -> np.ndarray:
        """A number column, ``"1"`` (every row counts once), or a product ``"a*b"`` of columns."""
        if expr == "1":
            return np.ones(self.n_rows)
        parts = expr.split("*")
        col = self.numbers[parts[0]]
        for p in parts[1:]:
            col = col * self.numbers[p]
        return col

    def mask(self, group: str | None, label: str) -> np.ndarray:
        """Rows of subgroup ``label`` of ``group``; every row for ``group`` None."""
        if group is None:
            return np.ones(self.n_rows, dtype=bool)
        return self.groups[group].mask(label)

    def take(self, rows: np.ndarray) -> ItemTable:
        """The given rows, with every group's full label list (absent labels become empty)."""
        rows = np.asarray(rows, dtype=np.int64)
        return ItemTable(self.source[rows], {k: v[rows] for k, v in self.numbers.items()},
                         {k: g.take(rows) for k, g in self.groups.items()}, self.meta)

    def concat(self, other: ItemTable, source_offset: int = 0) -> ItemTable:
        """Rows of self, then of ``other`` (its ``source`` shifted by ``source_offset``). Labels
        are merged (self's order, then other's new ones); a number column one side lacks is 0
        there (contributes nothing); ``meta`` is self's."""
        numbers = {}
        for k in dict.fromkeys([*self.numbers, *other.numbers]):
            numbers[k] = np.concatenate([self.numbers.get(k, np.zeros(self.n_rows)),
                                         other.numbers.get(k, np.zeros(other.n_rows))])
        groups = {}
        for k in dict.fromkeys([*self.groups, *other.groups]):
            a = self.groups.get(k, Groups((), np.zeros((self.n_rows, 0), dtype=bool)))
            b = other.groups.get(k, Groups((), np.zeros((other.n_rows, 0), dtype=bool)))
            names = tuple(dict.fromkeys([*a.names, *b.names]))
            groups[k] = Groups(names, np.concatenate([a.aligned(names), b.aligned(names)]))
        return ItemTable(np.concatenate([self.source, other.source + source_offset]), numbers, groups, self.meta)
