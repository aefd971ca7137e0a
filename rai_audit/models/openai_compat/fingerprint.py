"""A served model's identity: its name plus how it answers a fixed set of prompts.

A server gives us no weights to hash, so the model id is behavioural: sha256 over the served model
name and, for each prompt of :data:`PROMPTS`, the greedy continuation (:data:`TOKENS` tokens, the
neutral extras of :mod:`.capabilities` applied) and its tokens' log-probabilities rounded to
:data:`DECIMALS` places. The endpoint is not part of it, so the same model behind a restarted
server, another port or another host gets the same id, and the answers cached under it are reused
(an interrupted audit resumes instead of starting over). A different model, quantisation or
server-side setting that changes a greedy token, or a log-probability by more than the rounding,
gets a different id, so its answers are never mixed with another's.

Rounding is what lets the id survive numerical noise (thread counts, batch shapes); a server that
is not deterministic to 0.005 nats on these prompts can still give a new id after a restart (then
a re-run is a new run, with its own cache entries): the report says the identity rests on the
server (docs/served-models.md).
"""

from __future__ import annotations

from typing import Any

from rai_audit.hashing import sha256_json
from rai_audit.models.openai_compat.client import Client

PROMPTS = (
    "The capital of France is",
    "def fibonacci(n):",
    "Q: What is 12 plus 30?\nA:",
    "My favourite colour is",
)
TOKENS = 8
DECIMALS = 2


def _rounded(values: Any) -> list[float | None]:
    out = []
    for v in values or []:
        if v is None:
            out.append(None)
        else:
            r = round(float(v), DECIMALS)
            out.append(0.0 if r == 0 else r)  # no "-0.0"
    return out


def answers(client: Client, model: str, extras: dict[str, Any]) -> list[dict[str, Any]]:
    """The greedy answers (text and rounded log-probabilities) to :data:`PROMPTS`, in order."""
    out = []
    for prompt in PROMPTS:
        body = {"model": model, "prompt": prompt, "max_tokens": TOKENS, "temperature": 0.0, "top_p": 1.0,
                "logprobs": 1, "seed": 0, **extras}
        answer = client.post("/completions", body)
        choice = (answer.get("choices") or [{}])[0]
        lp = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}
        out.append({"prompt": prompt, "text": str(choice.get("text") or ""),
                    "logprobs": _rounded(lp.get("token_logprobs"))})
    return out


def model_id(served_model: str, fingerprint: list[dict[str, Any]]) -> str:
    """sha256 over the served name and the fingerprint answers (not the endpoint)."""
    return sha256_json({"kind": "openai-compat", "served_model": served_model,
                        "answers": [{k: a[k] for k in ("prompt", "text", "logprobs")} for a in fingerprint]})
