"""Scheduling text for unattended audits: crontab line, systemd service + timer, Kubernetes CronJob.

rai-audit does not run a long-lived scheduler of its own: ``rai-audit run audit.yaml`` is the unit
a scheduler calls, and ``rai-audit schedule`` writes the scheduler's configuration for it. The
audit lock in the store keeps overlapping invocations from running the same audit twice, and
``rai-audit run`` skips an unchanged model with an unchanged config, so a frequent schedule is
cheap.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

from rai_audit.errors import UserError

_FIELD = re.compile(r"^[0-9*/,\-A-Za-z]+$")
_DOW = {"0": "Sun", "1": "Mon", "2": "Tue", "3": "Wed", "4": "Thu", "5": "Fri", "6": "Sat", "7": "Sun"}


def validate_cron(expr: str) -> list[str]:
    """Five whitespace-separated cron fields; UserError otherwise."""
    fields = expr.split()
    if len(fields) != 5 or not all(_FIELD.match(f) for f in fields):
        raise UserError(
            f"--cron {expr!r} is not a 5-field cron expression (minute hour day-of-month month day-of-week), "
            "e.g. '0 2 * * *' for 02:00 every day."
        )
    return fields


def _cron_to_oncalendar(fields: list[str]) -> str:
    """systemd OnCalendar for the common cron forms (numbers, '*', lists, '*/n' steps)."""
    minute, hour, dom, month, dow = fields

    def conv(f: str, width: int = 2) -> str:
        if f == "*":
            return "*"
        if f.startswith("*/"):
            return f"00/{f[2:]}" if width == 2 else f"*/{f[2:]}"
        return ",".join(p.zfill(width) if p.isdigit() else p for p in f.split(","))

    if "-" in dow or "/" in dow:
        raise UserError("Day-of-week ranges and steps cannot be converted to systemd OnCalendar; use a list (1,3,5) or --format cron.")
    days = "" if dow == "*" else ",".join(_DOW.get(d, d) for d in dow.split(",")) + " "
    return f"{days}*-{conv(month)}-{conv(dom)} {conv(hour)}:{conv(minute)}:00"


def command_line(config: Path, extra: list[str]) -> str:
    """The shell command a scheduler runs, every word quoted for /bin/sh."""
    found = shutil.which("rai-audit")
    exe = [found] if found else [sys.executable, "-m", "rai_audit"]
    return shlex.join([*exe, "--quiet", "run", str(config.resolve()), *extra])


def crontab(config: Path, cron: str, extra: list[str], log: Path | None = None) -> str:
    fields = validate_cron(cron)
    log_part = f" >>{shlex.quote(str(log))} 2>&1" if log else ""
    return (
        f"# rai-audit: {config.name} (exit 1 = gate failed, 3 = inconclusive, 2 = error; see rai-audit runs)\n"
        f"{' '.join(fields)} {command_line(config, extra)}{log_part}\n"
    )


def systemd(config: Path, cron: str, extra: list[str], name: str) -> dict[str, str]:
    fields = validate_cron(cron)
    service = (
        f"[Unit]\nDescription=rai-audit {name}\nAfter=network-online.target\n\n"
        f"[Service]\nType=oneshot\nWorkingDirectory={config.resolve().parent}\n"
        f"ExecStart={command_line(config, extra)}\n"
        "# exit 1 means a regression gate failed: the unit shows as failed, which is what you want.\n"
    )
    timer = (
        f"[Unit]\nDescription=Run rai-audit {name} on schedule ({cron})\n\n"
        f"[Timer]\nOnCalendar={_cron_to_oncalendar(fields)}\nPersistent=true\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {f"rai-audit-{name}.service": service, f"rai-audit-{name}.timer": timer}


def kubernetes(config: Path, cron: str, extra: list[str], name: str, image: str) -> str:
    validate_cron(cron)
    args = ", ".join(f'"{a}"' for a in ["--quiet", "run", f"/config/{config.name}", *extra])
    return f"""apiVersion: batch/v1
kind: CronJob
metadata:
  name: rai-audit-{name}
spec:
  schedule: "{cron}"
  concurrencyPolicy: Forbid          # the store's audit lock also prevents overlaps
  jobTemplate:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: rai-audit
              image: {image}
              command: ["rai-audit"]
              args: [{args}]
              env:
                - name: RAI_AUDIT_DB
                  valueFrom: {{secretKeyRef: {{name: rai-audit-db, key: url}}}}
              volumeMounts:
                - {{name: config, mountPath: /config}}
          volumes:
            - name: config
              configMap: {{name: rai-audit-{name}}}
"""
