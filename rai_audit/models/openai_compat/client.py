"""HTTP to an OpenAI-compatible server: JSON in, JSON out, with timeouts and bounded retries.

Why the standard library: the served backend must work in a bare install (no extra to remember
on an audit machine), and ``urllib`` does what is needed here, one request per connection.

What a failure becomes (docs/served-models.md, "Failures"):

* a 429, a 5xx, a timeout or a dropped connection is retried ``retries`` times with exponential
  backoff (``backoff`` seconds, doubled each time, at most :data:`MAX_DELAY`; a 429's
  ``Retry-After`` is honoured within that cap);
* still a 429/5xx/timeout after that: :class:`ServedRequestError`, which the runner turns into
  that item's error record (execution.py: a backend exception is the item's error, never a score);
* still no connection after that: :class:`ServerUnreachable`, a UserError (exit 2) that stops the
  run. Error records are final for a run (a retry of failed items is a new run), so a server that
  is down must not turn every remaining item into an error: the run stops instead, and re-running
  the same command resumes it once the server is back, asking nothing it already answered;
* 401/403: :class:`ServerUnreachable` naming the API-key variable (a wrong key fails every item);
* any other 4xx: :class:`RequestRejected` at once (the same request would be refused again).

The API key is read from the environment at each request and sent as a Bearer header; it is
never logged, and any echo of it in a server's error text is masked before it is raised.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from typing import Any, Callable
from urllib.parse import urlsplit

from rai_audit.errors import ModelLoadError
from rai_audit.models.openai_compat.endpoint import Endpoint

log = logging.getLogger("rai_audit.models.openai_compat")

#: The longest wait between two tries, seconds.
MAX_DELAY = 30.0


class ServedRequestError(RuntimeError):
    """The server failed one request (after retries): that item's error record."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RequestRejected(ServedRequestError):
    """A 4xx other than 401/403/429: the server refuses this request as it is."""


class ServerUnreachable(ModelLoadError):
    """No usable answer from the server at all: the run stops (exit 2) and resumes when re-run."""


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Client:
    """Sends JSON requests to one :class:`Endpoint`; safe to share between threads."""

    def __init__(self, endpoint: Endpoint, *, sleep: Callable[[float], None] = time.sleep):
        self.endpoint = endpoint
        self._sleep = sleep
        # A proxy from the environment must not intercept a server on this machine.
        handlers = [urllib.request.ProxyHandler({})] if _loopback(endpoint.base_url) else []
        self._opener = urllib.request.build_opener(*handlers)
        self._lock = threading.Lock()
        self.sent = 0  # HTTP requests sent, retries included
        self.retried = 0

    # -- public -----------------------------------------------------------------------------
    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``BASE_URL + path``; the parsed JSON answer (errors: module docstring)."""
        return self._request("POST", self.endpoint.url(path), body)

    def get(self, url: str, *, optional: bool = False) -> Any:
        """GET a full URL. With ``optional``, a 4xx/5xx answer or non-JSON body gives None
        (for ``/props`` and ``/health``, which only some servers have)."""
        try:
            return self._request("GET", url, None, retries=0 if optional else None)
        except ServedRequestError:
            if optional:
                return None
            raise

    # -- internals --------------------------------------------------------------------------
    def _mask(self, text: str) -> str:
        key = self.endpoint.api_key()
        return text.replace(key, "***") if key else text

    def _send(self, method: str, url: str, data: bytes | None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        key = self.endpoint.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        with self._lock:
            self.sent += 1
        try:
            with self._opener.open(req, timeout=self.endpoint.timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            try:
                payload = e.read()
            except (OSError, HTTPException):
                payload = b""
            return e.code, dict(e.headers or {}), payload

    def _request(self, method: str, url: str, body: dict | None, retries: int | None = None) -> Any:
        ep = self.endpoint
        tries = (ep.retries if retries is None else retries) + 1
        data = None if body is None else json.dumps(body).encode("utf-8")
        last: str = ""
        connection_failed = False
        for attempt in range(tries):
            retry_after = None
            try:
                status, headers, payload = self._send(method, url, data)
            except (urllib.error.URLError, HTTPException, ConnectionError, socket.timeout, TimeoutError, OSError) as e:
                reason = getattr(e, "reason", e)
                timed_out = isinstance(reason, (socket.timeout, TimeoutError))
                connection_failed = not timed_out
                last = f"timed out after {ep.timeout:g} s" if timed_out else f"{type(reason).__name__}: {reason}"
            else:
                if status < 400:
                    try:
                        return json.loads(payload.decode("utf-8"))
                    except (UnicodeDecodeError, ValueError) as e:
                        raise ServedRequestError(f"{method} {url}: the server's answer is not JSON ({e})", status) from None
                connection_failed = False
                text = self._mask(payload.decode("utf-8", "replace").strip())[:500]
                if status in (401, 403):
                    raise ServerUnreachable(
                        f"The server at {ep.base_url} refused the request ({status}: {text}). It needs a valid API key: "
                        f"put it in the environment variable {ep.api_key_env} (the variable named by the reference's "
                        f"api_key_env option; currently {'set' if ep.api_key() else 'unset'}) and re-run."
                    )
                if status != 429 and status < 500:
                    raise RequestRejected(f"{method} {url} was refused ({status}): {text}", status)
                last = f"HTTP {status}: {text}"
                retry_after = _retry_after(headers)
            if attempt + 1 < tries:
                delay = min(ep.backoff * (2 ** attempt), MAX_DELAY)
                if retry_after is not None:
                    delay = min(max(delay, retry_after), MAX_DELAY)
                with self._lock:
                    self.retried += 1
                log.warning("%s %s failed (%s); try %d of %d in %.2f s", method, url, last, attempt + 2, tries, delay)
                self._sleep(delay)
        if connection_failed:
            raise ServerUnreachable(
                f"The server at {ep.base_url} could not be reached after {tries} tries ({last}). Start it (or fix the "
                "URL), then re-run the same command: the run resumes where it stopped, and the answers already in the "
                "store are not asked again."
            )
        raise ServedRequestError(f"{method} {url} failed after {tries} tries: {last}")


def _retry_after(headers: dict[str, str]) -> float | None:
    for k, v in headers.items():
        if k.lower() == "retry-after":
            try:
                return max(0.0, float(v))
            except ValueError:
                return None
    return None
