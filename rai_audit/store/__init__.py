"""The results store (docs/architecture.md, "The nouns"): append-only tables for runs, models, items,
responses, scores, records, metrics, artifacts and comparisons, on SQLite (WAL) by default or
PostgreSQL by URL.

``Store.open(url)`` opens (and on first use creates) a store; ``upgrade``, ``current_revision``
and ``head_revision`` back the CLI's ``rai-audit db`` command; ``resolve_url`` / ``default_url``
say where a store lives.
"""

from rai_audit.store.api import (
    TERMINAL_STATUSES,
    ArtifactRecord,
    ComparisonRecord,
    MetricRow,
    RunEvent,
    RunRecord,
    RunStatus,
)
from rai_audit.store.engine import default_url, display_url, rai_audit_home, resolve_url
from rai_audit.store.migrate import current_revision, head_revision, upgrade
from rai_audit.store.protocol import ResultsStore
from rai_audit.store.store import Store

__all__ = [
    "ArtifactRecord",
    "ComparisonRecord",
    "MetricRow",
    "RunEvent",
    "RunRecord",
    "ResultsStore",
    "RunStatus",
    "Store",
    "TERMINAL_STATUSES",
    "current_revision",
    "default_url",
    "display_url",
    "head_revision",
    "rai_audit_home",
    "resolve_url",
    "upgrade",
]
