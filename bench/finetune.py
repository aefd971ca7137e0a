"""Train-step throughput: our jitted JAX/NNX step vs a plain PyTorch training loop.

Same model (a Llama-style decoder built from one HF config dict), the *same initial weights*
(the PyTorch model is built first, from a fixed seed, and ours imports its state dict through
the finetune stage's own HF import), the same batches and sequence length, the same optimiser
(AdamW, constant learning rate, global-norm clipping at 1.0) and the *same number of threads*
on both sides: the process is pinned to ``--threads`` cores before either framework loads (XLA
sizes its pool from the process's CPU affinity) and PyTorch gets ``set_num_threads`` of the same
number. Both run in this process, alternating rounds; we report the median round and the median
of the per-round ratios, beside tokens per CPU-second (on a shared machine wall time mostly
measures how many cores the scheduler lent us). Compilation (ours) and the first steps (both)
are warm-up and not timed.

Every step's loss is kept: both sides see the same batches in the same order from the same
weights, so the loss sequences must agree (to float32 round-off that grows slowly with the steps);
the bench prints the largest difference and fails if they part.

    python bench/finetune.py --preset smollm2-135m --batch 4 --seq 256 --steps 2 --rounds 3
    python bench/finetune.py --device gpu --preset smollm2-135m --dtype bfloat16 --batch 16 --seq 2048 --mfu
                                                      # on a GPU: also model FLOPs utilisation

MFU uses the PaLM (Chowdhery et al. 2022, App. B) count: 6 N + 12 L T d FLOPs per token
(N = non-embedding parameters + LM head, L layers, T sequence length, d hidden size), over the
device's peak dense bf16 FLOP/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRESETS = {
    "cpu-small": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=8192),
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152),
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 tensor-core peaks


def hf_config(preset: str, seq: int) -> dict:
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "rms_norm_eps": 1e-5,
            "max_position_embeddings": max(seq, 2048), "rope_theta": 10000.0, "tie_word_embeddings": True,
            "hidden_act": "silu", **PRESETS[preset]}


def flops_per_token(cfg: dict, seq: int) -> float:
    d, L, V, f = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["intermediate_size"]
    hd = d // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd
    per_layer = d * d * 2 + d * kv * 2 + 3 * d * f  # q, o, k, v, gate/up/down
    n = L * per_layer + V * d  # + LM head
    return 6 * n + 12 * L * seq * d


def batches(vocab: int, batch: int, seq: int, n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, (batch, seq + 1), dtype=np.int64) for _ in range(n)]


class Ours:
    def __init__(self, cfg: dict, args, torch_state: dict):
        import jax
        import numpy as np

        from finetune.checkpoint_io.hf_import import import_tensors
        from finetune.config import FinetuneConfig
        from finetune.models.registry import config_from_hf
        from finetune.sharding import make_mesh, train_shardings
        from finetune.train import Trainer, make_optimizer

        mcfg = config_from_hf(cfg, dtype=args.dtype, attention_impl=args.attention)
        _, model = import_tensors(mcfg, torch_state, where="the PyTorch baseline's initial weights")
        ft = FinetuneConfig(model="bench", output_dir="unused", mixture="unused", lr=1e-4, warmup_steps=0,
                            steps=1000, weight_decay=0.0, grad_clip=1.0, b1=0.9, b2=0.95)
        tx = make_optimizer(ft, "decoder", 1000)
        self.trainer = Trainer(model, "decoder", tx)
        mesh = make_mesh(1, 1)
        self.sh = train_shardings(mesh, self.trainer.params, tx)
        self.state = self.trainer.init_state(self.sh)
        self.trainer.compile(self.sh)
        self.jax, self.np = jax, np

    def prepare(self, toks):
        np, jax = self.np, self.jax
        B, T1 = toks.shape
        T = T1 - 1
        arrs = {
            "input_ids": toks[:, :-1].astype(np.int32), "targets": toks[:, 1:].astype(np.int32),
            "weights": np.ones((B, T), np.float32), "segment_ids": np.ones((B, T), np.int32),
            "positions": np.broadcast_to(np.arange(T, dtype=np.int32), (B, T)).copy(),
        }
        return {k: jax.device_put(v, self.sh.batch) for k, v in arrs.items()}

    def step(self, batch) -> float:
        self.state, m = self.trainer.step(self.state, batch)
        return float(m["loss"])  # host sync, as the training loop does


class Torch:
    def __init__(self, cfg: dict, args):
        import torch
        import transformers

        self.torch = torch
        hf = transformers.LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})
        self.dev = "cuda" if args.device == "gpu" else "cpu"
        torch.manual_seed(0)
        self.model = transformers.LlamaForCausalLM(hf).to(self.dev).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
                                     weight_decay=0.0)
        self.amp = args.dtype == "bfloat16"

    def prepare(self, toks):
        t = self.torch.from_numpy(toks).to(self.dev)
        return t[:, :-1].contiguous(), t[:, 1:].contiguous()

    def step(self, batch) -> float:
        torch = self.torch
        ids, tgt = batch
        with torch.autocast(self.dev, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return float(loss.item())


def timed(runner, prepared, steps: int, losses: list[float]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) for ``steps`` steps; appends each step's loss. CPU
    time is reported too because on a shared machine wall time mostly measures how many cores
    the scheduler lent us. Each call starts at the first batch, so both sides see one sequence."""
    t, c = time.perf_counter(), time.process_time()
    for i in range(steps):
        losses.append(runner.step(prepared[i % len(prepared)]))
    return time.perf_counter() - t, time.process_time() - c


def pin_threads(n: int) -> int:
    """Pin this process to ``n`` cores before JAX or PyTorch loads: XLA:CPU sizes its thread
    pool from the process's CPU affinity, so both sides get the same number of threads."""
    cpus = sorted(os.sched_getaffinity(0))
    n = max(1, min(n, len(cpus)))
    os.sched_setaffinity(0, cpus[:n])
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu-small", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--attention", default="einsum", choices=["einsum", "dot_product_attention"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--mfu", action="store_true", help="report model FLOPs utilisation (GPU)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="threads for both sides (default: every core this process may use)")
    ap.add_argument("--loss-tolerance", type=float, default=2e-3,
                    help="largest allowed difference between the two sides' losses at any step")
    ap.add_argument("--only", choices=["ours", "torch"], help="run one side (to cross-check in separate processes)")
    args = ap.parse_args()

    threads = pin_threads(args.threads) if args.device == "cpu" else args.threads
    import jax
    import torch

    torch.set_num_threads(threads)
    cfg = hf_config(args.preset, args.seq)
    data = batches(cfg["vocab_size"], args.batch, args.seq, 4)
    tokens = args.batch * args.seq * args.steps

    baseline = Torch(cfg, args)  # built first: its initial weights are ours too
    state = {k: v.detach().cpu().clone() for k, v in baseline.model.state_dict().items()}
    runners = {}
    if args.only != "torch":
        runners["ours (jax/nnx jit)"] = Ours(cfg, args, state)
    if args.only != "ours":
        runners[f"pytorch (eager, {threads} thr)"] = baseline
    del state
    prepared = {name: [r.prepare(b) for b in data] for name, r in runners.items()}
    losses: dict[str, list[float]] = {name: [] for name in runners}
    for name, r in runners.items():  # compile / warm up
        timed(r, prepared[name], args.warmup, losses[name])
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, r in runners.items():
            times[name].append(timed(r, prepared[name], args.steps, losses[name]))

    dev = jax.devices()[0]
    print(f"device: jax={dev.platform}:{getattr(dev, 'device_kind', '')} torch={'cuda' if args.device == 'gpu' else 'cpu'} "
          f"threads={threads} (both sides) load={os.getloadavg()[0]:.1f}  model={args.preset} "
          f"(d={cfg['hidden_size']}, L={cfg['num_hidden_layers']}, V={cfg['vocab_size']})  batch={args.batch} "
          f"seq={args.seq} dtype={args.dtype} steps/round={args.steps} rounds={args.rounds}")
    tps = {}
    for name, ts in times.items():
        med = statistics.median(w for w, _ in ts)
        cpu = statistics.median(c for _, c in ts)
        tps[name] = tokens / med
        line = (f"{name:28s} {tps[name]:10,.0f} tokens/s  ({med / args.steps * 1000:8.1f} ms/step wall, "
                f"{tokens / cpu:8,.0f} tokens per CPU-second; median of {len(ts)} rounds)")
        if args.mfu and name.startswith("ours"):
            kind = getattr(dev, "device_kind", "")
            peak = next((v for k, v in PEAK_BF16.items() if k in kind), None)
            if peak:
                mfu = tps[name] * flops_per_token(cfg, args.seq) / peak
                line += f"   MFU {mfu * 100:5.1f}% of {peak / 1e12:.0f} TFLOP/s ({kind})"
        print(line)
    ours_name = "ours (jax/nnx jit)"
    torch_name = next((n for n in tps if n.startswith("pytorch")), None)
    if ours_name in tps and torch_name:
        # per-round ratios: rounds alternate, so each ratio compares runs seconds apart, which
        # cancels the slow drift of a shared machine's speed; the median is the figure
        wall = sorted(b[0] / a[0] for a, b in zip(times[ours_name], times[torch_name]))
        cpu = sorted(b[1] / a[1] for a, b in zip(times[ours_name], times[torch_name]))
        print(f"ratio ours / {torch_name}: {statistics.median(wall):.2f}x wall, {statistics.median(cpu):.2f}x CPU time  "
              f"(medians of per-round ratios; wall range {wall[0]:.2f}-{wall[-1]:.2f}; target >= 1.0x)")
        a, b = losses[ours_name], losses[torch_name]
        diffs = [abs(x - y) for x, y in zip(a, b)]
        worst = max(range(len(diffs)), key=diffs.__getitem__)
        print(f"losses, same weights and batches: step 1 {a[0]:.5f} vs {b[0]:.5f}; step {len(a)} {a[-1]:.5f} vs "
              f"{b[-1]:.5f}; largest difference {diffs[worst]:.2e} at step {worst + 1} of {len(diffs)}")
        if diffs[worst] > args.loss_tolerance:
            sys.exit(f"the two sides' losses part (difference {diffs[worst]:.2e} > {args.loss_tolerance:g}): "
                     "not the same computation, so the ratio means nothing")


if __name__ == "__main__":
    main()
