"""Log-likelihood from a completions server: echo the prompt, read its tokens' log-probabilities.

The request (as lm-evaluation-harness's ``local-completions`` does it): ``/v1/completions`` with
``prompt = context + continuation``, ``echo: true``, ``logprobs: 1``, ``max_tokens: 1``,
``temperature: 0``. The answer lists every prompt token with its text offset and log-probability
(the first token has none: nothing precedes it), then the one generated token, which is ignored.

The boundary between context and continuation is found with the server's own text offsets (we
have no tokenizer here): a continuation token is a prompt token whose text ends after the last
character of the context. A token that straddles the boundary (the tokenizer merged the end of
the context with the start of the continuation) therefore counts as continuation, which is what
the local backends' rule (continuation = tokens of ``context + continuation`` past those of the
context alone) gives in the usual case. As in the local backends (:mod:`rai_audit.models.encoding`),
trailing whitespace of the context moves to the front of the continuation first, so " Paris" after
"The capital is" is one token, not a space token plus "Paris".

An empty context (CrowS-Pairs scores whole sentences) leaves the first token with nothing to be
conditioned on. The local backends put the tokenizer's start-of-text token there; a server is told
which text that is with the reference's ``start`` option (e.g. ``start=<|im_start|>`` for SmolLM2),
or adds it itself (Llama-family models on vLLM). Offsets are matched to the prompt by its text, so
a start token the server renders differently, or leaves out of the offsets, does not move the
boundary. A server that still returns no log-probability for the first token (llama-cpp-python
drops the one after BOS) gets a UserError naming the fix, not a silently shorter score.

``is_greedy``: every continuation token's log-probability is the top one at its position
(``top_logprobs``, within 1e-4 nats).

Chat: ``/v1/chat/completions`` has no prompt log-probabilities, and the chat template lives on the
server, so a log-likelihood request with ``chat=True`` is refused (UserError) rather than scored
without the template.
"""

from __future__ import annotations

from typing import Any

from rai_audit.requests import LoglikRequest, LoglikResult

GREEDY_SLACK = 1e-4


class MissingFirstLogprob(ValueError):
    """The server gave no log-probability for the continuation's first token (empty context)."""


def split(req: LoglikRequest, start: str = "") -> tuple[str, int, int]:
    """(prompt, boundary, skip): the text sent, where its continuation starts and where the text
    proper starts (after ``start``, the start-of-text token put before an empty context)."""
    context, continuation = req.context, req.continuation
    stripped = context.rstrip()
    if len(stripped) < len(context):
        continuation = context[len(stripped):] + continuation
        context = stripped
    lead = start if not context else ""
    return lead + context + continuation, len(lead) + len(context), len(lead)


def loglik_body(model: str, prompt: str) -> dict[str, Any]:
    return {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "logprobs": 1, "echo": True,
            "seed": 0}


def prompt_logprobs(answer: dict[str, Any], prompt: str, skip: int = 0) -> list[tuple[int, int, float | None, dict | None]]:
    """[(start, end, logprob, top_logprobs)] for each token of ``prompt`` in the echoed answer, in
    the prompt's character positions (``prompt[skip:]`` locates the text in the server's tokens).

    ValueError when the answer carries no prompt log-probabilities (no echo, no logprobs), or when
    its offsets do not fit the prompt."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise ValueError(f"the answer has no choices: {str(answer)[:200]}")
    lp = choices[0].get("logprobs")
    if not isinstance(lp, dict) or not lp.get("token_logprobs") or not lp.get("tokens"):
        raise ValueError("the answer has no token log-probabilities (the server ignored echo/logprobs)")
    tokens: list[str] = [str(t) for t in lp["tokens"]]
    logprobs: list = list(lp["token_logprobs"])
    tops: list = list(lp.get("top_logprobs") or [None] * len(tokens))
    offsets = lp.get("text_offset")
    if not isinstance(offsets, list) or len(offsets) != len(tokens):
        offsets, pos = [], 0  # no offsets: the echoed tokens spell the prompt
        for t in tokens:
            offsets.append(pos)
            pos += len(t)
    if len(logprobs) != len(tokens) or any(b < a for a, b in zip(offsets, offsets[1:])):
        raise ValueError("the answer's tokens, log-probabilities and offsets do not line up")
    # The server's offsets count its rendering of the prompt: a start token may be spelled out, or
    # left out. Where the text proper begins in it tells how far its positions are from ours.
    head = prompt[skip: skip + 32]
    found = "".join(tokens).find(head) if head else -1
    delta = found - skip if found >= 0 else 0
    offsets = [int(o) - delta for o in offsets]
    out = []
    for i, start in enumerate(offsets):
        if start >= len(prompt):
            break  # the generated token(s)
        end = offsets[i + 1] if i + 1 < len(offsets) else len(prompt)
        if end <= 0:
            continue  # a start token the server added before the prompt
        out.append((max(start, 0), min(end, len(prompt)), logprobs[i], tops[i] if i < len(tops) else None))
    if not out or (out[-1][1] < len(prompt) and len(prompt) > 0):
        raise ValueError(f"the echoed tokens cover {out[-1][1] if out else 0} of the prompt's {len(prompt)} characters "
                         "(the server did not echo the prompt)")
    return out


def score(answer: dict[str, Any], prompt: str, boundary: int, skip: int = 0) -> LoglikResult:
    """The continuation's summed log-probability from an echo answer (ValueError if it cannot;
    :class:`MissingFirstLogprob` when the first continuation token has none)."""
    tokens = [t for t in prompt_logprobs(answer, prompt, skip) if t[1] > boundary]
    if len(prompt) > boundary and not tokens:
        raise ValueError("no prompt token covers the continuation")
    total, greedy = 0.0, True
    for _start, _end, lp, top in tokens:
        if lp is None:
            raise MissingFirstLogprob("the server gave no log-probability for the continuation's first token")
        total += float(lp)
        if not isinstance(top, dict) or not top:
            greedy = False
        elif float(lp) < max(float(v) for v in top.values()) - GREEDY_SLACK:
            greedy = False
    return LoglikResult(logprob=total, n_tokens=len(tokens), is_greedy=greedy)
