"""Items: every item of a probe with both models' responses side by side, scores and parse
outcome; search and filters. Generated text is shown as plain text only (data frame cells and
code blocks), never rendered as Markdown or HTML."""

from __future__ import annotations

import streamlit as st

from dashboards import common, item_frames, run_labels
from rai_audit.report.escaping import md_escape

MAX_ROWS = 300  # rows sent to the browser at once; filters narrow the rest

st.title("Items")
url, runs = common.runs_or_stop()
ra, rb = common.pick_pair_or_stop(runs, "items")
probes = [p for p in ra.probes if p in rb.probes]
if not probes:
    st.info("These runs share no probe.")
    st.stop()

c1, c2 = st.columns([1, 2])
probe = c1.selectbox("Probe", probes, key="items_probe")
search = c2.text_input("Search prompt, responses or item id", key="items_search")
table = common.item_table(url, ra.run_id, rb.run_id, probe)
subgroups = sorted({p.strip() for s in table["subgroup"] for p in s.split(",") if p.strip()})
c3, c4, c5 = st.columns([2, 1, 1])
sel_sub = c3.multiselect("Subgroup", subgroups, key="items_subgroups")
flipped_only = c4.checkbox("Flipped only", key="items_flipped")
most_toxic = c5.checkbox("Most toxic first", key="items_toxic",
                         disabled=table["max toxicity B"].isna().all() and table["max toxicity A"].isna().all())
shown = item_frames.filter_items(table, search, sel_sub, flipped_only, most_toxic)
st.caption(f"{len(shown)} of {len(table)} items match" + (f"; the first {MAX_ROWS} are listed" if len(shown) > MAX_ROWS else "")
           + f". Flipped items in this probe: {(table['flip'] != '').sum()}.")
st.dataframe(shown.head(MAX_ROWS), hide_index=True, width="stretch", key="items_table")

if shown.empty:
    st.stop()
ids = list(shown["item_id"].head(MAX_ROWS))
item = st.selectbox("Item", ids, key="items_item")
row = shown[shown["item_id"] == item].iloc[0]
st.subheader("Prompt")
st.code(row["prompt"], language=None, wrap_lines=True)
left, right = st.columns(2)
for col, side, run in ((left, "A", ra), (right, "B", rb)):
    with col:
        st.markdown(f"**{side}**: {md_escape(run_labels.run_label(run))}")
        st.code(row[f"response {side}"] or "(no response)", language=None, wrap_lines=True)
        st.text(f"max toxicity: {row[f'max toxicity {side}'] if row[f'max toxicity {side}'] is not None else '-'}\n"
                f"parsed: {row[f'parsed {side}'] if row[f'parsed {side}'] is not None else '(unparseable or n/a)'}\n"
                f"outcomes: {row[f'outcomes {side}'] or '-'}\n"
                f"error: {row[f'error {side}'] or '-'}")
if row["flip"]:
    st.text(f"flip: {row['flip']}")
