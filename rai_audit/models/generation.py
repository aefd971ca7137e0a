"""Batched generation with our own decode loop over a transformers model.

Why not ``model.generate``: it re-encodes a prompt once per requested sample
(``num_return_sequences`` copies the input ids), draws from the device RNG (so samples depend on
batch composition), and needs one call per sampling configuration. Here:

- each distinct prompt of a batch is encoded once (prefill, left-padded, KV cache kept); the cache
  rows are then copied ``n`` times, one per sample, and decoded together;
- every row keeps its own settings (temperature, top-k, top-p, max new tokens, stop strings), and
  draws from its own counter-based random stream (:mod:`.sampling`), so a sample depends only on
  (seed, prompt, sample index);
- position ids follow each row's real length (left padding is masked and skipped);
- a row stops at EOS (finish ``"eos"``), at a stop string (``"stop"``; the text is cut at the
  first occurrence of any stop string), or after ``max_new_tokens`` (``"length"``); finished rows
  are dropped from the cache, and the loop ends when none is left.

``n_tokens`` counts generated tokens up to and including the one that completed the stop string,
excluding EOS. Texts are decoded with special tokens skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from rai_audit.models.batching import BatchPolicy, length_batches, pad_left, pad_right
from rai_audit.models.kv import accepts, cache_kw, output_cache
from rai_audit.models.sampling import choose_tokens, stream_key, uniforms
from rai_audit.requests import GenerationRequest, GenerationResult


@dataclass
class SampleRow:
    """One sample being decoded, in this loop or llama.cpp's (:mod:`.llamacpp.sampling_loop`): its
    settings, its random stream's key, the tokens so far and how it finished."""

    request: int
    sample: int
    key: int
    temperature: float
    top_k: int | None
    top_p: float | None
    max_new: int
    stop: tuple[str, ...]
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None
    text: str | None = None


def sample_rows(requests: Sequence[GenerationRequest]) -> list[list[SampleRow]]:
    """The samples of each request, each keyed to its own random stream (:func:`.sampling.stream_key`)."""
    rows_of = []
    for i, req in enumerate(requests):
        s = req.sampling
        rows_of.append([SampleRow(i, j, stream_key(s.seed, req.prompt, req.chat, j), float(s.temperature), s.top_k,
                                  s.top_p, int(s.max_new_tokens), tuple(s.stop)) for j in range(s.n)])
    return rows_of


def results_of(rows_of: Sequence[Sequence[SampleRow]]) -> list[GenerationResult]:
    """One result per request from its decoded samples."""
    return [GenerationResult(texts=tuple(r.text or "" for r in rows), n_tokens=tuple(len(r.tokens) for r in rows),
                             finish=tuple(r.finish or "length" for r in rows))  # type: ignore[misc]
            for rows in rows_of]


class _CausalStepper:
    """Prefill prompts once, expand rows, then one token per row per step."""

    def __init__(self, model, pad_id: int, device):
        self.model, self.pad_id, self.device = model, pad_id, device
        self.keep_kw = {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}

    def start(self, prompts: Sequence[Sequence[int]], src: torch.Tensor) -> torch.Tensor:
        ids, mask, pos = pad_left(prompts, self.pad_id, self.device)
        res = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **self.keep_kw)
        self.cache = output_cache(res)
        self.cache.batch_select_indices(src)
        self.mask = mask[src]
        self.next_pos = mask.sum(-1)[src]
        return res.logits[:, -1][src]

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask = self.mask[rows]
        self.next_pos = self.next_pos[rows]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        ones = torch.ones((tokens.shape[0], 1), dtype=self.mask.dtype, device=self.device)
        self.mask = torch.cat([self.mask, ones], dim=1)
        res = self.model(input_ids=tokens.unsqueeze(1), attention_mask=self.mask,
                         position_ids=self.next_pos.unsqueeze(1), **cache_kw(self.model, self.cache),
                         use_cache=True, **self.keep_kw)
        self.cache = output_cache(res)
        self.next_pos = self.next_pos + 1
        return res.logits[:, -1]


class _Seq2SeqStepper:
    """Encode prompts once, expand encoder states per sample, decode with a KV cache."""

    def __init__(self, model, pad_id: int, device):
        self.model, self.pad_id, self.device = model, pad_id, device
        start = model.config.decoder_start_token_id
        self.start_id = pad_id if start is None else start

    def start(self, prompts: Sequence[Sequence[int]], src: torch.Tensor) -> torch.Tensor:
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        ids, mask = pad_right(prompts, self.pad_id, self.device)
        hidden = self.model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        self.hidden, self.mask = hidden[src], mask[src]
        self.cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        first = torch.full((len(src),), self.start_id, dtype=torch.long, device=self.device)
        return self.step(first)

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.hidden, self.mask = self.hidden[rows], self.mask[rows]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        res = self.model(encoder_outputs=BaseModelOutput(last_hidden_state=self.hidden),
                         attention_mask=self.mask, decoder_input_ids=tokens.unsqueeze(1),
                         **cache_kw(self.model, self.cache), use_cache=True)
        self.cache = output_cache(res)
        return res.logits[:, -1]


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    requests: Sequence[GenerationRequest],
    policy: BatchPolicy,
    *,
    pad_id: int,
    eos_ids: set[int],
    device: torch.device,
    is_encoder_decoder: bool,
) -> list[GenerationResult]:
    """Answer ``requests`` (``prompts[i]`` are the token ids of request i's prompt)."""
    stepper_cls = _Seq2SeqStepper if is_encoder_decoder else _CausalStepper
    rows_of = sample_rows(requests)
    order = sorted(range(len(requests)), key=lambda i: len(prompts[i]), reverse=True)
    batches = length_batches(
        order, lambda i: len(prompts[i]), max_rows=policy.gen_rows, max_tokens=policy.max_tokens,
        extra=lambda i: requests[i].sampling.n * (len(prompts[i]) + requests[i].sampling.max_new_tokens),
        max_extra=policy.gen_cache_tokens,
    )
    # rows (samples) per batch must also respect gen_rows
    split: list[list[int]] = []
    for b in batches:
        cur: list[int] = []
        n = 0
        for i in b:
            ni = requests[i].sampling.n
            if cur and n + ni > policy.gen_rows:
                split.append(cur)
                cur, n = [], 0
            cur.append(i)
            n += ni
        if cur:
            split.append(cur)
    for batch in split:
        _decode_batch(stepper_cls(model, pad_id, device), tokenizer, prompts, batch, rows_of, eos_ids, device)
    return results_of(rows_of)


def _decode_batch(stepper, tokenizer, prompts, batch, rows_of, eos_ids, device) -> None:
    uniq: dict[tuple[int, ...], int] = {}
    rows: list[SampleRow] = []
    src: list[int] = []
    for i in batch:
        p = tuple(prompts[i])
        u = uniq.setdefault(p, len(uniq))
        for r in rows_of[i]:
            if r.max_new <= 0:
                r.finish, r.text = "length", ""
                continue
            rows.append(r)
            src.append(u)
    if not rows:
        return
    logits = stepper.start(list(uniq), torch.tensor(src, device=device))
    alive = rows
    keys = np.array([r.key for r in alive], dtype=np.uint64)
    step = 0
    while True:
        chosen = choose_tokens(logits, [r.temperature for r in alive], [r.top_k for r in alive],
                               [r.top_p for r in alive], uniforms(keys, step)).tolist()
        still = accept_tokens(alive, chosen, tokenizer, eos_ids)
        if not still:
            break
        if len(still) < len(alive):
            idx = torch.tensor(still, device=device)
            stepper.keep(idx)
            alive = [alive[j] for j in still]
            keys = keys[still]
            chosen = [chosen[j] for j in still]
        logits = stepper.step(torch.tensor(chosen, dtype=torch.long, device=device))
        step += 1


def accept_tokens(rows: Sequence, chosen: Sequence[int], tokenizer, eos_ids: set[int]) -> list[int]:
    """Append each row's chosen token and settle its finish (EOS, a stop string, or its length):
    the bookkeeping every decode loop shares (this module's and the llama.cpp backend's). Rows need
    ``tokens``, ``stop``, ``max_new``, ``finish`` and ``text``. Returns the positions still alive."""
    still: list[int] = []
    for j, (r, t) in enumerate(zip(rows, chosen)):
        if t in eos_ids:
            r.finish = "eos"
        else:
            r.tokens.append(t)
            if r.stop and _cut_at_stop(tokenizer, r):
                r.finish = "stop"
            elif len(r.tokens) >= r.max_new:
                r.finish = "length"
        if r.finish is None:
            still.append(j)
        elif r.text is None:
            r.text = tokenizer.decode(r.tokens, skip_special_tokens=True)
    return still


def _cut_at_stop(tokenizer, row) -> bool:
    """If the decoded text contains a stop string, set ``row.text`` cut before the earliest one."""
    text = tokenizer.decode(row.tokens, skip_special_tokens=True)
    hits = [k for k in (text.find(s) for s in row.stop if s) if k >= 0]
    if not hits:
        return False
    row.text = text[: min(hits)]
    return True
