"""Scheduling text for unattended audits: crontab line, systemd service + timer, Kubernetes CronJob.

rai-audit does not run a long-lived scheduler of its own: ``rai-audit run audit.yaml`` is the unit
a scheduler calls, and ``rai-audit schedule`` writes the scheduler's configuration for it. The
audit lock in the store keeps overlapping invocations from running the same audit twice, and
``rai-audit run`` skips an unchanged model with an unchanged config, so a frequent schedule is
cheap.

One cron expression feeds three schedulers that do not read the same language, so it is checked
in two layers before anything is printed:

- croniter (a maintained cron library) decides whether each field's values exist (minute 0-59,
  month names, steps > 0, ...) and computes the next run times we print, so what the user sees
  is what a cron daemon would do, not what a hand-written regex guessed.
- On top of that we accept only the syntax that Vixie/cronie cron, systemd's ``OnCalendar=``
  (after conversion) and Kubernetes (robfig/cron) all understand: ``*``, numbers, month and
  weekday names, lists, ranges and steps, plus the ``@hourly``-style macros. croniter's
  extensions (``L``, ``W``, ``#``, ``?``, ``H``, seconds/year fields) would be accepted by one
  scheduler and silently mean something else, or nothing, in another.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rai_audit.errors import UserError

#: cron's macros -> (the 5 fields they stand for, systemd's OnCalendar for the same times).
#: systemd's own ``weekly`` is *Monday* 00:00, cron's ``@weekly`` is Sunday 00:00, so that one is
#: spelled out; the others are systemd's shorthands with exactly cron's meaning.
MACROS: dict[str, tuple[str, str]] = {
    "@yearly": ("0 0 1 1 *", "yearly"),
    "@annually": ("0 0 1 1 *", "yearly"),
    "@monthly": ("0 0 1 * *", "monthly"),
    "@weekly": ("0 0 * * 0", "Sun *-*-* 00:00:00"),
    "@daily": ("0 0 * * *", "daily"),
    "@midnight": ("0 0 * * *", "daily"),
    "@hourly": ("0 * * * *", "hourly"),
}

_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
#: (name in messages, lowest, highest, names) per field, in cron's order. Day-of-week 7 is Sunday.
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)
_ITEM = re.compile(r"^(?:(?P<star>\*)|(?P<lo>[0-9]+|[A-Za-z]+)(?:-(?P<hi>[0-9]+|[A-Za-z]+))?)(?:/(?P<step>[0-9]+))?$")
#: Extensions of croniter (and Quartz/Jenkins) beyond the syntax every target scheduler reads.
_EXTENSION = re.compile(r"[#?]|(?<![A-Za-z])[HhLlWwRr](?![A-Za-z])|(?<=\d)[LlWw]|[LlWw](?=\d)")
#: systemd's weekday names in its own week order (Monday first); cron numbers Sunday 0.
_SYSTEMD_WEEK = ((1, "Mon"), (2, "Tue"), (3, "Wed"), (4, "Thu"), (5, "Fri"), (6, "Sat"), (0, "Sun"))

SYNTAX_HELP = ("Use 5 fields (minute hour day-of-month month day-of-week) of numbers, '*', "
               "lists (1,15), ranges (9-17, MON-FRI), steps (*/15, 0-30/10) and JAN-DEC / SUN-SAT names, "
               "or one of " + ", ".join(MACROS) + "; e.g. '0 2 * * *' for 02:00 every day.")


@dataclass(frozen=True)
class _Item:
    """One comma-separated element of a field, numbers resolved: ``lo-hi/step`` or ``*/step``."""

    star: bool
    lo: int
    hi: int
    step: int


@dataclass(frozen=True)
class Cron:
    """A validated cron expression."""

    expr: str                           # as given (stripped), for descriptions
    fields: tuple[str, ...]             # the 5 fields cron and Kubernetes get (macros expanded)
    items: tuple[tuple[_Item, ...], ...]
    macro: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.fields)


def _croniter():
    try:
        from croniter import croniter
    except ImportError as e:  # a core dependency; only a broken install gets here
        raise UserError(f"rai-audit schedule needs the croniter package ({e}); install it: pip install croniter") from None
    return croniter


def _bad(expr: str, why: str) -> UserError:
    return UserError(f"--cron {expr!r}: {why}. {SYNTAX_HELP}")


def _value(tok: str, names: dict[str, int], expr: str, field: str) -> int:
    if tok.isdigit():
        return int(tok)
    try:
        return names[tok.lower()]
    except KeyError:
        raise _bad(expr, f"the {field} field has an unknown name {tok!r}") from None


def _parse_field(index: int, text: str, expr: str) -> tuple[_Item, ...]:
    """Check one field: croniter says whether its values exist, then our portable-subset rules."""
    field, lo_limit, hi_limit, names = _FIELDS[index]
    if _EXTENSION.search(text):
        raise _bad(expr, f"the {field} field {text!r} uses croniter/Quartz syntax (L, W, #, ?, H) that cron, "
                         "systemd and Kubernetes do not all read the same way")
    croniter = _croniter()
    probe = ["*"] * 5
    probe[index] = text
    try:
        croniter.expand(" ".join(probe))
    except Exception as e:  # noqa: BLE001 - croniter raises several ValueError/TypeError subclasses
        detail = re.sub(r"^\[[^\]]*\]\s*|is not acceptable[,.]?\s*|\s*in field \d", "", str(e).strip().splitlines()[-1])
        detail = f" ({detail.strip(' .,')})" if detail.strip(" .,") else ""
        takes = f"{lo_limit}-{hi_limit}" + (" or names" if names else "")
        raise _bad(expr, f"the {field} field {text!r} is not valid{detail}; {field} takes {takes}") from None
    items = []
    for part in text.split(","):
        m = _ITEM.match(part)
        if not m or not names and not all((m[g] or "0").isdigit() for g in ("lo", "hi")):
            raise _bad(expr, f"the {field} field {text!r} uses {part!r}, which cron, systemd and Kubernetes do not all read the same way")
        step = int(m["step"]) if m["step"] else 1
        if step == 0:
            raise _bad(expr, f"the {field} field {text!r} has a step of 0")
        if m["star"]:
            items.append(_Item(True, lo_limit, hi_limit if index != 4 else 6, step))
            continue
        lo = _value(m["lo"], names, expr, field)
        hi = _value(m["hi"], names, expr, field) if m["hi"] else lo
        if m["step"] and not m["hi"]:
            raise _bad(expr, f"the {field} field {text!r} has a step without a range ({part!r}); "
                             f"write {m['lo']}-{hi_limit}/{step}, which every cron reads the same way")
        if not (lo_limit <= lo <= hi_limit and lo_limit <= hi <= hi_limit):
            raise _bad(expr, f"the {field} field {text!r} is out of range ({field} takes {lo_limit}-{hi_limit})")
        if lo > hi:
            hint = " (Sunday is 0 or 7: SAT-SUN is 6-7)" if index == 4 else ""
            raise _bad(expr, f"the {field} field {text!r} has a range that runs backwards ({part!r}); "
                             f"cron and Kubernetes reject ranges that wrap around{hint}")
        items.append(_Item(False, lo, hi, step))
    return tuple(items)


def parse_cron(expr: str) -> Cron:
    """Validate ``expr`` (5 cron fields or an ``@`` macro); UserError naming the bad field otherwise."""
    text = " ".join(expr.split())
    macro = None
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise _bad(expr, f"{text!r} is not a time schedule rai-audit can write for cron, systemd and Kubernetes")
        macro = text.lower()
        text = MACROS[macro][0]
    fields = text.split()
    if len(fields) != 5:
        raise _bad(expr, f"this is not a 5-field cron expression (it has {len(fields)} field{'s' * (len(fields) != 1)})")
    items = tuple(_parse_field(i, f, expr) for i, f in enumerate(fields))
    dom, dow = fields[2], fields[4]
    if dom != "*" and dow != "*" and (dom.startswith("*") or dow.startswith("*")):
        # Both day fields restricted means "either matches" in POSIX cron, croniter and Kubernetes,
        # but Vixie/cronie treat a field that merely starts with '*' (like */2) as unrestricted
        # and then require both: the same line would run on different days per scheduler.
        raise _bad(expr, "the day-of-month and day-of-week fields are both restricted and one starts with '*'; "
                         "cron implementations disagree on whether that means either or both days. "
                         "Write the step as a range (1-31/2) or leave one of them '*'")
    cron = Cron(expr=" ".join(expr.split()), fields=tuple(fields), items=items, macro=macro)
    next_runs(cron, 1)  # raises for a date that never comes (30 February)
    return cron


def validate_cron(expr: str) -> list[str]:
    """The 5 fields of a valid cron expression (macros expanded); UserError otherwise."""
    return list(parse_cron(expr).fields)


def _croniter_expr(cron: Cron) -> str:
    """The expression in plain numbers for croniter. Written out from our parse because croniter
    reads an equal range such as ``5-5`` as the whole field, where cron reads it as 5."""
    def item(i: int, it: _Item) -> str:
        if it.star:
            return "*" if it.step == 1 else f"*/{it.step}"
        base = str(it.lo) if it.lo == it.hi else f"{it.lo}-{it.hi}"
        return base if it.step == 1 or it.lo == it.hi else f"{base}/{it.step}"
    return " ".join(",".join(item(i, it) for it in items) for i, items in enumerate(cron.items))


def next_runs(cron: str | Cron, count: int = 3, *, utc: bool = False, now: datetime | None = None) -> list[datetime]:
    """The next ``count`` run times after ``now``, as naive wall-clock times.

    cron and systemd timers match the wall clock of the machine's local time zone, so local naive
    times are what they do; the Kubernetes controller matches in its own zone, usually UTC
    (``utc=True``) unless the CronJob sets ``spec.timeZone``.
    """
    if not isinstance(cron, Cron):
        cron = parse_cron(cron)
    if now is None:
        now = datetime.now(timezone.utc).replace(tzinfo=None) if utc else datetime.now()
    croniter = _croniter()
    it = croniter(_croniter_expr(cron), now.replace(second=0, microsecond=0))
    try:
        return [it.get_next(datetime) for _ in range(count)]
    except Exception:  # noqa: BLE001 - CroniterBadDateError: no match within croniter's search window
        raise _bad(cron.expr, "it never matches a date (a day that does not exist in the month, like 30 February)") from None


def next_runs_note(cron: str | Cron, count: int = 3, *, utc: bool = False) -> str:
    """A comment line with the next run times, e.g. for the schedule command's output."""
    runs = next_runs(cron, count, utc=utc)
    zone = "UTC, the Kubernetes controller's usual time zone" if utc else f"local time, {datetime.now().astimezone().tzname()}"
    return f"# next runs ({zone}): " + ", ".join(r.strftime("%a %Y-%m-%d %H:%M") for r in runs)


def _calendar_field(items: tuple[_Item, ...]) -> str:
    """One date/time component of OnCalendar: ``*``, ``09``, ``09..17``, ``00/15``, ``01..15/2``."""
    out = []
    for it in items:
        if it.star:
            if it.step == 1:
                return "*"
            out.append(f"{it.lo:02d}/{it.step}")
        elif it.lo == it.hi:
            out.append(f"{it.lo:02d}")
        else:
            out.append(f"{it.lo:02d}..{it.hi:02d}" + (f"/{it.step}" if it.step > 1 else ""))
    return ",".join(out)


def _calendar_weekdays(items: tuple[_Item, ...]) -> str:
    """OnCalendar weekdays (no repetition there, so steps are expanded); '' means every day."""
    days = set()
    for it in items:
        days.update(d % 7 for d in range(it.lo, it.hi + 1, it.step))
    if len(days) == 7:
        return ""
    runs: list[list[str]] = []
    prev = None
    for pos, (num, name) in enumerate(_SYSTEMD_WEEK):
        if num in days:
            if prev is not None and prev == pos - 1:
                runs[-1].append(name)
            else:
                runs.append([name])
            prev = pos
    return ",".join(r[0] if len(r) == 1 else f"{r[0]}..{r[-1]}" if len(r) > 2 else ",".join(r) for r in runs)


def oncalendar(cron: str | Cron) -> list[str]:
    """systemd ``OnCalendar=`` values (each accepted by ``systemd-analyze calendar``) for ``cron``.

    cron runs when day-of-month *or* day-of-week matches if both are restricted, but one
    OnCalendar expression requires both, so that case becomes two values (a timer takes several
    ``OnCalendar=`` lines and fires on any of them).
    """
    if not isinstance(cron, Cron):
        cron = parse_cron(cron)
    if cron.macro:
        return [MACROS[cron.macro][1]]
    minute, hour, dom, month, dow = cron.items
    time = f"{_calendar_field(hour)}:{_calendar_field(minute)}:00"
    weekdays = _calendar_weekdays(dow)
    months = _calendar_field(month)
    on_weekdays = f"{weekdays + ' ' if weekdays else ''}*-{months}-* {time}"
    if cron.fields[2] != "*" and cron.fields[4] != "*":
        return [f"*-{months}-{_calendar_field(dom)} {time}", on_weekdays]
    if cron.fields[4] != "*":
        return [on_weekdays]
    return [f"*-{months}-{_calendar_field(dom)} {time}"]


def command_line(config: Path, extra: list[str]) -> str:
    """The shell command a scheduler runs, every word quoted for /bin/sh."""
    found = shutil.which("rai-audit")
    exe = [found] if found else [sys.executable, "-m", "rai_audit"]
    return shlex.join([*exe, "--quiet", "run", str(config.resolve()), *extra])


def crontab(config: Path, cron: str, extra: list[str], log: Path | None = None) -> str:
    """A crontab line; macros are written out as their 5 fields, which every cron daemon reads."""
    parsed = parse_cron(cron)
    log_part = f" >>{shlex.quote(str(log))} 2>&1" if log else ""
    macro = f" ({parsed.macro})" if parsed.macro else ""
    return (
        f"# rai-audit: {config.name}{macro} (exit 1 = gate failed, 3 = inconclusive, 2 = error; see rai-audit runs)\n"
        f"{parsed.text} {command_line(config, extra)}{log_part}\n"
    )


def systemd(config: Path, cron: str, extra: list[str], name: str) -> dict[str, str]:
    parsed = parse_cron(cron)
    service = (
        f"[Unit]\nDescription=rai-audit {name}\nAfter=network-online.target\n\n"
        f"[Service]\nType=oneshot\nWorkingDirectory={config.resolve().parent}\n"
        f"ExecStart={command_line(config, extra)}\n"
        "# exit 1 means a regression gate failed: the unit shows as failed, which is what you want.\n"
    )
    calendar = "".join(f"OnCalendar={c}\n" for c in oncalendar(parsed))
    timer = (
        f"[Unit]\nDescription=Run rai-audit {name} on schedule ({parsed.expr})\n\n"
        f"[Timer]\n{calendar}Persistent=true\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {f"rai-audit-{name}.service": service, f"rai-audit-{name}.timer": timer}


def kubernetes(config: Path, cron: str, extra: list[str], name: str, image: str) -> str:
    """A CronJob manifest, emitted by ``yaml.safe_dump`` so any argument (quotes, colons, '#',
    newlines, a leading '-' or '*') comes back from the YAML parser exactly as given.

    ``concurrencyPolicy: Forbid`` and ``backoffLimit: 0`` keep one attempt at a time; the store's
    audit lock also prevents overlaps.
    """
    import yaml

    parsed = parse_cron(cron)
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": f"rai-audit-{name}"},
        "spec": {
            "schedule": parsed.text,
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": {
                "backoffLimit": 0,
                "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "rai-audit",
                        "image": image,
                        "command": ["rai-audit"],
                        "args": ["--quiet", "run", f"/config/{config.name}", *extra],
                        "env": [{"name": "RAI_AUDIT_DB",
                                 "valueFrom": {"secretKeyRef": {"name": "rai-audit-db", "key": "url"}}}],
                        "volumeMounts": [{"name": "config", "mountPath": "/config"}],
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": f"rai-audit-{name}"}}],
                }},
            }},
        },
    }
    return yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1_000_000)
