"""Layer transfer: Yosinski's figure for a study, accuracy against the number of units transferred."""

import pandas as pd
import streamlit as st

from backend.jobs import NETWORK_KINDS
from backend.specs import TREATMENTS
from ui import store
from ui.charts import SCORES, SHARPNESS, SHOWN_COLUMNS, layer_figure, layer_summary
from ui.state import PageState, flag, joined, shown, strs
from ui.share import open_snapshot, share_button
from ui.widgets import TASK_LABELS, figure, job_table, jobs_of_point, open_jobs, study_picker, task_filter

state = PageState("layers")
st.title("Layer transfer")

snapshot = open_snapshot("layers")
if snapshot is not None:
    summary = pd.DataFrame(snapshot.rows)
    score, chosen = snapshot.params["score"], strs(snapshot.params["treatments"])
    figure(layer_figure(summary, score, chosen), "layers.chart", snapshot.caption)
    shown = summary.rename(columns=SHOWN_COLUMNS)
    st.dataframe(shown[[c for c in snapshot.columns or [] if c in shown] or list(shown)], hide_index=True)
    st.stop()

top = st.columns([3, 2, 3])
with top[0]:
    study = study_picker(state)
score = top[1].radio("Score", list(SCORES), format_func=SCORES.get, horizontal=False,
                     key=state.bind("score", "final_accuracy", valid=SCORES.__contains__))
chosen = top[2].multiselect("Treatments", TREATMENTS, key=state.bind(
    "treatments", list(TREATMENTS), strs, lambda v: set(v) <= set(TREATMENTS), show=joined))
toggles = st.columns(4)
dots = toggles[0].toggle("One dot per network", key=state.bind("dots", False, flag, show=shown))
zoom = toggles[1].toggle("Zoom to the top", key=state.bind("zoom", False, flag, show=shown),
                         help="Fit the axis to every curve but the random control's")
where = task_filter(state, study)  # one target and data amount of a cross-data-set study
state.report()

if study is not None:
    scores = store.results().study_scores(study, kinds=NETWORK_KINDS, labels=where)
    summary = layer_summary(scores, score)
    if summary.empty:
        st.info("No finished job in this study yet: the figure fills in as jobs land.")
    else:
        seeds = int(summary.seeds.max())
        band = ("one seed: no band (queue more seeds for a 95% interval)" if seeds == 1 else
                f"mean over {seeds} seeds, band = 95% confidence interval of the mean (Student t)")
        on = "".join(f", {TASK_LABELS[k].lower()} {v}" for k, v in where.items())
        caption = (f"Study #{study}{on}: {band}. baseB is the target network trained from scratch. The score is "
                   f"{SCORES[score]}.")
        points = scores.assign(value=100 * scores[score])[["treatment", "n", "value", "job"]] if dots else None
        event = figure(layer_figure(summary, score, chosen, points=points, zoom=zoom), "layers.chart", caption,
                       clickable=True)
        st.caption("Click a point, or select a row of the table, to open its job (a mean over several seeds opens "
                   "the training curves of its jobs).")
        open_jobs(study, jobs_of_point(event))
        job_table(summary.rename(columns=SHOWN_COLUMNS), "layers.table", study)
        share_button("layers", {"study": study, "score": score, "treatments": joined(chosen)},
                     summary.to_dict(orient="records"), caption, list(summary.rename(columns=SHOWN_COLUMNS)))
        st.download_button("Download the table (CSV)", summary.to_csv(index=False), file_name=f"study{study}-layers.csv")

    sharpness = store.results().study_scores(study, kinds=["sharpness"], labels=where)
    if not sharpness.empty:
        st.subheader("Sharpness")
        st.caption("Hessian of the training loss on the probe images, every network in eval mode; mean and 95% band "
                   "over seeds. Spectral densities and the split at the transfer cut: the Sharpness page.")
        for column, (name, label) in zip(st.columns(len(SHARPNESS)), SHARPNESS.items()):
            panel = layer_summary(sharpness, name, scale=1.0)
            column.plotly_chart(layer_figure(panel, name, chosen, y_title=label, height=360, bounds=None),
                                key=f"layers.{name}")

state.sync()
