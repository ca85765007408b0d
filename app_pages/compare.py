"""Compare studies: where their specs differ, and their layer curves overlaid on one figure."""

import pandas as pd
import streamlit as st

from backend.jobs import NETWORK_KINDS
from backend.specs import TREATMENTS
from ui import presets, store
from ui.charts import PAIRED_SHOWN, SCORES, SHOWN_COLUMNS, layer_figure, layer_summary, paired_curves
from ui.compare import (
    compare_figure, compare_table, difference_caption, highlight_differences, paired_by_seed, spec_difference,
)
from ui.share import open_snapshot, share_button
from ui.state import PageState, flag, ints, joined, shown, strs
from ui.widgets import figure, job_table, study_choices

# Two presets made to be compared: the same sweep on a random and on a dissimilar split of the classes.
PAIR = ("yosinski-digits", "yosinski-digits-dissimilar")

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
    presets.empty_state("Comparing needs two studies or more.", PAIR, together=True)
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
# The two studies whose per-seed difference is drawn: bound here, so a bad link's warning shows with the others.
ends = [state.bind(name, chosen[k], int, chosen.__contains__) for k, name in enumerate(("minuend", "subtrahend"))
        if len(chosen) >= 2]
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
    scores = {i: store.results().study_scores(i, kinds=NETWORK_KINDS) for i in chosen}
    summaries = {labels[i]: layer_summary(scores[i], score) for i in chosen}
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

    st.subheader("Difference between two studies, paired by seed")
    pick = st.columns(2)
    first = pick[0].selectbox("Study", chosen, format_func=labels.get, key=ends[0])
    second = pick[1].selectbox("minus study", chosen, format_func=labels.get, key=ends[1])
    seeds = sorted(set(scores[first].get("seed", [])) & set(scores[second].get("seed", [])))
    differences = paired_by_seed(scores[first], scores[second], score)
    if first == second:
        st.info("Choose two different studies for their difference.")
    elif any(scores[i].empty for i in (first, second)):
        st.info("The difference fills in once both studies have finished jobs.")
    elif not seeds:
        st.info(f"{labels[first]} and {labels[second]} share no seed number: seeds are paired by number (seed s "
                "against seed s), so there is no paired difference to show.")
    elif differences.empty:
        st.info("No treatment and n was measured by both studies on a shared seed.")
    else:
        paired = paired_curves(differences, "difference", jobs="jobs")
        figure(layer_figure(paired, score, treatments, y_title=f"{labels[first]} − {labels[second]} (points)",
                            bounds=None), "compare.difference",
               difference_caption(labels[first], labels[second], score, sorted(set(differences.seed))))
        shown = {**PAIRED_SHOWN, "mean": "mean difference (points)"}
        job_table(paired.drop(columns="ci95").rename(columns=shown), "compare.difference_table", None)

state.sync()
