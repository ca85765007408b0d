"""Compare studies: where their specs differ, and their layer curves overlaid on one figure."""

import pandas as pd
import streamlit as st

from backend.jobs import NETWORK_KINDS
from backend.specs import TREATMENTS
from ui import store
from ui.charts import SCORES, SHOWN_COLUMNS, layer_summary
from ui.compare import compare_figure, compare_table, highlight_differences, spec_difference
from ui.share import open_snapshot, share_button
from ui.state import PageState, flag, ints, joined, shown, strs
from ui.widgets import figure, job_table, study_choices

state = PageState("compare")
st.title("Compare studies")


def caption(score: str) -> str:
    return (f"Colour: treatment; line dash and marker: study; dashed grey: each study's baseB (the target trained "
            f"from scratch). Mean over seeds, band = 95% confidence interval of the mean (Student t). The score "
            f"is {SCORES[score]}.")


snapshot = open_snapshot("compare")
if snapshot is not None:
    rows = pd.DataFrame(snapshot.rows)
    summaries = {study: part.drop(columns="study") for study, part in rows.groupby("study", sort=False)}
    figure(compare_figure(summaries, snapshot.params["score"], strs(snapshot.params["treatments"])), "compare.chart",
           snapshot.caption)
    st.dataframe(rows.rename(columns=SHOWN_COLUMNS), hide_index=True)
    st.stop()
available = study_choices()
if len(available) < 2:
    st.info("Comparing needs two studies or more: queue another on the New study page.")
    st.stop()
chosen = st.multiselect("Studies (two or more)", list(available), format_func=available.get, key=state.bind(
    "studies", list(available)[:2], ints, lambda v: set(v) <= set(available), show=joined))
top = st.columns([2, 3, 2])
score = top[0].radio("Score", list(SCORES), format_func=SCORES.get,
                     key=state.bind("score", "final_accuracy", valid=SCORES.__contains__))
treatments = top[1].multiselect("Treatments", TREATMENTS, key=state.bind(
    "treatments", list(TREATMENTS), strs, lambda v: set(v) <= set(TREATMENTS), show=joined))
every = top[2].toggle("Show every field", key=state.bind("every", False, flag, show=shown),
                      help="The whole spec of each study, differing fields highlighted")
state.report()

if len(chosen) < 2:
    st.info("Choose two studies or more to compare them.")
else:
    labels = {study_id: available[study_id] for study_id in chosen}
    st.subheader("Spec difference")
    table = spec_difference({labels[i]: store.results().study_spec(i) or {} for i in chosen}, every=every)
    if table.empty:
        st.caption("The specs are identical: the studies differ only in when they ran.")
    else:
        st.caption("One row per spec field (dotted path); blank: the study's spec lacks the field. "
                   "Highlighted: the fields whose values differ.")
        st.dataframe(table.style.apply(highlight_differences, axis=None))

    st.subheader("Layer transfer, overlaid")
    summaries = {labels[i]: layer_summary(store.results().study_scores(i, kinds=NETWORK_KINDS), score)
                 for i in chosen}
    waiting = [label for label, summary in summaries.items() if summary.empty]
    if waiting:
        st.info(f"No finished job yet in {', '.join(waiting)}: its curves fill in as jobs land.")
    if len(waiting) < len(summaries):
        figure(compare_figure(summaries, score, treatments), "compare.chart", caption(score))
        rows = compare_table(summaries)
        job_table(rows.rename(columns=SHOWN_COLUMNS), "compare.table", None)
        share_button("compare", {"studies": joined(chosen), "score": score, "treatments": joined(treatments)},
                     rows.to_dict(orient="records"), caption(score), list(rows.rename(columns=SHOWN_COLUMNS)))
        st.download_button("Download the table (CSV)", rows.to_csv(index=False),
                           file_name=f"compare-{joined(chosen).replace(',', '-')}.csv")

state.sync()
