"""Comparisons in the results store: saved under their own id, read back as :class:`Comparison`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rai_audit.comparison.model import Comparison

if TYPE_CHECKING:
    from rai_audit.store.protocol import ComparisonStore


def save_comparison(store: ComparisonStore, comparison: Comparison) -> str:
    """Persist a comparison in the store under its own id (a second save of the same id is a no-op)."""
    return store.add_comparison(comparison.run_a, comparison.run_b, comparison.settings,
                                comparison.model_dump(mode="json"),
                                comparison_id=comparison.comparison_id) or comparison.comparison_id


def load_comparison(store: ComparisonStore, comparison_id: str) -> Comparison:
    """Read a saved comparison (id, unique prefix or "latest") back from the store."""
    return Comparison.model_validate(store.get_comparison(comparison_id).result)
