"""Explorer: transfer gain against domain gap, data amount, depth or diversity, across studies."""

import pandas as pd
import plotly.express as px
import streamlit as st

from backend.jobs import NETWORK_KINDS
from backend.specs import SpecError
from backend.studies import STUDY_KINDS, parse_study
from backend.stats import fit_line, paired_table
from backend.studies.cross import legacy_labels
from ui import presets, store
from ui.charts import COLOURS, SCORES, error_bars_as_bands, gain_table
from ui.compare import spec_difference
from ui.explore import (
    AXES, EFFECTIVE, INTEGER_AXES, LOG_AXES, METRICS, metrics_of, refusals, scratch_fit_table, uncensored, varying_axes,
    with_effective_data, with_labels, with_measurements, with_probes,
)
from ui.state import PageState, flag, ints, joined, shown
from ui.widgets import figure, jobs_of_point, open_jobs, study_choices

COLOUR_BY = {"treatment": "treatment", "study": "study", "seed": "seed", "target": "target task",
             "amount": "data amount", "class_fraction": "share of classes", "depth": "network depth",
             "source_epoch": "pretraining epoch"}
FACETS = ["none", "treatment", "study", "target", "class_fraction", "depth"]


def study_axes(spec: dict) -> tuple[dict, dict]:
    """Study-level values of the explorer's axes (None where the study does not set one), and the
    setting labels of a cross-data-set study's jobs stored before it had them."""
    try:
        study = parse_study(spec)
    except SpecError:
        return {}, {}
    return STUDY_KINDS[study.study].axes(study), legacy_labels(study) if study.study == "cross_dataset" else {}


state = PageState("explorer")
st.title("Explorer")
available = study_choices()
if not available:
    presets.no_study()
    st.stop()
chosen = st.multiselect("Studies (overlaid)", list(available), format_func=available.get, key=state.bind(
    "studies", [next(iter(available))], ints, lambda v: set(v) <= set(available), show=joined))


specs = {study_id: store.results().study_spec(study_id) or {} for study_id in chosen}
# The spec fields in which the chosen studies differ: each can colour or facet the figure.
differ = spec_difference({study_id: specs[study_id] for study_id in chosen}) if len(chosen) > 1 else pd.DataFrame()


def study_rows(study_id: int) -> pd.DataFrame:
    """The study's finished networks with its study-level axes, the spec fields the chosen studies
    differ in, their probes (sharpness, CKA) and, for a cross-data-set study, its measurements (gap,
    diversity, Chen's T, scores) and targets' strengths."""
    spec = specs[study_id]
    axes, legacy = study_axes(spec)

    def read(*kinds: str) -> pd.DataFrame:
        return with_labels(store.results().study_scores(study_id, kinds=kinds), legacy)

    scores = read(*NETWORK_KINDS)
    if scores.empty:
        return scores
    scores = with_probes(scores, {kind: read(kind) for kind in ("sharpness", "similarity", "smoothness")})
    strengths = {t["name"]: t.get("strength") for t in spec.get("targets", [])}
    rows = with_measurements(scores, read("gap"), read("chen_t"), strengths, read("scores"))
    fields = {f"spec.{path}": differ.loc[path, study_id] for path in differ.index}
    return rows.assign(study=available[study_id], **{k: v for k, v in axes.items() if k not in rows}, **fields)


frames = [f for f in (study_rows(study_id) for study_id in chosen) if not f.empty]
scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
varying = varying_axes(scores) or ["n"]
metrics = metrics_of(scores) if not scores.empty else {m: METRICS[m] for m in ("gain", "accuracy")}
cols = st.columns(6)
x = cols[0].selectbox("x axis", varying, format_func=AXES.get, key=state.bind("x", varying[0], valid=varying.__contains__))
y = cols[1].selectbox("y axis", list(metrics), format_func=metrics.get,
                      key=state.bind("y", "gain", valid=metrics.__contains__))
# Colour and facet by a label or by any spec field the chosen studies differ in.
fields = [c for c in scores if c.startswith("spec.")]
colours = [c for c in COLOUR_BY if c in ("treatment", "study", "seed") or scores.get(c, pd.Series()).nunique() > 1] + fields
colour = cols[2].selectbox("Colour by", colours, format_func=lambda c: COLOUR_BY.get(c, c),
                           key=state.bind("colour", "treatment", valid=colours.__contains__))
facets = [f for f in FACETS if f in ("none", "treatment", "study") or scores.get(f, pd.Series()).nunique() > 1] + fields
facet = cols[3].selectbox("Facet by", facets, key=state.bind("facet", "none", valid=facets.__contains__))
score = cols[4].selectbox("Score", list(SCORES), format_func=SCORES.get,
                          key=state.bind("score", "final_accuracy", valid=SCORES.__contains__))
# Off the n axis, each n is its own experiment: pick one rather than pool different n as replicates.
ns = sorted(int(n) for n in scores.get("n", pd.Series(dtype=int)).dropna().unique() if n > 0) or [1]
at_n = cols[5].selectbox("At n", ns, key=state.bind("at_n", max(ns), int, ns.__contains__), disabled=x == "n",
                         help="the units transferred the other axes are compared at")
fit = st.toggle("Fit a line (slope, R²)", key=state.bind("fit", False, flag, show=shown),
                help="least squares per colour; on log axes for data amounts and T, as Chen et al. fit log T "
                     "against log N")
state.report()
if varying == ["n"]:
    st.caption("These studies differ only in n. Overlay studies that differ in data amount, class diversity, "
               "domain gap, block size or depth, or open a cross-data-set study, to compare along those axes.")
if colour != "treatment" and facet == "none":
    facet = "treatment"  # never average different treatments together into one line

if scores.empty:
    st.info("The chosen studies have no finished jobs yet.")
else:
    rows = gain_table(scores, score)
    curves = rows  # every network, baseB's at every amount among them
    if y in EFFECTIVE:  # read off each study's from-scratch curves, fitted per seed on this score
        rows = with_effective_data(rows, score)
    # baseB (gain 0) is the reference at every n: its own probes sit beside the transfers'.
    rows = rows.dropna(subset=[x]) if x == "n" else rows[(rows.n == at_n) | (rows.treatment == "baseB")].dropna(subset=[x])
    groups = list(dict.fromkeys([x, colour] + ([facet] if facet != "none" else [])))
    if y in EFFECTIVE and (refused := refusals(rows)):
        st.caption(refused + " A point where any seed has none is left out: the others' mean would be biased.")
        rows = uncensored(rows, groups, y)
    rows = rows.dropna(subset=[y])
    if rows.empty:
        st.info(f"No network of these studies has both {AXES[x]} and {metrics[y]}: pick other axes.")
    else:
        # Each seed (of each study) counts once: its rows are averaged over the other axes first, so the
        # band is an interval over seeds; for gain, the paired interval of per-seed differences.
        means = paired_table(rows.assign(unit=rows.study.astype(str) + "/" + rows.seed.astype(str)), groups,
                             value=y, seed="unit").rename(columns={"mean": y})
        means["ci95"] = ((means.high - means.low) / 2).fillna(0.0)
        fig = px.line(means.sort_values(x), x=x, y=y, color=colour, markers=True, error_y="ci95",
                      facet_col=None if facet == "none" else facet, hover_data=["seeds"],
                      color_discrete_map=COLOURS if colour == "treatment" else None,
                      labels={x: AXES[x], y: metrics[y]}, log_x=x in LOG_AXES)
        if facet == "none":
            fig.add_scatter(x=rows[x], y=rows[y], mode="markers", marker={"size": 5, "color": "rgba(0,0,0,0.25)"},
                            name="single jobs", customdata=rows[["study", "job"]].values,
                            hovertemplate="job %{customdata[1]} (%{customdata[0]}): %{y:.3g}<extra></extra>")
        if x in INTEGER_AXES and x not in LOG_AXES:
            fig.update_xaxes(tickformat="d", **({"dtick": 1} if x in ("n", "depth") else {}))
        if y in ("gain", "D_T", "D_eff_over_N"):  # no gain, no images, a factor of 1 over training from scratch
            fig.add_hline(y=1 if y == "D_eff_over_N" else 0, line_dash="dot", line_color="grey")
        if y in EFFECTIVE:
            error_bars_as_bands(fig)
        event = figure(fig, "explorer.chart", "Lines: mean over seeds and 95% Student t interval over seeds (each seed "
                       "first averaged over the other axes); for gain the band is the paired interval of the per-seed "
                       "differences: a transfer's score minus baseB's (RI-T) of the same study, seed, target and data "
                       "amount. Dots (unfaceted): single jobs, a click opens one. The score is "
                       f"{SCORES[score]}" + ("." if x == "n" else f", at n = {at_n} units transferred.")
                       + (" Data amount 'all' sits at the mean training images per class." if x == "amount" else "")
                       + (" D_T = D_eff - N: a pretrained network trained on N images per class does as well as "
                          "training from scratch on D_eff, read off the seed's from-scratch error fitted as "
                          "a + b N^-c (Hernandez et al. 2021); never more than 3x past the amounts measured. "
                          "Bands: 95% interval." if y in EFFECTIVE else ""),
                       clickable=True)
        open_jobs(None, jobs_of_point(event))
        if fit:
            log_y = y == "chen_t" or y.startswith("t.")
            fits = pd.DataFrame([{colour: key, **fit_line(part, x, y, log_x=x in LOG_AXES, log_y=log_y)}
                                 for key, part in rows.groupby(colour)])
            st.markdown(f"**Fitted lines**: {'log ' if log_y else ''}{metrics[y]} = intercept + slope × "
                        f"{'log ' if x in LOG_AXES else ''}{AXES[x]}, least squares over single networks")
            st.dataframe(fits, hide_index=True)
        st.dataframe(means, hide_index=True)
        if y in EFFECTIVE:
            with st.expander("From-scratch error fits, err(N) = a + b N^-c: mean and 95% interval over seeds"):
                st.dataframe(scratch_fit_table(curves, score), hide_index=True)
        st.download_button("Download the points (CSV)", rows.to_csv(index=False), file_name="explorer.csv")

state.sync()
