"""The one item sampler: every ``limit`` on the items a probe evaluates picks items with it.

The audit-level ``limit`` and a probe's own ``limit`` are applied by the runner
(:func:`rai_audit.runner.prepare_jobs`); the option-choosing probes and CrowS-Pairs apply their
``limit`` in ``load`` as well (through :func:`probes.fewshot.limit_by_cluster`), and the probes'
``n`` / ``n_per_*`` sample sizes go through :func:`probes.toxicity_common.seeded_sample` /
``stratified_sample``. All of them call :func:`select_indices`, so the same N with the same seed
picks the same items wherever it was set.

The rule (:func:`select_indices`):

* **Seeded, independent of file order.** Clusters are visited in the order of a hash of
  (seed, cluster) and the items of a cluster in the order of a hash of (seed, item id).
* **Pairs kept whole.** A cluster of at most :data:`PAIR_MAX` items (WinoBias pro/anti pairs,
  a prompt with its variants) is taken whole or not at all.
* **Large clusters spread.** A larger cluster (a BBQ template, an identity-term template) gives
  one item per round, so a small sample still covers many templates and the cluster bootstrap
  has clusters to resample.
* **At most N.** Clusters are visited round-robin until N items are chosen; a whole small
  cluster that no longer fits is passed over for smaller ones, so the sample can end a few items
  short of N when only pairs are left. Items keep their original order.

An item without a cluster is its own cluster. This module is core: it imports no probe code.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from rai_audit.probe import Item

PAIR_MAX = 4  # clusters this small (matched pairs, triads) are sampled whole


def select_indices(keys: Sequence[tuple[str, str | None]], limit: int | None, seed: int) -> list[int]:
    """Positions (ascending) of the at most ``limit`` elements chosen among ``keys``, a sequence of
    (item id, cluster or None) pairs, by the rule in the module docstring; all when ``limit`` is
    None or not below ``len(keys)``."""
    if limit is None or limit >= len(keys):
        return list(range(len(keys)))

    def h(*parts: object) -> str:
        return hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).hexdigest()

    by_cluster: dict[str, list[int]] = {}
    for i, (item_id, cluster) in enumerate(keys):
        by_cluster.setdefault(cluster or f"item:{item_id}", []).append(i)
    queues = [sorted(idx, key=lambda i: h(keys[i][0])) for _, idx in sorted(by_cluster.items(), key=lambda kv: h(kv[0]))]
    whole = [len(q) <= PAIR_MAX for q in queues]
    chosen: list[int] = []
    progress = True
    while len(chosen) < limit and progress:
        progress = False
        for q, take_whole in zip(queues, whole):
            if not q:
                continue
            block = q if take_whole else q[:1]
            if len(chosen) + len(block) > limit:
                continue
            chosen.extend(block)
            del q[: len(block)]
            progress = True
            if len(chosen) >= limit:
                break
    return sorted(chosen)


def select_items(items: Sequence[Item], limit: int | None, seed: int) -> list[Item]:
    """A seeded, stable sample of at most ``limit`` items (:func:`select_indices` on their ids and
    clusters), in their original order; all of them when ``limit`` is None."""
    return [items[i] for i in select_indices([(it.id, it.cluster) for it in items], limit, seed)]
