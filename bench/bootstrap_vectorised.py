"""Bootstrap cost of every probe: the vectorised declared metrics (issue 15) vs the code before them.

Before issue 15 the runner called each probe's ``aggregate(records)`` once per resample (1,000 by
default), made bearable by per-probe caches (a record memo keyed by ``id()``, record tables,
BBQ's and WinoBias's packed integers). Now a probe declares its metrics over a per-item table and
``rai_audit.stats`` evaluates all resamples at once as cluster-count weights. This script runs
both, side by side, on the same records: ``bootstrap_metrics(records, probe.aggregate,
n_boot=1000)`` with the reference tree (the commit of ``tests/golden/golden_metrics.json``,
extracted with ``git archive`` and put first on ``sys.path`` in a subprocess) and with this tree,
checks that point estimates, n and CIs agree (1e-9 relative), and prints per probe and in total
the wall and CPU time (``time.process_time``) of each and their ratios.

Records: a default-size run of every probe (default parameters, real data under
``RAI_AUDIT_DATA``) on a tiny random model (``tests/tiny_models.make_tiny_causal``) with the
offline ``profanity-check`` scorer, built once through the runner into ``/tmp/rai_bench`` (a
store and one JSON file of records per probe; delete the folder to rebuild). Every probe runs
all its default items. The generation probes keep their default k = 25 continuations per prompt
but generate ``--max-new-tokens`` (4) tokens instead of 20, and BOLD and ToxiGen (23,679 and
31,000 prompts) generate k = 2 continuations of 2 tokens (:data:`CHEAPER`): their default
generations (1.4 million continuations) take hours with a tiny model on a shared 2-core CPU
(about 90 continuations per second here). A record holds per-prompt sums whatever k and the
length, so the bootstrap's work (records, clusters, subgroups) is the default run's.
``--limit`` caps every probe's items (the runner's seeded whole-cluster sample) if even that is
too slow.

    RAI_AUDIT_DATA=../shared/data python bench/bootstrap_vectorised.py [--n-boot 1000] [--probes bbq,bold]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("RAI_BENCH_DIR", "/tmp/rai_bench"))
BASELINE = Path("/tmp/baseline")
SEED = 0
#: Generation parameters for the probes whose default generations are far too slow on CPU.
CHEAPER = {"bold": {"k": 2, "max_new_tokens": 2}, "toxigen": {"k": 2, "max_new_tokens": 2}}


def _reference_tree() -> Path:
    """The pre-redesign tree: the commit that recorded the golden metrics, extracted once."""
    commit = subprocess.run(["git", "log", "--format=%H", "-1", "--", "tests/golden/golden_metrics.json"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.strip()
    marker = BASELINE / ".commit"
    if not (marker.is_file() and marker.read_text() == commit):
        BASELINE.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(BASELINE)], input=archive, check=True)
        marker.write_text(commit)
    return BASELINE


def build_records(names: list[str], max_new_tokens: int, limit: int | None) -> dict[str, Path]:
    """Each probe's error-free records of a default-size run on a tiny model, cached as JSON."""
    sys.path.insert(0, str(ROOT))
    tag = f"t{max_new_tokens}" + (f"_l{limit}" if limit else "")
    out = {n: WORK / f"records_{tag}" / f"{n}.json" for n in names}
    todo = [n for n in names if not out[n].is_file()]
    if not todo:
        return out
    from probes import probe_class
    from rai_audit.config import AuditConfig
    from rai_audit.runner import run_probe_suite
    from rai_audit.store import Store
    from tests.tiny_models import make_tiny_causal

    model = WORK / "tiny_model"
    if not (model / "config.json").is_file():
        make_tiny_causal(model, seed=0)

    def params(name: str) -> dict:
        if "k" not in probe_class(name).Params.model_fields:
            return {}
        return CHEAPER.get(name, {"max_new_tokens": max_new_tokens})

    for name in todo:
        t0 = time.perf_counter()
        cfg = AuditConfig(probes=[{"name": name, "params": params(name)}], limit=limit, seed=SEED,
                          data_dir=os.environ["RAI_AUDIT_DATA"], runtime={"bootstrap": 0, "device": "cpu"})
        with Store.open(WORK / f"store_{tag}.sqlite") as store:
            run = run_probe_suite(cfg, model_ref=str(model), store=store, role="bench").run
            records = [r for r in store.records(run.run_id, name) if not r.get("error")]
        out[name].parent.mkdir(parents=True, exist_ok=True)
        out[name].write_text(json.dumps({"params": params(name), "records": records}))
        print(f"  built {name}: {len(records)} records in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def worker(tree: str, name: str, records_file: str, n_boot: int, result_file: str) -> None:
    """In a fresh process with ``tree`` first on sys.path: time one probe's bootstrap."""
    sys.path[:] = [tree] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    import numpy as np

    from probes import probe_class
    from rai_audit.stats.bootstrap import bootstrap_metrics, cluster_indices

    doc = json.loads(Path(records_file).read_text())
    probe = probe_class(name)(doc["params"])
    records = doc["records"]
    w0, c0 = time.perf_counter(), time.process_time()
    est = bootstrap_metrics(records, probe.aggregate, n_boot=n_boot, seed=SEED)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    assert Path(sys.modules["probes"].__file__).resolve().is_relative_to(Path(tree).resolve())
    Path(result_file).write_text(json.dumps({
        "wall": wall, "cpu": cpu, "records": len(records), "clusters": len(cluster_indices(records)),
        "numpy": np.__version__, "estimates": [[k[0], k[1], *v] for k, v in est.items()],
    }))


def _run_worker(tree: Path, name: str, records: Path, n_boot: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result = Path(f.name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree), name, str(records), str(n_boot), str(result)]
    subprocess.run(cmd, check=True, cwd=tempfile.gettempdir())
    out = json.loads(result.read_text())
    result.unlink()
    return out


def _differences(old: dict, new: dict, rel: float = 1e-9) -> tuple[list[str], float]:
    """Keys, n or numbers that differ (numbers beyond ``rel`` relative), and the largest relative
    difference of any number."""
    a = {(r[0], r[1]): r[2:] for r in old["estimates"]}
    b = {(r[0], r[1]): r[2:] for r in new["estimates"]}
    diffs = [f"key only in {'old' if k in a else 'new'}: {k}" for k in sorted(a.keys() ^ b.keys())]
    worst = 0.0
    for k in sorted(a.keys() & b.keys()):
        for x, y in zip(a[k], b[k]):
            if isinstance(x, float) and isinstance(y, float):
                if math.isnan(x) and math.isnan(y):
                    continue
                if x != y:
                    worst = max(worst, abs(x - y) / max(abs(x), abs(y)))
                if not math.isclose(x, y, rel_tol=rel, abs_tol=1e-12):
                    diffs.append(f"{k}: (value, n, ci_low, ci_high) {a[k]} vs {b[k]}")
                    break
            elif x != y:
                diffs.append(f"{k}: (value, n, ci_low, ci_high) {a[k]} vs {b[k]}")
                break
    return diffs, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--probes", default="", help="comma-separated probe names (default: every registered probe)")
    ap.add_argument("--max-new-tokens", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from probes import REGISTRY

    names = [n for n in args.probes.split(",") if n] or list(REGISTRY)
    tree = _reference_tree()
    files = build_records(names, args.max_new_tokens, args.limit)
    print(f"bootstrap_metrics(records, probe.aggregate, n_boot={args.n_boot}, seed={SEED}); reference tree "
          f"{(tree / '.commit').read_text()[:10]} vs this tree; {os.cpu_count()} CPUs (shared)")
    head = f"{'probe':<20} {'records':>8} {'clusters':>8} {'keys':>5} | {'old wall':>9} {'old cpu':>8} | " \
           f"{'new wall':>9} {'new cpu':>8} | {'wall x':>7} {'cpu x':>7} | max rel diff"
    print(head)
    print("-" * len(head))
    tot = {"ow": 0.0, "oc": 0.0, "nw": 0.0, "nc": 0.0}
    failures = []
    for name in names:
        old = _run_worker(tree, name, files[name], args.n_boot)
        new = _run_worker(ROOT, name, files[name], args.n_boot)
        diffs, worst = _differences(old, new)
        failures += [f"{name}: {d}" for d in diffs]
        for k, v in (("ow", old["wall"]), ("oc", old["cpu"]), ("nw", new["wall"]), ("nc", new["cpu"])):
            tot[k] += v
        print(f"{name:<20} {new['records']:>8} {new['clusters']:>8} {len(new['estimates']):>5} | "
              f"{old['wall']:>8.2f}s {old['cpu']:>7.2f}s | {new['wall']:>8.2f}s {new['cpu']:>7.2f}s | "
              f"{old['wall'] / new['wall']:>6.1f}x {old['cpu'] / new['cpu']:>6.1f}x | "
              f"{worst:.1e}{'  DIFFERENT' if diffs else ''}", flush=True)
    print("-" * len(head))
    print(f"{'total':<20} {'':>8} {'':>8} {'':>5} | {tot['ow']:>8.2f}s {tot['oc']:>7.2f}s | {tot['nw']:>8.2f}s "
          f"{tot['nc']:>7.2f}s | {tot['ow'] / tot['nw']:>6.1f}x {tot['oc'] / tot['nc']:>6.1f}x |")
    if failures:
        print(f"{len(failures)} (metric, subgroup) rows differ beyond 1e-9 relative (old vs new):")
        print("\n".join(failures[:40]))
    else:
        print("point estimates, n and CIs identical within 1e-9 relative")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        main()
