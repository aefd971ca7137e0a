"""Finding a trajectory in the store by full id, unique prefix or "latest", the way runs and
comparisons are found, with a message that names the fix when none or several match."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rai_audit.errors import UserError

if TYPE_CHECKING:
    from rai_audit.store.api import TrajectoryPointRecord
    from rai_audit.store.protocol import ResultsStore


def find_trajectory(store: ResultsStore, ref: str) -> list[TrajectoryPointRecord]:
    """The points (ordered by position) of the trajectory ``ref`` names; UserError (exit 2) when
    none or several match."""
    ref = (ref or "").strip()
    every = store.list_trajectories()
    if not every:
        raise UserError(f"The store {store.display_url} holds no trajectory. A trajectory audit "
                        "(`rai-audit run` with a trajectory section) records one.")
    if ref == "latest":
        return every[0]
    exact = [pts for pts in every if pts[0].trajectory_id == ref]
    if exact:
        return exact[0]
    found = [pts for pts in every if ref and pts[0].trajectory_id.startswith(ref)]
    if len(found) == 1:
        return found[0]
    if found:
        shown = ", ".join(pts[0].trajectory_id[:12] for pts in found[:10])
        raise UserError(f"Trajectory id prefix {ref!r} is ambiguous: it matches {shown}. Give more characters.")
    raise UserError(f"No trajectory matches {ref!r} in the store {store.display_url}. Give a trajectory id, a unique "
                    "prefix of one, or 'latest' (`rai-audit trajectory list` shows them).")
