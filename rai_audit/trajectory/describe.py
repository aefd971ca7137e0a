"""The lines a person reads about a trajectory at the end of `rai-audit run`, `finetune
--audit-every` and `sweep`: each point's verdict, the trajectory's verdict and why, the checkpoint
to ship, and the commands to look closer (with the store's --db, ready to paste)."""

from __future__ import annotations

import shlex
from typing import Any


def outcome_lines(summary: dict[str, Any], db_url: str | None = None, prog: str = "rai-audit") -> list[str]:
    """``prog`` is how the commands call rai-audit (the demo passes its full path, so its lines
    paste from any directory without an activated environment)."""
    tid = summary["trajectory_id"][:12]
    db = f" --db {shlex.quote(db_url)}" if db_url else ""
    points = ", ".join(f"{p['label']}: {(p['verdict'] or 'reference').upper() if p['position'] else 'reference'}"
                       for p in summary["points"])
    lines = [f"trajectory {tid} ({summary['axis']} axis): {points}"]
    verdict = (summary.get("verdict") or "-").upper()
    lines.append(f"trajectory verdict {verdict} (exit {summary.get('exit_code', '-')} with `rai-audit trajectory gate`)")
    lines += [f"  - {r}" for r in summary.get("reasons", [])[:6]]
    if summary.get("selected"):
        lines.append(f"ship       {summary['selected']}: {summary['selected_model']} ({summary['selection_reason']})")
    else:
        lines.append(f"ship       no checkpoint passes the gate ({summary.get('selection_reason', '')})")
    lines.append(f"trajectory json {summary['json']}")
    lines.append(f"look closer: {prog} trajectory show {tid}{db}   |   {prog} trajectory select {tid}{db}")
    return lines
