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

Decoder-only models whose layers all attend to the whole past decode from a
:class:`~.slot_cache.SlotCache` (:class:`_SlotStepper`): up to ``gen_rows`` rows at once, however
long their prompts, which are prefilled in chunks of ``max_tokens``; each step writes one column
in place, and finished rows are dropped only once a quarter of the rows are finished (each drop
copies the cache). Other models decode one prefill batch at a time with transformers'
``DynamicCache`` (:class:`_CausalStepper`, :class:`_Seq2SeqStepper`).

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
from rai_audit.models.slot_cache import SlotCache, supports_slot_cache
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


class _SlotStepper:
    """Prefill a decode group's prompts in chunks into one :class:`.slot_cache.SlotCache`, then
    step every row together. Finished rows keep being computed (their outputs are ignored) until
    a quarter of the rows are finished; then the cache keeps only the live rows."""

    COMPACT_AT = 0.75  # compact when live rows fall to this share of the cache's rows

    def __init__(self, model, pad_id: int, device, policy: BatchPolicy, max_new: int):
        self.model, self.pad_id, self.device, self.policy, self.max_new = model, pad_id, device, policy, max_new
        self.keep_kw = {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}

    def start(self, prompts: Sequence[Sequence[int]], src: torch.Tensor) -> torch.Tensor:
        width = max(len(p) for p in prompts)  # prompts come longest first
        chunks = length_batches(range(len(prompts)), lambda u: len(prompts[u]), max_rows=self.policy.gen_rows,
                                max_tokens=self.policy.max_tokens)
        self.cache = None
        last = []
        for chunk in chunks:
            ids, mask, pos = pad_left([prompts[u] for u in chunk], self.pad_id, self.device)
            res = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **self.keep_kw)
            prefill = output_cache(res)
            if self.cache is None:
                self.cache = SlotCache.allocate(prefill, len(src), width + self.max_new)
            rows = ((src >= chunk[0]) & (src <= chunk[-1])).nonzero().squeeze(1)
            self.cache.write_prompts(prefill, rows, src[rows] - chunk[0], width)
            last.append(res.logits[:, -1])
            del res, prefill
        lengths = torch.tensor([len(p) for p in prompts], device=self.device)[src]
        cols = torch.arange(width + self.max_new, device=self.device)
        self.mask = (cols >= width - lengths[:, None]) & (cols < width)
        self.next_pos = lengths
        self.alive: torch.Tensor | None = None  # rows of the cache still decoded; None = all
        return torch.cat(last)[src]

    def keep(self, rows: torch.Tensor) -> None:
        live = rows if self.alive is None else self.alive[rows]
        if len(live) > self.COMPACT_AT * self.mask.shape[0]:
            self.alive = live
            return
        self.cache.select_rows(live)
        self.mask, self.next_pos, self.alive = self.mask[live], self.next_pos[live], None

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.alive is not None:
            tokens = torch.full((self.mask.shape[0],), self.pad_id, dtype=tokens.dtype, device=self.device).index_put_(
                (self.alive,), tokens)
        col = self.cache.length
        self.mask[:, col] = True
        res = self.model(input_ids=tokens.unsqueeze(1), attention_mask=self.mask[:, None, None, : col + 1],
                         position_ids=self.next_pos.unsqueeze(1), **cache_kw(self.model, self.cache),
                         use_cache=True, **self.keep_kw)
        self.next_pos = self.next_pos + 1
        logits = res.logits[:, -1]
        return logits if self.alive is None else logits[self.alive]


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
    rows_of = sample_rows(requests)
    order = sorted(range(len(requests)), key=lambda i: len(prompts[i]), reverse=True)
    if not is_encoder_decoder and supports_slot_cache(model):
        for group in slot_groups(order, prompts, requests, policy):
            max_new = max(requests[i].sampling.max_new_tokens for i in group)
            _decode_batch(_SlotStepper(model, pad_id, device, policy, max_new), tokenizer, prompts, group, rows_of,
                          eos_ids, device)
        return results_of(rows_of)
    stepper_cls = _Seq2SeqStepper if is_encoder_decoder else _CausalStepper
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


def slot_groups(order: Sequence[int], prompts: Sequence[Sequence[int]], requests: Sequence[GenerationRequest],
                policy: BatchPolicy) -> list[list[int]]:
    """Cut ``order`` (longest prompt first) into decode groups of at most ``gen_rows`` samples whose
    cache, samples x (longest prompt + most new tokens), holds at most ``gen_cache_tokens`` tokens.
    A request whose samples alone exceed a limit is a group of its own."""
    groups: list[list[int]] = []
    cur: list[int] = []
    rows = width = new = 0
    for i in order:
        n, li, mi = requests[i].sampling.n, len(prompts[i]), requests[i].sampling.max_new_tokens
        w, m = max(width, li), max(new, mi)
        if cur and (rows + n > policy.gen_rows or (rows + n) * (w + m) > policy.gen_cache_tokens):
            groups.append(cur)
            cur, rows, w, m = [], 0, li, mi
        cur.append(i)
        rows, width, new = rows + n, w, m
    if cur:
        groups.append(cur)
    return groups


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
