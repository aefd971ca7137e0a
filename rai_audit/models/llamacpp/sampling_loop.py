"""Generation with llama.cpp: all samples of a group of prompts decoded together.

llama.cpp's own samplers (``llama_sampler_*``) are not used: a sample must depend only on (seed,
prompt, sample index) and mean what the transformers backend's does (``Sampling`` docstring), so
the next token is chosen by :mod:`rai_audit.models.sampling` (counter-based uniforms, temperature
-> top-k -> top-p -> inverse CDF) from llama.cpp's logits (:func:`_choose`). Where both engines give the same logits
they draw the same tokens; stop strings, EOS and ``n_tokens`` follow :mod:`rai_audit.models.generation`.

A *group* is at most ``max_rows`` samples (a request with more samples is split across groups:
each sample has its own random stream, so nothing changes). Per group, one context:

1. the distinct prompts are decoded once, each token tagged with the sequence ids of all the
   samples of that prompt (unified KV cache: the prompt's cells are shared); the last token of each
   prompt gives the first-token logits of its samples;
2. then one ``llama_decode`` per step holds one token per unfinished sample, in its own sequence.
   A finished sample's cells are *not* freed: the cache is sized for every token of the group,
   and a freed cell reused by a later token would put that token's key before older ones in the
   cache, which changes the order flash attention sums them in, and so (in the last digits,
   amplified by the 8-bit activations) the answer (:data:`.engine.UBATCH`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rai_audit.models.generation import SampleRow, accept_tokens, results_of, sample_rows
from rai_audit.models.llamacpp.engine import Engine
from rai_audit.requests import GenerationRequest, GenerationResult

#: KV-cache cells one generation group may use (the cache holds every token of the group until it
#: ends): 16,384 cells are 0.4 GB for the embedded model, about 2 GB for an 8B model with grouped
#: attention. Which samples share a group changes no answer (:data:`.engine.UBATCH`), only memory.
MAX_CELLS = 16384


def generate(engine: Engine, tokenizer: Any, prompts: Sequence[Sequence[int]], requests: Sequence[GenerationRequest],
             *, eos_ids: set[int], max_rows: int = 128) -> list[GenerationResult]:
    """Answer ``requests`` (``prompts[i]``: the token ids of request i's prompt, already fitted)."""
    return results_of(sample(engine, tokenizer, prompts, requests, eos_ids=eos_ids, max_rows=max_rows))


def sample(engine: Engine, tokenizer: Any, prompts: Sequence[Sequence[int]], requests: Sequence[GenerationRequest],
           *, eos_ids: set[int], max_rows: int = 128) -> list[list[SampleRow]]:
    """The samples of every request, decoded, with their token ids (what :func:`generate` reports;
    the tests compare the token ids with the transformers backend's distributions)."""
    max_rows = max(1, min(max_rows, engine.max_sequences))
    rows_of = sample_rows(requests)
    pending = [r for rows in rows_of for r in rows]
    for r in pending:
        if r.max_new <= 0:
            r.finish, r.text = "length", ""
    pending = [r for r in pending if r.finish is None]
    max_cells = min(MAX_CELLS, engine.n_ctx_train or MAX_CELLS)  # llama.cpp warns above the training window
    for group in _groups(pending, prompts, max_rows, max_cells):
        _decode_group(engine, tokenizer, prompts, group, eos_ids)
    return rows_of


def _groups(rows: list[SampleRow], prompts: Sequence[Sequence[int]], max_rows: int, max_cells: int) -> list[list[SampleRow]]:
    """Consecutive runs of ``rows`` with at most ``max_rows`` samples and ``max_cells`` cache cells
    (their prompts + every sample's new tokens); a sample too big alone gets its own."""
    groups: list[list[SampleRow]] = []
    cur: list[SampleRow] = []
    seen: set[int] = set()
    cells = 0
    for r in rows:
        need = r.max_new + (0 if r.request in seen else len(prompts[r.request]))
        if cur and (len(cur) >= max_rows or cells + need > max_cells):
            groups.append(cur)
            cur, seen, cells = [], set(), 0
            need = r.max_new + len(prompts[r.request])
        cur.append(r)
        seen.add(r.request)
        cells += need
    if cur:
        groups.append(cur)
    return groups


def _decode_group(engine: Engine, tokenizer: Any, prompts: Sequence[Sequence[int]], rows: list[SampleRow],
                  eos_ids: set[int]) -> None:
    import torch

    from rai_audit.models.sampling import uniforms

    uniq: dict[tuple[int, ...], list[int]] = {}  # prompt -> its rows' sequence ids (= index in rows)
    for sid, r in enumerate(rows):
        uniq.setdefault(tuple(prompts[r.request]), []).append(sid)
    prefill = sum(len(p) for p in uniq)
    cells = prefill + sum(r.max_new for r in rows)
    with engine.lock, engine.context(n_ctx=cells, n_seq=len(rows), n_batch=max(prefill, len(rows))) as ctx:
        tokens, pos, counts, seqs, wants = [], [], [], [], []
        first_row = np.zeros(len(rows), np.int64)
        for k, (prompt, sids) in enumerate(uniq.items()):
            n = len(prompt)
            tokens.extend(prompt)
            pos.extend(range(n))
            counts.extend([len(sids)] * n)
            for _ in range(n):
                seqs.extend(sids)
            wants.extend([0] * (n - 1) + [1])
            first_row[sids] = k
        logits = ctx.decode(np.asarray(tokens, np.int32), np.asarray(pos, np.int32), np.asarray(counts, np.int32),
                            np.asarray(seqs, np.int32), np.asarray(wants, np.int8))[first_row]
        alive = list(range(len(rows)))
        next_pos = np.array([len(prompts[r.request]) for r in rows], np.int32)
        keys = np.array([r.key for r in rows], dtype=np.uint64)
        step = 0
        while True:
            live = [rows[j] for j in alive]
            with torch.inference_mode():
                chosen = _choose(torch.from_numpy(logits), live, uniforms(keys[alive], step))
            still = [alive[j] for j in accept_tokens(live, chosen, tokenizer, eos_ids)]
            if not still:
                return
            feed = np.array([rows[j].tokens[-1] for j in still], np.int32)
            idx = np.asarray(still)
            logits = ctx.decode(feed, next_pos[idx], np.ones(len(still), np.int32), idx.astype(np.int32),
                                np.ones(len(still), np.int8))
            next_pos[idx] += 1
            alive = still
            step += 1


def _choose(logits: Any, live: list[SampleRow], u: np.ndarray) -> list[int]:
    """The next token of every live sample (:func:`rai_audit.models.sampling.choose_tokens`, which
    draws unfiltered and top-k/top-p rows apart, so a sample never depends on its batch mates)."""
    from rai_audit.models.sampling import choose_tokens

    return choose_tokens(logits, [r.temperature for r in live], [r.top_k for r in live],
                         [r.top_p for r in live], u).tolist()
