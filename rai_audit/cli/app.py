"""The ``rai-audit`` Typer application: the root options, and :func:`main`, the console script,
which turns every outcome into an exit code (see :mod:`rai_audit.cli`)."""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
from typing import Any

import typer

from rai_audit import __version__
from rai_audit.errors import EXIT_INTERNAL, EXIT_USAGE, INTERRUPTED, UserError

app = typer.Typer(
    name="rai-audit",
    help="Audit a language model's toxicity and social bias before and after instruction finetuning.\n\n"
    "Exit codes: 0 pass/success, 1 gate failed, 2 usage or input error, 3 gate inconclusive, "
    "70 internal error (-v shows the traceback), 130 interrupted (re-run the same command to resume), "
    "141 standard output closed by its reader (as in `rai-audit runs | head`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: The root options of this invocation (--quiet, --verbose), for the commands.
state: dict[str, Any] = {"quiet": False, "verbose": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rai-audit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars; only warnings and errors on stderr."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging on stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    state["quiet"] = quiet
    state["verbose"] = verbose
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "transformers", "alembic", "absl", "jax", "orbax", "datasets",
                  "weasyprint", "fontTools"):  # WeasyPrint logs a line per page at INFO; -v shows them
        logging.getLogger(noisy).setLevel(level if verbose else max(level, logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    # typer 0.29 vendors click; its base classes are exported here as typer.Exit, typer.Abort
    # and the usage errors' common base, typer.BadParameter.__mro__'s ClickException.
    click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    stdout_at_start = _stdout_identity()
    try:
        code = app(args=argv, prog_name="rai-audit", standalone_mode=False)
        code = code if isinstance(code, int) else 0
        sys.stdout.flush()  # a reader that went away shows here, inside the handlers below
        if code == INTERRUPTED:  # typer turns Ctrl+C into Exit(130) on its own, silently
            _interrupted()
        return code
    except SystemExit as e:
        if isinstance(e.__context__, BrokenPipeError):  # Typer answers a broken pipe with sys.exit(1)
            return _broken_pipe(e.__context__, stdout_at_start)
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
    except typer.Exit as e:
        return e.exit_code
    except click_error as e:  # bad flags or arguments: click's own message, exit 2
        e.show()
        return EXIT_USAGE
    except UserError as e:
        print(f"rai-audit: error: {e}", file=sys.stderr)
        return e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        _interrupted()
        return INTERRUPTED
    except BrokenPipeError as e:
        return _broken_pipe(e, stdout_at_start)
    except Exception as e:  # noqa: BLE001 - a bug: one line by default, the traceback with -v
        return _internal_error(e)


#: What a shell reports for a tool that a closed pipe stopped (128 + SIGPIPE), as ``yes | head`` does.
CLOSED_PIPE = 128 + getattr(signal, "SIGPIPE", 13)


def _stdout_identity() -> tuple[int, int] | None:
    """(device, inode) of the file behind standard output, or None where it has no descriptor."""
    try:
        st = os.fstat(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _stdout_reader_gone(at_start: tuple[int, int] | None = None) -> bool:
    """Whether standard output's reader closed it (``rai-audit runs | head``): the pipe or socket
    polls as failed, or Rich, meeting the broken pipe first, already pointed descriptor 1 at
    /dev/null (its ``Console.on_broken_pipe``), so it is no longer the file it was at the start.

    Why not restore SIGPIPE's default action, as many Unix tools do: it holds for the whole process,
    and an audit's long runs write to other pipes and sockets too (webhooks, checkpointing threads'
    wake-up sockets); one peer that closes first would then kill the audit without a word, the
    store's write half done. Python's own disposition turns each into an exception its owner handles,
    and only standard output's reader going away ends the command quietly."""
    now = _stdout_identity()
    if now is None:
        return False
    st = os.stat(os.devnull)
    if at_start is not None and now != at_start and now == (st.st_dev, st.st_ino):
        return True
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows)
        return False


def _broken_pipe(e: BrokenPipeError, stdout_at_start: tuple[int, int] | None) -> int:
    for name in ("stdout", "stderr"):  # undo Typer's flush-pacifying wrappers: main() may run again in-process
        stream = getattr(sys, name)
        setattr(sys, name, getattr(stream, "wrapped", stream) if type(stream).__name__ == "PacifyFlushWrapper" else stream)
    if not _stdout_reader_gone(stdout_at_start):
        return _internal_error(e)  # a socket or a child's pipe, not `| head`: a bug to report
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at the exit's flush
    return CLOSED_PIPE


def _internal_error(e: BaseException) -> int:
    if state.get("verbose"):
        import traceback

        traceback.print_exception(e)
    where = _origin(e)
    print(f"rai-audit: internal error: {type(e).__name__}: {e}{where}. This is a bug in rai-audit, not in "
          f"your input; re-run with -v for the traceback and report it (exit {EXIT_INTERNAL}).", file=sys.stderr)
    return EXIT_INTERNAL


def _interrupted() -> None:
    print("rai-audit: interrupted. Completed items are saved; re-run the same command to resume.", file=sys.stderr)


def _origin(e: BaseException) -> str:
    """" (in module.function)" of the frame that raised, for the one-line internal-error message."""
    tb = e.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    module = tb.tb_frame.f_globals.get("__name__", "?")
    return f" (in {module}.{code.co_name})"

