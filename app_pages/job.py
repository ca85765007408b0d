"""Job: one job in full: what it is, how it ran, what it wrote, its neighbours in the DAG, its curves."""

import datetime

import pandas as pd
import plotly.express as px
import streamlit as st

from ui import presets, store
from ui.state import PageState
from ui.widgets import job_role

# Per-epoch curves drawn side by side: loss and accuracy, training and test.
PANELS = {"loss": ("train_loss", "test_loss"), "accuracy": ("train_accuracy", "test_accuracy")}

state = PageState("job")
st.title("Job")
job_id = st.number_input("Job id", 1, key=state.bind("job", 1, int, lambda v: v >= 1))
state.report()
job = store.results().job(job_id)
if job is None:
    if store.queue().counts():
        st.info(f"There is no job {job_id}.")
    else:
        presets.empty_state("There is no job yet.", [presets.DEFAULT])
    state.sync()
    st.stop()


def when(seconds: float | None) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if seconds else ""


def links(ids: list[int], what: str) -> None:
    if ids:
        st.markdown(f"**{what}**")
        for other in ids:
            st.page_link("app_pages/job.py", label=f"job {other}", query_params={"job": other})


st.markdown(f"**{job.kind}** · {job_role(job.labels)} · study #{job.study_id} · **{job.status}** "
            f"({job.attempts} of {job.max_attempts} attempts) · spec `{job.spec_hash[:12]}`")
if job.result_of:
    st.info(f"Reuses the result of job {job.result_of}, which ran the same spec.")
if job.error:
    st.error(job.error)
left, right = st.columns(2)
with left:
    took = (job.finished_at - job.started_at) if job.finished_at and job.started_at else None
    st.markdown(f"Created {when(job.created_at)}  \nStarted {when(job.started_at)}  \nFinished "
                f"{when(job.finished_at)}" + (f"  \nTook {took:.1f} s" if took is not None else ""))
    st.markdown(f"Worker `{job.worker or '-'}` on {job.device or '-'}  \nLast message: {job.message or '-'}")
    if job.versions:
        st.caption(" · ".join(f"{k} {v}" for k, v in job.versions.items()))
    links(job.depends_on, "Depends on")
    links(job.dependants, "Needed by")
with right:
    st.markdown("**Results**")
    st.dataframe({"name": list(job.scalars), "value": list(job.scalars.values())}, hide_index=True)
    with st.expander("Spec"):
        st.json(job.spec, expanded=False)
    artifacts = store.results().job_artifacts(job.id)
    if not artifacts.empty:
        st.markdown("**Artifacts** (under the artifacts folder)")
        st.dataframe(artifacts, hide_index=True)

drawn = {name: [k for k in keys if k in job.curve_keys] for name, keys in PANELS.items()}
if any(drawn.values()):
    st.subheader("Training curves")
    for column, (name, keys) in zip(st.columns(len(drawn)), drawn.items()):
        if keys:
            frame = pd.concat([store.results().curves([job.id], key).assign(curve=key) for key in keys])
            column.plotly_chart(px.line(frame, x="step", y="value", color="curve", markers=True, height=340,
                                        labels={"step": "epoch", "value": name}), key=f"job.{name}")
    if job.study_id is not None and "treatment" in job.labels:
        st.page_link("app_pages/curves.py", label=f"Overlay the curves of every {job.labels['treatment']} job of "
                     f"study #{job.study_id}", query_params={"study": job.study_id,
                                                             "treatments": job.labels["treatment"]})
state.sync()
