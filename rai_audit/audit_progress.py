"""Progress and ETA of a whole audit: every planned probe run of every model, not one probe.

Why: the per-probe progress (:func:`rai_audit.display.progress_bar`: a rich bar, or plain lines
in logs) tells when *this probe* ends; a battery of a dozen probes on two models needs to say when
*the audit* ends. :class:`AuditProgress` wraps that progress object (the executors call its
``add_task`` and ``advance`` as before, so it adds to the existing progress instead of replacing
it) and, each time a probe finishes, prints one line: probe runs done of those planned, time
elapsed, and the time left.

The time left is the planned work not yet done (:mod:`rai_audit.workload`'s work units), each
probe at its own rate: the rate measured on it in this audit (the base model's run times the
tuned model's), else the rate the store measured before (the plan's), else that of another
instance of the same probe, else the rate of everything finished so far (the last two are rough
figures, and the line says so). A run the
audit reuses from the store whole is taken off the plan (:meth:`AuditProgress.skip_run`).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

from rai_audit.workload import ProbeCost, Rate, format_duration

Say = Callable[[str], None]


def _base(name: str) -> str:
    from probes import split_instance

    return split_instance(name)[0]


class AuditProgress:
    """Per-probe progress (``inner``, may be None) plus audit-wide ETA lines through ``say``.

    ``costs``: one model's probes; ``runs``: how many models run them; ``rates``: the store's
    measured rates (:func:`rai_audit.workload.measured_rates`)."""

    def __init__(self, inner: Any, costs: Sequence[ProbeCost], runs: int, rates: Mapping[str, Rate], say: Say,
                 clock: Callable[[], float] = time.monotonic):
        self.inner = inner
        self.say = say
        self.clock = clock
        self.per_item = {c.name: c.work_per_item for c in costs}
        self.work = {c.name: c.work for c in costs}
        self.names = [c.name for c in costs]
        self.pending: list[str] = [c.name for _ in range(runs) for c in costs]
        self.planned = len(self.pending)
        self.store_rates = {n: r.seconds_per_unit for n, r in rates.items()}
        self.measured: dict[str, float] = {}
        self.tasks: dict[Any, dict[str, Any]] = {}
        self.t0 = clock()
        self.done_runs = 0
        self.units_done = 0.0
        self.seconds_measured = 0.0

    # -- the progress interface the executors call ------------------------------------------
    def add_task(self, description: str, total: int, completed: int = 0, **fields: Any) -> Any:
        handle = self.inner.add_task(description, total=total, completed=completed, **fields) if self.inner is not None \
            else len(self.tasks)
        planned = description in self.pending
        if planned:
            self.pending.remove(description)
        self.tasks[handle] = {"name": description, "total": total, "done": completed, "start": completed,
                              "t0": self.clock(), "planned": planned, "ended": completed >= total}
        if planned and completed >= total:  # nothing left to compute in it
            self.done_runs += 1
        return handle

    def advance(self, task: Any, advance: int = 1) -> None:
        if self.inner is not None:
            self.inner.advance(task, advance)
        t = self.tasks.get(task)
        if t is None:
            return
        t["done"] += advance
        if t["done"] >= t["total"] and not t["ended"]:
            t["ended"] = True
            self._finished(t)

    def __getattr__(self, name: str) -> Any:  # anything else the inner progress offers
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    # -- the audit's own hooks ----------------------------------------------------------------
    def skip_run(self, probes: Sequence[str] | None = None) -> None:
        """A model's run was reused from the store: its probes are no longer work to do."""
        for name in probes if probes is not None else self.names:
            if name in self.pending:
                self.pending.remove(name)
                self.planned -= 1

    # -- the ETA ------------------------------------------------------------------------------
    def _finished(self, t: dict[str, Any]) -> None:
        elapsed = self.clock() - t["t0"]
        units = (t["done"] - t["start"]) * self.per_item.get(t["name"], 0.0)
        if units > 0 and elapsed > 0:
            self.measured[t["name"]] = elapsed / units
            self.units_done += units
            self.seconds_measured += elapsed
        if t["planned"]:  # a probe outside the plan (a trajectory's checkpoints) has its own progress lines
            self.done_runs += 1
            self.say(self.line())

    def _rate(self, name: str) -> tuple[float | None, bool]:
        """(seconds per unit, whether it is the rough overall rate) for ``name``."""
        if name in self.measured:
            return self.measured[name], False
        if name in self.store_rates:
            return self.store_rates[name], False
        same_probe = [r for n, r in self.measured.items() if _base(n) == _base(name)]
        if same_probe:  # another instance of the probe (other shots or mode): close, not equal
            return same_probe[-1], True
        if self.units_done > 0:
            return self.seconds_measured / self.units_done, True
        return None, False

    def seconds_left(self) -> tuple[float | None, bool]:
        """(seconds of planned work left, whether a rough rate went into it); None: no rate yet."""
        left, rough = 0.0, False
        running = [(t["name"], t["total"] - t["done"]) for t in self.tasks.values() if t["planned"] and not t["ended"]]
        todo = [(n, items * self.per_item.get(n, 0.0)) for n, items in running] + [(n, self.work.get(n, 0)) for n in self.pending]
        for name, units in todo:
            if units <= 0:
                continue
            rate, guessed = self._rate(name)
            if rate is None:
                return None, False
            left += units * rate
            rough = rough or guessed
        return left, rough

    def line(self) -> str:
        elapsed = format_duration(self.clock() - self.t0)
        head = f"audit progress: {self.done_runs} of {self.planned} planned probe runs done, {elapsed} elapsed"
        left, rough = self.seconds_left()
        if left is None:
            return head + "; time left: not measured yet"
        if left <= 0:
            return head + "; no probe work left"
        return head + f"; about {format_duration(left)} left" + (" (rough: some probes not measured yet)" if rough else "")


def announce_plan(cfg: Any, jobs: Sequence[Any], store: Any, progress: Any, say: Say) -> Any:
    """Print an audit's plan (:func:`rai_audit.workload.plan_lines`: both models run every probe)
    before any work, and return the progress to hand the runs: ``progress`` wrapped in an
    :class:`AuditProgress` (None stays None: no progress wanted, no ETA lines either)."""
    from rai_audit.workload import costs_of, measured_rates, plan_lines

    costs = costs_of(jobs)
    tuned = cfg.models.tuned or ("(made by the finetune step)" if cfg.finetune else "(not set: --tuned REF or --finetune FILE)")
    if cfg.models.tuned is not None and cfg.models.tuned == cfg.models.base:
        # One model twice (a timing or smoke run, e.g. the battery with --tuned default): the
        # tuned run has the base run's key and is reused, so only one model's work is planned.
        models = [("base = tuned (one run, reused for both)", cfg.models.base)]
    else:
        models = [("base", cfg.models.base), ("tuned", tuned)]
    rates = measured_rates(store, cfg.models.base, [c.name for c in costs], cfg.runtime.model_dump())
    for line in plan_lines(costs, models, rates, title=f"plan of audit {cfg.name!r}"):
        say(line)
    return None if progress is None else AuditProgress(progress, costs, len(models), rates, say)
