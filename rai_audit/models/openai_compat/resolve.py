"""``openai-compat:...`` -> :class:`ServedModelInfo`: ask the server who it is and how it behaves.

Resolving a served model contacts the server (so it must be up even for a fully cached run: its
answers are what identify it). In order:

1. ``GET /v1/models``: the served names; the reference's ``#MODEL`` must be one of them (or the
   only one, when the reference names none);
2. ``GET /props`` and ``/health`` where the server has them (llama.cpp): what it says about itself,
   kept short (the chat template as its sha256, scalar settings only);
3. the capabilities (:mod:`.capabilities`) and the fingerprint (:mod:`.fingerprint`), whose
   digest is the ``model_id``.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from rai_audit.errors import ModelLoadError
from rai_audit.models.openai_compat import capabilities, fingerprint
from rai_audit.models.openai_compat.client import Client, ServedRequestError
from rai_audit.models.openai_compat.endpoint import KIND, Endpoint, parse_reference
from rai_audit.models.openai_compat.info import ServedModelInfo

log = logging.getLogger("rai_audit.models.openai_compat")

_MAX_SCALAR = 300


def _short(value: Any, depth: int = 0) -> Any:
    """A server report trimmed for provenance: scalars (clipped), small mappings, no long text."""
    if isinstance(value, dict) and depth < 2:
        out = {}
        for k, v in value.items():
            if k == "chat_template" and isinstance(v, str):
                out["chat_template_sha256"] = hashlib.sha256(v.encode("utf-8")).hexdigest()
            elif isinstance(v, (str, int, float, bool)) or v is None:
                out[str(k)] = v[:_MAX_SCALAR] if isinstance(v, str) else v
            elif isinstance(v, (dict, list)) and depth < 1:
                out[str(k)] = _short(v, depth + 1)
        return out
    if isinstance(value, list):
        return [_short(v, depth + 1) for v in value[:20] if isinstance(v, dict)]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)[:_MAX_SCALAR]


def served_models(client: Client) -> list[dict[str, Any]]:
    try:
        listing = client.get(client.endpoint.url("/models"))
    except ServedRequestError as e:
        raise ModelLoadError(
            f"The server at {client.endpoint.base_url} did not list its models (GET /models: {e}). Check that the URL "
            "ends with the API prefix (usually /v1) and that the server is OpenAI-compatible."
        ) from None
    data = listing.get("data") if isinstance(listing, dict) else None
    return [m for m in (data or []) if isinstance(m, dict) and m.get("id")]


def pick_model(endpoint: Endpoint, models: list[dict[str, Any]], ref: str) -> str:
    names = [str(m["id"]) for m in models]
    if endpoint.model is None:
        if len(names) == 1:
            return names[0]
        raise ModelLoadError(
            f"The reference {ref!r} names no model and the server at {endpoint.base_url} serves "
            f"{len(names)} ({', '.join(names[:10]) or 'none listed'}). Add '#MODEL_NAME' to the reference."
        )
    if names and endpoint.model not in names:
        raise ModelLoadError(
            f"The server at {endpoint.base_url} does not serve a model named {endpoint.model!r}; it serves: "
            f"{', '.join(names[:10])}. Fix the name after '#' in {ref!r}."
        )
    return endpoint.model


def resolve(ref: str) -> ServedModelInfo:
    """The resolver registered for kind ``openai-compat`` (module docstring)."""
    endpoint = parse_reference(ref)
    client = Client(endpoint)
    models = served_models(client)
    name = pick_model(endpoint, models, ref)
    props = client.get(endpoint.root_url("/props"), optional=True)
    health = client.get(endpoint.root_url("/health"), optional=True)
    try:
        caps = capabilities.detect(client, name)
        answers = fingerprint.answers(client, name, caps.get("neutral_extras") or {})
    except ServedRequestError as e:
        raise ModelLoadError(
            f"The server at {endpoint.base_url} did not answer the completions requests that identify the model "
            f"{name!r} ({e}). rai-audit needs /completions (the fingerprint and log-likelihoods use it; chat-only "
            "endpoints are not supported): check that the server offers it and is healthy, then re-run."
        ) from None
    warnings = capabilities.warnings_for(caps)
    for w in warnings:
        log.warning("served model %s at %s: %s", name, endpoint.base_url, w)
    listed = next((m for m in models if str(m.get("id")) == name), {})
    props_short = _short(props) if isinstance(props, dict) else None
    served = {
        "endpoint": endpoint.base_url,
        "served_model": name,
        "api_key_env": endpoint.api_key_env,
        "identity": "behavioural: sha256 of the served model name and its greedy answers and rounded "
                    "log-probabilities on a fixed prompt set; no weights were hashed",
        "server": {"model": _short(listed), "props": props_short,
                   "health": _short(health) if isinstance(health, dict) else None},
        "capabilities": caps,
        "fingerprint": answers,
        "warnings": warnings,
    }
    return ServedModelInfo(
        model_id=fingerprint.model_id(name, answers),
        reference=ref.strip(),
        kind=KIND,
        path=endpoint.base_url,
        has_chat_template=bool(props_short and props_short.get("chat_template_sha256")),
        served=served,
    )
