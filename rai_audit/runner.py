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
  found from the safetensors header), the device is checked and every probe's data is loaded
  before a run row is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rai_audit.backend import Backend, ModelInfo
from rai_audit.errors import UserError
from rai_audit.hashing import sha256_json, sha256_text
from rai_audit.probe import DatasetInfo, Item, Probe
from rai_audit.requests import GenerationRequest, LoglikRequest, PseudoLoglikRequest, Request, Response
from rai_audit.scoring import Scorer, TextScore
from rai_audit.store.api import MetricRow, RunRecord

log = logging.getLogger("rai_audit.runner")

# Work per chunk, in model rows: a generation request counts its samples, others count 1.
# A chunk is the unit of atomic progress: smaller chunks lose less work when a run is killed.
CHUNK_ROWS = int(os.environ.get("RAI_AUDIT_CHUNK_ROWS", "256"))


@dataclass
class ProbeJob:
    """A probe instance together with its loaded data."""

    probe: Probe
    dataset: DatasetInfo
    items: list[Item]

    @property
    def name(self) -> str:
        return self.probe.name


@dataclass
class RunOutcome:
    run: RunRecord
    resumed: bool
    reused: bool  # the run was already complete; nothing was computed
    counts: dict[str, Any] = field(default_factory=dict)


class LazyBackend:
    """Loads the real backend on first use, so fully cached runs never load the model."""

    def __init__(self, info: ModelInfo, loader: Callable[[ModelInfo], Backend]):
        self.info = info
        self._loader = loader
        self._backend: Backend | None = None

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def _get(self) -> Backend:
        if self._backend is None:
            t0 = time.perf_counter()
            self._backend = self._loader(self.info)
            log.info("loaded model %s in %.1f s", self.info.reference, time.perf_counter() - t0)
        return self._backend

    def loglikelihood(self, requests):
        return self._get().loglikelihood(requests)

    def generate(self, requests):
        return self._get().generate(requests)

    def pseudo_loglikelihood(self, requests):
        return self._get().pseudo_loglikelihood(requests)


PAIR_MAX = 4  # clusters this small (matched pairs, triads) are sampled whole


def select_items(items: Sequence[Item], limit: int | None, seed: int) -> list[Item]:
    """A seeded, stable sample of at most ``limit`` items, spread over as many clusters as possible.

    Clusters are visited round-robin in the order of a hash of (seed, cluster), and items within a
    cluster in the order of a hash of (seed, item id), so the same seed picks the same items
    whatever the file order. Small clusters (<= ``PAIR_MAX`` items: WinoBias pro/anti pairs, a
    prompt with its variants) are taken whole or not at all, so pairs stay paired; large
    clusters (a BBQ template, an identity-term template) give one item per round, so a small
    sample still covers many templates and the cluster bootstrap has clusters to resample.
    Item order is preserved in the result.
    """
    if limit is None or limit >= len(items):
        return list(items)

    def h(*parts: object) -> str:
        return hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).hexdigest()

    by_cluster: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_cluster.setdefault(it.cluster or f"item:{it.id}", []).append(i)
    queues = [sorted(idx, key=lambda i: h(items[i].id)) for _, idx in sorted(by_cluster.items(), key=lambda kv: h(kv[0]))]
    whole = [len(q) <= PAIR_MAX for q in queues]
    chosen: list[int] = []
    progress = True
    while len(chosen) < limit and progress:
        progress = False
        for q, take_whole in zip(queues, whole):
            if not q:
                continue
            block = q if take_whole else q[:1]
            if len(chosen) + len(block) > limit:
                continue
            chosen.extend(block)
            del q[: len(block)]
            progress = True
            if len(chosen) >= limit:
                break
    return [items[i] for i in sorted(chosen)]


def _rows(req: Request) -> int:
    return req.sampling.n if isinstance(req, GenerationRequest) else 1


def _chunks(items: Sequence[Item], reqs: dict[str, list[Request]], rows_max: int | None = None) -> list[list[Item]]:
    limit = CHUNK_ROWS if rows_max is None else rows_max
    out, cur, rows = [], [], 0
    for it in items:
        cost = sum(_rows(r) for r in reqs[it.id]) or 1
        if cur and rows + cost > limit:
            out.append(cur)
            cur, rows = [], 0
        cur.append(it)
        rows += cost
    if cur:
        out.append(cur)
    return out


def answer(backend: Backend, requests: Sequence[Request]) -> list[Response]:
    """Answer mixed requests with one batched call per kind, in the caller's order."""
    out: list[Response | None] = [None] * len(requests)
    groups: dict[type, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(type(r), []).append(i)
    calls = {
        LoglikRequest: backend.loglikelihood,
        GenerationRequest: backend.generate,
        PseudoLoglikRequest: getattr(backend, "pseudo_loglikelihood", None),
    }
    for typ, idx in groups.items():
        call = calls.get(typ)
        if call is None:
            raise UserError(f"The model backend cannot answer {typ.__name__} requests.")
        for i, resp in zip(idx, call([requests[i] for i in idx])):
            out[i] = resp
    return out  # type: ignore[return-value]


class ProbeRunner:
    """Runs prepared probe jobs for one model into one run of the store."""

    def __init__(
        self,
        store,
        backend: Backend,
        *,
        scorer_cache=None,
        scorer_identity=None,
        seed: int = 0,
        n_boot: int = 1000,
        progress=None,
    ):
        self.store = store
        self.backend = backend
        self.scorer_cache = scorer_cache
        self.scorer_identity = scorer_identity
        self.seed = seed
        self.n_boot = n_boot
        self.progress = progress
        self.counts: dict[str, Any] = {"errors": {}, "items_computed": 0, "truncated": 0}

    # -- one chunk ----------------------------------------------------------------------------
    def _records_for_chunk(self, job: ProbeJob, chunk: list[Item], reqs: dict[str, list[Request]]) -> list[dict]:
        flat: list[Request] = [r for it in chunk for r in reqs[it.id]]
        try:
            responses = answer(self.backend, flat)
            failed_items: dict[str, str] = {}
        except UserError:
            raise
        except Exception as exc:  # isolate the item(s) the model fails on
            log.warning("model batch failed (%s); retrying item by item", exc)
            responses, failed_items = [], {}
            for it in chunk:
                try:
                    responses.extend(answer(self.backend, reqs[it.id]))
                except UserError:
                    raise
                except Exception as e:  # noqa: BLE001 - recorded as the item's error row
                    failed_items[it.id] = f"model error: {type(e).__name__}: {e}"
                    responses.extend([None] * len(reqs[it.id]))  # type: ignore[list-item]
        per_item: dict[str, list[Response]] = {}
        pos = 0
        for it in chunk:
            n = len(reqs[it.id])
            per_item[it.id] = responses[pos : pos + n]
            pos += n

        texts_per_item: dict[str, list[list[str]]] = {}
        if job.probe.needs_scorer:
            if self.scorer_cache is None:
                raise UserError(f"Probe {job.name!r} needs a toxicity scorer; set `scorer` in the config or --scorer.")
            for it in chunk:
                if it.id not in failed_items:
                    texts_per_item[it.id] = job.probe.texts_to_score(it, per_item[it.id])
            all_texts = [t for groups in texts_per_item.values() for g in groups for t in g]
            scored = self.scorer_cache.score(all_texts) if all_texts else []
            pos = 0
            scores_per_item: dict[str, list[list[Any]]] = {}
            for item_id, groups in texts_per_item.items():
                out_groups = []
                for g in groups:
                    out_groups.append(scored[pos : pos + len(g)])
                    pos += len(g)
                scores_per_item[item_id] = out_groups

        records = []
        for it in chunk:
            base = {"item_id": it.id, "cluster": it.cluster}
            if it.id in failed_items:
                records.append({**base, "error": failed_items[it.id]})
                continue
            scores = None
            if job.probe.needs_scorer:
                groups = scores_per_item[it.id]
                failures = [s for g in groups for s in g if not isinstance(s, TextScore)]
                if failures:
                    msg = "; ".join(sorted({getattr(f, "error", str(f)) for f in failures}))
                    records.append({**base, "error": f"scorer error on {len(failures)} text(s): {msg}"})
                    continue
                self.counts["truncated"] += sum(1 for g in groups for s in g if s.truncated)
                scores = groups
            try:
                rec = job.probe.record(it, per_item[it.id], scores, self.scorer_identity)
            except Exception as e:  # noqa: BLE001 - a probe bug on one item is that item's error
                log.exception("probe %s failed to record item %s", job.name, it.id)
                records.append({**base, "error": f"record error: {type(e).__name__}: {e}"})
                continue
            rec.setdefault("item_id", it.id)
            rec.setdefault("cluster", it.cluster)
            records.append(rec)
        return records

    # -- one probe ----------------------------------------------------------------------------
    def run_job(self, run_id: str, job: ProbeJob) -> None:
        store = self.store
        store.add_dataset(job.dataset)
        store.add_items(job.dataset.dataset_id, job.name, job.items)
        done = store.completed_items(run_id, job.name)
        pending = [it for it in job.items if it.id not in done]
        task = self.progress.add_task(job.name, total=len(job.items), completed=len(done)) if self.progress else None
        if pending:
            reqs = {it.id: job.probe.requests(it) for it in pending}
            for chunk in _chunks(pending, reqs):
                records = self._records_for_chunk(job, chunk, reqs)
                with store.transaction():
                    store.add_records(run_id, job.name, records)
                self.counts["items_computed"] += len(records)
                if self.progress is not None:
                    self.progress.advance(task, len(chunk))
        written = store.metrics(run_id, job.name)
        if not written:
            self.write_metrics(run_id, job)
        else:  # metrics survived an earlier, interrupted process: keep its error count
            errored = next((m for m in written if m.name == "items_errored" and m.subgroup == ""), None)
            self.counts["errors"][job.name] = int(errored.value) if errored is not None else 0

    def write_metrics(self, run_id: str, job: ProbeJob) -> None:
        from rai_audit.stats.bootstrap import bootstrap_metrics

        records = self.store.records(run_id, job.name)
        # Bootstrap resamples clusters in order of first appearance, so present records in the
        # job's item order: the local runner writes them in that order already (a no-op there);
        # parallel executors commit shards in whatever order they finish.
        position = {it.id: i for i, it in enumerate(job.items)}
        records.sort(key=lambda r: position.get(str(r.get("item_id")), len(position)))
        ok = [r for r in records if not r.get("error")]
        errors = len(records) - len(ok)
        self.counts["errors"][job.name] = errors
        estimates = bootstrap_metrics(ok, job.probe.aggregate, n_boot=self.n_boot, seed=self.seed)
        rows = [
            MetricRow(probe=job.name, name=name, subgroup=sub, value=float(v), n=int(n), ci_low=lo, ci_high=hi)
            for (name, sub), (v, n, lo, hi) in sorted(estimates.items())
        ]
        rows.append(MetricRow(probe=job.name, name="items_errored", subgroup="", value=float(errors), n=len(records)))
        with self.store.transaction():
            self.store.add_metrics(run_id, rows)


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

    from probes import probe_class
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
        items = select_items(items, probe.params.limit or limit, seed)
        jobs.append(ProbeJob(probe, dataset, items))
    return jobs, skipped


def run_probe_suite(
    cfg,
    *,
    model_ref: str,
    store,
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
) -> RunOutcome:
    """Run ``cfg``'s probes on ``model_ref`` into ``store``; resume or reuse a run of the same key.

    ``cfg`` is an :class:`rai_audit.config.AuditConfig`. ``fresh`` starts a new run even when one
    with the same key exists (answers still come from the cache). ``model_info``, ``scorer`` and
    ``backend_loader`` replace the resolved model, the configured scorer and the transformers
    loader (tests, and executors that hold their own models).

    ``executor``: "local" (this process, one chunk after another) or "ray" (shards on Ray actors
    that each hold a loaded model; :mod:`rai_audit.executors.ray_executor`, whose
    ``executor_options`` are the keyword arguments of its ``run_jobs_on_ray``). Both write the
    same records and metrics; the local path never imports Ray.

    ``training_data`` names the model's training data (or its fingerprint) when the model was not
    exported by rai-audit's finetune stage; the run records each probe's overlap with it
    (:mod:`rai_audit.contamination`) in its provenance, and the fingerprint's id joins the run key.
    """
    from rai_audit.executors import check_executor

    check_executor(executor)
    from rai_audit.data_root import resolve_data_root
    from rai_audit.provenance import collect_provenance

    data_root = resolve_data_root(cfg.data_dir)
    if backend_loader is None and cfg.runtime.device not in (None, "auto", "cpu"):
        from rai_audit.models.hf_backend import pick_device

        pick_device(cfg.runtime.device)  # fails before any run row is written, cached answers or not
    if model_info is None:
        from rai_audit.models.reference import resolve

        model_info = resolve(model_ref)
    model = model_info
    specs = [(p.name, p.params) for p in cfg.probes]
    jobs, skipped = prepare_jobs(specs, data_root, limit=cfg.limit, seed=cfg.seed, skip_missing=skip_missing,
                                 allow_modified_data=getattr(cfg, "allow_modified_data", False))
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

        if backend_loader is None:
            backend_loader = _default_loader(cfg)
        from rai_audit.models.cached import CachedBackend

        lazy = LazyBackend(model, backend_loader)
        cached = CachedBackend(lazy, store)
        runner = ProbeRunner(store, cached, scorer_cache=scorer_cache, scorer_identity=scorer_identity,
                             seed=cfg.seed, n_boot=cfg.runtime.bootstrap, progress=progress)
        t0 = time.perf_counter()
        remote: dict[str, Any] = {}
        try:
            if executor == "local":
                for job in jobs:
                    runner.run_job(run_id, job)
            else:
                from rai_audit.executors.ray_executor import run_jobs_on_ray

                remote = run_jobs_on_ray(
                    runner, run_id, jobs, model=model, backend_loader=backend_loader,
                    scorer=scorer if scorer_given else None,
                    scorer_config=None if scorer_given or scorer_identity is None else cfg.scorer,
                    progress=progress, **(executor_options or {}),
                )
        except KeyboardInterrupt:
            store.add_event(run_id, "interrupted", {"message": "interrupted by the user; re-run the same command to resume"})
            raise
        except UserError as e:
            store.add_event(run_id, "failed", {"message": str(e)})
            raise
        except Exception as e:
            store.add_event(run_id, "failed", {"message": f"{type(e).__name__}: {e}"})
            raise
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


def _dataset_provenance(ds: DatasetInfo) -> dict[str, Any]:
    return {"dataset_id": ds.dataset_id, "name": ds.name, "source": ds.source, "revision": ds.revision,
            "license": ds.license, "citation": ds.citation, "files": ds.files}


def _default_loader(cfg) -> Callable[[ModelInfo], Backend]:
    def load(info: ModelInfo) -> Backend:
        from rai_audit.models.hf_backend import HFBackend

        return HFBackend.load(info, device=cfg.runtime.device, dtype=cfg.runtime.dtype, batch_size=cfg.runtime.batch_size)

    return load
