"""What a probe run will cost before it runs, and how long it should take on this machine.

Why: a whole battery (``rai-audit run --suite flan-appendix-c``) answers hundreds of thousands of
model requests; a user should see what it will do, and roughly for how long, before the first one
(docs/battery.md). Trajectories print the same plan for each of their points
(:mod:`rai_audit.trajectory.run`).

**Cost** (:class:`ProbeCost`, from the prepared jobs; nothing is computed): per probe, its items,
its distinct model requests, the log-likelihood requests among them, and for generation the
samples per item and the new tokens per sample. Its *work* is counted in **work units**: one
log-likelihood (or pseudo-log-likelihood) request, or one generated token, counting every sample
at its ``max_new_tokens`` (an upper bound: a sample may stop early). Log-likelihoods and decoded
tokens cost different amounts, so a rate is measured per probe, never pooled across kinds.

**Rates** (:func:`measured_rates`): the local executor records, in each run's "completed" event,
every probe's wall seconds and work units for the items it computed
(``detail["probe_timing"]``; :mod:`rai_audit.executors.local`). The estimate for a probe uses the
newest such timing of the same model reference, device and dtype, for that probe name or another
instance of the same probe (``civil_comments`` for ``civil_comments@10shot``); a probe whose answers
all came from the cache measured nothing and is skipped. Without a timing the plan says so, and
:mod:`rai_audit.audit_progress` estimates from the first probe it sees finish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from rai_audit.store.protocol import ResultsStore

#: Runs searched (newest first) for a measured rate.
RUNS_SEARCHED = 50


@dataclass(frozen=True)
class ProbeCost:
    """One probe's share of a run (see the module docstring for the work unit)."""

    name: str
    items: int
    requests: int  # distinct model requests
    loglik: int  # log-likelihood and pseudo-log-likelihood requests
    samples: int  # generated sequences in all (a generation request asks for n)
    tokens: int  # new tokens per generated sample (the largest max_new_tokens; 0 without generation)
    generated_tokens: int  # the sum over samples of their max_new_tokens

    @property
    def work(self) -> int:
        return self.loglik + self.generated_tokens

    @property
    def work_per_item(self) -> float:
        return self.work / self.items if self.items else 0.0

    def describe(self) -> str:
        """``623 items x 25 samples x 20 tokens = 311,500 tokens`` (and/or the log-likelihoods)."""
        parts = []
        if self.samples:
            per_item = self.samples / self.items if self.items else 0
            parts.append(f"{self.items:,} items x {_num(per_item)} sample{'s' * (per_item != 1)} x {self.tokens} tokens"
                         f" = {self.generated_tokens:,} tokens")
        if self.loglik:
            per_item = self.loglik / self.items if self.items else 0
            head = f"{self.items:,} items x {_num(per_item)} requests = " if not self.samples else ""
            parts.append(f"{head}{self.loglik:,} log-likelihoods")
        return " + ".join(parts) or f"{self.items:,} items, no model requests"


def _num(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def request_cost(request: Any) -> tuple[int, int, int]:
    """(log-likelihood requests, samples, generated-token bound) of one model request."""
    sampling = getattr(request, "sampling", None)
    if sampling is None:
        return 1, 0, 0
    n = int(getattr(sampling, "n", 1) or 1)
    return 0, n, n * int(getattr(sampling, "max_new_tokens", 0) or 0)


def probe_cost(job: Any, items: Sequence[Any] | None = None) -> ProbeCost:
    """The cost of a prepared probe job (:class:`rai_audit.execution.ProbeJob`), of ``items`` (default:
    all its items). Builds each item's requests, as the executor will; asks the model nothing."""
    items = job.items if items is None else items
    requests = loglik = samples = generated = tokens = 0
    for item in items:
        for req in job.probe.requests(item):
            ll, n, toks = request_cost(req)
            requests += 1
            loglik += ll
            samples += n
            generated += toks
            if n:
                tokens = max(tokens, toks // n)
    return ProbeCost(job.name, len(items), requests, loglik, samples, tokens, generated)


def costs_of(jobs: Sequence[Any]) -> list[ProbeCost]:
    return [probe_cost(j) for j in jobs]


# ------------------------------------------------------------------------------ rates


@dataclass(frozen=True)
class Rate:
    """Seconds per work unit of one probe, and where it was measured."""

    seconds_per_unit: float
    run_id: str
    probe: str  # the probe name it was measured on


def probe_timing(detail: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The per-probe timings a run's "completed" event recorded ({} for older runs)."""
    return dict((detail or {}).get("probe_timing") or {})


def _base(name: str) -> str:
    import probes  # the registry module only (names, no probe classes)

    return probes.split_instance(name)[0]


def _same_runtime(run: Any, runtime: Mapping[str, Any] | None) -> bool:
    if not runtime:
        return True
    recorded = ((run.config or {}).get("runtime") or {}) if isinstance(run.config, Mapping) else {}
    return all(recorded.get(k, runtime.get(k)) == runtime.get(k) for k in ("device", "dtype"))


def measured_rates(store: ResultsStore | None, model_reference: str | None, names: Sequence[str],
                   runtime: Mapping[str, Any] | None = None) -> dict[str, Rate]:
    """Per probe name in ``names``: the newest measured rate of ``model_reference`` on this
    runtime (``device`` and ``dtype`` as the run config recorded them), for the name itself or
    another instance of its probe; names without one are left out."""
    if not model_reference or store is None:
        return {}
    out: dict[str, Rate] = {}
    by_base: dict[str, Rate] = {}
    for run in store.list_runs(kind="probe", model=model_reference, limit=RUNS_SEARCHED):
        if not _same_runtime(run, runtime):
            continue
        done = [e for e in run.events if e.status in ("completed", "completed_with_errors")]
        for probe, t in probe_timing(done[-1].detail if done else None).items():
            work, wall = t.get("work") or 0, t.get("wall_s")
            if not work or not t.get("computed") or wall is None or not math.isfinite(float(wall)):
                continue  # answered from the cache: measured nothing
            rate = Rate(float(wall) / float(work), run.run_id, probe)
            out.setdefault(probe, rate)
            by_base.setdefault(_base(probe), rate)
    return {n: out.get(n) or by_base[_base(n)] for n in names if n in out or _base(n) in by_base}


# ------------------------------------------------------------------------------ the plan


def estimate_seconds(costs: Sequence[ProbeCost], rates: Mapping[str, Rate]) -> tuple[float, list[str]]:
    """Seconds for the probes that have a rate, and the names of those that have none."""
    seconds, missing = 0.0, []
    for c in costs:
        if c.name in rates:
            seconds += c.work * rates[c.name].seconds_per_unit
        elif c.work:
            missing.append(c.name)
    return seconds, missing


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def plan_lines(costs: Sequence[ProbeCost], models: Sequence[tuple[str, str]], rates: Mapping[str, Rate],
               *, title: str = "plan") -> list[str]:
    """The plan a run prints before any work: one line per probe (what it asks the model, and its
    estimated time per model), the totals per model and for all ``models`` ((role, reference)
    pairs; every model runs every probe), and the estimate, or why there is none yet."""
    width = max([len(c.name) for c in costs] + [5])
    who = "; ".join(f"{role} {ref}" for role, ref in models)
    lines = [f"{title}: {len(costs)} probe{'s' * (len(costs) != 1)} x {len(models)} model{'s' * (len(models) != 1)} ({who}), "
             "per model:"]
    for c in costs:
        took = f"  ~{format_duration(c.work * rates[c.name].seconds_per_unit)}" if c.name in rates else ""
        lines.append(f"  {c.name:<{width}}  {c.describe()}{took}")
    items = sum(c.items for c in costs)
    requests = sum(c.requests for c in costs)
    tokens = sum(c.generated_tokens for c in costs)
    loglik = sum(c.loglik for c in costs)
    samples = sum(c.samples for c in costs)
    lines.append(f"  {'total':<{width}}  {items:,} items, {requests:,} model requests: {samples:,} samples "
                 f"({tokens:,} tokens at most) and {loglik:,} log-likelihoods")
    seconds, missing = estimate_seconds(costs, rates)
    runs = len(models)
    runs_of = {rates[c.name].run_id[:12] for c in costs if c.name in rates}
    if not missing and runs_of:
        lines.append(f"  estimated {format_duration(seconds * runs)} for {runs} model{'s' * (runs != 1)} "
                     f"({format_duration(seconds)} each; rates measured in run{'s' * (len(runs_of) != 1)} "
                     f"{', '.join(sorted(runs_of))} of this model on this device and dtype).")
    elif not runs_of:
        lines.append("  estimated time: no measured rate for this model and these probes in the store yet; "
                     "an estimate follows the first probe.")
    else:
        lines.append(f"  estimated {format_duration(seconds * runs)} for the probes with a measured rate; "
                     f"{', '.join(missing)} not measured yet: their estimate follows their first run.")
    return lines
