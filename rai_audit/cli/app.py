"""The ``rai-audit`` Typer application: the root options, and :func:`main`, the console script,
which turns every outcome into an exit code (see :mod:`rai_audit.cli`)."""

from __future__ import annotations

import logging
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
    "70 internal error (-v shows the traceback), 130 interrupted (re-run the same command to resume).",
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
    if hasattr(signal, "SIGPIPE"):  # `rai-audit show latest | head` ends quietly, not with exit 1
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        code = app(args=argv, prog_name="rai-audit", standalone_mode=False)
        code = code if isinstance(code, int) else 0
        if code == INTERRUPTED:  # typer turns Ctrl+C into Exit(130) on its own, silently
            _interrupted()
        return code
    except SystemExit as e:
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
    except Exception as e:  # noqa: BLE001 - a bug: one line by default, the traceback with -v
        if state.get("verbose"):
            import traceback

            traceback.print_exc()
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

