"""What the server does with the settings we send, found by asking it, once, when it is resolved.

An OpenAI-compatible server may ignore a field it does not know (llama-cpp-python and vLLM accept
unknown fields silently) or reject it (OpenAI's API answers 400). Either way a setting that is
dropped silently changes what an audit measures, so each one the backends rely on is tested by
behaviour on a short, high-entropy prompt (a few 8-token completions, about a second on a small
model), and the result is recorded in the model's provenance (``served.capabilities``):

* ``neutral_extras``: the non-standard fields that switch server-side defaults off (``min_p`` 0,
  ``repeat_penalty``/``repetition_penalty`` 1, ``top_k`` disabled); tried as a set, then with
  ``top_k: -1``, then dropped (a strict server, whose defaults are the API's);
* ``temperature``: honoured when sampled answers at temperature 1.5 differ from the greedy one;
* ``seed``: honoured when the same seed gives the same sample and different seeds do not all agree;
* ``top_k`` / ``top_p``: honoured when ``top_k=1`` / ``top_p=1e-6`` at temperature 1.5 give the
  greedy answer for two seeds; "rejected" when the server refuses the field;
* ``max_tokens``: honoured when the server reports no more completion tokens than asked for;
* ``prompt_logprobs``: an ``echo`` request returns the prompt's tokens with log-probabilities
  (needed for log-likelihood probes; :mod:`.loglik`) *and they are aligned*: the echoed
  log-probability of a token the server has just generated greedily must equal the one it
  reported when generating it (``prompt_logprobs_check``: "aligned", "misaligned", "missing" or
  "unverified"). llama-cpp-python 0.3.36 fails this check: its echo scores each prompt token with
  the distribution that *follows* it (llama_cpp/llama.py pairs token j with logits row j instead
  of j-1), which would give plausible-looking but wrong log-likelihoods.

A setting that is "ignored" or "rejected" makes requests that need it fail with a UserError
(:func:`.payloads.refuse_unhonoured`); an ignored ``seed`` only makes samples irreproducible, which
is recorded as a warning in ``served.warnings`` and logged.
"""

from __future__ import annotations

import logging
from typing import Any

from rai_audit.models.openai_compat.client import Client, RequestRejected, ServedRequestError
from rai_audit.models.openai_compat.loglik import loglik_body, prompt_logprobs
from rai_audit.models.openai_compat.payloads import HONOURED, IGNORED, REJECTED, UNTESTED

log = logging.getLogger("rai_audit.models.openai_compat")

PROBE_PROMPT = "Once upon a time, in a village by the sea, there lived"
ALIGNMENT_PROMPTS = ("The capital of France is", "Once upon a time, there was a")
#: Relative agreement asked of an echoed and a generated log-probability of the same token (the
#: server computes one in a prompt batch, the other in a one-token step: a few 1e-3 apart).
ALIGNMENT_TOLERANCE = 0.05
PROBE_TOKENS = 8
HOT = 1.5
_NEUTRAL = {"min_p": 0.0, "repeat_penalty": 1.0, "repetition_penalty": 1.0}
_NEUTRAL_TOP_K = (0, -1)


class _Asker:
    def __init__(self, client: Client, model: str, extras: dict[str, Any]):
        self.client, self.model, self.extras = client, model, extras

    def complete(self, **fields) -> dict[str, Any]:
        body = {"model": self.model, "prompt": PROBE_PROMPT, "max_tokens": PROBE_TOKENS, "top_p": 1.0,
                "frequency_penalty": 0.0, "presence_penalty": 0.0, **self.extras, **fields}
        return self.client.post("/completions", body)

    def text(self, **fields) -> str:
        answer = self.complete(**fields)
        return str(((answer.get("choices") or [{}])[0]).get("text") or "")


def neutral_extras(client: Client, model: str) -> tuple[dict[str, Any], str]:
    """The extra fields the server accepts (and a note on what was tried)."""
    for top_k in _NEUTRAL_TOP_K:
        extras = {**_NEUTRAL, "top_k": top_k}
        try:
            _Asker(client, model, extras).complete(temperature=0.0, seed=0)
            return extras, f"accepted with top_k={top_k}"
        except RequestRejected as e:
            note = str(e)
    return {}, f"rejected ({note[:200]}); the server's own defaults apply"


def detect(client: Client, model: str) -> dict[str, Any]:
    """The capability record (module docstring); asks about a dozen short requests."""
    extras, extras_note = neutral_extras(client, model)
    ask = _Asker(client, model, extras)
    caps: dict[str, Any] = {"neutral_extras": extras, "neutral_extras_note": extras_note}
    greedy_answer = ask.complete(temperature=0.0, seed=0)
    greedy = str(((greedy_answer.get("choices") or [{}])[0]).get("text") or "")
    used = (greedy_answer.get("usage") or {}).get("completion_tokens")
    caps["max_tokens"] = UNTESTED if not isinstance(used, int) else (HONOURED if used <= PROBE_TOKENS else IGNORED)
    a1, a1_again, a2, a3 = (ask.text(temperature=HOT, seed=s) for s in (11, 11, 12, 13))
    caps["temperature"] = HONOURED if any(x != greedy for x in (a1, a2, a3)) else IGNORED
    if caps["temperature"] == HONOURED:
        caps["seed"] = HONOURED if a1 == a1_again and not (a1 == a2 == a3) else IGNORED
    else:
        caps["seed"] = UNTESTED
    for name, value in (("top_k", 1), ("top_p", 1e-6)):
        if caps["temperature"] != HONOURED:
            caps[name] = UNTESTED
            continue
        try:
            same = all(ask.text(temperature=HOT, seed=s, **{name: value}) == greedy for s in (11, 12))
            caps[name] = HONOURED if same else IGNORED
        except RequestRejected as e:
            caps[name] = REJECTED
            caps[f"{name}_note"] = str(e)[:200]
    check = prompt_logprobs_check(client, model, extras)
    caps["prompt_logprobs_check"] = check
    caps["prompt_logprobs"] = check in ("aligned", "unverified")
    return caps


def _echo_tokens(client: Client, model: str, prompt: str):
    try:
        tokens = prompt_logprobs(client.post("/completions", loglik_body(model, prompt)), prompt)
    except (ServedRequestError, ValueError) as e:
        log.info("the server gives no prompt log-probabilities (%s)", e)
        return None
    if len(tokens) < 2 or any(lp is None for _s, _e, lp, _t in tokens[1:]):
        return None
    return tokens


def prompt_logprobs_check(client: Client, model: str, extras: dict[str, Any]) -> str:
    """"aligned" | "misaligned" | "missing" | "unverified" (module docstring)."""
    verdicts = []
    for prompt in ALIGNMENT_PROMPTS:
        answer = client.post("/completions", {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0,
                                              "top_p": 1.0, "logprobs": 1, "seed": 0, **extras})
        choice = (answer.get("choices") or [{}])[0]
        lp = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}
        generated, values = str(choice.get("text") or ""), lp.get("token_logprobs") or []
        tokens = _echo_tokens(client, model, prompt + generated)
        if tokens is None:
            return "missing"
        start, _end, echoed, _top = tokens[-1]
        if not generated.strip() or not values or values[0] is None or start != len(prompt):
            continue  # nothing to compare (the new token merged with the prompt's last one)
        verdicts.append(abs(float(echoed) - float(values[0])) <= ALIGNMENT_TOLERANCE * max(1.0, abs(float(values[0]))))
    if not verdicts:
        return "unverified"
    return "aligned" if all(verdicts) else "misaligned"


def warnings_for(caps: dict[str, Any]) -> list[str]:
    """Plain-language warnings recorded with the model (and logged)."""
    out = []
    if caps.get("seed") == IGNORED:
        out.append("The server ignores 'seed': sampled generations cannot be reproduced (greedy answers and "
                   "log-likelihoods are unaffected).")
    for name in ("temperature", "top_k", "top_p", "max_tokens"):
        if caps.get(name) in (IGNORED, REJECTED):
            out.append(f"The server {caps[name]} '{name}': probes whose decoding needs it are refused (exit 2).")
    check = caps.get("prompt_logprobs_check")
    if check == "misaligned":
        out.append("The server's echoed prompt log-probabilities are misaligned (each token is scored with the "
                   "distribution that follows it): log-likelihood probes are refused (exit 2); generation probes run.")
    elif not caps.get("prompt_logprobs"):
        out.append("The server gives no prompt log-probabilities (echo + logprobs): log-likelihood probes are refused "
                   "(exit 2); generation probes run.")
    elif check == "unverified":
        out.append("The alignment of the server's prompt log-probabilities could not be checked (the test tokens "
                   "merged); log-likelihoods are taken as the server gives them.")
    if not caps.get("neutral_extras"):
        out.append("The server rejected the fields that switch its sampling defaults off (min_p, repeat_penalty, "
                   "top_k); its own defaults apply to sampled generations.")
    return out
