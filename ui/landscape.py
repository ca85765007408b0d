"""The Landscape page's tables and figures (Neyshabur et al. 2020; Liu et al. 2019): pure functions of
DataFrames and plain rows, torch-free. Every figure puts its job ids last in a point's customdata."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from backend.stats import PAIRED_COLUMNS, ci95, paired_table, seed_differences
from backend.studies.basins import KINDS
from ui.charts import COLOURS, PAIRED_SHOWN, band, translucent  # the bands the layer figures draw

PAIR_COLOURS = {"P-T": COLOURS["AnB+"], "RI-T": COLOURS["baseB"], "P-T vs RI-T": "#9467bd"}
PAIR_NAMES = {"P-T": "P-T pairs (both fine-tuned)", "RI-T": "RI-T pairs (both from random init)",
              "P-T vs RI-T": "P-T vs RI-T"}
PATH = {"loss": "test loss", "accuracy": "test accuracy (%)"}
PAIR_COLUMNS = {"barrier": "barrier", "accuracy_barrier": "accuracy_barrier", "l2_distance": "l2_distance",
                "mistakes.mistake_jaccard": "mistake_jaccard", "mistakes.both_wrong_fraction": "both_wrong",
                "mistakes.disagreement": "disagreement"}
SETTING_COLOURS = qualitative.Safe
DASHES = ("solid", "dash", "dot", "dashdot")
# Labels that name the setting a network was trained in (a cross-data-set study's facets).
SETTING = ("target", "depth", "class_fraction", "amount", "source_epoch")
# How a paired P-T minus RI-T table is shown.
PAIRED_KINDS = {**PAIRED_SHOWN, "mean": "P-T − RI-T", "improvement": "P(P-T > RI-T)"}


def kind_of(treatment: str) -> str:
    """'P-T (AnB+)' for a fine-tuned network, 'RI-T (baseB)' for one from random init."""
    return f"{KINDS[treatment]} ({treatment})" if treatment in KINDS else treatment


def above_chord(alphas: list[float], values: list[float]) -> list[float]:
    """values(l) minus the straight line between the end values: Frankle et al.'s barrier is its max."""
    a, b = values[0], values[-1]
    return [v - ((1 - t) * a + t * b) for t, v in zip(alphas, values)]


def path_figure(paths: list[dict], quantity: str) -> go.Figure:
    """Loss (or accuracy) along the linear path of every pair, coloured by kind of pair; the chord
    between the end points dashed, the barrier a vertical segment at its l. Each path: job, pair,
    runs, seed, target, alphas, loss, accuracy."""
    fig, seen = go.Figure(), set()
    for p in sorted(paths, key=lambda p: list(PAIR_COLOURS).index(p["pair"]) if p["pair"] in PAIR_COLOURS else 9):
        x = p["alphas"]
        y = p["loss"] if quantity == "loss" else [100 * v for v in p["accuracy"]]
        rise = above_chord(x, y if quantity == "loss" else [-v for v in y])
        top = int(np.argmax(rise))
        chord = y[top] - rise[top] if quantity == "loss" else y[top] + rise[top]
        colour, group = PAIR_COLOURS.get(p["pair"], "#2ca02c"), p["pair"]
        name = f"{p['pair']} runs {p['runs']}, seed {p['seed']}, {p['target']}"
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=PAIR_NAMES.get(group, group),
                                 showlegend=group not in seen, line={"color": colour}, marker={"size": 4},
                                 hovertemplate=f"{name}<br>l=%{{x:.3f}}: %{{y:.4g}} (job {p['job']})<extra></extra>",
                                 legendgroup=group, customdata=[[p["job"]]] * len(x)))
        fig.add_trace(go.Scatter(x=[x[0], x[-1]], y=[y[0], y[-1]], mode="lines", showlegend=False, name=f"chord {name}",
                                 line={"color": colour, "dash": "dash", "width": 1}, hoverinfo="skip",
                                 legendgroup=group, customdata=[[p["job"]]] * 2))
        fig.add_trace(go.Scatter(x=[x[top], x[top]], y=[chord, y[top]], mode="lines+markers", showlegend=False,
                                 name=f"barrier {name}", line={"color": colour, "width": 3},
                                 marker={"symbol": "line-ew-open", "size": 10},
                                 hovertemplate=f"{name}<br>barrier {rise[top]:.4g} at l={x[top]:.3f}<extra></extra>",
                                 legendgroup=group, customdata=[[p["job"]]] * 2))
        seen.add(group)
    fig.update_layout(xaxis_title="l: θ(l) = (1 − l) θ_a + l θ_b", yaxis_title=PATH[quantity], height=440,
                      margin={"t": 30}, legend={"orientation": "h", "y": -0.25}, hovermode="closest")
    return fig


def pair_table(paths: pd.DataFrame, similarity: pd.DataFrame) -> pd.DataFrame:
    """One row per pair of runs: the barriers, parameter distance and mistake overlap of its
    interpolation job, and the mean CKA of same units of its similarity job (when measured)."""
    keys = ["target", "seed", "pair", "runs"]
    table = paths[keys + ["job"] + [c for c in PAIR_COLUMNS if c in paths]].rename(columns=PAIR_COLUMNS)
    if not similarity.empty and "cka_diagonal_mean" in similarity:
        cka = similarity[keys + ["cka_diagonal_mean"]].rename(columns={"cka_diagonal_mean": "cka"})
        table = table.merge(cka, on=keys, how="left")
    order = {p: i for i, p in enumerate(PAIR_COLOURS)}
    return table.sort_values(keys, key=lambda c: c.map(order) if c.name == "pair" else c).reset_index(drop=True)


def pair_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per target and kind of pair: the mean of every measure over pairs and seeds, and the pair count."""
    measures = [c for c in table if c not in ("target", "seed", "pair", "runs", "job")]
    means = table.groupby(["target", "pair"], sort=False)[measures].mean()
    return means.assign(pairs=table.groupby(["target", "pair"], sort=False).size()).reset_index()


def pair_differences(table: pd.DataFrame) -> pd.DataFrame:
    """Per target and measure of a pair table: per seed, the mean over its P-T pairs minus the mean over
    its RI-T pairs, summarised (backend.stats.paired_table: mean, t and bootstrap intervals, seeds,
    P(P-T > RI-T), jobs)."""
    measures = [c for c in table if c not in ("target", "seed", "pair", "runs", "job")]
    long = table.melt(id_vars=["target", "seed", "pair", "job"], value_vars=measures, var_name="measure")
    keys = ["target", "measure"]
    return paired_table(seed_differences(long, keys, "pair", "P-T", "RI-T", jobs="job"), keys, jobs="jobs")


def plane_figure(planes: list[dict]) -> go.Figure:
    """Contours of the loss on the plane around each network, one row per setting with P-T beside RI-T,
    on one colour scale; the cross marks the trained network. Each plane: title, row, column, job,
    coords, loss (rows of the grid)."""
    rows = sorted({p["row"] for p in planes})
    cols = sorted({p["column"] for p in planes})
    placed = {(p["row"], p["column"]): p for p in planes}
    titles = [placed[(r, c)]["title"] + (f", {r}" if len(rows) > 1 else "") if (r, c) in placed else ""
              for r in rows for c in cols]
    fig = make_subplots(len(rows), len(cols), subplot_titles=titles, horizontal_spacing=0.1, vertical_spacing=0.15)
    top = max(max(max(r) for r in p["loss"]) for p in planes)
    for (r, c), p in placed.items():
        i, j = rows.index(r) + 1, cols.index(c) + 1
        fig.add_trace(go.Contour(z=p["loss"], x=p["coords"], y=p["coords"], coloraxis="coloraxis",
                                 hovertemplate=f"d1 %{{x:.2f}}, d2 %{{y:.2f}}: loss %{{z:.4g}}<br>job {p['job']}"
                                               "<extra></extra>"), i, j)
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker={"symbol": "x", "color": "white", "size": 9},
                                 showlegend=False, customdata=[[p["job"]]], hoverinfo="skip"), i, j)
        fig.update_xaxes(title_text="direction 1", row=i, col=j)
        fig.update_yaxes(title_text="direction 2" if j == 1 else None, row=i, col=j)
    fig.update_layout(coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": top, "colorbar": {"title": "test loss"}},
                      height=380 * len(rows), margin={"t": 60})
    return fig


def criticality_panels(stored: list[dict]) -> list[dict]:
    """Per target and kind of run, the error of every (unit, a, sigma) averaged over runs and seeds.
    Each stored entry: treatment, target, job, units, alphas, sigmas, error (units, alphas, sigmas)."""
    groups: dict[tuple, list[dict]] = {}
    for s in stored:
        groups.setdefault((s["target"], s["treatment"]), []).append(s)
    panels = []
    for (target, treatment), runs in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] != "AnB+")):
        shape = np.shape(runs[0]["error"])
        same = [r for r in runs if np.shape(r["error"]) == shape]
        panels.append({"target": target, "kind": kind_of(treatment), "units": same[0]["units"],
                       "alphas": same[0]["alphas"], "sigmas": same[0]["sigmas"],
                       "jobs": ",".join(str(r["job"]) for r in same),
                       "error": np.mean([r["error"] for r in same], axis=0).round(6).tolist()})
    return panels


def criticality_figure(panels: list[dict]) -> go.Figure:
    """Neyshabur et al.'s criticality maps: for each unit, the test error over (a, sigma), one row per
    target and kind of run (P-T above RI-T), one colour scale."""
    units = panels[0]["units"]
    titles = [f"{u}<br>{p['kind']}, {p['target']}" if len(panels) > 2 else f"{u}: {p['kind']}"
              for p in panels for u in units]
    fig = make_subplots(len(panels), len(units), subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.3 / len(panels), shared_yaxes=True)
    for i, p in enumerate(panels, 1):
        for j, unit in enumerate(p["units"], 1):
            z = np.asarray(p["error"][j - 1]).T  # (alphas, sigmas) -> (sigmas, alphas): sigma up, a across
            fig.add_trace(go.Heatmap(
                z=z.tolist(), x=p["alphas"], y=[str(s) for s in p["sigmas"]], coloraxis="coloraxis",
                hovertemplate=f"{p['kind']} {unit}: a %{{x}}, σ %{{y}}: error %{{z:.3f}}<br>jobs {p['jobs']}"
                              "<extra></extra>"), i, j)
            fig.update_xaxes(title_text="a" if i == len(panels) else None, row=i, col=j)
        fig.update_yaxes(title_text="σ", row=i, col=1)
    fig.update_layout(coloraxis={"colorscale": "Magma_r", "cmin": 0, "colorbar": {"title": "test error"}},
                      height=170 + 190 * len(panels), margin={"t": 70})
    fig.update_annotations(font_size=11)
    return fig


def setting_names(frame: pd.DataFrame) -> pd.Series:
    """Each row's setting in words, from the setting labels that vary in `frame` ('all' when none)."""
    varying = [c for c in SETTING if c in frame and frame[c].astype(str).nunique() > 1]
    if not varying:
        return pd.Series("all", index=frame.index)
    words = [frame[c].astype(str) if c == "target" else f"{c} " + frame[c].astype(str) for c in varying]
    return pd.concat(words, axis=1).agg(", ".join, axis=1)


def smoothness_summary(curves: pd.DataFrame, networks: pd.DataFrame) -> pd.DataFrame:
    """Per setting, kind of run (and units transferred) and step: mean over seeds, 95% CI half-width,
    seed count, job ids. curves: job, step, value; networks: job and its labels."""
    labelled = curves.merge(networks.assign(setting=setting_names(networks))[["job", "setting", "treatment", "n"]],
                            on="job").sort_values(["job", "step"])  # settings in the study's order
    summary = labelled.groupby(["setting", "treatment", "n", "step"], sort=False).agg(
        mean=("value", "mean"), std=("value", "std"), low=("value", "min"), high=("value", "max"),
        seeds=("value", "size"), jobs=("job", lambda j: ",".join(map(str, sorted(j))))).reset_index()
    summary["ci95"] = ci95(summary.pop("std"), summary["seeds"])
    return summary


def smoothness_differences(curves: pd.DataFrame, networks: pd.DataFrame) -> pd.DataFrame:
    """Per setting and units transferred: each run's measure averaged along training, P-T (AnB+) minus
    RI-T (baseB) of the same setting and seed, summarised (backend.stats.paired_table)."""
    runs = curves.groupby("job", as_index=False).value.mean().merge(
        networks.assign(setting=setting_names(networks))[["job", "setting", "treatment", "n", "seed"]], on="job")
    fine_tuned, scratch = runs[runs.treatment == "AnB+"], runs[runs.treatment == "baseB"]
    both = pd.concat([fine_tuned, *(scratch.assign(n=n) for n in fine_tuned.n.unique())])  # baseB against each n
    keys = ["setting", "n"]
    return paired_table(seed_differences(both, keys, "treatment", "AnB+", "baseB", jobs="job"), keys, jobs="jobs")


def log_axis(summary: pd.DataFrame) -> bool:
    """A log axis for a smoothness summary whose positive means span more than two decades."""
    values = summary.get("mean", pd.Series(dtype=float))
    return not values.empty and (values > 0).all() and values.max() / values.min() > 100


def smoothness_figure(summary: pd.DataFrame, title: str) -> go.Figure:
    """The measure along training, P-T against RI-T, one panel per setting; a log axis when the values
    span more than two decades. Where several seeds, a band: the 95% CI, or on a log axis the seeds'
    range, since a t interval over two or three seeds reaches below 0 there and fills the panel."""
    log = log_axis(summary)
    settings = list(dict.fromkeys(summary.setting))
    cols = min(len(settings), 2) or 1
    rows = math.ceil(len(settings) / cols) or 1
    fig = make_subplots(rows, cols, subplot_titles=settings, horizontal_spacing=0.08, vertical_spacing=0.14)
    for k, setting in enumerate(settings):
        row, col = k // cols + 1, k % cols + 1
        lines = summary[summary.setting == setting]
        for (treatment, n), part in sorted(lines.groupby(["treatment", "n"]), key=lambda g: (g[0][0] != "AnB+", g[0])):
            part, colour = part.sort_values("step"), COLOURS.get(treatment, "#2ca02c")
            depths = sorted(summary.n[summary.treatment == treatment].unique())  # a line per n, if several
            name = kind_of(treatment) + (f", n={n}" if len(depths) > 1 else "")
            x = part.step.tolist()
            if (part.seeds > 1).any():
                centre, half = (((part.low + part.high) / 2, (part.high - part.low) / 2) if log
                                else (part["mean"], part.ci95))
                fig.add_trace(band(x, centre.tolist(), half.tolist(), None, translucent(colour), name), row, col)
            fig.add_trace(go.Scatter(
                x=x, y=part["mean"].tolist(), mode="lines+markers", name=name, legendgroup=name, showlegend=k == 0,
                line={"color": colour, "dash": DASHES[depths.index(n) % len(DASHES)]},
                customdata=part[["ci95", "seeds", "jobs"]].values.tolist(),
                hovertemplate=(f"{name}, {setting}<br>step %{{x}}: %{{y:.4g}} ± %{{customdata[0]:.2g}} "
                               "(%{customdata[1]} seeds, jobs %{customdata[2]})<extra></extra>")), row, col)
    fig.update_xaxes(title_text="optimisation step", row=rows)
    fig.update_yaxes(type="log" if log else "linear")
    fig.update_yaxes(title_text=title, col=1)
    fig.update_layout(height=300 * rows + 80, margin={"t": 50}, legend={"orientation": "v"})
    return fig


def deviations(scores: pd.DataFrame) -> pd.DataFrame:
    """Liu et al.'s relative weight deviation, one row per job and layer: job, setting, seed, layer, value."""
    layers = [c for c in scores if c.startswith("deviation.")]
    setting = setting_names(scores)
    if scores.n.nunique() > 1:  # the layers' deviation differs with how many were transferred
        setting = setting + ", n=" + scores.n.astype(str)
    long = scores.assign(setting=setting).melt(id_vars=["job", "setting", "seed"], value_vars=layers,
                                               var_name="layer", value_name="value").dropna()
    return long.assign(layer=long.layer.str.removeprefix("deviation."))


def deviation_differences(scores: pd.DataFrame) -> pd.DataFrame:
    """Per other setting and layer: its deviation minus the first setting's (the study's order: the most
    similar target first) of the same seed, summarised (backend.stats.paired_table). Only fine-tuned (P-T)
    networks deviate from pretrained weights, so settings, not kinds of run, are what is paired here."""
    long = deviations(scores)
    first = long.setting.iloc[0] if not long.empty else None
    differences = [seed_differences(long, ["layer"], "setting", other, first, jobs="job")
                   .assign(comparison=f"{other} − {first}") for other in long.setting.unique()[1:]]
    keys = ["comparison", "layer"]
    if not differences:
        return pd.DataFrame(columns=[*keys, *PAIRED_COLUMNS, "jobs"])
    return paired_table(pd.concat(differences, ignore_index=True), keys, jobs="jobs")


def deviation_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per setting and layer: Liu et al.'s relative weight deviation, mean over seeds, 95% CI, jobs."""
    summary = deviations(scores).groupby(["setting", "layer"], sort=False).agg(
        mean=("value", "mean"), std=("value", "std"), seeds=("value", "size"),
        jobs=("job", lambda j: ",".join(map(str, sorted(j))))).reset_index()
    summary["ci95"] = ci95(summary.pop("std"), summary["seeds"])
    return summary


def deviation_figure(summary: pd.DataFrame) -> go.Figure:
    """Bars per layer, one colour per setting (target), error bars the 95% CI over seeds."""
    fig = go.Figure()
    for k, (setting, part) in enumerate(summary.groupby("setting", sort=False)):
        fig.add_trace(go.Bar(x=part.layer.tolist(), y=part["mean"].tolist(), name=setting,
                             error_y={"array": part.ci95.tolist()},
                             marker_color=SETTING_COLOURS[k % len(SETTING_COLOURS)],
                             customdata=part[["seeds", "jobs"]].values.tolist(),
                             hovertemplate=f"{setting}, %{{x}}: %{{y:.4g}} (%{{customdata[0]}} seeds, jobs "
                                           "%{customdata[1]})<extra></extra>"))
    fig.update_layout(barmode="group", xaxis_title="layer", yaxis_title="||W − W0|| / ||W0||", height=400,
                      margin={"t": 30}, legend={"orientation": "h", "y": -0.25})
    return fig
