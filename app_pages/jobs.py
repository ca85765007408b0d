"""Jobs: live status of the queue, per-job progress, throughput and errors; cancel, retry, clone."""

import json

import streamlit as st

from backend.jobs import JOB_KINDS
from backend.specs import SpecError
from db.queue import QueueError
from db.schema import BLOCKED, CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from db.submit import clone_job
from ui import access, seeds, store
from ui.widgets import eta_text, job_role, job_table, label_filters, study_picker
from ui.state import PageState, flag, shown

STATUSES = ["any", QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, BLOCKED]
KINDS = ["any", *JOB_KINDS]
LABELS = {"treatment": "Treatment", "n": "n", "seed": "Seed", "candidate": "Candidate"}  # label filters, when the study's jobs carry them
PAGE_SIZE = 50

state = PageState("jobs")
st.title("Jobs")
filters = st.columns([3, 1, 1, 1, 1, 1, 1, 1, 1])
with filters[0]:
    study = study_picker(state)
status = filters[1].selectbox("Status", STATUSES, key=state.bind("status", "any", valid=STATUSES.__contains__))
kind = filters[2].selectbox("Kind", KINDS, key=state.bind("kind", "any", valid=KINDS.__contains__))
labels = label_filters(state, study, LABELS, filters[3:7], every="any")
page = filters[7].number_input("Page", 1, 10_000, key=state.bind("page", 1, int, lambda v: v >= 1))
live = filters[8].toggle("Live", key=state.bind("live", True, flag, show=shown))
state.report()
if study is not None:
    seeds.progress_line(study)  # redrawn whenever a job changes state (the board reruns the page)


def board(live_view: bool = False) -> None:
    counts = store.queue().counts(study)
    if live_view and counts != st.session_state.get("jobs.counts_drawn"):
        st.rerun(scope="app")  # a job changed state: refresh every count on the page, sidebar included
    total = sum(counts.values())
    if total:
        done = counts.get(SUCCEEDED, 0)
        pending = counts.get(QUEUED, 0) + counts.get(RUNNING, 0)
        eta = eta_text(*store.results().throughput(study), pending) if study is not None and pending else ""
        st.progress(done / total, text=f"{done} of {total} succeeded  ·  " +
                    "  ·  ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != SUCCEEDED) + eta)
    jobs = store.results().jobs(study_id=study, status=None if status == "any" else status,
                                kind=None if kind == "any" else kind, labels=labels,
                                offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    if jobs.empty:
        st.info("No job matches these filters.")
        return
    running = jobs.id[jobs.status == RUNNING].tolist()
    rates = store.results().latest(running, "images_per_second") if running else {}
    jobs["role"] = [job_role(labels) for labels in jobs.labels]
    jobs["images/s"] = jobs.id.map(rates).round(0)
    jobs["took (s)"] = (jobs.finished_at - jobs.started_at).round(1)
    shown_jobs = jobs[["id", "kind", "role", "status", "progress", "images/s", "message", "attempts", "worker",
                       "took (s)", "error"]]
    job_table(shown_jobs.astype(object).where(shown_jobs.notna(), ""), "jobs.table", study, jobs="id",
              width="stretch",
              column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
                             "error": st.column_config.TextColumn("error", width="large")})
    st.caption("Select a row to open its job; click a column header to sort. images/s: the last epoch's "
               "training throughput of a running job.")


counts_now = store.queue().counts(study)
st.session_state["jobs.counts_drawn"] = counts_now
if live and counts_now.get(RUNNING, 0) + counts_now.get(QUEUED, 0):
    st.fragment(board, run_every=2)(live_view=True)
else:
    board()

st.subheader("Act on a job")
left, right = st.columns([1, 3])
job_id = left.number_input("Job id", 1, key="jobs.act_id")
edits = right.text_input("Edits for a clone (JSON: spec field paths to new values)", '{"train.epochs": 20}',
                         key="jobs.edits")
cancel, retry, rerun, clone, detail = st.columns(5)
with detail:
    st.page_link("app_pages/job.py", label=f"Open job {job_id}: spec, curves, artifacts", query_params={"job": job_id})
try:
    if cancel.button("Cancel", key="jobs.cancel", disabled=access.locked(), help=access.hint("cancel jobs")):
        st.success(f"Job {job_id}: {store.queue().cancel(job_id)}")
    if retry.button("Retry (and unblock dependants)", key="jobs.retry", disabled=access.locked(),
                    help=access.hint("retry jobs")):
        st.success(f"Queued again: {', '.join(map(str, store.queue().retry(job_id)))}")
    if rerun.button("Re-run (a damaged checkpoint)", key="jobs.rerun", disabled=access.locked(),
                    help=access.hint("re-run jobs") or "run a succeeded job again, then retry what failed for want of it"):
        st.success(f"Queued again: {', '.join(map(str, store.queue().rerun(job_id)))}")
    if clone.button("Clone with edits", key="jobs.clone", disabled=access.locked(), help=access.hint("clone jobs")):
        changes = json.loads(edits)
        if not isinstance(changes, dict):
            raise ValueError("edits must be a JSON object")
        st.success(f"Queued job {clone_job(store.queue(), job_id, changes)}, a clone of job {job_id}")
except (QueueError, SpecError, ValueError) as exc:
    st.error(str(exc))

state.sync()
