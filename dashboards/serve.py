"""``python -m dashboards.serve [streamlit run options]``: Streamlit's own CLI, after importing
the heavy libraries the pages use.

Why: Streamlit imports a page's modules on the first browser session, so the first visitor
would wait for pandas, Altair, SQLAlchemy and the store (seconds on a busy machine). Importing
them here, before the server reports healthy, moves that cost to start-up and keeps the first
paint fast. Streamlit runs the app in this same process, so the imports are reused.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"


def preload() -> None:
    import altair  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    import rai_audit.comparison  # noqa: F401
    import rai_audit.gate  # noqa: F401
    import rai_audit.store  # noqa: F401


def main(argv: list[str]) -> int:
    preload()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *argv]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
