"""Start the dashboard: ``rai-audit dashboard [--db URL] [--host] [--port]`` calls
:func:`run_dashboard`.

The store URL travels to the Streamlit process in ``RAI_AUDIT_DB``. The server binds to
127.0.0.1 unless told otherwise: audit results (and the generated text in them) are not for the
whole network by default, so a non-loopback host prints a warning.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def command(host: str = "127.0.0.1", port: int = 8501, headless: bool = True) -> list[str]:
    """The ``streamlit run`` command line (usage stats off, no file watcher), through
    :mod:`dashboards.serve` which imports the heavy libraries before the server reports healthy."""
    return [
        sys.executable, "-m", "dashboards.serve",
        "--server.address", host, "--server.port", str(int(port)),
        "--server.headless", "true" if headless else "false",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--server.runOnSave", "false",
        "--client.toolbarMode", "minimal",
    ]


def run_dashboard(db: str | None, host: str = "127.0.0.1", port: int = 8501, headless: bool = True) -> int:
    """Run the dashboard in the foreground until it exits; returns its exit code.

    ``db``: store URL or SQLite path (None: ``RAI_AUDIT_DB`` or the store's default).
    """
    if not is_loopback(host):
        print(
            f"warning: the dashboard will listen on {host}:{port}, reachable from other machines. It has no login "
            "and shows audit results and model outputs; bind to 127.0.0.1 (the default) unless you mean to share it.",
            file=sys.stderr,
        )
    env = dict(os.environ)
    if db is not None:
        env["RAI_AUDIT_DB"] = str(db)
    root = str(APP.parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    print(f"rai-audit dashboard: http://{host}:{port}  (Ctrl+C to stop)", file=sys.stderr)
    return serve_until_stopped(command(host, port, headless), env)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the kernel sends the server SIGTERM if this launcher dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the signal handlers below still stop the child
        pass


def serve_until_stopped(argv: list[str], env: dict[str, str], grace_s: float = 10.0) -> int:
    """Run the server child in the foreground; Ctrl+C, SIGTERM or SIGHUP to this process stop the
    child too (SIGTERM, then SIGKILL after ``grace_s``), so no server keeps holding the port.

    Returns 0 when stopped by a signal, else the child's exit code.
    """
    child = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    stopped: list[int] = []

    def stop(signum, _frame):
        stopped.append(signum)
        if child.poll() is None:
            child.terminate()

    handled = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, stop) for s in handled}
    try:
        while True:
            try:
                code = child.wait(timeout=grace_s if stopped else None)
                break
            except subprocess.TimeoutExpired:
                child.kill()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:
            child.kill()
            child.wait()
    return 0 if stopped else code


def main(argv: list[str] | None = None) -> int:
    """``python -m dashboards.launch [--db URL] [--host H] [--port N]`` (what the CLI wires up)."""
    import argparse

    ap = argparse.ArgumentParser(prog="rai-audit dashboard", description="Start the rai-audit Streamlit dashboard.")
    ap.add_argument("--db", default=None, help="store URL or SQLite path (default: RAI_AUDIT_DB or the default store)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8501)
    a = ap.parse_args(argv)
    return run_dashboard(a.db, a.host, a.port)


if __name__ == "__main__":
    sys.exit(main())
