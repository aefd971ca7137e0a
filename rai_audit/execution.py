"""What every executor shares: the unit of work, chunking, a chunk's records, a probe's metrics.

The runner (:mod:`rai_audit.runner`) prepares :class:`ProbeJob` s and a :class:`ProbeRunner`
for one run; an executor (:mod:`rai_audit.executors`) decides where chunks are computed. Both
executors use the pieces here, so records and metrics are the same whichever ran them:

* :func:`chunks`: a probe's pending items cut into chunks of at most ``rows_max`` model rows (a
  generation request counts its samples, other requests 1). A chunk is the unit of atomic
  progress: its records are written in one transaction.
* :meth:`ProbeRunner.records_for_chunk`: a chunk's answers, scores and records, where a model
  failure on an item, a scorer failure on a text or a probe bug on an item becomes that item's
  error record (never a score of 0).
* :meth:`ProbeRunner.finish_job`: a probe's metrics and bootstrap CIs, from the stored records in
  the job's item order, written once in one transaction.

This module imports neither the runner nor any executor.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rai_audit.backend import Backend, ModelInfo
from rai_audit.errors import UserError
from rai_audit.probe import DatasetInfo, Item, Probe
from rai_audit.requests import GenerationRequest, LoglikRequest, PseudoLoglikRequest, Request, Response
from rai_audit.scoring import TextScore
from rai_audit.store.api import MetricRow

if TYPE_CHECKING:
    from rai_audit.store.protocol import ResultsStore

log = logging.getLogger("rai_audit.runner")


@dataclass
class ProbeJob:
    """A probe instance together with its loaded data. ``instance``: the name the config gave a
    second instance of a probe (``civil_comments@10shot``, :func:`probes.split_instance`); its
    records, metrics and data set are stored under it. Empty for a probe under its own name."""

    probe: Probe
    dataset: DatasetInfo
    items: list[Item]
    instance: str = ""

    @property
    def name(self) -> str:
        return self.instance or self.probe.name


class LazyBackend:
    """Loads the real backend on first use, so fully cached runs never load the model."""

    def __init__(self, info: ModelInfo, loader: Callable[[ModelInfo], Backend]):
        self.info = info
        self._loader = loader
        self._backend: Backend | None = None
        self._loads = 0
        self.load_s = 0.0  # seconds spent loading (so a probe's timing can leave them out)

    @property
    def loaded(self) -> bool:
        """Whether the model was loaded during this run (it may have been released since)."""
        return self._loads > 0

    def release(self) -> None:
        """Drop the loaded backend (its weights, caches and buffers); a later request loads it again."""
        self._backend = None

    def _get(self) -> Backend:
        if self._backend is None:
            t0 = time.perf_counter()
            self._backend = self._loader(self.info)
            self._loads += 1
            self.load_s = time.perf_counter() - t0
            log.info("loaded model %s in %.1f s", self.info.reference, self.load_s)
        return self._backend

    def loglikelihood(self, requests):
        return self._get().loglikelihood(requests)

    def generate(self, requests):
        return self._get().generate(requests)

    def pseudo_loglikelihood(self, requests):
        return self._get().pseudo_loglikelihood(requests)


def default_chunk_rows() -> int:
    """Model rows per chunk unless the caller says otherwise: ``RAI_AUDIT_CHUNK_ROWS`` or 256.
    Smaller chunks lose less work when a run is killed."""
    return int(os.environ.get("RAI_AUDIT_CHUNK_ROWS", "256"))


def _rows(req: Request) -> int:
    return req.sampling.n if isinstance(req, GenerationRequest) else 1


def chunks(items: Sequence[Item], reqs: dict[str, list[Request]], rows_max: int) -> list[list[Item]]:
    """``items`` in order, cut into chunks of at most ``rows_max`` model rows (an item costing more
    than that is a chunk of its own)."""
    out, cur, rows = [], [], 0
    for it in items:
        cost = sum(_rows(r) for r in reqs[it.id]) or 1
        if cur and rows + cost > rows_max:
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
    """Computes and writes the records and metrics of prepared probe jobs for one run of the store.

    ``backend`` is usually a :class:`~rai_audit.models.cached.CachedBackend` over a
    :class:`LazyBackend`; ``counts`` collects what the run's "completed" event reports.
    """

    def __init__(
        self,
        store: ResultsStore,
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

    # -- one probe: before and after its chunks ---------------------------------------------
    def pending(self, run_id: str, job: ProbeJob) -> tuple[list[Item], int]:
        """Register the job's dataset and items; return its items without a record yet (in item
        order) and how many have one."""
        store = self.store
        store.add_dataset(job.dataset)
        store.add_items(job.dataset.dataset_id, job.name, job.items)
        done = store.completed_items(run_id, job.name)
        return [it for it in job.items if it.id not in done], len(done)

    def finish_job(self, run_id: str, job: ProbeJob) -> None:
        """Write the probe's metrics unless an earlier process did (then keep its error count)."""
        written = self.store.metrics(run_id, job.name)
        if not written:
            self.write_metrics(run_id, job)
        else:  # metrics survived an earlier, interrupted process: keep its error count
            errored = next((m for m in written if m.name == "items_errored" and m.subgroup == ""), None)
            self.counts["errors"][job.name] = int(errored.value) if errored is not None else 0

    # -- one chunk ----------------------------------------------------------------------------
    def commit_chunk(self, run_id: str, job: ProbeJob, chunk: list[Item], reqs: dict[str, list[Request]]) -> list[dict]:
        """Compute ``chunk``'s records and write them in one transaction; returns the records."""
        records = self.records_for_chunk(job, chunk, reqs)
        with self.store.transaction():
            self.store.add_records(run_id, job.name, records)
        self.counts["items_computed"] += len(records)
        return records

    def records_for_chunk(self, job: ProbeJob, chunk: list[Item], reqs: dict[str, list[Request]]) -> list[dict]:
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

    # -- metrics ------------------------------------------------------------------------------
    def write_metrics(self, run_id: str, job: ProbeJob) -> None:
        from rai_audit.stats.bootstrap import bootstrap_metrics

        records = self.store.records(run_id, job.name)
        # Bootstrap resamples clusters in order of first appearance, so present records in the
        # job's item order: the local executor writes them in that order already (a no-op there);
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
