"""Log-likelihood of continuations with llama.cpp: many requests per ``llama_decode``.

The same computation as the transformers backend (:mod:`rai_audit.models.loglik`), arranged for
llama.cpp's batch: each request is a *sequence*, and the tokens of a context shared by several
requests (the options of one multiple-choice item) are put in the batch once, tagged with all of
those sequences, so they are computed and stored once. A *round* is one ``llama_decode`` of

* every context of the round (its tokens at positions ``0..len-1``, in the sequences of its
  requests; the last one asks for logits: they score each request's first continuation token), and
* every request's continuation but its last token (positions ``len(context)..``, in its own
  sequence; each asks for logits, which score the next continuation token),

after which the KV cache is cleared. Rounds hold at most ``max_tokens`` tokens and ``max_seqs``
sequences; a context with more requests than fit is repeated in as many rounds as it needs.
A single request longer than ``max_tokens`` gets a round (and a context) of its own size.

Log-probabilities are the log-softmax (float32, as the transformers backend's) of llama.cpp's
logits; ``is_greedy`` is every continuation token being the argmax of its row.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from rai_audit.models.encoding import LoglikTokens
from rai_audit.models.llamacpp.engine import Engine

Score = tuple[float, int, bool]
Unit = tuple[tuple[int, ...], list[int]]  # (context tokens, the requests scored on it in one round)


def _units(items: Sequence[LoglikTokens], max_tokens: int, max_seqs: int) -> tuple[list[Score | None], list[Unit]]:
    """Empty continuations answered now; the others grouped by context, split to fit a round."""
    out: list[Score | None] = [None] * len(items)
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        if not it.continuation:
            out[i] = (0.0, 0, True)  # as the transformers backend: log 1, nothing to be greedy about
        else:
            groups[tuple(it.context)].append(i)
    units: list[Unit] = []
    for ctx, members in groups.items():
        chunk: list[int] = []
        cost = len(ctx)
        for i in members:
            extra = len(items[i].continuation) - 1
            if chunk and (cost + extra > max_tokens or len(chunk) >= max_seqs):
                units.append((ctx, chunk))
                chunk, cost = [], len(ctx)
            chunk.append(i)
            cost += extra
        units.append((ctx, chunk))
    return out, units


def _cost(unit: Unit, items: Sequence[LoglikTokens]) -> int:
    ctx, members = unit
    return len(ctx) + sum(len(items[i].continuation) - 1 for i in members)


def _rounds(units: list[Unit], items: Sequence[LoglikTokens], max_tokens: int, max_seqs: int) -> list[list[Unit]]:
    rounds: list[list[Unit]] = []
    cur: list[Unit] = []
    tokens = seqs = 0
    for u in units:
        c, s = _cost(u, items), len(u[1])
        if cur and (tokens + c > max_tokens or seqs + s > max_seqs):
            rounds.append(cur)
            cur, tokens, seqs = [], 0, 0
        cur.append(u)
        tokens += c
        seqs += s
    if cur:
        rounds.append(cur)
    return rounds


def score(engine: Engine, items: Sequence[LoglikTokens], *, max_tokens: int = 512, max_seqs: int = 64) -> list[Score]:
    """``(sum of log-probabilities, continuation tokens, is_greedy)`` per item (module docstring)."""
    max_seqs = max(1, min(max_seqs, engine.max_sequences))
    out, units = _units(items, max_tokens, max_seqs)
    rounds = _rounds(units, items, max_tokens, max_seqs)
    if not rounds:
        return out  # type: ignore[return-value]
    width = max(max_tokens, max(sum(_cost(u, items) for u in r) for r in rounds))
    with engine.lock, engine.context(n_ctx=width, n_seq=max_seqs, n_batch=width) as ctx:
        for rnd in rounds:
            for i, result in _score_round(ctx, rnd, items).items():
                out[i] = result
            ctx.clear()
    return out  # type: ignore[return-value]


def _score_round(ctx, rnd: list[Unit], items: Sequence[LoglikTokens]) -> dict[int, Score]:
    import torch

    tokens: list[int] = []
    pos: list[int] = []
    counts: list[int] = []
    seqs: list[int] = []
    wants: list[int] = []
    # for every scored continuation token: (item, logits row, target token)
    owner: list[int] = []
    row_of: list[int] = []
    target: list[int] = []
    rows = 0
    seq = 0
    for context, members in rnd:
        ids = list(range(seq, seq + len(members)))
        seq += len(members)
        n = len(context)
        for k, t in enumerate(context):
            tokens.append(t)
            pos.append(k)
            counts.append(len(ids))
            seqs.extend(ids)
            wants.append(1 if k == n - 1 else 0)
        shared = rows
        rows += 1
        for sid, i in zip(ids, members):
            cont = items[i].continuation
            owner.append(i)
            row_of.append(shared)
            target.append(cont[0])
            for k, t in enumerate(cont[:-1]):
                tokens.append(t)
                pos.append(n + k)
                counts.append(1)
                seqs.append(sid)
                wants.append(1)
                owner.append(i)
                row_of.append(rows)
                target.append(cont[k + 1])
                rows += 1
    logits = ctx.decode(np.asarray(tokens, np.int32), np.asarray(pos, np.int32), np.asarray(counts, np.int32),
                        np.asarray(seqs, np.int32), np.asarray(wants, np.int8))
    with torch.inference_mode():
        raw = torch.from_numpy(logits)
        r = torch.as_tensor(row_of)
        t = torch.as_tensor(target)
        mine = raw.log_softmax(-1)[r, t].double().numpy()
        greedy = (raw.argmax(-1)[r] == t).numpy()
    got: dict[int, list] = {}
    for i, lp, g in zip(owner, mine, greedy):
        acc = got.setdefault(i, [0.0, True])
        acc[0] += float(lp)
        acc[1] = acc[1] and bool(g)
    return {i: (acc[0], len(items[i].continuation), acc[1]) for i, acc in got.items()}
