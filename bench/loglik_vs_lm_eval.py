"""Log-likelihood scoring: rai-audit's HF backend vs lm-evaluation-harness' own HF model class.

Both sides get the same requests (CrowS-Pairs sentences from the local data, 2 per item, scored
as continuations of an empty context, as both tools do for CrowS-Pairs; plus BBQ-style
multiple-choice contexts from bench/backends.py) and the same weights (the embedded model's
converted float32 copy), with the same torch thread count. lm-eval runs through
``HFLM.loglikelihood`` at ``--lm-eval-batch`` (32 by default, its usual CPU setting) and, as a
secondary line, at batch 1. Every per-item log-likelihood must agree within 1e-4, or within a
relative 1e-5 for long sentences (a 13-token sentence at -79.95 nats differs by 2.5e-4 between the
two tools, while each is 1e-3 away from a float64 forward: float32 rounding, not a different
computation), and every ``is_greedy`` flag must be equal, or the bench fails.

Printed: wall and CPU-time ratios, the load average, and each side's FLOPs per CPU-second as a
share of this CPU's measured fp32 matmul ceiling (bench/measure.py).

    pip install lm-eval==0.4.13     # the peer (not a test dependency)
    RAI_AUDIT_DATA=../shared/data python bench/loglik_vs_lm_eval.py [--items 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))  # bench helpers; after the repo, as bench/probes.py shadows probes/

import torch  # noqa: E402

from measure import Timing, efficiency_line, linear_flops_per_token, load_line, matmul_ceiling, ratio_line, timed  # noqa: E402
from probes import probe_class  # noqa: E402
from rai_audit.models.default_model import ensure_converted  # noqa: E402
from rai_audit.models.hf_backend import HFBackend  # noqa: E402
from rai_audit.models.reference import resolve  # noqa: E402
from rai_audit.data_root import resolve_data_root  # noqa: E402
from rai_audit.selection import select_items  # noqa: E402


TOL_ABS, TOL_REL = 1e-4, 1e-5


def crows_requests(n_items: int):
    probe = probe_class("crows_pairs")({"limit": None}, resolve_data_root())
    _info, items = probe.load()
    items = select_items(items, n_items, seed=0) if n_items < len(items) else items
    return [r for it in items for r in probe.requests(it)]


def lm_eval_side(model_dir: str, requests, batch: int, dtype: str):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model_dir, device="cpu", dtype=dtype, batch_size=batch, logits_cache=False)
    inst = [Instance("loglikelihood", {}, (r.context, r.continuation), i) for i, r in enumerate(requests)]
    lm.loglikelihood(inst[:4], disable_tqdm=True)  # warm-up
    t = Timing()
    with timed(t):
        out = lm.loglikelihood(inst, disable_tqdm=True)
    return out, t, lm


def real_tokens(backend, requests) -> tuple[int, int]:
    """(tokens our backend feeds: each distinct context once + continuations, tokens lm-eval feeds:
    context + continuation minus the last token, per request)."""
    enc = [backend.encoder.loglik_ids(r.context, r.continuation, False) for r in requests]
    ours = sum(len(c) for c in {e.context for e in enc}) + sum(len(e.continuation) - 1 for e in enc)
    peer = sum(len(e.context) + len(e.continuation) - 1 for e in enc)
    return ours, peer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--items", type=int, default=300, help="CrowS-Pairs items (2 requests each)")
    ap.add_argument("--mc-items", type=int, default=125, help="BBQ-style items (4 requests each); 0 for none")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lm-eval-batch", type=int, default=32)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--no-batch-1", action="store_true", help="skip the secondary lm-eval batch-1 line")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(load_line(), f"| torch threads {torch.get_num_threads()}", flush=True)
    ceiling = matmul_ceiling()
    info = resolve(args.model)
    backend = HFBackend.load(info, device="cpu", dtype=args.dtype)
    model_dir = str(ensure_converted(info.path, info.model_id) if str(info.path).endswith(".gguf") else info.path)
    from backends import mc_requests

    sets = [("CrowS-Pairs", crows_requests(args.items))]
    if args.mc_items:
        sets.append(("BBQ-style multiple choice", mc_requests(args.mc_items)))
    flops = linear_flops_per_token(backend.model)
    for label, reqs in sets:
        backend.loglikelihood(reqs[:4])  # warm-up
        ours_t = Timing()
        with timed(ours_t):
            ours = backend.loglikelihood(reqs)
        peer, peer_t, lm = lm_eval_side(model_dir, reqs, args.lm_eval_batch, args.dtype)
        diffs = [abs(o.logprob - p[0]) for o, p in zip(ours, peer)]
        diff = max(diffs)
        worst = diffs.index(diff)
        print(f"  worst item {worst}: ours {ours[worst].logprob:.6f} lm-eval {peer[worst][0]:.6f} "
              f"({ours[worst].n_tokens} tokens); items over 1e-4: {sum(d > 1e-4 for d in diffs)}", flush=True)
        same_greedy = all(o.is_greedy == p[1] for o, p in zip(ours, peer))
        bad = [i for i, d in enumerate(diffs) if d > max(TOL_ABS, TOL_REL * abs(peer[i][0]))]
        assert not bad, f"{label}: log-likelihoods differ beyond tolerance at items {bad[:10]}"
        assert same_greedy, f"{label}: is_greedy differs"
        n_ours, n_peer = real_tokens(backend, reqs)
        print(f"\n{label}: {len(reqs)} requests, per-item max |diff| {diff:.1e}, is_greedy equal", flush=True)
        print(ratio_line(f"  vs lm-eval HFLM batch {args.lm_eval_batch}", peer_t, ours_t), flush=True)
        print(efficiency_line("  ours   ", n_ours, flops, ours_t, ceiling), flush=True)
        print(efficiency_line("  lm-eval", n_peer, flops, peer_t, ceiling), flush=True)
        del lm
        if not args.no_batch_1:
            _p1, p1_t, lm = lm_eval_side(model_dir, reqs, 1, args.dtype)
            print(ratio_line("  (secondary) vs lm-eval HFLM batch 1", p1_t, ours_t), flush=True)
            del lm
    print("\n" + load_line())


if __name__ == "__main__":
    main()
