"""Where a finetune run reports: the results store (the run row, per-step losses, events, the
training fingerprint artifact) and a progress bar on stderr. Kept apart from the training loop so
that the loop stays model- and store-agnostic (tests drive it with no store at all)."""

from __future__ import annotations

import sys
from typing import Any

from finetune.config import FinetuneConfig
from finetune.mixture import Mixture


class StoreLog:
    """Finetune run logging into the results store (no-op without a store)."""

    def __init__(self, store: Any | None):
        self.store = store
        self.run_id: str | None = None

    def start(self, cfg: FinetuneConfig, base: dict[str, Any], mixture: Mixture, fingerprint: str,
              resume: bool, training_fingerprint: dict[str, Any] | None = None) -> None:
        if self.store is None:
            return
        from finetune.manifest import package_versions

        prior = self.store.find_run_by_key(fingerprint) if hasattr(self.store, "find_run_by_key") else None
        unfinished = prior is not None and getattr(prior, "status", "running") not in ("completed", "failed")
        if prior is not None and getattr(prior, "kind", "finetune") == "finetune" and (resume or unfinished):
            # The interrupted run's record continues (its metrics so far stay; new steps append).
            # A run killed before its first checkpoint was complete restarts at step 0 under the
            # same record: same key, same batches, so the same losses; one run, not a stale twin.
            self.run_id = prior.run_id
            self.store.add_event(self.run_id, "running", {"resumed": True} if resume else {"restarted": True})
            self.fingerprint_artifact(training_fingerprint)
            return

        self.run_id = self.store.create_run(
            kind="finetune", run_key=fingerprint, model_id=base.get("model_id"), model_reference=cfg.model,
            probes=[], config=cfg.model_dump(mode="json"), provenance={"packages": package_versions()},
            scorer=None, datasets={"mixture": mixture.manifest()}, seed=cfg.seed,
        )
        self.fingerprint_artifact(training_fingerprint)

    def fingerprint_artifact(self, entry: dict[str, Any] | None) -> None:
        """Record the training fingerprint on the run (once: a resume rebuilds the same one)."""
        if self.store is None or self.run_id is None or entry is None:
            return
        fid = entry["fingerprint_id"]
        if hasattr(self.store, "artifacts") and any(
            a.sha256 == fid for a in self.store.artifacts(self.run_id, kind="training_fingerprint")
        ):
            return
        meta = {k: v for k, v in entry.items() if k not in ("path", "sha256", "model_copy")}
        self.store.add_artifact(self.run_id, name="training_fingerprint", kind="training_fingerprint",
                                path=entry["path"], sha256=fid, meta={**meta, "file_sha256": entry["sha256"]})

    def losses(self, rows: list[tuple[int, float, float]]) -> None:
        if self.store is None or self.run_id is None or not rows:
            return
        from rai_audit.store.api import MetricRow

        self.store.add_metrics(self.run_id, [
            MetricRow(probe="finetune", name="loss", subgroup=f"step={s}", value=float(v), n=int(n))
            for s, v, n in rows
        ])

    def event(self, status: str, detail: dict[str, Any]) -> None:
        if self.store is not None and self.run_id is not None:
            self.store.add_event(self.run_id, status, detail)


class StepProgress:
    """tqdm on stderr with loss, tokens/s and ETA."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, file=sys.stderr, desc="finetune", unit="step",
                            dynamic_ncols=True)

    def update(self, loss: float, tok_s: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
