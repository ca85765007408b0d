"""Study overview: the spec, notes and tags, timings, artifacts, and every table as CSV or JSON."""

import json

import streamlit as st

from backend.jobs import NETWORK_KINDS
from ui import access, seeds, store
from ui.charts import layer_summary
from ui.state import PageState
from ui.widgets import job_table, study_picker

state = PageState("study")
st.title("Study overview")
study = study_picker(state)
state.report()

if study is not None:
    seeds.progress_line(study)
    summary = store.studies().get(study)
    spec = store.results().study_spec(study) or {}
    timings = store.results().timings(study)
    left, right = st.columns([2, 3])
    with left:
        st.markdown(f"**#{study} {summary.name}** · {summary.kind} · preset `{summary.origin}` · {summary.total} jobs")
        st.markdown(" · ".join(f"{n} {s}" for s, n in sorted(summary.counts.items())))
        st.metric("Wall time, first start to last finish", f"{timings['wall'] / 60:.1f} min")
        st.metric("Summed job time", f"{timings['job_seconds'] / 60:.1f} min")
        with st.form("study.notes"):
            notes = st.text_area("Notes", summary.notes)
            tags = st.text_input("Tags (comma-separated)", ", ".join(summary.tags))
            if st.form_submit_button("Save", disabled=access.locked(), help=access.hint("edit notes")):
                store.studies().annotate(study, notes, [t.strip() for t in tags.split(",") if t.strip()])
                st.success("Saved.")
    with right:
        st.markdown("**Spec**")
        st.json(spec, expanded=False)
        st.download_button("Spec (JSON)", json.dumps(spec, indent=2), file_name=f"study{study}-spec.json")

    scores = store.results().study_scores(study)  # every job's scalars, probes included
    jobs = store.results().jobs(study_id=study, limit=100_000)
    artifacts = store.results().artifacts(study)
    st.subheader("Tables")
    networks = store.results().study_scores(study, kinds=NETWORK_KINDS)
    tables = {"scores": scores, "layer summary": layer_summary(networks, "final_accuracy"), "jobs": jobs,
              "artifacts": artifacts}
    for name, table in tables.items():
        cols = st.columns([3, 1, 1])
        cols[0].markdown(f"**{name}** · {len(table)} rows")
        slug = name.replace(" ", "-")
        cols[1].download_button("CSV", table.to_csv(index=False), file_name=f"study{study}-{slug}.csv",
                                key=f"study.csv.{slug}")
        cols[2].download_button("JSON", table.to_json(orient="records", indent=1), file_name=f"study{study}-{slug}.json",
                                key=f"study.json.{slug}")
    st.markdown("**Artifacts** (under the artifacts folder)")
    job_table(artifacts, "study.artifacts", study, jobs="job")
    st.caption("Select a row to open the job that wrote it.")

state.sync()
