"""Explorer: transfer gain against domain gap, data amount, depth or diversity, across studies."""

import pandas as pd
import plotly.express as px
import streamlit as st

from backend.jobs import NETWORK_KINDS
from backend.specs import SpecError
from backend.studies import STUDY_KINDS, parse_study
from ui import store
from ui.charts import COLOURS, SCORES, ci95, gain_table
from ui.state import PageState, ints, joined
from ui.widgets import figure, jobs_of_point, open_jobs

# Axes a study varies, read from its spec: what a researcher compares across studies.
AXES = {
    "n": "units transferred (n)",
    "per_class": "training images per class (data amount)",
    "class_fraction": "share of classes kept (diversity)",
    "domain_gap": "synthetic domain gap",
    "block": "block-shuffle block size (0 = none)",
    "depth": "network depth (transferable units)",
}
COLOUR_BY = {"treatment": "treatment", "study": "study", "seed": "seed"}
FACETS = ["none", "treatment", "study"]
METRICS = {"gain": "gain over baseB (points)", "accuracy": "accuracy (%)"}


def study_axes(spec: dict) -> dict:
    """Study-level values of the explorer's axes (None where the study does not set one)."""
    try:
        study = parse_study(spec)
    except SpecError:
        return {}
    return STUDY_KINDS[study.study].axes(study)


state = PageState("explorer")
st.title("Explorer")
linked = [int(v) for v in str(st.query_params.get("studies", "")).split(",") if v.isdigit()]
available = {s.id: f"#{s.id} {s.name}" for s in store.studies().listing(include=linked)}  # archived: by link only
if not available:
    st.info("No study yet: queue one on the New study page.")
    st.stop()
chosen = st.multiselect("Studies (overlaid)", list(available), format_func=available.get, key=state.bind(
    "studies", [next(iter(available))], ints, lambda v: set(v) <= set(available), show=joined))
spec_axes = {study_id: study_axes(store.results().study_spec(study_id) or {}) for study_id in chosen}
# n varies within every study; the other axes are per study, so they vary only across chosen studies.
varying = ["n"] + [a for a in AXES if a != "n" and len({v.get(a) for v in spec_axes.values()} - {None}) > 1]
cols = st.columns(6)
x = cols[0].selectbox("x axis", varying, format_func=AXES.get, key=state.bind("x", "n", valid=varying.__contains__))
# Off the n axis, each n is its own experiment: pick one rather than pool different n as replicates.
ns = sorted({n for study_id in chosen for n in store.results().label_values(study_id, ["n"]).get("n", []) if n > 0})
at_n = cols[5].selectbox("At n", ns or [1], key=state.bind("at_n", max(ns or [1]), int, (ns or [1]).__contains__),
                         disabled=x == "n", help="the units transferred the other axes are compared at")
y = cols[1].selectbox("y axis", list(METRICS), format_func=METRICS.get,
                      key=state.bind("y", "gain", valid=METRICS.__contains__))
colour = cols[2].selectbox("Colour by", list(COLOUR_BY),
                           key=state.bind("colour", "treatment", valid=COLOUR_BY.__contains__))
facet = cols[3].selectbox("Facet by", FACETS, key=state.bind("facet", "none", valid=FACETS.__contains__))
score = cols[4].selectbox("Score", list(SCORES), format_func=SCORES.get,
                          key=state.bind("score", "final_accuracy", valid=SCORES.__contains__))
state.report()
if len(varying) == 1:
    st.caption("These studies differ only in n. Overlay studies that differ in data amount, class diversity, "
               "domain gap, block size or depth to compare along those axes.")
if colour != "treatment" and facet == "none":
    facet = "treatment"  # never average different treatments together into one line

frames = []
for study_id in chosen:
    scores = store.results().study_scores(study_id, kinds=NETWORK_KINDS)
    if scores.empty:
        continue
    frames.append(scores.assign(study=available[study_id], **spec_axes[study_id]))
if not frames:
    st.info("The chosen studies have no finished jobs yet.")
else:
    rows = gain_table(pd.concat(frames, ignore_index=True), score)
    rows = rows.dropna(subset=[x]) if x == "n" else rows[rows.n == at_n].dropna(subset=[x])
    if rows.empty:
        st.info(f"None of these studies sets {AXES[x]}: pick another axis.")
    else:
        groups = list(dict.fromkeys([x, colour] + ([facet] if facet != "none" else [])))
        means = rows.groupby(groups)[y].agg(["mean", "std", "size"]).reset_index().rename(
            columns={"mean": y, "size": "jobs"})
        means["ci95"] = ci95(means.pop("std"), means["jobs"])
        fig = px.line(means.sort_values(x), x=x, y=y, color=colour, markers=True, error_y="ci95",
                      facet_col=None if facet == "none" else facet, hover_data=["jobs"],
                      color_discrete_map=COLOURS if colour == "treatment" else None,
                      labels={x: AXES[x], y: METRICS[y]})
        if facet == "none":
            fig.add_scatter(x=rows[x], y=rows[y], mode="markers", marker={"size": 5, "color": "rgba(0,0,0,0.25)"},
                            name="single jobs", customdata=rows[["study", "job"]].values,
                            hovertemplate="job %{customdata[1]} (%{customdata[0]}): %{y:.2f}<extra></extra>")
        fig.update_xaxes(tickformat="d", **({"dtick": 1} if x in ("n", "depth") else {}))  # integer axes
        if y == "gain":
            fig.add_hline(y=0, line_dash="dot", line_color="grey")  # no gain over training from scratch
        event = figure(fig, "explorer.chart", "Lines: mean and 95% confidence interval (Student t) over seeds and "
                       "the other axes; dots (unfaceted): single jobs, a click opens one. Gain: a transfer's score "
                       f"minus baseB's, same study and seed. The score is {SCORES[score]}"
                       + ("." if x == "n" else f", at n = {at_n} units transferred."), clickable=True)
        open_jobs(None, jobs_of_point(event))
        st.dataframe(means, hide_index=True)
        st.download_button("Download the points (CSV)", rows.to_csv(index=False), file_name="explorer.csv")

state.sync()
