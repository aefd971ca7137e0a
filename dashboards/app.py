"""rai-audit dashboard: what changed between a base and a tuned model, down to the items.

Entry point for ``streamlit run dashboards/app.py`` (``rai-audit dashboard`` does that with the
store URL in ``RAI_AUDIT_DB``). One file per page under ``app_pages/``; all reads go through
:mod:`dashboards.queries` (the store API, cached).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `streamlit run` puts only dashboards/ on the path
    sys.path.insert(0, str(_ROOT))

from dashboards import queries as q  # noqa: E402

st.set_page_config(page_title="rai-audit", layout="wide")

# not "pages/": a folder of that name beside the entry script switches Streamlit to its legacy
# directory mode, which runs page files without this script (no navigation, no sidebar)
PAGES = Path(__file__).resolve().parent / "app_pages"
nav = st.navigation([
    st.Page(PAGES / "runs.py", title="Runs", default=True),
    st.Page(PAGES / "compare.py", title="Compare"),
    st.Page(PAGES / "subgroups.py", title="Subgroups"),
    st.Page(PAGES / "items.py", title="Items"),
    st.Page(PAGES / "trends.py", title="Trends"),
    st.Page(PAGES / "trajectory.py", title="Trajectory"),
    st.Page(PAGES / "reports.py", title="Reports"),
])

with st.sidebar:
    try:
        st.caption(f"Store: {q.display_url(q.store_url())}")
    except Exception as e:  # noqa: BLE001 - the page shows the full message
        st.caption(f"Store unavailable: {type(e).__name__}")
    if st.button("Refresh", help="Re-read the store now (lists refresh by themselves every few seconds)"):
        q.clear()

nav.run()
