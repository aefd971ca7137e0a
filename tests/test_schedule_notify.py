"""Scheduling output and the notification hook."""

from __future__ import annotations

import http.server
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest
import yaml

from rai_audit.errors import UserError
from rai_audit.notify import notify
from rai_audit.schedule import crontab, kubernetes, next_runs, oncalendar, systemd, validate_cron


def test_command_line_is_valid_shell_even_without_the_console_script(tmp_path, monkeypatch):
    import shlex

    import rai_audit.schedule as sched

    monkeypatch.setattr(sched.shutil, "which", lambda name: None)
    cfg = tmp_path / "my audit.yaml"
    line = sched.command_line(cfg, ["--notify", "mail -s x ops@example.org"])
    words = shlex.split(line)
    assert words[1:3] == ["-m", "rai_audit"] and words[-2:] == ["--notify", "mail -s x ops@example.org"]
    assert str(cfg.resolve()) in words


def test_crontab_line(tmp_path):
    cfg = tmp_path / "audit.yaml"
    text = crontab(cfg, "0 2 * * *", [], log=tmp_path / "audit.log")
    line = text.strip().splitlines()[-1]
    assert line.startswith("0 2 * * * ")
    assert "run " + str(cfg.resolve()) in line and "--quiet" in line and "audit.log" in line


def test_crontab_writes_macros_as_five_fields(tmp_path):
    text = crontab(tmp_path / "audit.yaml", "@weekly", [])
    assert "(@weekly)" in text.splitlines()[0]
    assert text.splitlines()[-1].startswith("0 0 * * 0 ")


# cron expression -> the OnCalendar= values a timer gets (several when cron's "day-of-month OR
# day-of-week" rule needs them). Every row is also checked by systemd-analyze below.
ONCALENDAR = [
    ("0 2 * * *", ["*-*-* 02:00:00"]),
    ("30 4 1 * *", ["*-*-01 04:30:00"]),
    ("*/15 * * * *", ["*-*-* *:00/15:00"]),
    ("0 3 * * 1,5", ["Mon,Fri *-*-* 03:00:00"]),
    ("0 9-17 * * MON", ["Mon *-*-* 09..17:00:00"]),
    ("0 9-17 * * MON-FRI", ["Mon..Fri *-*-* 09..17:00:00"]),
    ("0 0 1,15 * *", ["*-*-01,15 00:00:00"]),
    ("15 */6 * * *", ["*-*-* 00/6:15:00"]),
    ("0-30/10 8-18/2 * * *", ["*-*-* 08..18/2:00..30/10:00"]),
    ("0 12 1 */3 *", ["*-01/3-01 12:00:00"]),
    ("0 0 * JAN-MAR,DEC *", ["*-01..03,12-* 00:00:00"]),
    ("0 0 * * 0", ["Sun *-*-* 00:00:00"]),
    ("0 0 * * 7", ["Sun *-*-* 00:00:00"]),
    ("0 0 * * 5-7", ["Fri..Sun *-*-* 00:00:00"]),
    ("0 0 * * sat,sun", ["Sat,Sun *-*-* 00:00:00"]),
    ("0 6 * * */2", ["Tue,Thu,Sat,Sun *-*-* 06:00:00"]),
    ("0 6 * * 1-5/2", ["Mon,Wed,Fri *-*-* 06:00:00"]),
    ("5-5 1 * * *", ["*-*-* 01:05:00"]),
    ("0 0 1 * MON", ["*-*-01 00:00:00", "Mon *-*-* 00:00:00"]),
    ("0 0 13 * FRI", ["*-*-13 00:00:00", "Fri *-*-* 00:00:00"]),
    ("@hourly", ["hourly"]),
    ("@daily", ["daily"]),
    ("@midnight", ["daily"]),
    ("@weekly", ["Sun *-*-* 00:00:00"]),  # systemd's own "weekly" is Monday
    ("@monthly", ["monthly"]),
    ("@yearly", ["yearly"]),
    ("@annually", ["yearly"]),
]


@pytest.mark.parametrize("expr, want", ONCALENDAR)
def test_oncalendar(expr, want):
    assert oncalendar(expr) == want


def _systemd_runs(specs: list[str], count: int) -> list[datetime]:
    """The next ``count`` elapses of a timer with these OnCalendar= values, per systemd-analyze."""
    r = subprocess.run(["systemd-analyze", "calendar", f"--iterations={count}", *specs],
                       capture_output=True, text=True, timeout=30, env={**os.environ, "TZ": "UTC"})
    assert r.returncode == 0, f"systemd-analyze rejected {specs}:\n{r.stdout}{r.stderr}"
    runs = set()
    for line in r.stdout.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "Next elapse" or key.startswith("Iter. #"):
            runs.add(datetime.strptime(" ".join(value.split()[1:3]), "%Y-%m-%d %H:%M:%S"))
    return sorted(runs)[:count]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (Debian: systemd)")
@pytest.mark.parametrize("expr", [e for e, _ in ONCALENDAR])
def test_systemd_analyze_accepts_the_timer_and_agrees_with_cron(expr):
    """systemd parses every value, and its next elapses are cron's next runs (per croniter).

    Both sides in UTC, so a daylight-saving switch near the test run cannot make them differ."""
    before = next_runs(expr, 5, utc=True)
    got = _systemd_runs(oncalendar(expr), 5)
    after = next_runs(expr, 5, utc=True)  # a boundary may pass while systemd-analyze runs
    assert got in (before, after), f"{expr}: systemd {got} vs cron {before}"


@pytest.mark.parametrize("bad, field", [
    ("99 2 * * *", "minute"),
    ("a b c d e", "minute"),
    ("0 24 * * *", "hour"),
    ("0 0 32 * *", "day-of-month"),
    ("0 0 * 13 *", "month"),
    ("0 0 * FOO *", "month"),
    ("0 0 * * 8", "day-of-week"),
    ("0 0 * * MON-FOO", "day-of-week"),
    ("*/0 * * * *", "minute"),
    ("30-10 * * * *", "minute"),
    ("0 0 * * FRI-MON", "day-of-week"),
    ("5/10 * * * *", "minute"),
    ("0 0 L * *", "day-of-month"),
    ("0 0 * * 1#2", "day-of-week"),
    ("0 0 ? * *", "day-of-month"),
    ("H 0 * * *", "minute"),
])
def test_bad_cron_names_the_field(bad, field):
    with pytest.raises(UserError, match=f"the {field} field"):
        validate_cron(bad)


@pytest.mark.parametrize("bad", ["0 2 * *", "every day", "0 2 * * * *", "0;rm -rf / * * * *", ""])
def test_bad_cron(bad):
    with pytest.raises(UserError, match="5-field"):
        validate_cron(bad)


@pytest.mark.parametrize("bad, match", [
    ("0 0 30 2 *", "never matches"),
    ("@reboot", "not a time schedule"),
    ("0 0 */2 * MON", "disagree"),
])
def test_cron_that_schedulers_would_not_run_as_written(bad, match):
    with pytest.raises(UserError, match=match):
        validate_cron(bad)


def test_macros_and_next_runs():
    assert validate_cron("@daily") == validate_cron("@DAILY") == ["0", "0", "*", "*", "*"]
    now = datetime(2025, 1, 1, 12, 34, 56)  # a Wednesday
    assert next_runs("0 9-17 * * MON", 3, now=now) == [datetime(2025, 1, 6, h) for h in (9, 10, 11)]
    assert next_runs("0 0 1 * MON", 3, now=now) == [datetime(2025, 1, 6), datetime(2025, 1, 13), datetime(2025, 1, 20)]
    assert next_runs("5-5 * * * *", 1, now=now) == [datetime(2025, 1, 1, 13, 5)]  # 5-5 is minute 5, not "every minute"
    assert next_runs("@weekly", 1, now=now) == [datetime(2025, 1, 5)]


def test_schedule_command_prints_next_runs_and_rejects_bad_cron_with_exit_2(tmp_path):
    cfg = tmp_path / "audit.yaml"
    cfg.write_text("name: x\n")
    r = subprocess.run([sys.executable, "-m", "rai_audit", "schedule", str(cfg), "--cron", "0 9-17 * * MON",
                        "--format", "systemd"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "OnCalendar=Mon *-*-* 09..17:00:00" in r.stdout
    # the next runs depend on when the test runs (on a Monday at noon they are 13:00, 14:00, ...),
    # so each listed run is checked against the cron instead of expecting 09:00 among them
    line = next(x for x in r.stderr.splitlines() if x.startswith("# next runs (local time"))
    runs = re.findall(r"(\w{3}) (\d{4}-\d{2}-\d{2}) (\d{2}):(\d{2})", line.split(": ", 1)[1])
    when = [(date, hour, minute) for _, date, hour, minute in runs]
    assert len(when) >= 2 and all(a < b for a, b in zip(when, when[1:])), line  # increasing, no repeats
    assert all(day == "Mon" and 9 <= int(hour) <= 17 and minute == "00" for day, _, hour, minute in runs), line
    r = subprocess.run([sys.executable, "-m", "rai_audit", "schedule", str(cfg), "--cron", "99 2 * * *"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "the minute field '99'" in r.stderr and "Traceback" not in r.stderr


def test_systemd_and_kubernetes(tmp_path):
    units = systemd(tmp_path / "a.yaml", "0 2 * * *", [], "nightly")
    assert set(units) == {"rai-audit-nightly.service", "rai-audit-nightly.timer"}
    assert "OnCalendar=*-*-* 02:00:00" in units["rai-audit-nightly.timer"]
    assert "ExecStart=" in units["rai-audit-nightly.service"]
    two = systemd(tmp_path / "a.yaml", "0 0 1 * MON", [], "n")["rai-audit-n.timer"]
    assert "OnCalendar=*-*-01 00:00:00\nOnCalendar=Mon *-*-* 00:00:00\n" in two
    k = yaml.safe_load(kubernetes(tmp_path / "a.yaml", "0 2 * * *", [], "nightly", "rai-audit:0.1"))
    assert k["kind"] == "CronJob" and k["spec"]["schedule"] == "0 2 * * *"
    assert k["spec"]["concurrencyPolicy"] == "Forbid"


AWKWARD = [
    "--notify", "curl -d '{\"a\": \"b\"}' https://x.example/hook?k=v#frag",
    'say "hi"', "it's", "key: value", "# not a comment", "line one\nline two", "tab\there",
    "ünïcødé ✓ 監査", "-", "--", "-x", "- item", "*", "&anchor", "!tag", "@at", "%pct", "{a: 1}", "[1, 2]",
    "yes", "no", "null", "~", "0x10", "1e3", "012", "", " padded ", "trailing\\", "|", ">",
]


def test_kubernetes_yaml_round_trips_awkward_arguments(tmp_path):
    cfg = tmp_path / "it's: #odd.yaml"
    for cron in ("*/15 * * * *", "@daily", "0 9-17 * * MON-FRI"):
        doc = yaml.safe_load(kubernetes(cfg, cron, AWKWARD, "nightly", "registry.example.org/rai-audit:0.1 # tag"))
        container = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["--quiet", "run", f"/config/{cfg.name}", *AWKWARD]
        assert container["image"] == "registry.example.org/rai-audit:0.1 # tag"
        assert doc["spec"]["schedule"] == " ".join(validate_cron(cron))


def test_notify_command_gets_json_on_stdin(tmp_path):
    out = tmp_path / "got.json"
    assert notify(f"cat > {out}", {"verdict": "fail", "n": 3})
    assert json.loads(out.read_text()) == {"n": 3, "verdict": "fail"}


def test_notify_failures_are_reported_not_raised():
    assert notify("exit 3", {"a": 1}) is False
    assert notify(None, {"a": 1}) is False


class _Hook:
    """A webhook receiver on 127.0.0.1: ``plan`` gives the status for each request in turn (the
    last one repeats); ``None`` means hang without answering until the test ends."""

    def __init__(self, plan):
        self.plan, self.requests, self.accepted = list(plan), 0, []
        self.release = threading.Event()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = hook.plan[min(hook.requests, len(hook.plan) - 1)]
                hook.requests += 1
                if status is None:
                    hook.release.wait(30)
                    return
                if 200 <= status < 300:
                    hook.accepted.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/SECRET"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_notify_webhook_on_loopback():
    with _Hook([204]) as hook:
        assert notify(hook.url, {"verdict": "error"}, timeout=10)
    assert hook.accepted == [{"verdict": "error"}] and hook.requests == 1


def test_notify_webhook_retries_5xx_and_delivers_once():
    with _Hook([503, 503, 204]) as hook:
        assert notify(hook.url, {"verdict": "fail"}, timeout=10) is True
    assert hook.requests == 3
    assert hook.accepted == [{"verdict": "fail"}]


@pytest.mark.parametrize("plan", [[503], [None]], ids=["always-503", "never-answers"])
def test_notify_webhook_gives_up_within_its_bound(plan, caplog):
    with _Hook(plan) as hook, caplog.at_level(logging.WARNING):
        start = time.monotonic()
        assert notify(hook.url, {"verdict": "fail"}, timeout=3) is False
        elapsed = time.monotonic() - start
    assert elapsed < 3 + 1.5, elapsed  # the bound, plus slack for a loaded CI machine
    assert hook.requests == 4 and hook.accepted == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("notification webhook" in w for w in warnings), warnings
    assert not any("SECRET" in w for w in warnings), warnings  # the URL's path is the credential


def test_notify_webhook_nothing_listening_gives_up_quietly(caplog):
    with caplog.at_level(logging.WARNING):
        start = time.monotonic()
        assert notify("http://127.0.0.1:9/hook", {"verdict": "error"}, timeout=2) is False
    assert time.monotonic() - start < 3
    assert any("notification webhook" in r.getMessage() for r in caplog.records)


def test_notify_does_not_retry_a_4xx():
    with _Hook([400, 204]) as hook:
        assert notify(hook.url, {"verdict": "fail"}, timeout=10) is False
    assert hook.requests == 1
