"""The golden audit: every probe on two tiny models, fixed seeds, its metrics, CIs and comparison.

Recorded before the redesign of issue 15 (``python -m tests.golden.golden_run --write``) and
checked by ``tests/test_golden.py`` after every change: a refactoring that claims to leave
behaviour unchanged must reproduce every number here. Only numbers and ids are stored, never
benchmark text (the benchmark files stay under ``RAI_AUDIT_DATA``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).with_name("golden_metrics.json")
LIMIT = 12
N_BOOT = 200
SEED = 1234
#: Relative tolerance for the audit's floats. On one CPU the same code gives identical bits; across
#: CPU families the fp32 kernels sum in another order (AVX2 on AMD Zen 3 vs AVX-512 on Intel
#: Sapphire Rapids moved model-derived numbers by up to 1.7e-5 relative, measured on this golden
#: audit), so 1e-4. Everything discrete (item ids, counts, flips, verdicts, lengths) must still
#: match exactly, and a changed formula moves a metric by far more than this.
MODEL_REL = 1e-4


def _num(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return v


def compute(workdir: Path) -> dict[str, Any]:
    """Run the golden audit in ``workdir`` and return its numbers."""
    from probes import REGISTRY
    from rai_audit.comparison import compare_runs
    from rai_audit.config import AuditConfig
    from rai_audit.store import Store
    from rai_audit.runner import run_probe_suite
    from tests.tiny_models import make_tiny_causal

    base = make_tiny_causal(workdir / "base", seed=0)
    tuned = make_tiny_causal(workdir / "tuned", seed=1)
    from probes import probe_class

    def params(name: str) -> dict[str, Any]:  # fewer, shorter samples: the same code paths, faster
        fields = probe_class(name).Params.model_fields
        return {"k": 4, "max_new_tokens": 8} if "k" in fields else {}

    cfg = AuditConfig(probes=[{"name": n, "params": params(n)} for n in REGISTRY], limit=LIMIT, seed=SEED,
                      data_dir=os.environ["RAI_AUDIT_DATA"], runtime={"bootstrap": N_BOOT, "device": "cpu"})
    out: dict[str, Any] = {"runs": {}, "comparison": []}
    with Store.open(workdir / "golden.sqlite") as store:
        runs = {}
        for role, model in (("base", base), ("tuned", tuned)):
            runs[role] = run_probe_suite(cfg, model_ref=str(model), store=store, role=role).run.run_id
            rows = store.metrics(runs[role])
            out["runs"][role] = sorted(
                [[m.probe, m.name, m.subgroup, _num(m.value), m.n, _num(m.ci_low), _num(m.ci_high)] for m in rows])
            out.setdefault("items", {})[role] = {
                p: sorted(r["item_id"] for r in store.records(runs[role], p)) for p in REGISTRY}
        comp = compare_runs(store, runs["base"], runs["tuned"], n_boot=N_BOOT, seed=0)
        for p in comp.probes:
            for r in p.rows:
                out["comparison"].append([r.probe, r.source, r.metric, r.subgroup, r.method, r.n, r.clusters,
                                          *(_num(x) for x in (r.value_a, r.value_b, r.diff, r.ci_low, r.ci_high,
                                                              r.p_value, r.p_adjusted, r.mde, r.se)), r.significant])
            out.setdefault("flips", {})[p.probe] = p.flip_counts
    return out


def differences(expected: Any, actual: Any, path: str = "", rel: float = 1e-9) -> list[str]:
    """Where two golden results differ (floats within ``rel`` relative tolerance count as equal)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = sorted(set(expected) | set(actual))
        return [d for k in keys for d in differences(expected.get(k), actual.get(k), f"{path}/{k}", rel)]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(expected)} entries expected, {len(actual)} found"]
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in differences(e, a, f"{path}[{i}]", rel)]
    if isinstance(expected, float) and isinstance(actual, float):
        if math.isclose(expected, actual, rel_tol=rel, abs_tol=1e-12):
            return []
    elif expected == actual:
        return []
    return [f"{path}: expected {expected!r}, found {actual!r}"]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        result = compute(Path(d))
    if "--write" in sys.argv:
        GOLDEN.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {GOLDEN}")
    else:
        diffs = differences(json.loads(GOLDEN.read_text()), json.loads(json.dumps(result)), rel=MODEL_REL)
        print("\n".join(diffs[:50]) or "identical")
        sys.exit(1 if diffs else 0)
