"""Training curves of many jobs overlaid: how fast each treatment learns (Neyshabur's and Liu's view)."""

import pandas as pd
import plotly.express as px
import streamlit as st

from backend.jobs import NETWORK_KINDS
from backend.specs import TREATMENTS
from ui import store
from ui.charts import COLOURS
from ui.state import PageState, ints, joined, strs
from ui.widgets import figure, job_role, jobs_of_point, open_jobs, study_picker

CURVES = {"test_accuracy": "test accuracy", "train_accuracy": "training accuracy", "test_loss": "test loss",
          "train_loss": "training loss", "lr": "learning rate", "images_per_second": "training images/s"}
COLOUR_BY = ["n", "treatment", "seed"]

state = PageState("curves")
st.title("Training curves")
top = st.columns([3, 3, 2, 1])
with top[0]:
    study = study_picker(state)
treatments = top[1].multiselect("Treatments", ["baseA", "baseB", *TREATMENTS], key=state.bind(
    "treatments", ["AnB+"], strs, lambda v: set(v) <= {"baseA", "baseB", *TREATMENTS}, show=joined))
key = top[2].selectbox("Curve", list(CURVES), format_func=CURVES.get,
                       key=state.bind("curve", "test_accuracy", valid=CURVES.__contains__))
colour = top[3].selectbox("Colour by", COLOUR_BY, key=state.bind("colour", "n", valid=COLOUR_BY.__contains__))
picked = state.bind("jobs", [], ints, show=joined)
state.report()


def with_labels(jobs: pd.DataFrame) -> pd.DataFrame:
    """Network jobs with their role in words and one column per label."""
    jobs = jobs[jobs.kind.isin(NETWORK_KINDS)].reset_index(drop=True)
    jobs["role"] = [job_role(labels) for labels in jobs.labels]
    return jobs.join(pd.DataFrame(jobs.pop("labels").tolist(), index=jobs.index))


chosen = None
if st.session_state[picked]:  # jobs picked on a chart, of any study
    chosen = with_labels(store.results().jobs(ids=st.session_state[picked], limit=len(st.session_state[picked])))
    st.caption(f"Jobs {joined(st.session_state[picked])}, picked on a chart. Clear them to choose by treatment.")
    if st.button("Clear the picked jobs", key="curves.clear"):
        st.session_state[picked] = []
        st.rerun()
elif study is not None:
    jobs = with_labels(store.results().jobs(study_id=study, limit=100_000))
    chosen = jobs[jobs.treatment.isin(treatments)] if "treatment" in jobs else jobs.iloc[:0]

if chosen is not None:
    curves = store.results().curves(chosen.id.tolist(), key)
    if curves.empty:
        st.info("No curve of these jobs yet: curves appear as their epochs finish.")
    else:
        frame = curves.merge(chosen, left_on="job", right_on="id")
        frame[colour] = frame[colour].astype(str) if colour in frame else ""
        fig = px.line(frame, x="step", y="value", color=colour, line_group="job", markers=True,
                      custom_data=["role", "job"], labels={"step": "epoch", "value": CURVES[key]},
                      color_discrete_map=COLOURS if colour == "treatment" else None, height=480)
        fig.update_traces(hovertemplate="%{customdata[0]}, epoch %{x}: %{y:.4g} (job %{customdata[1]})<extra></extra>")
        caption = f"{CURVES[key].capitalize()} of {frame.job.nunique()} jobs, one line each, coloured by {colour}."
        open_jobs(study, jobs_of_point(figure(fig, "curves.chart", caption, clickable=True)))
        st.caption("Click a point to open its job.")
        st.download_button("Download the curves (CSV)", frame[["job", "role", "step", "value"]].to_csv(index=False),
                           file_name=f"curves-{key}.csv")

state.sync()
