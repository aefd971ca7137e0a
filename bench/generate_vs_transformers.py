"""Generation: rai-audit's HF backend vs transformers' own ``generate``, the same prompts and weights.

Two modes, both on the embedded model's weights in one precision (``--dtype``, float32 by default;
``bfloat16`` is the fast mode, both sides then run in it) with the same torch thread count:

- ``greedy``: every prompt decoded greedily for up to ``--tokens`` new tokens (a prompt whose
  greedy path reaches EOS stops there on both sides). In float32 both must produce identical
  texts, or the bench fails: this is the check that the two compute the same thing (in bfloat16
  the bench prints how many differ: rows batched or padded differently round differently).
- ``sample``: RealToxicityPrompts' protocol, k samples per prompt at top-k 40 and temperature 1.
  transformers runs ``generate(num_return_sequences=k, do_sample=True, top_k=40)`` on batches of
  ``--peer-prompts`` left-padded prompts (a user's natural fast call); samples differ by design
  (different random streams), so the bench compares the numbers of generated tokens and speed,
  and checks that every sample's length is within the request.

``--workload toxigen`` swaps the short prompts for the first ``--prompts`` ToxiGen prompts
(``$RAI_AUDIT_DATA/toxigen_prompts``, about 120 tokens each, one sample per prompt, stopping at the
end of the line), as the battery runs them: long prompts and many rows, where decoding is
limited by how many rows are decoded together. transformers gets ``stop_strings=["\\n"]`` and
batches of ``--peer-prompts`` prompts; the greedy texts are compared cut at the line break.

Printed: wall and CPU-time ratios, tokens/s, the load average, and the share of this CPU's fp32
matmul ceiling in that precision that each side's generated tokens represent (bench/measure.py).

    python bench/generate_vs_transformers.py [--prompts 20] [--k 25] [--tokens 20] [--threads 2] [--dtype bfloat16]
    RAI_AUDIT_DATA=../shared/data python bench/generate_vs_transformers.py --workload toxigen --prompts 500 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))  # bench helpers; after the repo (bench/probes.py)

import torch  # noqa: E402

from backends import GEN_PROMPTS  # noqa: E402
from measure import Timing, efficiency_line, linear_flops_per_token, load_line, matmul_ceiling, ratio_line, timed  # noqa: E402
from rai_audit.models.hf_backend import HFBackend  # noqa: E402
from rai_audit.models.reference import resolve  # noqa: E402
from rai_audit.requests import GenerationRequest, Sampling  # noqa: E402


@torch.inference_mode()
def peer_generate(model, tok, prompts, *, n, max_new, greedy, batch, stop=None):
    """transformers generate on left-padded batches of prompts; returns token id lists per sample."""
    tok.padding_side = "left"
    out: list[list[int]] = []
    for i in range(0, len(prompts), batch):
        enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True)
        kw = dict(do_sample=False) if greedy else dict(do_sample=True, top_k=40, temperature=1.0, top_p=1.0)
        if stop:
            kw.update(stop_strings=list(stop), tokenizer=tok)
        gen = model.generate(**enc, max_new_tokens=max_new, num_return_sequences=n, pad_token_id=tok.pad_token_id,
                             **kw)
        new = gen[:, enc["input_ids"].shape[1]:]
        eos = set(model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list)
                  else [model.generation_config.eos_token_id])
        for row in new.tolist():
            ids = []
            for t in row:
                if t in eos:
                    break
                ids.append(t)
            out.append(ids)
    return out


def ours_generate(backend, prompts, *, n, max_new, greedy, stop=()):
    reqs = [GenerationRequest(p, Sampling(max_new_tokens=max_new, n=n, temperature=0.0 if greedy else 1.0,
                                          top_k=None if greedy else 40, seed=i, stop=tuple(stop)))
            for i, p in enumerate(prompts)]
    return backend.generate(reqs)


def toxigen_prompts(n: int) -> list[str]:
    """The first ``n`` ToxiGen prompts, taken round-robin over the prompt files (kinds and groups)."""
    from probes.toxigen import read_prompt_files, unescape
    from rai_audit.data_root import benchmark_dir

    root = os.environ.get("RAI_AUDIT_DATA")
    d = benchmark_dir(Path(root), "toxigen_prompts") if root else None
    if d is None:
        sys.exit("--workload toxigen reads $RAI_AUDIT_DATA/toxigen_prompts; set RAI_AUDIT_DATA.")
    rows, _ = read_prompt_files(d)
    rows.sort(key=lambda r: (r[2], r[0], r[1]))  # line number first: every file in turn
    return [unescape(line) for _, _, _, line in rows[:n]]


def cut_at(text: str, stop: tuple[str, ...]) -> str:
    """``text`` up to the first stop string (our backend's texts end there)."""
    hits = [k for k in (text.find(s) for s in stop) if k >= 0]
    return text[: min(hits)] if hits else text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--k", type=int, default=25)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--peer-prompts", type=int, default=4, help="prompts per transformers generate call")
    ap.add_argument("--mode", choices=["both", "greedy", "sample"], default="both")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--workload", choices=["short", "toxigen"], default="short",
                    help="short: 20 short prompts (RealToxicityPrompts-like); toxigen: ToxiGen's long list prompts, "
                         "k 1, stop at the line break (needs RAI_AUDIT_DATA)")
    args = ap.parse_args()
    stop: tuple[str, ...] = ()
    if args.workload == "toxigen":
        args.k, stop = 1, ("\n",)
        if args.peer_prompts == 4:
            args.peer_prompts = 32
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(load_line(), f"| torch threads {torch.get_num_threads()} | {args.dtype}", flush=True)
    ceiling = matmul_ceiling(getattr(torch, args.dtype))
    backend = HFBackend.load(resolve(args.model), device="cpu", dtype=args.dtype)
    model, tok = backend.model, backend.tokenizer
    flops = linear_flops_per_token(model)
    if args.workload == "toxigen":
        prompts = toxigen_prompts(args.prompts)
    else:
        prompts = (GEN_PROMPTS * (1 + args.prompts // len(GEN_PROMPTS)))[: args.prompts]
    ours_generate(backend, prompts[:2], n=2, max_new=2, greedy=False)  # warm-up both
    peer_generate(model, tok, prompts[:2], n=2, max_new=2, greedy=False, batch=2)

    if args.mode in ("both", "greedy"):
        t_o, t_p = Timing(), Timing()
        with timed(t_o):
            res = ours_generate(backend, prompts, n=1, max_new=args.tokens, greedy=True, stop=stop)
        with timed(t_p):
            peer = peer_generate(model, tok, prompts, n=1, max_new=args.tokens, greedy=True, stop=stop,
                                 batch=len(prompts) if not stop else args.peer_prompts)
        ours_tokens = sum(r.n_tokens[0] for r in res)
        peer_text = [cut_at(tok.decode(p, skip_special_tokens=True), stop) for p in peer]
        same = sum(r.texts[0] == t for r, t in zip(res, peer_text))
        print(f"\ngreedy, {len(prompts)} prompts x {args.tokens} tokens: identical texts {same}/{len(prompts)}, "
              f"tokens ours {ours_tokens} / transformers {sum(len(p) for p in peer)}", flush=True)
        if args.dtype == "float32":
            assert same == len(prompts), "greedy outputs differ"
        elif same < len(prompts):
            # bfloat16 rounds a row differently in another batch or padding width, and a greedy
            # path follows the first logit that moves across a tie: the identity check is float32's
            print(f"  (bfloat16: {len(prompts) - same} texts differ; the identity check runs in float32)", flush=True)
        batches = "one batch" if not stop else f"{args.peer_prompts} prompts a call"
        print(ratio_line(f"  vs transformers generate ({batches})", t_p, t_o), flush=True)

    if args.mode in ("both", "sample"):
        t_o, t_p = Timing(), Timing()
        with timed(t_o):
            res = ours_generate(backend, prompts, n=args.k, max_new=args.tokens, greedy=False, stop=stop)
        torch.manual_seed(0)
        with timed(t_p):
            peer = peer_generate(model, tok, prompts, n=args.k, max_new=args.tokens, greedy=False, stop=stop,
                                 batch=args.peer_prompts)
        n_ours = sum(sum(r.n_tokens) for r in res)
        n_peer = sum(len(p) for p in peer)
        assert all(0 <= t <= args.tokens for r in res for t in r.n_tokens)
        print(f"\nsample, {len(prompts)} prompts x {args.k} samples x {args.tokens} tokens (top-k 40, T=1): "
              f"tokens ours {n_ours} / transformers {n_peer}", flush=True)
        print(ratio_line(f"  vs transformers generate(num_return_sequences={args.k}, {args.peer_prompts} prompts a call)",
                         t_p, t_o), flush=True)
        print(f"  per 1,000 generated tokens: transformers {1000 * t_p.wall / max(n_peer, 1):.2f}s wall / "
              f"{1000 * t_p.cpu / max(n_peer, 1):.2f}s CPU | ours {1000 * t_o.wall / max(n_ours, 1):.2f}s wall / "
              f"{1000 * t_o.cpu / max(n_ours, 1):.2f}s CPU", flush=True)
        print(efficiency_line("  ours        ", n_ours, flops, t_o, ceiling), flush=True)
        print(efficiency_line("  transformers", n_peer, flops, t_p, ceiling), flush=True)
        if args.workload == "toxigen":  # the prompts are most of the work: count them too
            n_prompt = sum(len(backend.encoder.prompt_ids(p, False)) for p in prompts)
            print(f"  prompts: {n_prompt} tokens, encoded once by each side", flush=True)
            print(efficiency_line("  ours, prompt + generated        ", n_prompt + n_ours, flops, t_o, ceiling))
            print(efficiency_line("  transformers, prompt + generated", n_prompt + n_peer, flops, t_p, ceiling))
    print("\n" + load_line())


if __name__ == "__main__":
    main()
