"""Whether two runs can be compared item by item, and the settings that decide it.

Two runs are comparable when they ran the same probes on the same items (same data set content
and probe parameters) with the same decoding, seed and chat-template mode; :func:`check_comparable`
names every setting in which they differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from rai_audit.errors import UserError

if TYPE_CHECKING:
    from rai_audit.store.api import RunRecord

#: Run statuses a comparison accepts.
COMPLETED = ("completed", "completed_with_errors")

# Where the audit config records the settings both runs must share (first path present wins).
DECODING_PATHS: tuple[tuple[str, ...], ...] = (("decoding",), ("sampling",), ("generation",))
CHAT_PATHS: tuple[tuple[str, ...], ...] = (("chat",), ("chat_template",), ("decoding", "chat"), ("model", "chat"))


def lookup_setting(config: Mapping[str, Any], paths: Iterable[tuple[str, ...]]) -> Any:
    """The value at the first of ``paths`` (keys into nested mappings) present in ``config``, else None."""
    for path in paths:
        cur: Any = config
        for part in path:
            if not isinstance(cur, Mapping) or part not in cur:
                break
            cur = cur[part]
        else:
            return cur
    return None


def probe_params(config: Mapping[str, Any], probe: str) -> dict[str, Any]:
    """The probe's parameters as the run config recorded them ({} when none)."""
    spec = (config or {}).get("probes")
    if isinstance(spec, Mapping):
        got = spec.get(probe)
        return dict(got) if isinstance(got, Mapping) else {}
    if isinstance(spec, list):
        for entry in spec:
            if isinstance(entry, Mapping) and entry.get("name") == probe:
                return {k: v for k, v in entry.items() if k not in ("name", "params")} | dict(entry.get("params") or {})
    return {}


def _item_difference(probe: str, ids_a: set[str], ids_b: set[str]) -> str | None:
    if ids_a == ids_b:
        return None
    only_a, only_b = sorted(ids_a - ids_b), sorted(ids_b - ids_a)
    example = (only_a or only_b)[:3]
    return (
        f"items of probe {probe!r} ({len(only_a)} only in A, {len(only_b)} only in B, "
        f"e.g. {', '.join(map(str, example))})"
    )


def _dataset_fingerprints(datasets: Mapping[str, Any] | None) -> dict[str, Any]:
    """What identifies each data set's content (name, revision, file hashes), ignoring where it
    was read from, so the same files at another path still compare."""
    out = {}
    for key, info in (datasets or {}).items():
        if isinstance(info, Mapping):
            out[key] = {k: info.get(k) for k in ("name", "revision", "files", "dataset_id") if info.get(k) is not None}
        else:
            out[key] = info
    return out


def check_comparable(run_a: RunRecord, run_b: RunRecord, records_a: Mapping[str, list], records_b: Mapping[str, list]) -> None:
    """Raise UserError naming every setting in which the two runs differ."""
    problems: list[str] = []
    pa, pb = list(run_a.probes), list(run_b.probes)
    if set(pa) != set(pb):
        problems.append(
            f"probe suites (only in A: {sorted(set(pa) - set(pb)) or '-'}; only in B: {sorted(set(pb) - set(pa)) or '-'})"
        )
    if run_a.seed != run_b.seed:
        problems.append(f"seeds (A: {run_a.seed}, B: {run_b.seed})")
    dec_a, dec_b = lookup_setting(run_a.config, DECODING_PATHS), lookup_setting(run_b.config, DECODING_PATHS)
    if dec_a != dec_b:
        problems.append(f"decoding (A: {dec_a}, B: {dec_b})")
    chat_a, chat_b = lookup_setting(run_a.config, CHAT_PATHS), lookup_setting(run_b.config, CHAT_PATHS)
    if chat_a != chat_b:
        problems.append(f"chat-template mode (A: {chat_a}, B: {chat_b})")
    da, db = _dataset_fingerprints(run_a.datasets), _dataset_fingerprints(run_b.datasets)
    if da != db:
        names = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
        problems.append(f"items (datasets differ: {', '.join(names)})")
    for probe in sorted(set(pa) & set(pb)):
        if probe_params(run_a.config, probe) != probe_params(run_b.config, probe):
            problems.append(
                f"items (parameters of probe {probe!r}: A {probe_params(run_a.config, probe)}, "
                f"B {probe_params(run_b.config, probe)})"
            )
        diff = _item_difference(probe, {r["item_id"] for r in records_a.get(probe, [])}, {r["item_id"] for r in records_b.get(probe, [])})
        if diff:
            problems.append(diff)
    if problems:
        raise UserError(
            f"Runs {run_a.run_id} and {run_b.run_id} cannot be compared item by item because they differ in: "
            + "; ".join(problems)
            + ". Re-run both models with the same audit config (same probes and items, decoding, seed and "
            "chat-template mode) and compare those runs."
        )
