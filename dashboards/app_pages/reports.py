"""Reports: generate the HTML / PDF / Markdown / JSON report of a comparison (rai_audit.report)
and download it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from dashboards import common, queries as q
from rai_audit.report.escaping import md_escape

MIME = {"html": "text/html", "pdf": "application/pdf", "md": "text/markdown", "json": "application/json"}

st.title("Reports")
url, runs = common.runs_or_stop()
ra, rb = common.pick_pair_or_stop(runs, "reports")
comp = common.comparison_or_stop(ra, rb, "reports")
c1, c2 = st.columns(2)
policy = common.policy_or_audit(comp, "reports_policy", c1)
formats = c2.multiselect("Formats", list(MIME), default=["html", "md", "json"], key="reports_formats",
                         help="PDF needs WeasyPrint and takes a few seconds")
prepared_by = st.text_input("Prepared by (sign-off)", key="reports_prepared_by")

if st.button("Generate report", type="primary", key="reports_generate", disabled=not formats):
    from rai_audit.report import build_report, write_report

    gate = common.gate_for(comp, policy)
    try:
        with st.spinner("Building the report..."):
            report = build_report(q.get_store(url), comparison=comp, gate=gate,
                                  signoff={"prepared_by": prepared_by} if prepared_by else None)
            with tempfile.TemporaryDirectory() as tmp:
                paths = write_report(report, tmp, formats, stem=f"rai-audit-{comp['comparison_id'][:12]}")
                st.session_state["report_files"] = {fmt: (Path(p).name, Path(p).read_bytes()) for fmt, p in paths.items()}
    except Exception as e:  # noqa: BLE001 - e.g. WeasyPrint missing for PDF: say so, keep the page
        st.error(f"The report could not be written: {md_escape(type(e).__name__)}: {md_escape(e)}")

files = st.session_state.get("report_files", {})
if files:
    st.success(f"Report ready: {', '.join(files)}")
    cols = st.columns(len(files))
    for col, (fmt, (name, data)) in zip(cols, files.items()):
        col.download_button(f"Download {fmt.upper()}", data, file_name=name, mime=MIME[fmt], key=f"dl_{fmt}")
