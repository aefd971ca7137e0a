"""Errors a user can cause, kept apart from bugs.

A :class:`UserError` ends the CLI with its one-paragraph message and exit code 2, without a
traceback (docs/architecture.md, "Conventions": "Errors a user can cause ... end with a one-paragraph message naming the
thing and the fix, exit code 2, and nothing half-written in the store"). Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
#: A non-inferiority gate could not tell: the CI is too wide to rule a regression in or out.
#: CI pipelines that want "not shown safe" to block can treat 3 like 1.
EXIT_INCONCLUSIVE = 3
#: A bug (an unexpected exception): never 1, so it cannot be mistaken for a failed gate.
#: 70 is EX_SOFTWARE in sysexits.h.
EXIT_INTERNAL = 70
INTERRUPTED = 130


class UserError(Exception):
    """A problem the user can fix: bad config, missing file, unknown model, corrupt checkpoint.

    The message names the thing that is wrong and how to fix it.
    """

    exit_code = EXIT_USAGE


class DataError(UserError):
    """A benchmark file is missing or malformed; the message names the file and the layout."""


class ModifiedDataError(DataError):
    """A local benchmark file's sha256 differs from the hash its manifest pins (and the run did not
    allow modified data). Unlike a missing data set it is never skipped (``--skip-missing``): the
    files are there, they are just not the pinned release."""


class ModelLoadError(UserError):
    """A model reference cannot be resolved or loaded (offline hub id, corrupt weights, ...)."""


class StoreError(UserError):
    """The results store cannot be opened, is at the wrong schema version, or is unreachable."""


class ScorerError(Exception):
    """A scorer failed on some input. The runner records it as an error row, never as a score."""
