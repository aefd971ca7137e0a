"""Seeded, per-item choices that must not depend on run order: few-shot exemplars and limits.

Limits go through the one item sampler, :mod:`rai_audit.selection` (:func:`limit_by_cluster`).

Exemplars are drawn with a random stream derived from (seed, item id), so an item's prompt is the
same whichever other items are in the run, and a resumed run rebuilds identical prompts (the
request cache keys on the exact prompt). The caller says which pool members are off limits for an
item (the item itself, and items sharing its template, so that the answer is never shown).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence, TypeVar

import numpy as np

from rai_audit.probe import Item
from rai_audit.selection import select_items

T = TypeVar("T")


def item_rng(seed: int, *keys: str) -> np.random.Generator:
    """A random generator determined by ``seed`` and the given keys only."""
    digest = hashlib.sha256("\x1f".join([str(seed), *keys]).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def pick_exemplars(
    pool: Sequence[T], k: int, *, seed: int, item_id: str, allowed: Callable[[T], bool]
) -> list[T]:
    """``k`` distinct pool members for which ``allowed`` holds, in a seeded order.

    Fewer than ``k`` are returned only when the pool has fewer allowed members.
    """
    if k <= 0 or not pool:
        return []
    rng = item_rng(seed, "fewshot", item_id)
    # Rejection sampling: cheap when most of the pool is allowed (the usual case); falls back to
    # filtering the whole pool when draws keep hitting excluded members.
    chosen: list[int] = []
    seen: set[int] = set()
    for _ in range(20 * k):
        j = int(rng.integers(len(pool)))
        if j in seen:
            continue
        seen.add(j)
        if allowed(pool[j]):
            chosen.append(j)
            if len(chosen) == k:
                return [pool[i] for i in chosen]
    candidates = [i for i, x in enumerate(pool) if allowed(x) and i not in chosen]
    extra = rng.permutation(len(candidates))[: k - len(chosen)]
    chosen += [candidates[int(j)] for j in extra]
    return [pool[i] for i in chosen]


def limit_by_cluster(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    """At most ``limit`` items, picked by the runner's sampler (:func:`rai_audit.selection.select_items`:
    seeded, pairs and other small clusters kept whole, large clusters spread), in the original
    order; so a probe's ``limit`` applied here picks what the same ``limit`` set for the whole
    audit picks."""
    return select_items(items, limit, seed)
