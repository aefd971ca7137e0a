"""A store checks itself: seals written when a run completes, and ``rai-audit verify``.

Reports embed sha256 digests of the records, metrics and comparison they were made from, so a
report can be checked against its store. But tampering with the store itself (a row rewritten
with the triggers dropped, a database file edited by hand) should be found without a report too.
So when a run completes the store seals it: the completed event carries the digests of the run's
records and metrics, computed exactly as a report's manifest computes them, and each saved
comparison carries the digest of its result. :func:`verify_store` recomputes every seal and checks
that the append-only triggers (:mod:`rai_audit.store.ddl`) are all in place.

Runs completed before seals existed are counted as unsealed, not as failures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass
from typing import TYPE_CHECKING, Any

from rai_audit.hashing import sha256_json

if TYPE_CHECKING:
    from rai_audit.store.protocol import ResultsStore, RunResults, StoreConnection

COMPLETED = ("completed", "completed_with_errors")
SEAL_KEY = "seal"
COMPARISON_DIGEST_KEY = "result_sha256"


def _jsonable(v: Any) -> Any:
    from rai_audit.jsonable import jsonable  # the one JSON normalisation reports use (imports numpy)

    return jsonable(v)


def records_digest(store: RunResults, run_id: str) -> str:
    return sha256_json(_jsonable(store.records(run_id)))


def metrics_digest(store: RunResults, run_id: str) -> str:
    return sha256_json([_jsonable(asdict(m) if is_dataclass(m) else m) for m in store.metrics(run_id)])


def comparison_digest(result: Any) -> str:
    return sha256_json(_jsonable(result))


def seal(store: RunResults, run_id: str) -> dict[str, str]:
    """What the completed event of a run records about its results."""
    return {"records_sha256": records_digest(store, run_id), "metrics_sha256": metrics_digest(store, run_id)}


@dataclass
class IntegrityReport:
    url: str
    runs_checked: int = 0
    runs_unsealed: int = 0
    comparisons_checked: int = 0
    comparisons_unsealed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format_text(self) -> str:
        lines = [
            f"store        {self.url}",
            f"runs         {self.runs_checked} sealed run(s) checked, {self.runs_unsealed} without a seal (older or unfinished)",
            f"comparisons  {self.comparisons_checked} checked, {self.comparisons_unsealed} without a digest (older)",
        ]
        lines += [f"PROBLEM      {p}" for p in self.problems]
        lines.append("STORE INTEGRITY OK" if self.ok else f"STORE INTEGRITY FAILED: {len(self.problems)} problem(s)")
        return "\n".join(lines)


def _triggers(store: StoreConnection) -> set[str]:
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        else:
            rows = conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        return {r[0] for r in rows}


def expected_triggers(dialect: str) -> set[str]:
    from rai_audit.store.schema import APPEND_ONLY_TABLES

    if dialect == "sqlite":
        return {f"{t}_{k}" for t in APPEND_ONLY_TABLES for k in ("no_update", "no_delete", "no_replace")}
    return {f"{t}_{k}" for t in APPEND_ONLY_TABLES for k in ("append_only", "no_truncate")}


def verify_store(store: ResultsStore) -> IntegrityReport:
    """Recompute every seal and comparison digest, and check the append-only triggers."""
    report = IntegrityReport(url=store.display_url)
    missing = sorted(expected_triggers(store.dialect) - _triggers(store))
    if missing:
        report.problems.append(f"append-only trigger(s) missing: {', '.join(missing)} (someone dropped them; rows may have been changed)")
    for run in store.list_runs():
        sealed = (run.status_detail or {}).get(SEAL_KEY) if run.status in COMPLETED else None
        if not sealed:
            report.runs_unsealed += 1
            continue
        report.runs_checked += 1
        now = seal(store, run.run_id)
        for key, value in sealed.items():
            if now.get(key) != value:
                what = key.split("_")[0]
                report.problems.append(f"run {run.run_id}: its {what} changed since it completed ({key} {value[:12]} -> {now.get(key, '')[:12]})")
    for comp in store.list_comparisons():
        digest = comp.result_sha256
        if not digest:
            report.comparisons_unsealed += 1
            continue
        report.comparisons_checked += 1
        if comparison_digest(comp.result) != digest:
            report.problems.append(f"comparison {comp.comparison_id}: its result changed since it was saved")
    return report

