"""The Ray executor: probe work sharded over Ray actors that each hold a loaded model.

``rai-audit probe|run --executor ray`` (extra ``rai-audit[ray]``). Why it is shaped so:

* **Same unit of progress as the local executor.** A shard is exactly a chunk
  (:func:`rai_audit.execution.chunks`: a list of one probe's items, at most ``CHUNK_ROWS`` model
  rows; ``shard_rows`` overrides it). A worker computes a shard's records with the same code
  (:meth:`~rai_audit.execution.ProbeRunner.records_for_chunk`, so errors become rows the same
  way) and commits them in one transaction through the same store, which it reopens by URL. Resume
  is therefore the local resume: a run found by its key carries on with the items that have no
  record yet, and a worker skips the items of its shard that another attempt already committed.
* **Retries cannot duplicate.** A worker killed mid-shard (OOM killer, preempted node, a
  segfaulting kernel) is restarted by Ray and its shard is run again (``max_restarts`` /
  ``max_task_retries``). A shard that died before its commit left nothing; one that died after
  its commit but before Ray heard back is skipped on retry, and should two attempts ever race,
  the store keeps the first record of a (run, probe, item) and ignores the second.
  Model answers and scores are cached by content in the store, so a retried shard recomputes
  only what was never written.
* **A model per actor.** Each actor loads the model once, lazily, with the same loader as the
  local path (``num_gpus=1`` per actor puts one replica on each GPU) and keeps it for every
  shard it is given; a shard whose answers are all cached loads nothing.
* **Metrics once, in the driver.** When every shard is in, the driver computes each probe's
  metrics and bootstrap CIs from the stored records, in the probe's item order
  (:meth:`~rai_audit.execution.ProbeRunner.finish_job`), so the numbers equal the local
  executor's whatever order the shards finished in.

Ray is imported inside :func:`run_jobs_on_ray` only; importing this module does not import it.
:class:`RayExecutor` is the :class:`~rai_audit.executors.base.Executor` the runner calls; its
options are the keyword arguments of :func:`run_jobs_on_ray` (``executor_options``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Callable, Sequence

from rai_audit.backend import Backend, ModelInfo
from rai_audit.errors import UserError
from rai_audit.probe import Item
from rai_audit.execution import LazyBackend, ProbeJob, ProbeRunner, chunks, default_chunk_rows
from rai_audit.executors.base import ExecutionContext

log = logging.getLogger("rai_audit.executors.ray")


class ShardWorker:
    """One model replica: computes shards of one run and commits their records.

    Plain class, made a Ray actor by :func:`run_jobs_on_ray`, so it can be unit-tested in
    process. Nothing heavy happens in ``__init__``: the store is opened and the scorer built on
    the first shard, and the model on the first request the cache cannot answer, so a failure
    there surfaces as that shard's error (with its own type, e.g. a StoreError) rather than
    as a dead actor.
    """

    def __init__(
        self,
        store_url: str,
        model: ModelInfo,
        backend_loader: Callable[[ModelInfo], Backend],
        *,
        scorer=None,
        scorer_config=None,
        scorer_identity=None,
        seed: int = 0,
        precision: str | None = None,
        on_shard_committed: Callable[[str, list[str]], None] | None = None,
    ):
        self.store_url = store_url
        self.model = model
        self.backend_loader = backend_loader
        self.scorer = scorer
        self.scorer_config = scorer_config
        self.scorer_identity = scorer_identity
        self.seed = seed
        self.precision = precision
        self.on_shard_committed = on_shard_committed
        self.runner: ProbeRunner | None = None

    def _setup(self) -> ProbeRunner:
        if self.runner is not None:
            return self.runner
        from rai_audit.models.cached import CachedBackend
        from rai_audit.store import Store

        store = Store.open(self.store_url)
        self.lazy = LazyBackend(self.model, self._load_checked)
        self.cached = CachedBackend(self.lazy, store, precision=self.precision)
        scorer_cache = None
        scorer = self.scorer
        if scorer is None and self.scorer_config is not None:
            from probes.scorers import get_scorer

            c = self.scorer_config
            scorer = get_scorer(c.name, threshold=c.threshold, operator=c.operator, **c.options)
        if scorer is not None:
            from rai_audit.scorer_cache import CachedScorer

            if self.scorer_identity is not None and scorer.identity.scorer_id != self.scorer_identity.scorer_id:
                raise UserError(
                    f"The toxicity scorer on this Ray worker ({scorer.identity.to_dict()}) differs from the "
                    f"driver's ({self.scorer_identity.to_dict()}). Install the same scorer version and "
                    "checkpoint on every node of the cluster."
                )
            scorer_cache = CachedScorer(scorer, store)
        self.runner = ProbeRunner(store, self.cached, scorer_cache=scorer_cache,
                                  scorer_identity=self.scorer_identity, seed=self.seed)
        return self.runner

    def _load_checked(self, info: ModelInfo) -> Backend:
        """Load the model, first checking that a local model on this node is the one the driver
        hashed: answers are cached and records keyed under the driver's model hash, so a node
        with other weights at the same path (a stale copy, a directory a trainer is rewriting)
        must fail loudly, not answer for the wrong model. Hub models are pinned by revision."""
        if info.kind in ("dir", "gguf") and info.path:
            from rai_audit.errors import ModelLoadError
            from rai_audit.models.reference import resolve

            here = resolve(info.path)
            if here.model_id != info.model_id:
                raise ModelLoadError(
                    f"The model at {info.path} on this Ray node (sha256 {here.model_id[:12]}) is not the one "
                    f"the driver audits ({info.model_id[:12]}, from {info.reference!r}). Put the model on "
                    "storage every node sees unchanged, or use a hub reference pinned to a revision "
                    "(hf:org/name@commit)."
                )
        return self.backend_loader(info)

    def run_shard(self, run_id: str, job: ProbeJob, items: Sequence[Item]) -> dict[str, Any]:
        """Compute and commit the records of ``items`` that have none yet; returns counts."""
        runner = self._setup()
        store = runner.store
        done = store.completed_items(run_id, job.name)
        todo = [it for it in items if it.id not in done]
        hits, misses, truncated = self.cached.hits, self.cached.misses, runner.counts["truncated"]
        if todo:
            reqs = {it.id: job.probe.requests(it) for it in todo}
            runner.commit_chunk(run_id, job, todo, reqs)
            if self.on_shard_committed is not None:
                self.on_shard_committed(job.name, [it.id for it in todo])
        return {
            "items_computed": len(todo),
            "items_skipped": len(items) - len(todo),
            "responses_hit": self.cached.hits - hits,
            "responses_computed": self.cached.misses - misses,
            "truncated": runner.counts["truncated"] - truncated,
            "model_loaded": self.lazy.loaded,
        }


def _connect(address: str | None, runtime_env: dict[str, Any] | None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``, else start a local instance) unless
    this process is already connected; returns whether it connected now. The connection is
    kept for later calls in this process (Ray closes it at exit): connecting costs seconds."""
    import ray

    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=True)
    except ConnectionError as e:
        raise UserError(
            f"Could not connect to the Ray cluster at {address or 'RAY_ADDRESS'}: {e}. Start it with "
            "`ray start --head` (and `ray start --address=HEAD:6379` on the other nodes), or leave "
            "--ray-address out to start a local Ray instance."
        ) from None
    return True


def _unwrap(exc: BaseException) -> BaseException:
    """The worker's own exception (a UserError stays a UserError) instead of Ray's wrapper."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def run_jobs_on_ray(
    runner: ProbeRunner,
    run_id: str,
    jobs: Sequence[ProbeJob],
    *,
    model: ModelInfo,
    backend_loader: Callable[[ModelInfo], Backend],
    scorer=None,
    scorer_config=None,
    progress=None,
    chunk_rows: int | None = None,
    address: str | None = None,
    num_workers: int | None = None,
    num_gpus_per_worker: float | None = None,
    num_cpus_per_worker: float = 1.0,
    shard_rows: int | None = None,
    max_retries: int = 3,
    runtime_env: dict[str, Any] | None = None,
    on_shard_committed: Callable[[str, list[str]], None] | None = None,
) -> dict[str, Any]:
    """Run ``jobs`` of run ``run_id`` on Ray; write each probe's metrics at the end.

    ``runner`` is the driver's :class:`ProbeRunner` (its store, scorer identity, seed, bootstrap
    settings and progress bar; its ``counts`` are updated). A shard has at most ``shard_rows``
    model rows (default: ``chunk_rows``, the runner's chunk size, itself defaulting to
    :func:`~rai_audit.execution.default_chunk_rows`). ``scorer`` is a scorer object to ship to
    the workers as is (tests); otherwise workers build theirs from ``scorer_config``.
    ``address``: a Ray cluster (``"auto"``, ``"HEAD:6379"``, ``"ray://HEAD:10001"``); None uses
    ``RAY_ADDRESS`` or starts a local instance; a process already connected uses its connection,
    and a connection made here stays open for the next call (the workers are released).
    ``num_gpus_per_worker``: default 1 when the cluster has GPUs, else 0; ``num_workers``:
    default one per GPU (or per ``num_cpus_per_worker`` CPUs), at most one per shard.
    ``on_shard_committed(probe, item_ids)`` runs in the worker after each commit (monitoring;
    the fault tests kill a worker there). Returns counts for the run's "completed" event.
    """
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    store = runner.store
    _connect(address, runtime_env)  # stays connected: the audit's tuned run follows its base run
    actors: list[Any] = []
    try:
        alive = [n for n in ray.nodes() if n.get("Alive")]
        if store.dialect == "sqlite" and len(alive) > 1:
            raise UserError(
                f"The Ray cluster has {len(alive)} nodes but the results store is a SQLite file "
                f"({store.display_url}) that only this machine can write safely. Use a PostgreSQL store "
                "every node can reach (--db postgresql://user:pass@host/db), or a single-node cluster."
            )

        rows_max = shard_rows if shard_rows is not None else chunk_rows if chunk_rows is not None else default_chunk_rows()
        work: deque[tuple[int, list[Item]]] = deque()
        tasks: dict[int, Any] = {}
        for i, job in enumerate(jobs):
            pending, n_done = runner.pending(run_id, job)
            if progress is not None:
                tasks[i] = progress.add_task(job.name, total=len(job.items), completed=n_done)
            if pending:
                reqs = {it.id: job.probe.requests(it) for it in pending}
                work.extend((i, chunk) for chunk in chunks(pending, reqs, rows_max))

        totals = {"responses_hit": 0, "responses_computed": 0, "items_skipped": 0}
        model_loaded = False
        n_shards = len(work)
        t0 = time.perf_counter()
        if work:
            resources = ray.cluster_resources()
            if num_gpus_per_worker is None:
                num_gpus_per_worker = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
            if num_workers is None:
                if num_gpus_per_worker > 0:
                    num_workers = int(resources.get("GPU", 0) // num_gpus_per_worker)
                else:
                    num_workers = int(resources.get("CPU", 1) // max(num_cpus_per_worker, 1e-9))
            num_workers = max(1, min(int(num_workers), n_shards))
            if num_gpus_per_worker > resources.get("GPU", 0):
                raise UserError(
                    f"Each Ray worker asks for {num_gpus_per_worker} GPU(s) but the cluster has "
                    f"{resources.get('GPU', 0)}. Lower --ray-gpus-per-worker or add GPU nodes."
                )
            Worker = ray.remote(ShardWorker).options(
                num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker,
                max_restarts=max_retries, max_task_retries=max_retries,
            )
            actors = [
                Worker.remote(store.url, model, backend_loader, scorer=scorer, scorer_config=scorer_config,
                              scorer_identity=runner.scorer_identity, seed=runner.seed,
                              precision=getattr(runner.backend, "precision", None),
                              on_shard_committed=on_shard_committed)
                for _ in range(num_workers)
            ]
            job_refs = [ray.put(ProbeJob(j.probe, j.dataset, [], j.instance)) for j in jobs]  # probes shipped once
            log.info("ray: %d shard(s) of %d probe(s) on %d worker(s) (%s GPU each)",
                     n_shards, len(jobs), num_workers, num_gpus_per_worker)
            idle = list(actors)
            inflight: dict[Any, tuple[Any, int, list[Item]]] = {}
            while work or inflight:
                while work and idle:
                    actor = idle.pop()
                    i, items = work.popleft()
                    inflight[actor.run_shard.remote(run_id, job_refs[i], items)] = (actor, i, items)
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    actor, i, items = inflight.pop(ref)
                    try:
                        out = ray.get(ref)
                    except RayTaskError as e:
                        raise _unwrap(e) from None
                    except RayActorError as e:
                        raise RuntimeError(
                            f"A Ray worker died {max_retries + 1} times on a shard of probe {jobs[i].name!r} "
                            f"({len(items)} items from {items[0].id!r}); the shards already committed are "
                            f"kept: re-run the same command to resume. Cause: {e}"
                        ) from None
                    runner.counts["items_computed"] += out["items_computed"]
                    runner.counts["truncated"] += out["truncated"]
                    for k in totals:
                        totals[k] += out[k]
                    model_loaded = model_loaded or out["model_loaded"]
                    if progress is not None:
                        progress.advance(tasks[i], len(items))
                    idle.append(actor)
        for job in jobs:  # metrics once, in probe order, from the stored records
            runner.finish_job(run_id, job)
        return {
            "cache": {"responses_hit": totals["responses_hit"], "responses_computed": totals["responses_computed"]},
            "model_loaded": model_loaded,
            "executor": {"name": "ray", "workers": len(actors), "shards": n_shards,
                         "items_skipped_on_retry": totals["items_skipped"],
                         "gpus_per_worker": num_gpus_per_worker, "shards_wall_s": round(time.perf_counter() - t0, 3)},
        }
    finally:
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - best effort: the actor may already be gone
                pass


class RayExecutor:
    """The :class:`~rai_audit.executors.base.Executor` over :func:`run_jobs_on_ray`; ``options``
    are that function's keyword arguments from ``address`` on (``executor_options``)."""

    name = "ray"

    def __init__(self, **options: Any):
        self.options = options

    def run(self, jobs: Sequence[ProbeJob], ctx: ExecutionContext) -> dict[str, Any]:
        return run_jobs_on_ray(
            ctx.work, ctx.run_id, jobs, model=ctx.model, backend_loader=ctx.backend_loader,
            scorer=ctx.scorer, scorer_config=ctx.scorer_config, progress=ctx.work.progress,
            chunk_rows=ctx.chunk_rows, **self.options,
        )
