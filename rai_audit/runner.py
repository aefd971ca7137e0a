"""The probe runner: one model x a probe suite -> per-item records and metrics in the store.

Why it is shaped this way:

* **Resume by content.** A run is keyed by a hash of what determines its results (model hash,
  probes and parameters, datasets, scorer identity, seed, limit). Running the same thing again
  finds the run by that key: a finished run is returned as it is, an unfinished one carries on
  with the items that have no record yet. Model answers and scores are cached by content in the
  store as well, so even the items of a chunk that died half-way cost nothing the second time.
* **Nothing half-written.** A chunk's records are written in one transaction after its answers
  are cached; metrics of a probe are written in one transaction once all its items have records.
  A process killed at any moment leaves complete rows only.
* **Errors are rows.** A scorer failure on a text, or a model failure on an item, becomes that
  item's error record (never a score of 0); the run ends ``completed_with_errors`` with counts.
* **The model is loaded lazily.** When every answer is already cached, no model is loaded.
* **One run key, one run.** Finding, creating and running a key's run happen under the store's
  advisory lock for that key, so two identical commands started together (a cron overlap, a
  double click in CI) make one run: the second waits and then reuses the first one's run.
* **Bad input fails before the store changes.** The model is resolved (truncated weights are
  found from the safetensors header), its backend is looked up and the device checked, and every
  probe's data is loaded before a run row is written.

What it delegates: items are sampled for ``limit`` by :mod:`rai_audit.selection` (the one
sampler), models are resolved and loaded through the backend registry
(:mod:`rai_audit.models.registry`, ``ModelInfo.kind`` -> loader), and the chunks are computed by
an executor (:mod:`rai_audit.executors`: local or Ray) on the shared pieces of
:mod:`rai_audit.execution`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rai_audit.backend import Backend, ModelInfo
from rai_audit.errors import UserError
from rai_audit.execution import LazyBackend, ProbeJob, ProbeRunner, answer, default_chunk_rows
from rai_audit.hashing import sha256_json, sha256_text
from rai_audit.memory import return_freed_memory
from rai_audit.probe import DatasetInfo
from rai_audit.scoring import Scorer
from rai_audit.selection import PAIR_MAX, select_items
from rai_audit.store.api import RunRecord

if TYPE_CHECKING:
    from rai_audit.store.protocol import ResultsStore

log = logging.getLogger("rai_audit.runner")

# Work per chunk, in model rows: a generation request counts its samples, others count 1.
# A chunk is the unit of atomic progress: smaller chunks lose less work when a run is killed.
# Read when a run starts and handed to the executor (tests lower it).
CHUNK_ROWS = default_chunk_rows()

__all__ = ["CHUNK_ROWS", "PAIR_MAX", "LazyBackend", "ProbeJob", "ProbeRunner", "RunOutcome", "answer",
           "prepare_jobs", "run_key", "run_probe_suite", "select_items"]


@dataclass
class RunOutcome:
    run: RunRecord
    resumed: bool
    reused: bool  # the run was already complete; nothing was computed
    counts: dict[str, Any] = field(default_factory=dict)


def run_key(model: ModelInfo, jobs: Sequence[ProbeJob], scorer_identity, settings: dict[str, Any]) -> str:
    """Hash of everything that determines a run's results."""
    return sha256_json(
        {
            "model": model.model_id,
            "probes": [
                {"name": j.name, "params": j.probe.params.model_dump(mode="json"), "dataset": j.dataset.dataset_id,
                 "items": sha256_text("\n".join(it.id for it in j.items))}
                for j in jobs
            ],
            "scorer": scorer_identity.to_dict() if scorer_identity is not None else None,
            "settings": settings,
        }
    )


def prepare_jobs(probe_specs: Sequence[tuple[str, dict[str, Any]]], data_root: Path | None, *, limit: int | None, seed: int, skip_missing: bool = False, allow_modified_data: bool = False) -> tuple[list[ProbeJob], dict[str, str]]:
    """Instantiate and load each probe. Returns the jobs and, with ``skip_missing``, the probes
    skipped because their data is unavailable (name -> reason). Local files that differ from their
    manifest's pinned hashes stop the run (never skipped) unless ``allow_modified_data``."""
    from pydantic import ValidationError

    from probes import probe_class, split_instance
    from rai_audit.config import validation_message
    from rai_audit.errors import DataError, ModifiedDataError

    jobs, skipped = [], {}
    for name, params in probe_specs:
        cls = probe_class(name)
        merged = {"seed": seed, **params} if "seed" in cls.Params.model_fields else dict(params)
        try:
            probe = cls(cls.Params(**merged), data_root)
        except ValidationError as e:
            raise UserError(validation_message(f"The parameters of probe {name!r}", e, cls.Params)) from None
        probe.allow_modified_data = allow_modified_data  # an attribute, so in-house probes' own __init__ need not take it
        try:
            dataset, items = probe.load()
        except ModifiedDataError:
            raise
        except DataError as e:
            if not skip_missing:
                raise
            skipped[name] = str(e)
            continue
        if not items:
            where = ", ".join(sorted(dataset.files)) or dataset.source
            raise DataError(f"Probe {name!r} found no items in its data ({where}, under {dataset.source}). "
                            "The file is empty or has only a header: restore the benchmark file.")
        ids = [it.id for it in items]
        if len(set(ids)) != len(ids):
            raise RuntimeError(f"probe {name} produced duplicate item ids")
        items = select_items(items, *_limit_and_seed(probe, limit, seed))
        jobs.append(ProbeJob(probe, dataset, items, instance=name if split_instance(name)[1] else ""))
    return jobs, skipped


def run_probe_suite(
    cfg,
    *,
    model_ref: str,
    store: ResultsStore,
    role: str | None = None,
    audit_id: str | None = None,
    progress=None,
    skip_missing: bool = False,
    fresh: bool = False,
    backend_loader: Callable[[ModelInfo], Backend] | None = None,
    model_info: ModelInfo | None = None,
    scorer: Scorer | None = None,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
    training_data: str | None = None,
    prepared: tuple[list[ProbeJob], dict[str, str]] | None = None,
) -> RunOutcome:
    """Run ``cfg``'s probes on ``model_ref`` into ``store``; resume or reuse a run of the same key.

    ``cfg`` is an :class:`rai_audit.config.AuditConfig`. ``fresh`` starts a new run even when one
    with the same key exists (answers still come from the cache). ``model_info``, ``scorer`` and
    ``backend_loader`` replace the resolved model, the configured scorer and the loader the
    backend registry has for the model's kind (tests, and callers that hold their own models).
    ``model_ref`` is resolved with :func:`rai_audit.models.registry.resolve_model`.

    ``executor``: "local" (this process, one chunk after another) or "ray" (shards on Ray actors
    that each hold a loaded model; :mod:`rai_audit.executors.ray`, whose ``executor_options`` are
    the keyword arguments of its ``run_jobs_on_ray``). Both write the same records and metrics;
    the local path never imports Ray.

    ``training_data`` names the model's training data (or its fingerprint) when the model was not
    exported by rai-audit's finetune stage; the run records each probe's overlap with it
    (:mod:`rai_audit.contamination`) in its provenance, and the fingerprint's id joins the run key.

    ``prepared``: the result of :func:`prepare_jobs` for ``cfg`` when the caller already loaded
    the probes' data (an audit loads it once for both of its runs).
    """
    from rai_audit.data_root import resolve_data_root
    from rai_audit.executors import get_executor
    from rai_audit.models import registry
    from rai_audit.provenance import collect_provenance

    chosen_executor = get_executor(executor, executor_options)
    data_root = resolve_data_root(cfg.data_dir)
    if model_info is None:
        model_info = registry.resolve_model(model_ref)
    model = model_info
    if backend_loader is None:  # fails before any run row is written, cached answers or not
        options = registry.BackendOptions.from_runtime(cfg.runtime)
        backend_loader = registry.bound_loader(model.kind, options)
        registry.check_options(model.kind, options)
    if prepared is None:
        specs = [(p.name, p.params) for p in cfg.probes]
        prepared = prepare_jobs(specs, data_root, limit=cfg.limit, seed=cfg.seed, skip_missing=skip_missing,
                                allow_modified_data=getattr(cfg, "allow_modified_data", False))
    jobs, skipped = prepared
    if not jobs:
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise UserError(f"No probe could run: the data of every requested probe is unavailable ({reasons}).")

    scorer_identity = scorer_cache = None
    scorer_given = scorer is not None
    if any(j.probe.needs_scorer for j in jobs):
        from rai_audit.scorer_cache import CachedScorer

        if scorer is None:
            from probes.scorers import get_scorer

            scorer = get_scorer(cfg.scorer.name, threshold=cfg.scorer.threshold, operator=cfg.scorer.operator, **cfg.scorer.options)
        scorer_identity = scorer.identity
        scorer_cache = CachedScorer(scorer, store)

    settings: dict[str, Any] = {"seed": cfg.seed, "limit": cfg.limit, "bootstrap": cfg.runtime.bootstrap}
    from rai_audit.contamination.for_run import check_jobs, find_fingerprint

    found = find_fingerprint(model.path if model.kind == "dir" else None, training_data)
    contamination = None
    if found is not None:
        settings["training_fingerprint"] = found[0].fingerprint_id
        contamination = check_jobs(jobs, *found)
    from rai_audit.models.cached import reduced_precision

    precision = reduced_precision(cfg.runtime.dtype)
    if precision is not None:  # a fast-mode run is another run, with its own answers
        settings["precision"] = precision
    key = run_key(model, jobs, scorer_identity, settings)
    # One run key, one run, whatever the entry point: a second process with the same key (a cron
    # overlap, a double click) waits here, then finds the first one's run complete and reuses it.
    with store.audit_lock(f"run-key:{key}", wait=True):
        existing = None if fresh else store.find_run_by_key(key)
        if existing is not None and existing.status in ("completed", "completed_with_errors"):
            log.info("run %s already complete for this configuration; reusing it", existing.run_id)
            return RunOutcome(store.get_run(existing.run_id), resumed=False, reused=True, counts={"skipped": skipped})

        store.add_model(model)
        if existing is not None:
            run_id = existing.run_id
            store.add_event(run_id, "running", {"resumed": True})
            resumed = True
        else:
            run_id = store.create_run(
                kind="probe",
                run_key=key,
                model_id=model.model_id,
                model_reference=model.reference,
                probes=[j.name for j in jobs],
                config=cfg.model_dump(mode="json"),
                provenance={**collect_provenance(), "model": _model_provenance(model), "skipped_probes": skipped,
                            "precision": precision or cfg.runtime.dtype,
                            **({"contamination": contamination} if contamination else {})},
                scorer=scorer_identity.to_dict() if scorer_identity is not None else None,
                datasets={j.name: _dataset_provenance(j.dataset) for j in jobs},
                seed=cfg.seed,
                audit_id=audit_id,
                role=role,
            )
            resumed = False
            if contamination:
                fp = contamination["fingerprint"]
                store.add_artifact(run_id, name="training_fingerprint", kind="training_fingerprint",
                                   path=fp["path"], sha256=fp["fingerprint_id"], meta=fp)

        from rai_audit.executors.base import ExecutionContext
        from rai_audit.models.cached import CachedBackend

        lazy = LazyBackend(model, backend_loader)
        cached = CachedBackend(lazy, store, precision=precision)
        runner = ProbeRunner(store, cached, scorer_cache=scorer_cache, scorer_identity=scorer_identity,
                             seed=cfg.seed, n_boot=cfg.runtime.bootstrap, progress=progress)
        ctx = ExecutionContext(run_id=run_id, work=runner, model=model, backend_loader=backend_loader,
                               chunk_rows=CHUNK_ROWS, scorer=scorer if scorer_given else None,
                               scorer_config=None if scorer_given or scorer_identity is None else cfg.scorer)
        t0 = time.perf_counter()
        try:
            remote = chosen_executor.run(jobs, ctx)
        except KeyboardInterrupt:
            store.add_event(run_id, "interrupted", {"message": "interrupted by the user; re-run the same command to resume"})
            raise
        except UserError as e:
            store.add_event(run_id, "failed", {"message": str(e)})
            raise
        except Exception as e:
            store.add_event(run_id, "failed", {"message": f"{type(e).__name__}: {e}"})
            raise
        finally:
            lazy.release()  # this model's weights and caches go before the next model loads
            return_freed_memory(f"the probe run of {model.reference}")
        errors = {k: v for k, v in runner.counts["errors"].items() if v}
        detail = {
            "errors": errors,
            "error_count": sum(errors.values()),
            "items_computed": runner.counts["items_computed"],
            "truncated_texts": runner.counts["truncated"],
            "cache": {"responses_hit": getattr(cached, "hits", None), "responses_computed": getattr(cached, "misses", None)},
            "model_loaded": lazy.loaded,
            **remote,
            "wall_s": round(time.perf_counter() - t0, 3),
            "skipped_probes": skipped,
        }
        store.add_event(run_id, "completed_with_errors" if errors else "completed", detail)
        return RunOutcome(store.get_run(run_id), resumed=resumed, reused=False, counts=detail)


def _model_provenance(model: ModelInfo) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(model)


def _limit_and_seed(probe, limit: int | None, seed: int) -> tuple[int | None, int]:
    """The limit on a probe's items and the seed to sample them with: the probe's own ``limit``
    (drawn with its own ``seed`` when it has one, which is the audit seed unless set) wins over the
    audit-level ``limit`` (drawn with the audit seed)."""
    own = probe.params.limit
    if own:
        return own, getattr(probe.params, "seed", seed)
    return limit, seed


def _dataset_provenance(ds: DatasetInfo) -> dict[str, Any]:
    return {"dataset_id": ds.dataset_id, "name": ds.name, "source": ds.source, "revision": ds.revision,
            "license": ds.license, "citation": ds.citation, "files": ds.files}
