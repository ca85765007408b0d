"""Sharpness: the Hessian of each network's training loss, split at the transfer cut, and its spectrum."""

from functools import cache

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from backend.specs import PRESETS, SCOPES
from backend.stats import ci95
from backend.studies import measures_sharpness, parse_study
from ui import presets, store
from ui.charts import COLOURS, SHARPNESS
from ui.share import open_snapshot, share_button
from ui.state import PageState, ints, joined
from ui.widgets import figure, job_names, jobs_of_point, open_jobs, study_picker

state = PageState("sharpness")
st.title("Sharpness")
ABOUT = ("Hessian of the training loss on a fixed, seeded probe set, networks in eval mode (Liu et al. 2019): "
         "top eigenvalue (Lanczos or power iteration), trace (Hutchinson or Hutch++), spectral density "
         "(stochastic Lanczos quadrature), over all parameters, the transferred units (the first n) or the "
         "units trained anew.")
# Each scope's line style in the split figure, and what it stands for.
LINES = {"all": ("solid", "every parameter"), "transferred": ("dash", "the transferred units only (the first n)"),
         "new": ("dot", "the units trained anew only (n and above)")}
STYLE_NAMES = {"solid": "solid", "dash": "dashed", "dot": "dotted"}
ERRORS = "Error bars: 95% confidence interval of the mean over seeds (Student t)."
st.caption(ABOUT)


@cache
def presets_measuring(feature: str) -> tuple[str, ...]:
    """Presets whose sharpness probes measure `feature` ("split": the transferred and the new units
    apart; "density"), the default preset first, then those that run offline."""
    def measures(name: str) -> bool:
        if not measures_sharpness(PRESETS[name].study):
            return False
        s = parse_study(PRESETS[name].spec_dict()).probes.sharpness
        return s is not None and (s.density if feature == "density" else {"transferred", "new"} <= set(s.scopes))

    found = [name for name in PRESETS if measures(name)]
    return tuple(sorted(found, key=lambda name: (name != presets.DEFAULT, not presets.offline(name)))[:presets.NAMED])


def split_caption(scopes: list[str]) -> str:
    """What the split figure draws: a line style per scope the study measured."""
    if set(scopes) <= {"all"}:
        named = presets_measuring("split")
        other = f" (the {named[0]} preset does)" if named else ""
        return (f"Every parameter: this study measured no split at the cut, the transferred and the new units "
                f"apart{other}. {ERRORS}")
    lines = "; ".join(f"{STYLE_NAMES[LINES[s][0]]}: {LINES[s][1]}" for s in SCOPES if s in scopes)
    return f"{lines[0].upper()}{lines[1:]}. {ERRORS}"


def split_figure(points: pd.DataFrame, metric: str) -> go.Figure:
    present = [s for s in SCOPES if s in set(points["scope"])]
    fig = px.line(points.sort_values("n"), x="n", y="mean", color="treatment", line_dash="scope", error_y="ci95",
                  markers=True, hover_data=[c for c in ("seeds", "jobs") if c in points], color_discrete_map=COLOURS,
                  line_dash_map={s: LINES[s][0] for s in present}, category_orders={"scope": present},
                  labels={"n": "units transferred (n)", "mean": SHARPNESS[metric]})
    fig.update_layout(xaxis={"dtick": 1}, height=420, margin={"t": 30})
    return fig


def density_figure(densities: list[dict]) -> go.Figure:
    fig = go.Figure()
    for d in densities:
        fig.add_trace(go.Scatter(x=d["grid"], y=d["density"], mode="lines", name=d["title"],
                                 customdata=[[d["job"]]] * len(d["grid"])))
    fig.update_layout(xaxis_title="eigenvalue", yaxis_title="density", yaxis_type="log", height=380,
                      margin={"t": 30}, legend={"orientation": "h", "y": -0.3})
    return fig


snapshot = open_snapshot("sharpness")
if snapshot is not None:
    rows = snapshot.rows[0]
    figure(split_figure(pd.DataFrame(rows["split"]), snapshot.params["metric"]), "sharpness.split", snapshot.caption)
    if rows["densities"]:
        figure(density_figure(rows["densities"]), "sharpness.density", snapshot.caption)
    st.stop()

top = st.columns([3, 2, 2])
with top[0]:
    study = study_picker(state)
metric = top[1].radio("Measure", list(SHARPNESS), format_func=SHARPNESS.get,
                      key=state.bind("metric", "top_eigenvalue", valid=SHARPNESS.__contains__))
scope = top[2].radio("Density over", SCOPES, key=state.bind("scope", "all", valid=SCOPES.__contains__))
if study is None:
    st.stop()
probes = store.results().study_scores(study, kinds=["sharpness"])
if probes.empty:
    state.report()
    presets.no_result("sharpness result", ["sharpness"], study, "app_pages/sharpness.py")
    state.sync()
    st.stop()

# Long form: one row per (network, scope), then mean and standard error over seeds.
columns = {s: f"{metric}{'' if s == 'all' else '.' + s}" for s in SCOPES}
long = pd.concat([probes.assign(scope=s, value=probes[c]) for s, c in columns.items() if c in probes])
long = long.dropna(subset=["value"])
split = long.groupby(["treatment", "n", "scope"]).agg(
    mean=("value", "mean"), std=("value", "std"), seeds=("value", "size"),
    jobs=("job", lambda j: ",".join(map(str, sorted(j))))).reset_index()
split["ci95"] = ci95(split.pop("std"), split["seeds"])
measured = [s for s in SCOPES if s in set(split.scope)]
caption = split_caption(measured)
st.subheader(f"{SHARPNESS[metric]} against n{', split at the cut' if set(measured) - {'all'} else ''}")
open_jobs(study, jobs_of_point(figure(split_figure(split, metric), "sharpness.split",
                                     f"Study #{study}. {caption} A click opens the networks' curves.", clickable=True)))

names = job_names(probes)
bases = probes[probes.treatment == "baseB"].job.tolist()[:1]
deepest = probes[probes.n == probes.n.max()].job.tolist()[:1]
chosen = st.multiselect("Spectral density of", list(names), format_func=names.get, key=state.bind(
    "jobs", [int(j) for j in dict.fromkeys(bases + deepest)], ints, lambda v: set(v) <= set(names), show=joined))
state.report()
suffix = "" if scope == "all" else f".{scope}"
densities = [{"title": names[a.job], "job": a.job, "grid": a.value[0].tolist(), "density": a.value[1].tolist()}
             for a in store.results().arrays(study, f"density{suffix}", kinds=["sharpness"], jobs=chosen)]
if chosen and not densities:
    if scope not in measured:
        presets.empty_state(f"Study #{study}'s sharpness probes did not measure the '{scope}' scope (only "
                            f"{', '.join(measured)}).", presets_measuring("split"))
    elif not store.results().arrays(study, "density", kinds=["sharpness"], jobs=chosen):
        presets.empty_state(f"No spectral density in study #{study}: its sharpness probes ran with density off.",
                            presets_measuring("density"))
    else:  # the density was measured, over nothing here: no unit was transferred into these networks
        st.info(f"No spectral density over '{scope}' for these networks: nothing was transferred into them (n = 0).")
elif densities:
    open_jobs(study, jobs_of_point(figure(
        density_figure(densities), "sharpness.density",
        f"Study #{study}: spectral density of the Hessian over '{scope}' (log scale). {ABOUT}", clickable=True)))
    estimator = store.results().job_tables(densities[0]["job"]).get("estimator", {}).get(scope, {})
    with st.expander("Estimator settings and convergence"):
        st.json(estimator, expanded=False)
        for key in estimator.get("convergence", []):  # the eigen-solver's and the trace's running estimates
            curves = store.results().curves([d["job"] for d in densities], key=key)
            st.plotly_chart(px.line(curves, x="step", y="value", color=curves.job.map(names), height=300,
                                    labels={"step": "Hessian-vector products", "value": key}),
                            key=f"sharpness.convergence.{key}")

share_button("sharpness", {"study": study, "metric": metric, "scope": scope, "jobs": joined(chosen)},
             [{"split": split.to_dict(orient="records"), "densities": densities}],
             f"Study #{study}: {SHARPNESS[metric]} against n. {caption} {ABOUT}")
left, right = st.columns(2)
left.download_button("Download the split (CSV)", split.to_csv(index=False), file_name=f"study{study}-sharpness.csv")
right.download_button("Download every network's values (CSV)", probes.to_csv(index=False),
                      file_name=f"study{study}-sharpness-jobs.csv")
state.sync()
