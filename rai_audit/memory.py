"""Give memory that the process freed back to the operating system at the audit's phase ends.

Why: glibc's ``malloc`` keeps freed heap memory for reuse instead of returning it, and a
finetune step leaves gigabytes of it behind. Measured on `rai-audit demo --quick`: once the JAX
finetune had returned (no live JAX arrays left) the process still held 3.5 GB, and every probe
after it ran on top of that; ``malloc_trim(0)`` brought it to 0.9 GB. The audit calls
:func:`return_freed_memory` after the finetune and after each model's probe run, so that a
long battery after a finetune, or the second model after the first, does not carry the
previous phase's peak. Elsewhere (macOS, musl, Windows) there is no trim to call and it only
collects garbage.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys

log = logging.getLogger(__name__)

_trim = None
if sys.platform.startswith("linux"):
    try:
        _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        _trim = None


def resident_bytes() -> int | None:
    """The process's resident set now (Linux ``/proc``), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def return_freed_memory(phase: str) -> None:
    """Collect unreachable objects, then hand the heap's free pages back (glibc ``malloc_trim``)."""
    before = resident_bytes()
    gc.collect()
    if _trim is not None:
        _trim(0)
    after = resident_bytes()
    if before is not None and after is not None:
        log.debug("after %s: resident %.2f GB -> %.2f GB", phase, before / 2**30, after / 2**30)
