"""The in-process llama.cpp backend vs the transformers backend, same requests, same model file.

Model: the embedded SmolLM2-135M-Instruct Q4_1 GGUF (or ``--gguf PATH``): ``default`` (transformers,
float32 copy of the dequantised weights) and ``llama-cpp:default`` (llama.cpp's quantised kernels),
both on the same number of CPU threads.

(a) 600 log-likelihood requests (bench/backends.py's multiple-choice requests: 150 contexts x 4
    answers); per-request deviation |llama.cpp - transformers| (max, mean, token counts equal);
(b) 20 prompts x 25 samples x 20 new tokens, top-k 40 (bench/backends.py's prompts); and, to show
    what llama.cpp's parallel sequences buy, the first ``--single-prompts`` prompts decoded one
    sample at a time (one sequence per ``llama_decode``, as the high-level ``llama_cpp.Llama`` does).

Printed per side: wall time, CPU time (``time.process_time``, all threads), tokens/s, and the
ratios; the load average (``os.getloadavg``) before and after each measurement, since the machine
may be shared (a busy machine slows both, but not equally: llama.cpp's threads wait for each other
at every operation).

    python bench/llama_cpp.py                  # the full run (about 4 minutes on 2 cores)
    python bench/llama_cpp.py --gguf model.gguf  # another GGUF file
    python bench/llama_cpp.py --quick          # 100 requests, 4 prompts (smoke test)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# This file is named like the package it measures: take bench/ off the import path (Python puts
# a script's folder first), so that `import llama_cpp` finds llama-cpp-python, not this script.
BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(BENCH.parent))

import importlib.util  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rai_audit.models import registry  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_backends", BENCH / "backends.py")
_backends = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_backends)  # type: ignore[union-attr]
GEN_PROMPTS, mc_requests = _backends.GEN_PROMPTS, _backends.mc_requests
from rai_audit.requests import GenerationRequest, Sampling  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn, *args):
    """(result, wall seconds, CPU seconds of this process), with the load average around it."""
    before = load()
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    print(f"    load average before {before} | after {load()}", flush=True)
    return out, wall, cpu


def line(name: str, wall: float, cpu: float, units: float, unit: str) -> None:
    print(f"  {name:<34} wall {wall:7.2f}s  cpu {cpu:7.2f}s  {units / wall:8.1f} {unit}/s (wall)  "
          f"{units / cpu:8.1f} {unit}/cpu-s", flush=True)


def ratio(hf: tuple[float, float], ll: tuple[float, float]) -> None:
    print(f"  llama.cpp / transformers: wall x{ll[0] / hf[0]:.2f}, cpu x{ll[1] / hf[1]:.2f} "
          f"(<1 = llama.cpp faster)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default="default", help="a .gguf file (default: the embedded model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="100 requests and 4 prompts")
    ap.add_argument("--single-prompts", type=int, default=2, help="prompts decoded one sample at a time")
    ap.add_argument("--only", choices=["loglik", "generate"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(f"cpu {os.cpu_count()} cores, {args.threads} threads each side; load average {load()}", flush=True)
    t = time.perf_counter()
    hf = registry.load_backend(registry.resolve_model(args.gguf), registry.BackendOptions(device="cpu"))
    t_hf = time.perf_counter() - t
    t = time.perf_counter()
    ll = registry.load_backend(registry.resolve_model(f"llama-cpp:{args.gguf}?threads={args.threads}"))
    t_ll = time.perf_counter() - t
    print(f"loaded: transformers {t_hf:.1f}s, llama.cpp {t_ll:.1f}s ({ll.info.engine['package']} "
          f"{ll.info.engine['version']}; {ll.info.engine['system_info']})", flush=True)

    if args.only in (None, "loglik"):
        reqs = mc_requests(25 if args.quick else 150)
        hf.loglikelihood(reqs[:8])  # warm-up
        ll.loglikelihood(reqs[:8])
        print(f"(a) {len(reqs)} log-likelihood requests", flush=True)
        a, hw, hc = timed(hf.loglikelihood, reqs)
        b, lw, lc = timed(ll.loglikelihood, reqs)
        scored = sum(r.n_tokens for r in a)
        computed = _computed_tokens(hf, reqs)
        line("transformers (fp32, batched)", hw, hc, len(reqs), "req")
        line("llama.cpp (Q4_1, parallel seqs)", lw, lc, len(reqs), "req")
        print(f"  tokens run through the model (contexts once + continuations): {computed}; "
              f"transformers {computed / hw:.0f} tok/s, llama.cpp {computed / lw:.0f} tok/s (wall)")
        ratio((hw, hc), (lw, lc))
        gaps = np.abs(np.array([x.logprob - y.logprob for x, y in zip(a, b)]))
        same = all(x.n_tokens == y.n_tokens for x, y in zip(a, b))
        pick_a = np.array([x.logprob for x in a]).reshape(-1, 4).argmax(1)
        pick_b = np.array([x.logprob for x in b]).reshape(-1, 4).argmax(1)
        print(f"  per-request |llama.cpp - transformers|: max {gaps.max():.3f}, mean {gaps.mean():.3f}, median "
              f"{np.median(gaps):.3f}, p99 {np.quantile(gaps, 0.99):.3f} nats over {len(gaps)} requests "
              f"({scored} scored tokens; token counts equal: {same}; is_greedy equal "
              f"{sum(x.is_greedy == y.is_greedy for x, y in zip(a, b))}/{len(a)}; same best answer "
              f"{(pick_a == pick_b).sum()}/{len(pick_a)} items)", flush=True)

    if args.only in (None, "generate"):
        prompts = GEN_PROMPTS[:4] if args.quick else GEN_PROMPTS
        n, max_new, top_k = 25, 20, 40
        reqs = [GenerationRequest(p, Sampling(max_new_tokens=max_new, n=n, top_k=top_k, temperature=1.0, seed=i))
                for i, p in enumerate(prompts)]
        hf.generate(reqs[:1])
        ll.generate(reqs[:1])
        print(f"(b) {len(prompts)} prompts x {n} samples x {max_new} tokens (top-k {top_k})", flush=True)
        a, hw, hc = timed(hf.generate, reqs)
        b, lw, lc = timed(ll.generate, reqs)
        na, nb = sum(sum(r.n_tokens) for r in a), sum(sum(r.n_tokens) for r in b)
        line(f"transformers ({na} tokens)", hw, hc, na, "tok")
        line(f"llama.cpp, {n} seqs per decode ({nb} tokens)", lw, lc, nb, "tok")
        ratio((hw / na, hc / na), (lw / nb, lc / nb))
        print("  (ratios per generated token)")
        if args.single_prompts:
            from rai_audit.models.llamacpp.sampling_loop import generate

            few = reqs[: args.single_prompts]
            ids = [ll.encoder.prompt_ids(r.prompt, r.chat) for r in few]
            one, sw, sc = timed(lambda: generate(ll.engine, ll.tokenizer, ids, few, eos_ids=ll.eos_ids, max_rows=1))
            ns = sum(sum(r.n_tokens) for r in one)
            line(f"llama.cpp, 1 seq per decode ({ns} tokens)", sw, sc, ns, "tok")
            print(f"  same samples as with {n} per decode: {one == b[: args.single_prompts]}", flush=True)
    ll.close()


def _computed_tokens(hf, reqs) -> int:
    """Tokens a backend that runs each distinct context once must run: contexts + continuations[:-1]."""
    contexts, extra = set(), 0
    for r in reqs:
        t = hf.encoder.loglik_ids(r.context, r.continuation, r.chat)
        contexts.add(t.context)
        extra += max(len(t.continuation) - 1, 0)
    return sum(len(c) for c in contexts) + extra


if __name__ == "__main__":
    main()
