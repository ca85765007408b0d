"""Similarity: CKA between the units of two networks, as heatmaps on one colour scale."""

import json

import pandas as pd
import streamlit as st

from ui import presets, store
from ui.charts import cka_diagonal_figure, cka_figure
from ui.share import open_snapshot, share_button
from ui.state import PageState, ints, joined
from ui.widgets import figure, job_names, job_table, jobs_of_point, open_jobs, study_picker

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


def default_comparisons(jobs: pd.DataFrame) -> list[int]:
    """A first view: a transfer from the middle of the grid against each network it is compared with;
    in a study of runs (basins), each kind of pair of the first seed and target."""
    if "treatment" in jobs:
        transfers = jobs[~jobs.treatment.isin(["baseA", "baseB"])].sort_values(["seed", "treatment", "n"])
        first = transfers.iloc[len(transfers) // 2] if not transfers.empty else jobs.iloc[0]
        same = (jobs.treatment == first.treatment) & (jobs.n == first.n) & (jobs.seed == first.seed)
    else:
        first = jobs.sort_values("job").iloc[0]
        keys = [key for key in ("seed", "target") if key in jobs]
        same = (jobs[keys] == first[keys]).all(axis=1)
    picked = jobs[same].sort_values("job")
    picked = picked.drop_duplicates("pair") if "pair" in picked else picked
    return [int(j) for j in picked.job][:MAX_PANELS]


def means(job: int) -> dict:
    """A comparison's summary numbers, as stored with its job."""
    row = jobs[jobs.job == job].iloc[0]
    return {"job": job, "CKA, same units (mean)": round(float(row.get("cka_diagonal_mean", "nan")), 4),
            "CKA, every pair of units (mean)": round(float(row.get("cka_mean", "nan")), 4)}


def detail(job: int) -> str:
    """The tooltip line of a comparison: its job and CKA means."""
    return " · ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in means(job).items())


snapshot = open_snapshot("similarity")
if snapshot is not None:
    show(snapshot.rows, snapshot.caption)
    st.stop()

study = study_picker(state)
if study is None:
    st.stop()
jobs = store.results().study_scores(study, kinds=["similarity"])
if jobs.empty:
    presets.no_result("CKA result", ["similarity"], study, "app_pages/similarity.py")
    state.sync()
    st.stop()

names = job_names(jobs)  # "AnB+ n=4, seed 1 vs baseA": the numbers go to the tooltip and the table
default = default_comparisons(jobs)
chosen = st.multiselect("Comparisons (network A vs network B)", list(names), format_func=names.get,
                        max_selections=MAX_PANELS, key=state.bind(
                            "jobs", default, ints,
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
    panels.append({"title": names[stored.job], "job": stored.job, "detail": detail(stored.job),
                   "matrix": stored.value.round(6).tolist(),
                   "units_a": units.get("a", [str(i) for i in range(n_a)]),
                   "units_b": units.get("b", [str(i) for i in range(n_b)]),
                   "constant": tables.get("constant_units", {}), "estimator": tables.get("estimator", {})})
show(panels, caption(panels))
dead = [f"{p['title']}: {', '.join(p['constant'].get('a', []) + p['constant'].get('b', []))}"
        for p in panels if any(p["constant"].values())]
if dead:
    st.warning("Units with constant output on these images (CKA undefined, drawn as 0): " + "; ".join(dead))

st.caption("The comparisons drawn, with their CKA means; select a row to open its job.")
job_table(pd.DataFrame([{"comparison": p["title"], **means(p["job"])} for p in panels]), "similarity.means", study,
          jobs="job")
table = long_table(panels)
share_button("similarity", {"study": study, "jobs": joined(chosen)}, panels, caption(panels))
left, right = st.columns(2)
left.download_button("Download the values (CSV)", table.to_csv(index=False), file_name=f"study{study}-cka.csv")
right.download_button("Download the matrices (JSON)", json.dumps(panels, indent=1), file_name=f"study{study}-cka.json")
state.sync()
