"""The fast mode (``--dtype bfloat16``) against float32 on the same requests and weights.

Prints this CPU's bfloat16 and float32 matmul ceilings (whether it has AVX512-BF16/AMX decides
everything), the log-likelihood time in each precision with wall and CPU ratios, the per-item
deviation of bfloat16 from float32, and how many multiple-choice items change their best answer
(the verdict-level question: a probe's accuracy moves only when an item's argmax moves).

    python bench/precision.py [--items 50] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))  # bench helpers; after the repo (bench/probes.py)

import torch  # noqa: E402

from backends import mc_requests  # noqa: E402
from measure import Timing, load_line, matmul_ceiling, ratio_line, timed  # noqa: E402
from rai_audit.models.hf_backend import HFBackend, cpu_has_fast_bf16  # noqa: E402
from rai_audit.models.reference import resolve  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--items", type=int, default=50, help="BBQ-style items, 4 answers each")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(load_line(), f"| torch threads {torch.get_num_threads()} | bfloat16 matrix instructions: "
          f"{ {True: 'yes', False: 'no', None: 'unknown'}[cpu_has_fast_bf16()] }", flush=True)
    f32, b16 = matmul_ceiling(torch.float32), matmul_ceiling(torch.bfloat16)
    print(f"matmul ceiling per CPU-second: float32 {f32 / 1e9:.1f} GFLOP, bfloat16 {b16 / 1e9:.1f} GFLOP "
          f"({b16 / f32:.2f}x)", flush=True)
    info = resolve(args.model)
    reqs = mc_requests(args.items)
    out, times = {}, {}
    for dtype in ("float32", "bfloat16"):
        backend = HFBackend.load(info, device="cpu", dtype=dtype)
        backend.loglikelihood(reqs[:4])  # warm-up
        t = Timing()
        with timed(t):
            out[dtype] = backend.loglikelihood(reqs)
        times[dtype] = t
        del backend
    print(ratio_line(f"{len(reqs)} log-likelihoods, float32 (peer) vs bfloat16 (ours)", times["float32"],
                     times["bfloat16"]), flush=True)
    dev = [abs(a.logprob - b.logprob) for a, b in zip(out["float32"], out["bfloat16"])]
    best = [max(range(4), key=lambda j: out[d][4 * i + j].logprob) for d in ("float32", "bfloat16")
            for i in range(args.items)]
    changed = sum(best[i] != best[args.items + i] for i in range(args.items))
    print(f"per-item |bfloat16 - float32|: max {max(dev):.3f}, mean {sum(dev) / len(dev):.3f} nats; "
          f"best answer changed on {changed}/{args.items} items", flush=True)
    print(load_line())


if __name__ == "__main__":
    main()
