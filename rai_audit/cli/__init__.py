"""The ``rai-audit`` command line.

Exit codes: 0 success (a gate passed), 1 a regression gate failed, 2 a usage, config or input
error (the message names the thing and the fix; no traceback), 3 a gate was inconclusive (the
CIs are too wide to rule a regression in or out), 70 an internal error (a bug: one line names it,
``-v`` shows the traceback), 130 interrupted (re-run the same command to resume), 141 standard
output closed by its reader (``rai-audit runs | head``). Logs and
progress go to stderr, results to stdout. Heavy modules (torch, transformers, JAX, probes) are imported inside the commands that
need them so that ``rai-audit --help`` stays fast.

Commands live in one module per group: :mod:`.runs` (probe, runs, show), :mod:`.models` (models,
finetune), :mod:`.comparisons` (compare, gate, report, verify), :mod:`.exports` (export), :mod:`.audits` (run, demo,
dashboard, schedule), :mod:`.trajectories` (trajectory list, show, gate, select) and :mod:`.db`; :mod:`.app` holds the application and :func:`main`,
:mod:`.common` what commands share. Importing them here registers the commands, in the order
``--help`` lists them.
"""

from rai_audit.cli.app import app, main

# Each import registers its commands with ``app``; this order is the order ``--help`` lists them.
from rai_audit.cli import runs, models, comparisons, exports, audits, trajectories, db  # noqa: E402, F401, I001

__all__ = ["app", "main"]
