"""How many sequences go into one forward pass.

Work is sorted by length (longest first, so a batch that does not fit fails at once rather than
at the end, and padding is small) and cut into batches under three limits:

- ``max_rows``: sequences per forward (``batch_size`` when the user sets one);
- ``max_tokens``: padded tokens per forward (rows x longest row), which bounds activations;
- ``max_logits``: float32 logit values materialised at once (rows x scored positions x vocab).

The automatic defaults are deliberately simple. On CPU, throughput barely improves beyond a few
thousand tokens per forward, so we stop there and keep memory low on shared machines; decoding
holds up to 512 rows and a KV cache of at most 3 GiB (:func:`kv_bytes_per_token`: about 70,000
tokens of SmolLM2-135M in float32, twice that in bfloat16). On CUDA the token budget scales with
free device memory, estimated per token from the model's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class BatchPolicy:
    max_rows: int
    max_tokens: int
    max_logits: int
    gen_rows: int  # rows decoded together (prompts x samples)
    gen_cache_tokens: int  # rows x (prompt + new tokens) held in the KV cache at once

    @classmethod
    def auto(cls, model: torch.nn.Module, device: torch.device, batch_size: int | None) -> "BatchPolicy":
        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            hidden, layers = _width_and_depth(text_config(model))
            elem = next(model.parameters()).element_size()
            per_token = elem * hidden * (2 * layers + 24)  # KV for every layer + live activations
            tokens = int(0.35 * free / max(per_token, 1))
            tokens = max(2048, min(tokens, 1 << 20))
            rows, gen_rows = 256, 1024
            logits = int(0.2 * free / 4)
        else:
            tokens, rows, gen_rows = 4096, 64, 512
            logits = 64 * 1024 * 1024  # 256 MB of float32 logits
        if batch_size is not None:
            if batch_size < 1:
                from rai_audit.errors import UserError

                raise UserError(f"batch_size must be a positive integer, got {batch_size}.")
            rows = gen_rows = batch_size
            tokens = max(tokens, batch_size)
        cache_tokens = tokens * 16 if device.type == "cuda" else CPU_CACHE_BYTES // kv_bytes_per_token(model)
        return cls(max_rows=rows, max_tokens=tokens, max_logits=logits, gen_rows=gen_rows,
                   gen_cache_tokens=max(cache_tokens, tokens))


CPU_CACHE_BYTES = 3 << 30  # the KV cache of one decode group on CPU


def text_config(model: torch.nn.Module):
    """The config of ``model``'s language model (a multimodal model's text part, else the config)."""
    return model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config


def _width_and_depth(cfg) -> tuple[int, int]:
    """(hidden size, layers) under the names decoder-only and T5-style configs use."""
    hidden = int(getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model", None) or 1024)
    layers = int(getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "num_layers", None) or 24)
    return hidden, layers


def kv_bytes_per_token(model: torch.nn.Module) -> int:
    """Bytes of keys and values one token takes in the cache of every layer, from the config
    (grouped-query attention stores only its key/value heads)."""
    cfg = text_config(model)
    hidden, layers = _width_and_depth(cfg)
    heads = int(getattr(cfg, "num_attention_heads", None) or getattr(cfg, "num_heads", None) or 1)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(cfg, "head_dim", None) or hidden // heads)
    elem = next(model.parameters()).element_size()
    return max(2 * layers * kv_heads * head_dim * elem, 1)


def length_batches(
    order: Sequence[int],
    length: Callable[[int], int],
    *,
    max_rows: int,
    max_tokens: int,
    extra: Callable[[int], int] | None = None,
    max_extra: int | None = None,
) -> list[list[int]]:
    """Cut ``order`` (already sorted by decreasing ``length``) into consecutive batches.

    A batch's cost is ``rows * length(first)``; ``extra`` is an optional additive per-row cost
    with its own cap (e.g. logits per row). A single row always forms a batch, however long.
    """
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_len = 0
    cur_extra = 0
    for i in order:
        li = length(i)
        ei = extra(i) if extra else 0
        if cur:
            width = max(cur_len, li)
            too_many = len(cur) + 1 > max_rows or (len(cur) + 1) * width > max_tokens
            if max_extra is not None and cur_extra + ei > max_extra:
                too_many = True
            if too_many:
                batches.append(cur)
                cur, cur_len, cur_extra = [], 0, 0
        cur.append(i)
        cur_len = max(cur_len, li)
        cur_extra += ei
    if cur:
        batches.append(cur)
    return batches


def pad_left(rows: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded ids, attention mask and position ids (0 at each row's first real token)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)


def pad_right(rows: Sequence[Sequence[int]], pad_id: int, device, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask."""
    width = width if width is not None else max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)
