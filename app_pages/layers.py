"""Layer transfer: Yosinski's figure for a study, accuracy against the number of units transferred."""

import pandas as pd
import streamlit as st

from backend.jobs import NETWORK_KINDS
from backend.specs import TREATMENTS
from ui import store
from ui.charts import (
    PAIRED_SHOWN, SCORES, SHARPNESS, SHOWN_COLUMNS, gain_table, layer_figure, layer_summary, paired_curves,
)
from ui.state import PageState, flag, joined, shown, strs
from ui.share import open_snapshot, share_button
from ui.widgets import TASK_LABELS, figure, job_table, jobs_of_point, open_jobs, study_picker, task_filter

state = PageState("layers")
st.title("Layer transfer")
VIEWS = {"accuracy": "accuracy", "gain": "gain over baseB"}
GAIN_SHOWN = {**PAIRED_SHOWN, "mean": "mean gain (points)"}


def layer_view(summary: pd.DataFrame, score: str, chosen: list[str], view: str, **options):
    """The figure of either view: accuracy in % (within 0..100), or the paired gain over baseB in points."""
    if view == "gain":
        options |= {"y_title": f"gain over baseB, {SCORES[score]} (points)", "bounds": None}
    return layer_figure(summary, score, chosen, **options)


def shown_table(summary: pd.DataFrame, view: str) -> pd.DataFrame:
    """The table under the figure: for the gain, the paired summary per treatment and n (baseB, 0 by
    definition, left out)."""
    if view == "gain":
        return summary[summary.treatment != "baseB"].drop(columns="ci95").rename(columns=GAIN_SHOWN)
    return summary.rename(columns=SHOWN_COLUMNS)


snapshot = open_snapshot("layers")
if snapshot is not None:
    summary = pd.DataFrame(snapshot.rows)
    score, chosen = snapshot.params["score"], strs(snapshot.params["treatments"])
    view = snapshot.params.get("view", "accuracy")  # snapshots from before the gain view have none
    figure(layer_view(summary, score, chosen, view), "layers.chart", snapshot.caption)
    shown = shown_table(summary, view)
    st.dataframe(shown[[c for c in snapshot.columns or [] if c in shown] or list(shown)], hide_index=True)
    st.stop()

top = st.columns([3, 2, 3])
with top[0]:
    study = study_picker(state)
score = top[1].radio("Score", list(SCORES), format_func=SCORES.get, horizontal=False,
                     key=state.bind("score", "final_accuracy", valid=SCORES.__contains__))
view = top[1].radio("Show", list(VIEWS), format_func=VIEWS.get, horizontal=True,
                    key=state.bind("view", "accuracy", valid=VIEWS.__contains__),
                    help="Gain: per seed, the treatment minus baseB of the same seed, then the mean and its paired "
                         "95% interval")
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
    gains = gain_table(scores.assign(study=study), score) if view == "gain" and score in scores else None
    summary = paired_curves(gains, "gain") if gains is not None else layer_summary(scores, score)
    if summary.empty:
        st.info("No seed has both baseB and a transfer finished yet: the gain fills in as jobs land."
                if gains is not None else "No finished job in this study yet: the figure fills in as jobs land.")
    else:
        seeds = int(summary.seeds.max())
        on = "".join(f", {TASK_LABELS[k].lower()} {v}" for k, v in where.items())
        if view == "gain":
            band = ("one seed: no band (queue more seeds for a paired 95% interval)" if seeds == 1 else
                    f"band: paired 95% t interval of the per-seed difference, {seeds} seeds")
            caption = (f"Study #{study}{on}: gain over baseB, per seed the treatment's {SCORES[score]} at n minus "
                       f"baseB's of the same seed (same class split, initialisation and batch order), in points; "
                       f"line: the mean of the per-seed differences; {band}. baseB's dashed line is 0.")
        else:
            band = ("one seed: no band (queue more seeds for a 95% interval)" if seeds == 1 else
                    f"mean over {seeds} seeds, band = 95% confidence interval of the mean (Student t over seeds, "
                    "not paired; the gain view pairs by seed)")
            caption = (f"Study #{study}{on}: {band}. baseB is the target network trained from scratch. The score "
                       f"is {SCORES[score]}.")
        networks = (gains.rename(columns={"gain": "value"}) if gains is not None
                    else scores.assign(value=100 * scores[score]))
        points = networks[["treatment", "n", "value", "job"]] if dots else None
        event = figure(layer_view(summary, score, chosen, view, points=points, zoom=zoom), "layers.chart", caption,
                       clickable=True)
        st.caption("Click a point, or select a row of the table, to open its job (a mean over several seeds opens "
                   "the training curves of its jobs).")
        open_jobs(study, jobs_of_point(event))
        table = shown_table(summary, view)
        job_table(table, "layers.table", study)
        share_button("layers", {"study": study, "score": score, "treatments": joined(chosen), "view": view},
                     summary.astype(object).where(summary.notna(), None).to_dict(orient="records"), caption,
                     list(table))
        st.download_button("Download the table (CSV)", summary.to_csv(index=False),
                           file_name=f"study{study}-layers-{view}.csv")

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
