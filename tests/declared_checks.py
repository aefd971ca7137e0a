"""A check every declared probe should pass: a cluster resample with repeated records, through
``aggregate``, gives what the vectorised evaluation gives with the cluster counts as weights
(rai_audit/stats/evaluate.py), i.e. a weight of 2 is exactly a record drawn twice."""

from __future__ import annotations

import copy
import math

import numpy as np

from rai_audit.stats.evaluate import plan_for
from rai_audit.stats.table import cluster_indices


def assert_weights_equal_repeated_records(probe, records, seed: int = 0) -> dict:
    clusters = cluster_indices(records)
    picks = np.random.default_rng(seed).integers(0, len(clusters), size=len(clusters))
    sample = [copy.deepcopy(records[i]) for j in picks for i in clusters[j]]  # fresh dicts, repeated
    direct = probe.aggregate(sample)
    plan = plan_for(probe, records, clusters)
    v, n = plan.evaluate(np.bincount(picks, minlength=len(clusters))[None, :])
    weighted = {key: (float(v[0, j]), float(n[0, j])) for j, key in enumerate(plan.keys)}
    for key, (value, count) in direct.items():
        assert key in weighted, key
        assert count == round(weighted[key][1]), key
        w = weighted[key][0]
        assert (math.isnan(value) and math.isnan(w)) or math.isclose(value, w, rel_tol=1e-12, abs_tol=1e-15), (key, value, w)
    for key in weighted.keys() - direct.keys():  # subgroups the resample does not draw
        assert math.isnan(weighted[key][0]), key
    return direct
