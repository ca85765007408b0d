"""Layer transfer: Yosinski's figure for a study, accuracy against the number of units transferred."""

import datetime

import pandas as pd
import streamlit as st

from backend.specs import TREATMENTS
from ui import store
from ui.charts import SCORES, layer_figure, layer_summary
from ui.state import PageState, joined, strs
from ui.widgets import absolute_link, study_picker

state = PageState("layers")
st.title("Layer transfer")

share_id = st.query_params.get("share")
if share_id is not None:
    snapshot = store.shares().get(share_id)
    if snapshot is None or snapshot.page != "layers":
        st.warning("This share link is unknown or damaged; showing the live view instead.")
        st.query_params.pop("share", None)
    else:
        taken = datetime.datetime.fromtimestamp(snapshot.created_at, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        st.info(f"Snapshot `{snapshot.id}` of study #{snapshot.params['study']}, taken {taken}: it stays as it was "
                "when shared. [Open the live view](layers?" + "&".join(f"{k}={v}" for k, v in snapshot.params.items())
                + ")")
        summary = pd.DataFrame(snapshot.rows)
        score, chosen = snapshot.params["score"], strs(snapshot.params["treatments"])
        st.plotly_chart(layer_figure(summary, score, chosen), key="layers.chart")
        st.dataframe(summary, hide_index=True)
        st.stop()

top = st.columns([3, 2, 3])
with top[0]:
    study = study_picker(state)
score = top[1].radio("Score", list(SCORES), format_func=SCORES.get, horizontal=False,
                     key=state.bind("score", "final_accuracy", valid=SCORES.__contains__))
chosen = top[2].multiselect("Treatments", TREATMENTS, key=state.bind(
    "treatments", list(TREATMENTS), strs, lambda v: set(v) <= set(TREATMENTS), show=joined))
state.report()

if study is not None:
    scores = store.results().study_scores(study)
    summary = layer_summary(scores, score)
    if summary.empty:
        st.info("No finished job in this study yet: the figure fills in as jobs land.")
    else:
        spec = store.results().study_spec(study) or {}
        seeds = len(spec.get("seeds", []))
        st.caption(f"Mean over {seeds} seed(s), band = 95% confidence (Student t). baseB is the target network "
                   "trained from scratch. The score is " + SCORES[score] + ".")
        st.plotly_chart(layer_figure(summary, score, chosen), key="layers.chart")
        st.dataframe(summary.rename(columns={"mean": "mean %", "ci95": "± 95% CI"}), hide_index=True)
        if st.button("Share this view", key="layers.share"):
            params = {"study": study, "score": score, "treatments": joined(chosen)}
            link_id = store.shares().create("layers", params, summary.to_dict(orient="records"))
            st.success("A snapshot that will not change as more jobs land:")
            st.code(absolute_link(f"layers?share={link_id}"), language=None)
        st.download_button("Download the table (CSV)", summary.to_csv(index=False), file_name=f"study{study}-layers.csv")

state.sync()
