"""Notification hook: tell someone when an unattended audit fails a gate or errors.

The hook is either a shell command, which receives the JSON summary on standard input (and in the
``RAI_AUDIT_SUMMARY`` environment variable), or an ``http(s)://`` webhook URL, which receives it as
a JSON POST. A failing hook is logged and never changes the audit's own exit code: the audit's
result is already in the store and the exit code is what schedulers act on.

Webhooks are retried: an unattended audit's one alert should not be lost to a receiver that is
restarting or briefly overloaded (connection refused/reset, timeouts, 429, 5xx). The retries use
urllib3's ``Retry`` (backoff, status list, POST explicitly allowed, since urllib3 by default only
retries idempotent methods) and are bounded by the same ``timeout`` as a single try used to be,
so a dead receiver delays the audit's exit by at most that long. A retry after a timeout can
deliver the alert twice; a duplicate alert is the better failure than a lost one.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import urllib.parse
import urllib.request
from typing import Any

log = logging.getLogger("rai_audit.notify")

#: Tries per webhook (the first + retries) and the statuses worth another try.
WEBHOOK_ATTEMPTS = 4
RETRY_STATUSES = frozenset({429, *range(500, 600)})


def notify(hook: str | None, summary: dict[str, Any], *, timeout: float = 30.0) -> bool:
    """Send ``summary`` to ``hook``; returns whether it was delivered. Never raises.

    ``timeout`` bounds the whole delivery: a command's run time, or a webhook's tries and the
    pauses between them together.
    """
    if not hook:
        return False
    body = json.dumps(summary, default=str, sort_keys=True)
    try:
        if hook.startswith(("http://", "https://")):
            return _post_webhook(hook, body.encode(), timeout)
        env = {**os.environ, "RAI_AUDIT_SUMMARY": body}
        proc = subprocess.run(hook, shell=True, input=body, text=True, env=env, timeout=timeout,  # noqa: S602
                              capture_output=True)
        if proc.returncode != 0:
            log.warning("notification command exited %s: %s", proc.returncode, proc.stderr.strip()[:500])
        return proc.returncode == 0
    except Exception as e:  # noqa: BLE001 - a broken hook must not break the audit
        log.warning("notification hook %r failed: %s", _redact(hook), e)
        return False


def _redact(hook: str) -> str:
    """A webhook URL without its path and query: Slack-style URLs carry their secret there."""
    if not hook.startswith(("http://", "https://")):
        return hook
    u = urllib.parse.urlsplit(hook)
    return f"{u.scheme}://{u.hostname}{f':{u.port}' if u.port else ''}/..."


def _pool(url: str):
    """A connection pool honouring http(s)_proxy / no_proxy, as urllib.request did before."""
    import urllib3

    u = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(u.scheme)
    if proxy and not urllib.request.proxy_bypass(u.netloc):
        return urllib3.ProxyManager(proxy)
    return urllib3.PoolManager()


def _post_webhook(url: str, body: bytes, budget: float) -> bool:
    """POST with retries on connection errors, 429 and 5xx, all within ``budget`` seconds.

    urllib3 (2.x) sleeps 0, 2f, 4f, ... between tries for backoff factor f; f = budget/60 spends a
    tenth of the budget on pauses (3 s of 30 s) and the rest is split evenly into per-try timeouts,
    so four tries against a dead or hanging receiver end within ``budget``. ``Retry-After`` is not
    honoured: a receiver asking for minutes would hold the audit's exit beyond the bound.
    """
    from urllib3 import Timeout
    from urllib3.util.retry import Retry

    retries = WEBHOOK_ATTEMPTS - 1
    backoff = budget / 60
    pauses = sum(backoff * 2 ** n for n in range(1, retries))  # urllib3 does not pause before the 1st retry
    per_try = max(0.1, (budget - pauses) / WEBHOOK_ATTEMPTS)
    retry = Retry(total=retries, redirect=2, allowed_methods=frozenset({"POST"}), status_forcelist=RETRY_STATUSES,
                  backoff_factor=backoff, backoff_max=budget, respect_retry_after_header=False,
                  raise_on_status=False, raise_on_redirect=False)
    # urllib3 logs each retry at WARNING with the URL's path, which for Slack-style webhooks is the
    # secret; hide those records for this URL and report once, redacted, below.
    path = urllib.parse.urlsplit(url).path or "/"
    urllib3_log = logging.getLogger("urllib3.connectionpool")

    def hide(record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith("Retrying") and path in record.getMessage())

    urllib3_log.addFilter(hide)
    start = time.monotonic()
    try:
        resp = _pool(url).request("POST", url, body=body, retries=retry, timeout=Timeout(total=per_try),
                                  headers={"Content-Type": "application/json", "User-Agent": "rai-audit"})
    except Exception as e:  # noqa: BLE001 - MaxRetryError and friends: every try failed to connect/read
        reason = getattr(e, "reason", None) or e
        log.warning("notification webhook %s failed after %.1f s (%d tries): %s",
                    _redact(url), time.monotonic() - start, WEBHOOK_ATTEMPTS, str(reason).replace(path, "/..."))
        return False
    finally:
        urllib3_log.removeFilter(hide)
    tries = len(resp.retries.history) + 1 if resp.retries is not None else 1
    if 200 <= resp.status < 300:
        if tries > 1:
            log.info("notification webhook %s accepted on try %d", _redact(url), tries)
        return True
    log.warning("notification webhook %s answered HTTP %s after %.1f s (%d tr%s)",
                _redact(url), resp.status, time.monotonic() - start, tries, "ies" if tries > 1 else "y")
    return False
