"""Batched log-likelihood of continuations given contexts.

Multiple-choice probes ask for several continuations of the same context (BBQ: 3 answers,
Winogender: 2 pronouns, ...). Running ``context + continuation`` once per continuation would
encode every context several times, so for decoder-only models we:

1. group requests by their exact context tokens;
2. run each distinct context once (left-padded batches, KV cache kept, logits only for the last
   position), which already scores each continuation's first token; a token prefix shared by
   every context of a batch (an instruction preamble) is computed once for the batch;
3. feed the remaining continuation tokens (``continuation[:-1]``) on top of a copy of the cached
   context rows (right-padded, position ids continuing from each context's length) and score
   continuation tokens ``1..n-1`` from their logits.

This is the same computation as one forward over ``context + continuation`` (attention is
causal; padding is masked), so batched results equal one-at-a-time results up to float rounding
(tested to 1e-4 in float32). Encoder-decoder models run each distinct context through the encoder
once and score continuations with teacher forcing in the decoder.

``is_greedy`` is true when every continuation token is the argmax of its position's
distribution (lm-evaluation-harness' ``is_greedy``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch
import torch.nn.functional as F

from rai_audit.models.batching import BatchPolicy, length_batches, pad_left, pad_right
from rai_audit.models.encoding import LoglikTokens
from rai_audit.models.kv import accepts, cache_kw, output_cache, select_rows

Score = tuple[float, int, bool]


def _vocab(model) -> int:
    emb = model.get_output_embeddings()
    return int(emb.weight.shape[0]) if emb is not None else int(model.config.vocab_size)


def _score_positions(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sum of target log-probs and all-greedy flags over ``valid`` positions.

    logits [R, T, V], targets [R, T], valid [R, T] bool.
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    tok = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    greedy = logp.argmax(-1) == targets
    total = (tok * valid).sum(-1)
    all_greedy = (greedy | ~valid).all(-1)
    return total, all_greedy


MIN_SHARED_PREFIX = 8  # tokens; below this a separate prefix pass costs more than it saves


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    n = min(len(r) for r in rows) - 1  # every row keeps >= 1 token for its own last logits
    for k in range(max(n, 0)):
        t = first[k]
        if any(r[k] != t for r in rows):
            return k
    return max(n, 0)


def _prefill(model, rows: Sequence[Sequence[int]], pad_id: int, device, kw: dict):
    """Run contexts ``rows`` with a KV cache; returns (model output, attention mask over the cache).

    When all rows start with the same tokens (an instruction or few-shot preamble), that prefix
    is computed once and its cache rows copied; the rest of each row follows, left-padded *after*
    the prefix (the padding is masked, and position ids count real tokens only, so each row sees
    exactly its own context).
    """
    shared = _common_prefix(rows) if len(rows) > 1 else 0
    if shared < MIN_SHARED_PREFIX:
        ids, mask, pos = pad_left(rows, pad_id, device)
        return model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **kw), mask
    head = torch.tensor([list(rows[0][:shared])], device=device)
    pre = model(input_ids=head, use_cache=True, logits_to_keep=1) if kw else model(input_ids=head, use_cache=True)
    cache = output_cache(pre)
    cache.batch_repeat_interleave(len(rows))
    ids, rmask, rpos = pad_left([r[shared:] for r in rows], pad_id, device)
    mask = torch.cat([torch.ones((len(rows), shared), dtype=rmask.dtype, device=device), rmask], dim=1)
    res = model(input_ids=ids, attention_mask=mask, position_ids=rpos + shared, **cache_kw(model, cache),
                use_cache=True, **kw)
    return res, mask


def _group_by_context(
    items: Sequence[LoglikTokens],
) -> tuple[list[Score | None], dict[tuple[int, ...], list[int]], list[tuple[int, ...]]]:
    """(results with empty continuations already answered, context -> item positions, distinct
    contexts longest first): each distinct context is run once for all its continuations."""
    out: list[Score | None] = [None] * len(items)
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        if not it.continuation:
            out[i] = (0.0, 0, True)  # an empty continuation has log-likelihood 0 and is greedy
        else:
            groups[it.context].append(i)
    return out, groups, sorted(groups, key=len, reverse=True)


@torch.inference_mode()
def score_causal(
    model, items: Sequence[LoglikTokens], policy: BatchPolicy, pad_id: int, device: torch.device
) -> list[Score]:
    """Log-likelihood of each item's continuation for a decoder-only model (see module docstring)."""
    out, groups, contexts = _group_by_context(items)
    vocab = _vocab(model)
    keep_kw = accepts(model, "logits_to_keep")
    ctx_batches = length_batches(
        range(len(contexts)), lambda g: len(contexts[g]),
        max_rows=policy.max_rows, max_tokens=policy.max_tokens,
        # bound the continuation rows (and their cache copies) that one context batch feeds
        extra=lambda g: len(groups[contexts[g]]) * len(contexts[g]), max_extra=policy.max_tokens * 8,
    )
    for batch in ctx_batches:
        ctx_rows = [contexts[g] for g in batch]
        res, mask = _prefill(model, ctx_rows, pad_id, device, {"logits_to_keep": 1} if keep_kw else {})
        last = F.log_softmax(res.logits[:, -1].float(), dim=-1)  # [G, V]
        cache = output_cache(res)
        ctx_len = mask.sum(-1)  # real tokens per context
        width = mask.shape[1]
        # first continuation token of every member, from the context's last position
        members = [(b, i) for b, g in enumerate(batch) for i in groups[contexts[g]]]
        first_b = torch.tensor([b for b, _ in members], device=device)
        first_t = torch.tensor([items[i].continuation[0] for _, i in members], device=device)
        first_lp = last[first_b, first_t].tolist()
        first_greedy = (last[first_b].argmax(-1) == first_t).tolist()
        partial = {i: (lp, g) for (_, i), lp, g in zip(members, first_lp, first_greedy)}
        del last
        rest = sorted((m for m in members if len(items[m[1]].continuation) > 1),
                      key=lambda m: len(items[m[1]].continuation), reverse=True)
        for sub in length_batches(
            range(len(rest)), lambda r: width + len(items[rest[r][1]].continuation) - 1,
            max_rows=policy.max_rows, max_tokens=policy.max_tokens,
            extra=lambda r: (len(items[rest[r][1]].continuation) - 1) * vocab, max_extra=policy.max_logits,
        ):
            rows = [rest[r] for r in sub]
            src = torch.tensor([b for b, _ in rows], device=device)
            feed = [items[i].continuation[:-1] for _, i in rows]
            tgt = [items[i].continuation[1:] for _, i in rows]
            cids, cmask = pad_right(feed, pad_id, device)
            tids, _ = pad_right(tgt, pad_id, device)
            steps = torch.arange(cids.shape[1], device=device)
            cpos = ctx_len[src].unsqueeze(1) + steps
            sub_cache = select_rows(cache, src)
            r = model(input_ids=cids, attention_mask=torch.cat([mask[src], cmask], dim=1),
                      position_ids=cpos, **cache_kw(model, sub_cache), use_cache=True)
            total, greedy = _score_positions(r.logits, tids, cmask.bool())
            for (_, i), t, g in zip(rows, total.tolist(), greedy.tolist()):
                lp0, g0 = partial[i]
                partial[i] = (lp0 + t, g0 and g)
            del sub_cache, r
        for _, i in members:
            lp, g = partial[i]
            out[i] = (float(lp), len(items[i].continuation), bool(g))
        del cache, res
    return out  # type: ignore[return-value]


@torch.inference_mode()
def score_seq2seq(
    model, items: Sequence[LoglikTokens], policy: BatchPolicy, pad_id: int, device: torch.device
) -> list[Score]:
    """Log-likelihood for an encoder-decoder model: encoder once per distinct context, decoder
    teacher-forced on ``[decoder_start] + continuation[:-1]``."""
    from transformers.modeling_outputs import BaseModelOutput

    out, groups, contexts = _group_by_context(items)
    vocab = _vocab(model)
    start = model.config.decoder_start_token_id
    if start is None:
        start = pad_id
    encoder = model.get_encoder()
    for batch in length_batches(range(len(contexts)), lambda g: len(contexts[g]),
                                max_rows=policy.max_rows, max_tokens=policy.max_tokens):
        ids, mask = pad_right([contexts[g] for g in batch], pad_id, device)
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        members = sorted(((b, i) for b, g in enumerate(batch) for i in groups[contexts[g]]),
                         key=lambda m: len(items[m[1]].continuation), reverse=True)
        for sub in length_batches(
            range(len(members)), lambda r: len(items[members[r][1]].continuation),
            max_rows=policy.max_rows, max_tokens=policy.max_tokens,
            extra=lambda r: len(items[members[r][1]].continuation) * vocab, max_extra=policy.max_logits,
        ):
            rows = [members[r] for r in sub]
            src = torch.tensor([b for b, _ in rows], device=device)
            dec_in = [(start,) + items[i].continuation[:-1] for _, i in rows]
            dids, dmask = pad_right(dec_in, pad_id, device)
            tids, _ = pad_right([items[i].continuation for _, i in rows], pad_id, device)
            r = model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden[src]),
                      attention_mask=mask[src], decoder_input_ids=dids,
                      decoder_attention_mask=dmask, use_cache=False)
            total, greedy = _score_positions(r.logits, tids, dmask.bool())
            for (_, i), t, g in zip(rows, total.tolist(), greedy.tolist()):
                out[i] = (float(t), len(items[i].continuation), bool(g))
    return out  # type: ignore[return-value]
