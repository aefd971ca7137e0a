"""Statistics: bootstrap confidence intervals for probe aggregates, and (comparison) paired
tests, multiple-comparison corrections and minimum detectable effects.

Probes declare their metrics over a per-item table (:mod:`rai_audit.stats.table`,
:mod:`rai_audit.stats.reducers`); :mod:`rai_audit.stats.evaluate` computes them for the point
estimate and every resample at once."""

from rai_audit.stats.bootstrap import bootstrap_metrics, cluster_indices
from rai_audit.stats.reducers import (
    AUC,
    Custom,
    Derived,
    Mean,
    Metric,
    Rate,
    RatioOfSums,
    Reducer,
    Spread,
    Std,
    grouped,
)
from rai_audit.stats.table import Groups, ItemTable

__all__ = [
    "AUC", "Custom", "Derived", "Groups", "ItemTable", "Mean", "Metric", "Rate", "RatioOfSums", "Reducer", "Spread",
    "Std", "bootstrap_metrics", "cluster_indices", "grouped",
]
