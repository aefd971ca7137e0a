"""Where probe work runs: "local" (this process) or "ray" (a Ray cluster).

Every executor implements :class:`~rai_audit.executors.base.Executor` (``run(jobs, ctx)``) on the
shared pieces of :mod:`rai_audit.execution`; none imports the runner. :func:`get_executor` builds
one by name: :class:`~.local.LocalExecutor` needs nothing beyond the base install;
:class:`~.ray.RayExecutor` (:mod:`.ray`) is imported only when asked for, so ``import rai_audit``
never imports Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rai_audit.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from rai_audit.executors.base import Executor

EXECUTORS: tuple[str, ...] = ("local", "ray")


def check_executor(name: str) -> None:
    """UserError unless ``name`` is a known executor whose dependencies are installed."""
    if name not in EXECUTORS:
        raise UserError(f"Unknown executor {name!r}: choose one of {', '.join(EXECUTORS)} (--executor).")
    if name == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UserError(
                "The Ray executor needs Ray, which is not installed. Install the extra with "
                "`pip install 'rai-audit[ray]'`, or run with --executor local."
            )


def get_executor(name: str, options: dict[str, Any] | None = None) -> "Executor":
    """The executor called ``name`` with its ``options`` (``executor_options``: the keyword
    arguments of :func:`rai_audit.executors.ray.run_jobs_on_ray`; the local executor has none and
    ignores them). Raises UserError for an unknown or uninstalled executor."""
    check_executor(name)
    if name == "local":
        from rai_audit.executors.local import LocalExecutor

        return LocalExecutor()
    from rai_audit.executors.ray import RayExecutor

    return RayExecutor(**(options or {}))
