"""Similarity: CKA between the units of two networks, as heatmaps on one colour scale."""

import json

import pandas as pd
import streamlit as st

from ui import store
from ui.charts import cka_diagonal_figure, cka_figure
from ui.share import open_snapshot, share_button
from ui.state import PageState, ints, joined
from ui.widgets import figure, job_role, jobs_of_point, open_jobs, study_picker

MAX_PANELS = 4

state = PageState("similarity")
st.title("Similarity")


def caption(panels: list[dict]) -> str:
    e = panels[0]["estimator"]
    return (f"{e.get('kernel', '?')} CKA, {e.get('estimator', '?')} estimator, {e.get('images', '?')} "
            f"{e.get('split', '')} images, unit outputs {'spatially mean-pooled' if e.get('pool') == 'mean' else 'flattened'}. "
            "Network A is the transfer (or baseA), B the network it is compared with; 1 = the same "
            "representation up to rotation and scale.")


def show(panels: list[dict], text: str) -> None:
    figure(cka_figure(panels), "similarity.heatmaps", text)
    clicked = figure(cka_diagonal_figure(panels), "similarity.diagonal", text + " A click opens the comparison's job.",
                     clickable=True)
    open_jobs(None, jobs_of_point(clicked))


def long_table(panels: list[dict]) -> pd.DataFrame:
    """Every drawn value: panel, job, unit of A, unit of B, CKA."""
    return pd.DataFrame([{"panel": p["title"], "job": p["job"], "unit_a": a, "unit_b": b, "cka": p["matrix"][i][j]}
                         for p in panels for i, a in enumerate(p["units_a"]) for j, b in enumerate(p["units_b"])])


snapshot = open_snapshot("similarity")
if snapshot is not None:
    show(snapshot.rows, snapshot.caption)
    st.stop()

study = study_picker(state)
if study is None:
    st.stop()
jobs = store.results().study_scores(study, kinds=["similarity"])
if jobs.empty:
    st.info("No CKA result in this study yet: they land after the networks they compare (turn the similarity "
            "probe on in a study's Probes on the New study page).")
    state.sync()
    st.stop()

names = {int(r.job): job_role(r._asdict()) for r in jobs.drop(columns="spec_hash").itertuples(index=False)}
transfers = jobs[~jobs.treatment.isin(["baseA", "baseB"])].sort_values(["seed", "treatment", "n"])
first = transfers.iloc[len(transfers) // 2] if not transfers.empty else jobs.iloc[0]
default = jobs[(jobs.treatment == first.treatment) & (jobs.n == first.n) & (jobs.seed == first.seed)].job.tolist()
chosen = st.multiselect("Comparisons (network A vs network B)", list(names), format_func=names.get,
                        max_selections=MAX_PANELS, key=state.bind(
                            "jobs", [int(j) for j in default], ints,
                            lambda v: 0 < len(v) <= MAX_PANELS and set(v) <= set(names), show=joined))
state.report()
if not chosen:
    st.info("Pick at least one comparison.")
    state.sync()
    st.stop()

panels = []
for stored in store.results().arrays(study, "cka", kinds=["similarity"], jobs=chosen):
    tables = store.results().job_tables(stored.job)
    units = tables.get("units", {})
    n_a, n_b = stored.value.shape
    panels.append({"title": names[stored.job], "job": stored.job, "matrix": stored.value.round(6).tolist(),
                   "units_a": units.get("a", [str(i) for i in range(n_a)]),
                   "units_b": units.get("b", [str(i) for i in range(n_b)]),
                   "constant": tables.get("constant_units", {}), "estimator": tables.get("estimator", {})})
show(panels, caption(panels))
dead = [f"{p['title']}: {', '.join(p['constant'].get('a', []) + p['constant'].get('b', []))}"
        for p in panels if any(p["constant"].values())]
if dead:
    st.warning("Units with constant output on these images (CKA undefined, drawn as 0): " + "; ".join(dead))

table = long_table(panels)
share_button("similarity", {"study": study, "jobs": joined(chosen)}, panels, caption(panels))
left, right = st.columns(2)
left.download_button("Download the values (CSV)", table.to_csv(index=False), file_name=f"study{study}-cka.csv")
right.download_button("Download the matrices (JSON)", json.dumps(panels, indent=1), file_name=f"study{study}-cka.json")
state.sync()
