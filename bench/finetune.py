"""Train-step throughput: our jitted JAX/NNX step vs a plain PyTorch training loop.

Same model (a Llama-style decoder built from one HF config dict: ours through
``finetune.models.from_hf_config``, the baseline as ``transformers.LlamaForCausalLM``), same
batch and sequence length, same optimiser (AdamW + global-norm clipping at 1.0), same random
token batches, both in this process on this machine, alternating rounds; we report the median
round, and the median of the per-round ratios. Compilation (ours) and the first steps (both) are
warm-up and not timed.

PyTorch runs twice: with its default intra-op threads (all cores) and with one thread. On a
small, shared CPU the one-thread run is often several times faster (its OpenMP workers stall
when the cores are oversubscribed), so the ratio that counts is against the *best* baseline.
Tokens per CPU-second are printed beside tokens per wall-second for the same reason.

    python bench/finetune.py                          # CPU default: small model
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
    def __init__(self, cfg: dict, args):
        import jax
        import numpy as np

        from finetune.config import FinetuneConfig
        from finetune.models import from_hf_config
        from finetune.sharding import make_mesh, train_shardings
        from finetune.train import Trainer, make_optimizer

        _, model = from_hf_config(cfg, dtype=args.dtype, attention_impl=args.attention)
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
    def __init__(self, cfg: dict, args, threads: int | None = None):
        import torch
        import transformers

        self.torch = torch
        self.threads = threads
        hf = transformers.LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})
        self.dev = "cuda" if args.device == "gpu" else "cpu"
        self.model = transformers.LlamaForCausalLM(hf).to(self.dev).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
                                     weight_decay=0.0)
        self.amp = args.dtype == "bfloat16"

    def prepare(self, toks):
        t = self.torch.from_numpy(toks).to(self.dev)
        return t[:, :-1].contiguous(), t[:, 1:].contiguous()

    def step(self, batch) -> float:
        torch = self.torch
        if self.threads:
            torch.set_num_threads(self.threads)
        ids, tgt = batch
        with torch.autocast(self.dev, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return float(loss.item())


def timed(runner, prepared, steps: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) for ``steps`` steps. CPU time is reported too because
    on a shared machine wall time mostly measures how many cores the scheduler lent us."""
    t, c = time.perf_counter(), time.process_time()
    for i in range(steps):
        runner.step(prepared[i % len(prepared)])
    return time.perf_counter() - t, time.process_time() - c


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
    ap.add_argument("--torch-threads", type=int, nargs="*", default=None,
                    help="torch intra-op thread counts to try (default: all cores and 1); the best is the baseline")
    ap.add_argument("--only", choices=["ours", "torch"], help="run one side (to cross-check in separate processes)")
    args = ap.parse_args()

    import jax

    threads = [None]
    if args.device == "cpu":
        threads = sorted(set(args.torch_threads or [os.cpu_count() or 1, 1]), reverse=True)
    cfg = hf_config(args.preset, args.seq)
    data = batches(cfg["vocab_size"], args.batch, args.seq, 4)
    tokens = args.batch * args.seq * args.steps

    runners = {}
    if args.only != "torch":
        runners["ours (jax/nnx jit)"] = Ours(cfg, args)
    if args.only != "ours":
        for n in threads:
            runners[f"pytorch (eager, {n or 'default'} thr)"] = Torch(cfg, args, n)
    prepared = {name: [r.prepare(b) for b in data] for name, r in runners.items()}
    for name, r in runners.items():  # compile / warm up
        timed(r, prepared[name], args.warmup)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, r in runners.items():
            times[name].append(timed(r, prepared[name], args.steps))

    dev = jax.devices()[0]
    print(f"device: jax={dev.platform}:{getattr(dev, 'device_kind', '')} torch={'cuda' if args.device == 'gpu' else 'cpu'} "
          f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}  model={args.preset} "
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
    torch_names = [n for n in tps if n.startswith("pytorch")]
    ours_name = "ours (jax/nnx jit)"
    if ours_name in tps and torch_names:
        best = max(torch_names, key=lambda n: tps[n])
        for n in torch_names:
            # per-round ratios: rounds alternate, so each ratio compares runs seconds apart, which
            # cancels the slow drift of a shared machine's speed; the median is the figure
            per_round = sorted(b[0] / a[0] for a, b in zip(times[ours_name], times[n]))
            print(f"ratio ours / {n}: {statistics.median(per_round):.2f}x  "
                  f"(median of per-round ratios; range {per_round[0]:.2f}-{per_round[-1]:.2f})"
                  + ("   <- best baseline, target >= 1.0x" if n == best else ""))


if __name__ == "__main__":
    main()
