"""Landscape: the path between runs, the plane around one, module criticality, and smoothness along
training (Neyshabur et al. 2020; Liu et al. 2019)."""

import json

import pandas as pd
import streamlit as st

from ui import presets, store
from ui.charts import PAIRED_SHOWN
from ui.landscape import (
    PAIRED_KINDS, PATH, criticality_figure, criticality_panels, deviation_differences, deviation_figure,
    deviation_summary, kind_of, log_axis, pair_differences, pair_means, pair_table, path_figure, plane_figure,
    smoothness_differences, smoothness_figure, smoothness_summary,
)
from ui.share import open_snapshot, share_button
from ui.state import PageState
from ui.widgets import figure, job_table, jobs_of_point, open_jobs, study_picker

MEASURES = {"loss_spread": "loss spread: max − min over η of the loss at θ − ηg",
            "beta_smoothness": "β-smoothness: max over η of ||g(θ − ηg) − g(θ)|| / ||ηg||",
            "gradient_norm": "gradient norm ||g||", "loss": "training loss on the probe batch"}
PAIRED = ("Mean of the per-seed differences, its 95% Student t interval (a bootstrap-t interval beside it from 5 "
          "seeds), the seeds measured, and the probability of improvement: the share of seeds whose difference is "
          "above 0. One seed: no interval.")
# The job kinds whose results the sections draw (the weight deviation comes with every Chen's T job, so a
# study without these may still have that section).
KINDS = ("interpolation", "plane", "criticality", "smoothness")

state = PageState("landscape")
st.title("Landscape")
st.caption("Is the target reached in one basin? Loss along the line between two runs, on a plane around one, "
           "with a unit rewound; the landscape's smoothness along training; how far fine-tuning moves each layer.")


def measure_name(key: str) -> str:
    return MEASURES.get(key) or f"top singular value of the gradient of {key.removeprefix('gradient_sv.')}"


def axis_title(key: str) -> str:
    return measure_name(key).split(":")[0] if key in MEASURES else f"top singular value of ∇{key[12:]}"


def bn_words(estimator: dict) -> str:
    return ("BatchNorm statistics re-estimated at every point on "
            f"{estimator.get('bn_images', '?')} training images" if estimator.get("bn_reestimated")
            else "no BatchNorm to re-estimate")


def records(frame: pd.DataFrame) -> list[dict]:
    """A table's rows as JSON can hold them (a missing value is null, not NaN)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def load(study: int) -> dict:
    """Every section's rows, from the store, as plain data (a share snapshot keeps exactly this)."""
    r, view = store.results(), {"captions": {}}
    arrays = r.arrays(study, "path", kinds=["interpolation"])
    if arrays:
        view["paths"] = [{"job": a.job, **{k: a.labels.get(k) for k in ("pair", "runs", "seed", "target")},
                          "alphas": a.value[0].tolist(), "loss": a.value[1].tolist(),
                          "accuracy": a.value[2].tolist()} for a in arrays]
        pairs = pair_table(r.study_scores(study, kinds=["interpolation"]), r.study_scores(study, kinds=["similarity"]))
        view["pairs"] = records(pairs)
        view["pairs_paired"] = records(pair_differences(pairs))
        e = r.job_tables(arrays[0].job).get("estimator", {})
        view["captions"]["paths"] = (
            f"Study #{study}. Test loss and accuracy along θ(l) = (1 − l) θ_a + l θ_b at {e.get('points', '?')} "
            f"points, {bn_words(e)}. Dashed: the chord between the end points; the bold segment marks the barrier, "
            "max over l of loss(l) − ((1 − l) loss(0) + l loss(1)) (Frankle et al.; for accuracy, the drop below "
            "the chord). P-T: two runs fine-tuned from one pretraining; RI-T: two runs from random init.")
    planes = {a.job: a for a in r.arrays(study, "plane_loss", kinds=["plane"])}
    if planes:
        coords = {a.job: a.value.tolist() for a in r.arrays(study, "plane_coords", kinds=["plane"])}
        view["planes"] = [{"job": j, "row": f"{a.labels.get('target')}, seed {a.labels.get('seed')}",
                           "column": int(a.labels.get("treatment") != "AnB+"), "coords": coords[j],
                           "title": f"{kind_of(a.labels.get('treatment'))} run {a.labels.get('run')}",
                           "loss": a.value.round(6).tolist()} for j, a in planes.items() if j in coords]
        e = r.job_tables(next(iter(planes))).get("estimator", {})
        view["captions"]["planes"] = (
            f"Study #{study}. Test loss at θ + x d1 + y d2, d1 and d2 seeded Gaussian directions, filter-normalised "
            f"(Li et al. 2018), over ±{e.get('span', '?')}; {bn_words(e)}; one colour scale; × marks the trained "
            "network.")
    critical = r.arrays(study, "criticality_error", kinds=["criticality"])
    if critical:
        tables = {a.job: r.job_tables(a.job) for a in critical}
        view["criticality"] = criticality_panels([
            {"job": a.job, "treatment": a.labels.get("treatment"), "target": a.labels.get("target"),
             "error": a.value.tolist(), **{k: tables[a.job].get(k) for k in ("units", "alphas", "sigmas")}}
            for a in critical])
        runs = r.study_scores(study, kinds=["criticality"]).sort_values(["target", "seed", "treatment", "run"])
        runs["kind"] = runs.treatment.map(kind_of)
        rewind = [c for c in runs if c.startswith("rewind.")]
        columns = ["target", "seed", "kind", "run", "job", "trained_error", *rewind]
        view["critical_runs"] = records(runs[columns])
        e = tables[critical[0].job].get("estimator", {})
        view["captions"]["criticality"] = (
            f"Study #{study}. Module criticality (Chatterji et al. 2020): test error with one unit set to "
            "θ0 + a (θF − θ0) (a = 0: its initial weights, 1: trained) plus Gaussian noise of std σ relative to "
            f"each tensor's RMS, mean of {e.get('samples', '?')} draws, mean over runs and seeds. A unit is critical "
            "when moving it back towards its start (small a) or adding noise (large σ) lifts the error more than "
            f"ε = {e.get('epsilon', '?')} above the trained network's.")
    networks = r.study_scores(study, kinds=["smoothness"])
    if not networks.empty:
        view["networks"] = networks  # read by `smoothness`, which leaves the chosen measure's curves instead
        view["measures"] = r.job(int(networks.job.iloc[0])).curve_keys
    deviation = r.study_scores(study, kinds=["chen_t"])
    if any(c.startswith("deviation.") for c in deviation):
        view["deviation"] = records(deviation_summary(deviation))
        view["deviation_paired"] = records(deviation_differences(deviation))
        view["captions"]["deviation"] = (
            f"Study #{study}. Liu et al.'s relative weight deviation ||W − W0||_F / ||W0||_F of each transferred "
            "layer of the fine-tuned network (P-T, AnB+) from the pretrained weights W0; mean over seeds, error bars "
            "the 95% CI (Student t).")
    return view


def smoothness(study: int, view: dict, measure: str) -> None:
    """The chosen measure's curves, summarised per setting and kind of run, into the view."""
    networks = view.pop("networks")
    e = store.results().job_tables(int(networks.job.iloc[0])).get("estimator", {})
    curves = store.results().curves(networks.job.astype(int).tolist(), key=measure)
    summary = smoothness_summary(curves, networks)
    view["smoothness"] = records(summary)
    view["smoothness_paired"] = records(smoothness_differences(curves, networks))
    view["captions"]["smoothness"] = (
        f"Study #{study}. {measure_name(measure)}, at {e.get('points', '?')} evenly spaced steps of a replay of "
        f"each run, on a fixed batch of {e.get('images', '?')} training images, network in eval mode, η in "
        f"{e.get('step_sizes', '?')} (Liu et al. 2019, after Santurkar et al. 2018). Mean over seeds; band: "
        + ("the seeds' range (log axis)." if log_axis(summary) else "95% CI."))


def control(shared: dict | None, name: str, widget, label: str, options: list, **options_of_widget):
    """A choice bound to the URL on the live view; on a snapshot (its `shared` params), the one it was
    shared with."""
    if shared is not None:
        return shared.get(name, options[0])
    return widget(label, options, key=state.key(name), **options_of_widget)


def paired_rows(view: dict, name: str, caption: str, shown: dict = PAIRED_KINDS) -> None:
    """A view's table of paired differences (backend.stats.paired_table), under its caption; none when empty."""
    rows = pd.DataFrame(view.get(name, []))
    if not rows.empty:
        st.caption(f"{caption} {PAIRED}")
        st.dataframe(rows.rename(columns=shown), hide_index=True, key=f"landscape.{name}")


def draw(view: dict, study: int | None, shared: dict | None = None) -> None:
    """Each section the view has, the live view and a snapshot alike; a click opens the job drawn."""
    text = view["captions"]
    if "paths" in view:
        st.subheader("Between runs: the linear path and its barrier")
        quantity = control(shared, "path", st.radio, "Along the path", list(PATH), format_func=PATH.get,
                           horizontal=True)
        open_jobs(study, jobs_of_point(figure(path_figure(view["paths"], quantity), "landscape.paths",
                                              text["paths"] + " A click opens the pair's job.", clickable=True)))
        pairs = pd.DataFrame(view["pairs"])
        st.caption("Per pair: the barriers (loss; accuracy, in fractions), ||θ_a − θ_b||₂, the Jaccard overlap of "
                   "their mistakes, the share both get wrong, the share they disagree on, and the mean CKA of same "
                   "units (when measured). Select a row to open its interpolation job.")
        job_table(pairs, "landscape.pairs", study, jobs="job")
        st.dataframe(pair_means(pairs), hide_index=True, key="landscape.means")
        paired_rows(view, "pairs_paired", "P-T minus RI-T, paired by seed and target: per seed, a measure's mean "
                    "over its P-T pairs minus that over its RI-T pairs (the runs of one seed share its data and "
                    "pretraining).")
    if "planes" in view:
        st.subheader("Around one run: the loss plane")
        open_jobs(study, jobs_of_point(figure(plane_figure(view["planes"]), "landscape.planes",
                                              text["planes"] + " A click on × opens its job.", clickable=True)))
    if "criticality" in view:
        st.subheader("Module criticality")
        figure(criticality_figure(view["criticality"]), "landscape.criticality", text["criticality"])
        st.caption("Rewind tolerance per network: the smallest a whose error at σ = 0 stays within ε (lower: "
                   "less critical). Select a row to open its job.")
        job_table(pd.DataFrame(view["critical_runs"]), "landscape.critical_runs", study, jobs="job")
    if "smoothness" in view:
        st.subheader("Along training: smoothness")
        measure = control(shared, "measure", st.selectbox, "Measure", view["measures"], format_func=measure_name)
        summary = pd.DataFrame(view["smoothness"])
        open_jobs(study, jobs_of_point(figure(smoothness_figure(summary, axis_title(measure)),
                                              "landscape.smoothness", text["smoothness"] + " A click opens the runs.",
                                              clickable=True)))
        paired_rows(view, "smoothness_paired", "P-T minus RI-T, paired by seed and setting: each run's measure "
                    "averaged over the steps of its replay, P-T (AnB+ at n) minus RI-T (baseB) of the same seed.")
    if "deviation" in view:
        st.subheader("How far fine-tuning moves each layer")
        deviation = deviation_figure(pd.DataFrame(view["deviation"]))
        open_jobs(study, jobs_of_point(figure(deviation, "landscape.deviation",
                                              text["deviation"] + " A click opens the jobs.", clickable=True)))
        paired_rows(view, "deviation_paired", "Between targets, paired by seed: each layer's deviation minus "
                    "the first target's of the same seed (only P-T networks deviate from pretrained weights; RI-T "
                    "has none to deviate from, so targets, not kinds of run, are compared).",
                    {**PAIRED_SHOWN, "mean": "difference", "improvement": "P(difference > 0)"})


snapshot = open_snapshot("landscape")
if snapshot is not None:
    draw(snapshot.rows[0], None, snapshot.params)
    st.stop()

study = study_picker(state)
if study is None:
    st.stop()
view = load(study)
bound = {"path": state.bind("path", "loss", valid=PATH.__contains__)} if "paths" in view else {}
if "measures" in view:
    default = "loss_spread" if "loss_spread" in view["measures"] else view["measures"][0]
    bound["measure"] = state.bind("measure", default, valid=view["measures"].__contains__)
    smoothness(study, view, st.session_state[bound["measure"]])
state.report()
if not {"paths", "planes", "criticality", "smoothness", "deviation"} & set(view):
    presets.no_result("landscape result", KINDS, study, "app_pages/landscape.py")
    state.sync()
    st.stop()
draw(view, study)

params = {"study": study, **{name: st.session_state[key] for name, key in bound.items()}}
share_button("landscape", params, [view], " ".join(view["captions"].values()))
tables = {name: pd.DataFrame(view[name]) for name in ("pairs", "critical_runs", "smoothness", "deviation")
          if name in view}
columns = st.columns(len(tables) + 1)
for column, (name, table) in zip(columns, tables.items()):
    column.download_button(f"Download the {name.replace('_', ' ')} (CSV)", table.to_csv(index=False),
                           file_name=f"study{study}-landscape-{name}.csv", key=f"landscape.csv.{name}")
columns[-1].download_button("Download the view (JSON)", json.dumps(view, indent=1),
                            file_name=f"study{study}-landscape.json")
state.sync()
