"""What a report reads from the store and the probes: the runs (with their models, decoding and
chat settings), the finetune runs of the same audit, the runs' stored metrics, the data sets they
read, each probe's title, citation and metric definitions, and a single run's probes (metrics,
confounders and worst items).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from rai_audit.comparison import CHAT_PATHS, DECODING_PATHS, OUTCOME_BETTER, confounders, lookup_setting, probe_params
from rai_audit.jsonable import jsonable
from rai_audit.report.contamination import detail_model, run_contamination
from rai_audit.report.data import DatasetEntry, RunInfo


def run_info(store: Any, run: Any) -> RunInfo:
    """A run as the report shows it, with its model row when the store has one."""
    model = None
    if run.model_id and hasattr(store, "get_model"):
        try:
            model = store.get_model(run.model_id)
        except Exception:  # noqa: BLE001 - the model row is optional context
            model = None
    return RunInfo.model_validate(jsonable({
        "run_id": run.run_id, "label": run.label, "role": run.role, "audit_id": run.audit_id,
        "model_reference": run.model_reference, "model_id": run.model_id, "model": model,
        "status": run.status, "seed": run.seed, "probes": list(run.probes), "config": run.config,
        "config_hash": run.config_hash, "created_at": str(run.created_at), "finished_at": str(run.finished_at) if run.finished_at else None,
        "scorer": run.scorer, "datasets": run.datasets, "provenance": run.provenance,
        "decoding": lookup_setting(run.config or {}, DECODING_PATHS), "chat": lookup_setting(run.config or {}, CHAT_PATHS),
    }))


def finetune_runs(store: Any, runs: Mapping[str, RunInfo]) -> list[dict[str, Any]]:
    """Finetune runs of the same audit (their config and provenance are the finetune manifest)."""
    audit_ids = {r.audit_id for r in runs.values() if r.audit_id}
    out = []
    for audit_id in sorted(audit_ids):
        try:
            found = store.list_runs(audit_id=audit_id, kind="finetune")
        except Exception:  # noqa: BLE001 - a store without finetune runs: nothing to show
            continue
        for run in found:
            out.append(jsonable({"run_id": run.run_id, "model_reference": run.model_reference, "model_id": run.model_id,
                                 "config_hash": run.config_hash, "config": run.config, "provenance": run.provenance}))
    return out


def metric_rows(store: Any, run_id: str) -> list[dict[str, Any]]:
    """A run's stored metrics (value, n, own CI per probe, metric and subgroup)."""
    return [jsonable(m) for m in store.metrics(run_id)]


def datasets(runs: Sequence[RunInfo]) -> list[DatasetEntry]:
    """The data sets the runs read, each once: name, source, revision, license, files (sha256)."""
    out, seen = [], set()
    for run in runs:
        for key, info in (run.datasets or {}).items():
            info = info if isinstance(info, Mapping) else {"name": key, "value": info}
            entry = {
                "probe": key, "name": info.get("name", key), "source": info.get("source"),
                "revision": info.get("revision"), "license": info.get("license"), "citation": info.get("citation"),
                "files": dict(info.get("files") or {}), "dataset_id": info.get("dataset_id"),
            }
            token = repr(sorted(entry.items(), key=lambda kv: kv[0]))
            if token not in seen:
                seen.add(token)
                out.append(DatasetEntry.model_validate(entry))
    return out


def load_probe(name: str, params: Mapping[str, Any], loader: Callable | None) -> tuple[dict[str, Any], Any]:
    """The probe's report metadata (title, citation, metric definitions; or why it could not be
    loaded) and the probe itself (None when it could not be loaded)."""
    try:
        if loader is None:
            import probes

            instance = probes.probe_class(name)(dict(params))
        else:
            instance = loader(name, params)
    except Exception as e:  # noqa: BLE001 - reported in the methodology section
        return {"title": name, "citation": "", "metric_specs": [], "load_error": f"{type(e).__name__}: {e}"}, None
    import probes  # the registry module only: an instance's title names its label

    return {
        "title": probes.instance_title(name, getattr(instance, "title", "") or name),
        "citation": getattr(instance, "citation", "") or "",
        "metric_specs": [
            {"name": s.name, "description": s.description, "better": s.better, "kind": s.kind}
            for s in getattr(instance, "metric_specs", ())
        ],
    }, instance


def probe_meta(name: str, params: Mapping[str, Any], loader: Callable | None) -> dict[str, Any]:
    """:func:`load_probe`'s metadata only."""
    return load_probe(name, params, loader)[0]


# ------------------------------------------------------------------------------ a single run


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return None
    return float(v)


def item_score(records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], instance: Any = None) -> tuple[str, str] | None:
    """The per-item outcome that ranks a single run's worst items, and which way is better.

    The probe declares it: the first of its records' ``outcomes`` (in the order the probe writes
    them) that is continuous (not only 0/1) and has a direction, taken from the probe's metric
    definition of the same name, else its ``outcome_better``, else the conventional outcome names
    a comparison uses (:data:`rai_audit.comparison.OUTCOME_BETTER`). None: nothing to rank by
    (e.g. a probe of right/wrong answers), and no worst items are quoted.
    """
    better = dict(OUTCOME_BETTER)
    better.update(getattr(instance, "outcome_better", None) or {})
    better.update({s["name"]: s["better"] for s in meta.get("metric_specs") or []})
    names: dict[str, bool] = {}  # outcome -> seen a value other than 0 and 1
    for r in records:
        if r.get("error"):
            continue
        for key, v in (r.get("outcomes") or {}).items():
            f = _number(v)
            if f is not None:
                names[key] = names.get(key, False) or f not in (0.0, 1.0)
    for key, continuous in names.items():
        if continuous and better.get(key) in ("higher", "lower"):
            return key, better[key]
    return None


def worst_items(records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], instance: Any, n_worst: int) -> list[dict[str, Any]]:
    """A single run's worst items by the probe's :func:`item_score` (worst first; ties keep the
    records' order), each with its prompt, responses and score."""
    score = item_score(records, meta, instance)
    if score is None:
        return []
    key, direction = score
    scored = [(v, r) for r in records if not r.get("error") and (v := _number((r.get("outcomes") or {}).get(key))) is not None]
    scored.sort(key=lambda t: -t[0] if direction == "lower" else t[0])
    return [{"item_id": r["item_id"], "prompt": r.get("prompt"), "responses_a": list(r.get("responses") or []),
             "outcome": key, "value_a": (r.get("outcomes") or {}).get(key), "subgroups": r.get("subgroups") or {}}
            for _, r in scored[:n_worst]]


def run_probes(store: Any, run: Any, runs: Mapping[str, RunInfo], probe_loader: Callable | None, n_worst: int) -> list[dict[str, Any]]:
    """A single run's probes: metadata, stored metrics, confounders, worst items and the
    training-data overlap it recorded."""
    probes = []
    overlap = run_contamination(run)
    stored = metric_rows(store, run.run_id)
    runs_d = {k: r.model_dump() for k, r in runs.items()}
    for name in run.probes:
        records = store.records(run.run_id, name)
        meta, instance = load_probe(name, probe_params(run.config, name), probe_loader)
        entry = {
            "probe": name, **meta,
            "metrics": [m for m in stored if m["probe"] == name],
            "confounders": {"a": jsonable(confounders(records))},
            "worst_items": worst_items(records, meta, instance, n_worst),
            "contamination": overlap.get(name, {}),
        }
        detail = detail_model(entry, runs_d)
        entry["contamination_detail"] = None if detail is None else detail.model_dump(mode="json")
        probes.append(entry)
    return probes
