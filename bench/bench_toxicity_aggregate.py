"""Bootstrap cost of the toxicity aggregates: ours (memoised per-record sums) vs a direct one.

The runner calls a probe's ``aggregate`` once per bootstrap resample (1000 by default). The
baseline recomputes every subgroup's metrics from the record dicts on each call, the way a
straightforward implementation would; ours (``probes.toxicity_aggregate``) reads each record
once and answers a resample with weighted sums. Both run side by side on the same BOLD-sized synthetic
records and the same resamples; the script checks they agree and prints both times and the
ratio. A second line compares ``probes.toxicity_metrics.roc_auc`` with scikit-learn's.

    python bench/bench_toxicity_aggregate.py [n_records] [n_boot]
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

# the repo root first: bench/ holds a probes.py that would otherwise shadow the probes package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probes.bold import BOLD  # noqa: E402
from probes.toxicity_metrics import roc_auc  # noqa: E402


def synthetic_records(n: int, k: int = 25, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    groups = [(d, f"{d}_g{g}") for d in ("gender", "race", "profession", "political_ideology", "religious_ideology")
              for g in range(9)]
    recs = []
    for i in range(n):
        d, g = groups[i % len(groups)]
        tox = rng.beta(0.5, 4.0, size=k)
        toxic = tox >= 0.5
        recs.append({
            "item_id": f"{d}|{g}|p{i}", "cluster": f"{d}|p{i // 3}", "subgroups": {"domain": d, "group": g},
            "toxicity": tox.tolist(), "max_toxicity": float(tox.max()), "mean_toxicity": float(tox.mean()),
            "n_samples": k, "n_toxic": int(toxic.sum()), "n_empty": 0, "any_toxic": bool(toxic.any()),
            "attributes": {}, "threshold": 0.5, "operator": ">=",
        })
    return recs


def baseline_aggregate(records: list[dict]) -> dict:
    """Direct recomputation: filter the record dicts per subgroup and reduce with numpy."""

    def block(rs):
        if not rs:
            return {}
        mx = np.array([r["max_toxicity"] for r in rs])
        ns = np.array([r["n_samples"] for r in rs], dtype=float)
        return {
            "expected_max_toxicity": float(mx.mean()),
            "expected_max_toxicity_std": float(mx.std()),
            "toxicity_probability": float(np.mean([r["any_toxic"] for r in rs])),
            "toxic_fraction": float(sum(r["n_toxic"] for r in rs) / ns.sum()),
            "mean_toxicity": float(sum(r["mean_toxicity"] * r["n_samples"] for r in rs) / ns.sum()),
        }

    out = {(m, ""): v for m, v in block(records).items()}
    labels: dict[str, list[dict]] = {}
    for r in records:
        sg = r["subgroups"]
        labels.setdefault(f"domain={sg['domain']}", []).append(r)
        labels.setdefault(f"group={sg['domain']}/{sg['group']}", []).append(r)
    for lab, rs in labels.items():
        out.update({(m, lab): v for m, v in block(rs).items()})
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 23679
    n_boot = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    records = synthetic_records(n)
    rng = np.random.default_rng(1)
    resamples = [[records[i] for i in rng.integers(0, n, n)] for _ in range(n_boot)]
    probe = BOLD({})

    t0 = time.perf_counter()
    base = [baseline_aggregate(s) for s in resamples]
    t_base = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = [probe.aggregate(s) for s in resamples]
    t_ours = time.perf_counter() - t0
    for b, o in zip(base, ours):
        for key, v in b.items():
            assert math.isclose(v, o[key][0], rel_tol=1e-9, abs_tol=1e-12), (key, v, o[key])
    print(f"aggregate x{n_boot} on {n} records: baseline {t_base:.2f} s, ours {t_ours:.2f} s, "
          f"ratio {t_base / t_ours:.1f}x (same numbers)")

    from sklearn.metrics import roc_auc_score

    y = rng.integers(0, 2, 100_000)
    s = np.round(rng.random(100_000), 3)
    reps = 20
    t0 = time.perf_counter()
    a = [roc_auc_score(y, s) for _ in range(reps)]
    t_sk = time.perf_counter() - t0
    t0 = time.perf_counter()
    b2 = [roc_auc(y, s) for _ in range(reps)]
    t_ours2 = time.perf_counter() - t0
    assert math.isclose(a[0], b2[0], rel_tol=1e-12)
    print(f"AUC x{reps} on 100k scores: sklearn {t_sk:.2f} s, ours {t_ours2:.2f} s, ratio {t_sk / t_ours2:.1f}x (same value)")


if __name__ == "__main__":
    main()
