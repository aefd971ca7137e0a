"""What ``rai-audit export`` exports: a run or a comparison, named by id, unique prefix or
``latest``, with an optional ``run:`` / ``comparison:`` prefix when a reference could be either."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rai_audit.errors import StoreError, UserError

if TYPE_CHECKING:
    from rai_audit.comparison import Comparison
    from rai_audit.store.api import RunRecord
    from rai_audit.store.protocol import ResultsStore


@dataclass(frozen=True)
class ExportTarget:
    """A run (``comparison`` None, ``runs`` = (run,)) or a comparison (``runs`` = (A, B))."""

    runs: tuple[RunRecord, ...]
    comparison: Comparison | None = None

    @property
    def stem(self) -> str:
        """The file-name stem: ``run-<id12>`` or ``comparison-<id12>``."""
        if self.comparison is not None:
            return f"comparison-{self.comparison.comparison_id[:12]}"
        return f"run-{self.runs[0].run_id[:12]}"


def _run(store: ResultsStore, ref: str) -> RunRecord:
    return store.get_run(ref)


def _comparison(store: ResultsStore, ref: str) -> ExportTarget:
    from rai_audit.comparison import load_comparison

    comp = load_comparison(store, ref)
    return ExportTarget(runs=(store.get_run(comp.run_a), store.get_run(comp.run_b)), comparison=comp)


def resolve_target(store: ResultsStore, ref: str) -> ExportTarget:
    """``run:REF`` / ``comparison:REF`` name the kind; a bare REF (id, unique prefix, ``latest``)
    must match exactly one of a run and a comparison. StoreError / UserError (exit 2) otherwise."""
    text = (ref or "").strip()
    kind, sep, rest = text.partition(":")
    if sep and kind in ("run", "comparison"):
        if not rest:
            raise UserError(f"Export target {ref!r} names no id: write {kind}:<id>, {kind}:<prefix> or {kind}:latest.")
        return ExportTarget(runs=(_run(store, rest),)) if kind == "run" else _comparison(store, rest)
    found: dict[str, ExportTarget] = {}
    errors: list[StoreError] = []
    for kind, lookup in (("run", lambda: ExportTarget(runs=(_run(store, text),))), ("comparison", lambda: _comparison(store, text))):
        try:
            found[kind] = lookup()
        except StoreError as e:
            errors.append(e)
    if len(found) == 1:
        return next(iter(found.values()))
    if len(found) == 2:
        raise UserError(
            f"Export target {ref!r} matches both run {found['run'].runs[0].run_id[:12]} and comparison "
            f"{found['comparison'].comparison.comparison_id[:12]}: write run:{text} or comparison:{text}."  # type: ignore[union-attr]
        )
    ambiguous = [e for e in errors if "ambiguous" in str(e)]
    if ambiguous:
        raise ambiguous[0]
    raise UserError(
        f"No run or comparison matches {ref!r} in the store {getattr(store, 'display_url', '')}. Give a run or "
        "comparison id, a unique prefix of one, or run:latest / comparison:latest (`rai-audit runs` lists "
        "runs; `rai-audit compare` prints the id of the comparison it saves)."
    )
