"""``--format lm-eval``: a run as lm-evaluation-harness writes its results, so tools that read
lm-eval output (its table printer, leaderboards' parsers, pandas scripts) read rai-audit runs.

Files, laid out as lm-eval's ``--output_path`` lays them out (``lm_eval/loggers/
evaluation_tracker.py``): ``<output>/<model name, sanitised>/results_<date>.json`` and
``samples_<probe>_<date>.jsonl`` beside it, or, when ``--output`` ends with ``.json``,
``<output stem>_<date>.json`` with the samples in its folder. ``<date>`` is the run's start
(ISO 8601, ``:`` written ``-``), so exporting a run again rewrites the same files. A comparison
writes both of its runs.

The results JSON has lm-eval's keys (``lm_eval.result_schema.EvalResults``): ``results`` (per
task, here per probe: ``alias``, ``sample_len`` and each overall metric as ``"<metric>,none"``
with ``"<metric>_stderr,none"``: ``"N/A"``, as lm-eval writes it without a standard error; a
metric that is undefined is ``null``), ``group_subtasks``, ``configs`` (the probe as a task
config: data set, output_type, ``num_fewshot``, ``metric_list``, ``metadata`` with the probe's
parameters), ``versions``, ``n-shot``, ``higher_is_better``, ``n-samples`` (``original``: items
stored for the data set, ``effective``: items the run recorded), ``config`` (model, seeds,
batch size, device, limit, bootstrap resamples) and provenance (``git_hash``, ``date``,
``model_source``, ``model_name``, ``model_name_sanitized``, ``transformers_version``,
``total_evaluation_time_seconds``). Task names are rai-audit's probe names (lm-eval's names for
the same benchmarks define their metrics differently: docs/metrics.md). ``rai_audit`` holds what
lm-eval has no key for: the run id and key, every metric row with its subgroup, n and 95% CI.
"""

from __future__ import annotations

import json
import re
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rai_audit.exports.lm_eval_samples import probe_params, samples
from rai_audit.exports.output import ensure_dir, write_all

if TYPE_CHECKING:
    from rai_audit.exports.target import ExportTarget
    from rai_audit.store.api import RunRecord
    from rai_audit.store.protocol import ResultsStore

_BETTER = {"higher": True, "lower": False}


def sanitize_model_name(name: str) -> str:
    """lm-eval's ``sanitize_model_name``: path-hostile characters become ``__``."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def date_id(run: RunRecord) -> str:
    created = run.created_at
    if created.tzinfo is not None:
        created = created.astimezone(timezone.utc).replace(tzinfo=None)
    return created.isoformat().replace(":", "-")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


def _specs(probe: str) -> list[Any]:
    try:
        import probes

        return list(probes.probe_class(probe).metric_specs)
    except Exception:  # noqa: BLE001 - a probe not registered here: no declared metrics
        return []


def results(store: ResultsStore, run: RunRecord, per_probe: dict[str, tuple[list[dict], str | None]]) -> dict[str, Any]:
    """The lm-eval results document of ``run`` (``per_probe``: its samples and output_type)."""
    metrics = store.metrics(run.run_id)
    cfg = run.config or {}
    runtime = cfg.get("runtime") or {}
    prov = run.provenance or {}
    out: dict[str, Any] = {"results": {}, "group_subtasks": {}, "configs": {}, "versions": {}, "n-shot": {},
                           "higher_is_better": {}, "n-samples": {}}
    for probe in run.probes:
        found, kind = per_probe[probe]
        ds = (run.datasets or {}).get(probe) or {}
        params = probe_params(run, probe)
        specs = _specs(probe)
        overall = [m for m in metrics if m.probe == probe and m.subgroup == ""]
        task: dict[str, Any] = {"alias": probe, "sample_len": len(found)}
        for m in overall:
            task[f"{m.name},none"] = _finite(m.value)
            task[f"{m.name}_stderr,none"] = "N/A"
        out["results"][probe] = task
        out["group_subtasks"][probe] = []
        better = {s.name: _BETTER.get(s.better) for s in specs}
        out["configs"][probe] = {
            "task": probe, "tag": ["rai-audit"], "dataset_path": ds.get("source"), "dataset_name": ds.get("name"),
            "revision": ds.get("revision"), "output_type": kind, "num_fewshot": int(params.get("k_shot", 0) or 0),
            "metric_list": [{"metric": s.name, "aggregation": s.kind, "higher_is_better": better[s.name]} for s in specs],
            "metadata": {"version": prov.get("rai_audit_version"), "probe_params": params, "dataset_id": ds.get("dataset_id"),
                         "license": ds.get("license"), "citation": ds.get("citation"), "files": ds.get("files") or {}},
        }
        out["versions"][probe] = prov.get("rai_audit_version")
        out["n-shot"][probe] = int(params.get("k_shot", 0) or 0)
        out["higher_is_better"][probe] = better
        stored = len(store.items(probe, ds["dataset_id"])) if ds.get("dataset_id") else len(found)
        out["n-samples"][probe] = {"original": stored, "effective": len(found)}
    name = run.model_reference or run.model_id or "model"
    out["config"] = {
        "model": name, "model_args": None, "model_sha": run.model_id, "batch_size": runtime.get("batch_size"),
        "batch_sizes": [], "device": runtime.get("device"), "use_cache": None, "limit": cfg.get("limit"),
        "bootstrap_iters": runtime.get("bootstrap"), "gen_kwargs": None, "random_seed": run.seed,
        "numpy_seed": run.seed, "torch_seed": run.seed, "fewshot_seed": run.seed,
    }
    out["git_hash"] = prov.get("git_commit")
    out["date"] = run.created_at.timestamp()
    out["transformers_version"] = (prov.get("packages") or {}).get("transformers")
    out["model_source"] = "rai-audit"
    out["model_name"] = name
    out["model_name_sanitized"] = sanitize_model_name(name)
    if run.finished_at is not None:
        out["total_evaluation_time_seconds"] = str((run.finished_at - run.created_at).total_seconds())
    out["rai_audit"] = {
        "run_id": run.run_id, "run_key": run.run_key, "status": run.status, "role": run.role, "label": run.label,
        "scorer": run.scorer,
        "metrics": [{"probe": m.probe, "metric": m.name, "subgroup": m.subgroup, "value": _finite(m.value), "n": m.n,
                     "ci_low": _finite(m.ci_low), "ci_high": _finite(m.ci_high)} for m in metrics],
    }
    return out


def run_files(run: RunRecord, output: Path) -> tuple[Path, Path]:
    """(results file, samples folder) of ``run`` under ``output``, as lm-eval names them."""
    date = date_id(run)
    if output.suffix.lower() == ".json":
        return output.with_name(f"{output.stem}_{date}.json"), output.parent
    folder = output / sanitize_model_name(run.model_reference or run.model_id or "model")
    return folder / f"results_{date}.json", folder


def _dump(doc: Any, path: Path) -> None:
    path.write_text(json.dumps(doc, indent=2, default=str, ensure_ascii=False, allow_nan=False), encoding="utf-8")


def _dump_lines(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")


def write(target: ExportTarget, store: ResultsStore, output: Path) -> list[Path]:
    planned: list[tuple[dict[str, Path], dict[str, Any], Any]] = []
    for run in target.runs:
        per_probe = {p: samples(store, run, p) for p in run.probes}
        results_path, folder = run_files(run, output)
        ensure_dir(folder)
        planned.append(({"results": results_path}, {"results": _clean(results(store, run, per_probe))}, _dump))
        paths = {p: folder / f"samples_{p}_{date_id(run)}.jsonl" for p in run.probes}
        planned.append((paths, {p: [_clean(s) for s in per_probe[p][0]] for p in run.probes}, _dump_lines))
    written: list[Path] = []
    for paths, contents, writer in planned:
        written += write_all(paths, contents, writer)
    return written


def _clean(value: Any) -> Any:
    """NaN and infinities (no JSON numbers) become null, recursively."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
