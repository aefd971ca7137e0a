"""The ``openai-compat:`` reference: where the server is, which model it serves, how to talk to it.

Syntax::

    openai-compat:BASE_URL[?OPTIONS]#MODEL
    openai-compat:http://127.0.0.1:8080/v1#smollm2
    openai-compat:https://llm.example.org/v1?api_key_env=LLM_KEY&concurrency=16#org/model-7b

* ``BASE_URL``: the prefix that ``/completions``, ``/chat/completions`` and ``/models`` hang off
  (``.../v1`` for every OpenAI-compatible server we know). ``/props`` and ``/health`` (llama.cpp)
  are asked at the same URL without its final ``/v1``.
* ``MODEL``: the served model name, sent as ``"model"`` with every request; it may be left out
  when the server lists exactly one model.
* ``OPTIONS`` (all optional): ``api_key_env`` (the NAME of the environment variable holding the
  API key, default ``OPENAI_API_KEY``; a variable that is unset means no key is sent),
  ``concurrency`` (requests in flight, default 4), ``timeout`` (seconds per request, default
  120), ``retries`` (extra tries after a 429, a 5xx, a timeout or a dropped connection, default
  5), ``backoff`` (seconds before the first retry, doubled each time, default 0.5) and ``start``
  (the text of the model's start-of-text token, put before a text scored with an empty context,
  e.g. ``start=<|im_start|>``; :mod:`.loglik`).

Why the options live in the reference: the reference travels wherever the model goes (``--model``,
``audit.yaml``, Ray workers by pickle) while the registry hands loaders only device, dtype and
batch size; and the model id does not depend on it (it is the behavioural fingerprint,
:mod:`.fingerprint`), so tuning concurrency or timeouts changes no run key and no cache entry.
Why only the variable's name: the reference is stored with every run, printed in reports and
logs, so the key itself must never be part of it; a URL with ``user:password@`` is refused for
the same reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from rai_audit.errors import ModelLoadError

KIND = "openai-compat"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
SYNTAX = ("openai-compat:http://HOST:PORT/v1#MODEL_NAME (options: "
          "?api_key_env=VAR&concurrency=N&timeout=S&retries=N&backoff=S&start=TEXT)")

_OPTIONS = {"api_key_env", "concurrency", "timeout", "retries", "backoff", "start"}


@dataclass(frozen=True)
class Endpoint:
    """A parsed ``openai-compat:`` reference (picklable; holds no secret)."""

    base_url: str
    model: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    concurrency: int = 4
    timeout: float = 120.0
    retries: int = 5
    backoff: float = 0.5
    start: str = ""

    def url(self, path: str) -> str:
        """``BASE_URL`` + ``path`` (``"/completions"``)."""
        return self.base_url.rstrip("/") + path

    def root_url(self, path: str) -> str:
        """The server root (``BASE_URL`` without a final ``/v1``) + ``path`` (``"/props"``)."""
        base = self.base_url.rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        return base + path

    def api_key(self) -> str | None:
        """The key, read now from the environment variable named by ``api_key_env`` (never kept)."""
        value = os.environ.get(self.api_key_env, "").strip()
        return value or None

    def with_model(self, model: str) -> "Endpoint":
        from dataclasses import replace

        return replace(self, model=model)


def _bad(ref: str, why: str) -> ModelLoadError:
    return ModelLoadError(f"The model reference {ref!r} is not a valid served-model reference: {why}. Write {SYNTAX}.")


def _number(ref: str, name: str, text: str, cast, low, high):
    try:
        value = cast(text)
    except ValueError:
        raise _bad(ref, f"option {name}={text!r} is not a number") from None
    if not (low <= value <= high):
        raise _bad(ref, f"option {name}={text!r} is out of range ({low}..{high})")
    return value


def parse_reference(ref: str) -> Endpoint:
    """``openai-compat:...`` -> :class:`Endpoint`; ModelLoadError (exit 2) naming the problem."""
    if not isinstance(ref, str) or not ref.strip().startswith(KIND + ":"):
        raise _bad(str(ref), f"it does not start with '{KIND}:'")
    ref = ref.strip()
    body = ref[len(KIND) + 1 :]
    url, _, model = body.partition("#")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(ref, "the server URL must start with http:// or https:// and name a host")
    if parts.username or parts.password:
        raise _bad(ref, "the URL holds credentials, which would be stored with every run; put the API key in an "
                        "environment variable and name it with ?api_key_env=VAR")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise _bad(ref, "the URL's port is not a number") from None
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise _bad(ref, f"unknown option(s) {', '.join(unknown)} (accepted: {', '.join(sorted(_OPTIONS))})")
    kw: dict = {}
    if "api_key_env" in options:
        name = options["api_key_env"]
        if not name or not all(c.isalnum() or c == "_" for c in name):
            raise _bad(ref, f"api_key_env={name!r} is not an environment variable name")
        kw["api_key_env"] = name
    if "concurrency" in options:
        kw["concurrency"] = _number(ref, "concurrency", options["concurrency"], int, 1, 1024)
    if "timeout" in options:
        kw["timeout"] = _number(ref, "timeout", options["timeout"], float, 0.01, 86400.0)
    if "retries" in options:
        kw["retries"] = _number(ref, "retries", options["retries"], int, 0, 100)
    if "backoff" in options:
        kw["backoff"] = _number(ref, "backoff", options["backoff"], float, 0.0, 600.0)
    if "start" in options:
        kw["start"] = options["start"]
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return Endpoint(base_url=base, model=model.strip() or None, **kw)
