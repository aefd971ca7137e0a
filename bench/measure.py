"""Shared measuring tools for the benches: wall and CPU time side by side, the load average, and
this CPU's matmul ceiling, so a throughput can be stated as a share of what the hardware does.

Why CPU time: on a shared machine wall time includes other people's work; ``time.process_time``
counts the CPU seconds of every thread of this process, so FLOPs per CPU-second divided by the
ceiling's FLOPs per CPU-second is an efficiency that load does not distort (much).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed(into: Timing):
    w, c = time.perf_counter(), time.process_time()
    try:
        yield into
    finally:
        into.wall += time.perf_counter() - w
        into.cpu += time.process_time() - c


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def ratio_line(label: str, peer: Timing, ours: Timing) -> str:
    return (f"{label}: peer {peer.wall:.2f}s wall / {peer.cpu:.2f}s CPU | ours {ours.wall:.2f}s wall / "
            f"{ours.cpu:.2f}s CPU | speed-up {peer.wall / ours.wall:.2f}x wall, {peer.cpu / ours.cpu:.2f}x CPU")


def matmul_ceiling(dtype: torch.dtype = torch.float32, shapes=((2048, 576, 1536), (2048, 1536, 576),
                                                               (512, 576, 49152))) -> float:
    """Best sustained FLOPs per CPU-second of ``torch.mm`` at the model's linear-layer shapes
    (SmolLM2-135M: hidden 576, MLP 1536, vocabulary 49152), with the current torch thread count."""
    best = 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        for _ in range(3):
            torch.mm(a, b)
        reps = max(3, int(2e10 / (2 * m * k * n)))
        t = Timing()
        with timed(t):
            for _ in range(reps):
                torch.mm(a, b)
        best = max(best, 2 * m * k * n * reps / max(t.cpu, 1e-9))
    return best


def linear_flops_per_token(model) -> float:
    """2 x (weights of every linear layer, the output projection included) per token: the matmul
    work of one forward token, leaving out attention scores (small at these lengths)."""
    total = 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear):
            total += mod.weight.numel()
    return 2.0 * total


def efficiency_line(label: str, tokens: int, flops_per_token: float, t: Timing, ceiling: float) -> str:
    per_cpu = tokens * flops_per_token / max(t.cpu, 1e-9)
    return (f"{label}: {tokens} tokens, {tokens / t.wall:.0f} tokens/s wall, {per_cpu / 1e9:.1f} GFLOP per "
            f"CPU-second = {100 * per_cpu / ceiling:.0f}% of the matmul ceiling ({ceiling / 1e9:.1f})")
