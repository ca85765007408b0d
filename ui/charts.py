"""The dashboard's figures (Plotly) and the tables behind them. Pure functions of DataFrames."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

SCORES = {"final_accuracy": "final test accuracy", "best10_accuracy": "mean of the 10 best evaluations"}
SHARPNESS = {"top_eigenvalue": "Hessian top eigenvalue", "trace": "Hessian trace"}
COLOURS = {"baseB": "#444444", "baseA": "#999999", "BnB": "#1f77b4", "BnB+": "#17becf", "AnB": "#d62728",
           "AnB+": "#ff7f0e", "random": "#7f7f7f", "scratch": "#444444"}
# Two-sided 95% Student t quantiles by degrees of freedom: bands over few seeds must be wide.
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}


def layer_summary(scores: pd.DataFrame, score: str, scale: float = 100.0) -> pd.DataFrame:
    """Per (treatment, n): mean, 95% confidence half-width over seeds, seed count and job ids, of
    `score` times `scale` (100: accuracies in %)."""
    if scores.empty or score not in scores:
        return pd.DataFrame(columns=["treatment", "n", "mean", "ci95", "seeds", "jobs"])
    grouped = scores.dropna(subset=[score]).assign(value=scale * scores[score]).groupby(["treatment", "n"])
    table = grouped.agg(mean=("value", "mean"), std=("value", "std"), seeds=("value", "size"),
                        jobs=("job", lambda j: ",".join(map(str, sorted(j))))).reset_index()
    table["ci95"] = [_t95(k) * s / math.sqrt(k) if k > 1 else 0.0 for k, s in zip(table.seeds, table["std"])]
    return table.drop(columns="std")


def _t95(k: int) -> float:
    return _T95.get(k - 1, 1.96)


def layer_figure(summary: pd.DataFrame, score: str, treatments: list[str], y_title: str | None = None,
                 height: int = 460) -> go.Figure:
    """Yosinski's figure: accuracy (or any per-network value) against units transferred, one line and
    band per treatment, baseB (the target trained from scratch) as the reference line."""
    fig = go.Figure()
    ns = sorted(summary.loc[summary.n > 0, "n"].unique()) or [1]
    base = summary[summary.treatment == "baseB"]
    if not base.empty:
        row = base.iloc[0]
        x = [0, max(ns)]
        fig.add_trace(go.Scatter(x=x + x[::-1], y=[row["mean"] + row.ci95] * 2 + [row["mean"] - row.ci95] * 2,
                                 fill="toself", line={"width": 0}, fillcolor="rgba(68,68,68,0.12)",
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=[row["mean"]] * 2, mode="lines", name="baseB",
                                 line={"color": COLOURS["baseB"], "dash": "dash"},
                                 hovertemplate=f"baseB: %{{y:.4g}} ± {row.ci95:.2g} (jobs {row.jobs})<extra></extra>"))
    for treatment in treatments:
        part = summary[(summary.treatment == treatment) & (summary.n > 0)].sort_values("n")
        if part.empty:
            continue
        colour = COLOURS.get(treatment, "#2ca02c")
        upper, lower = part["mean"] + part.ci95, part["mean"] - part.ci95
        fig.add_trace(go.Scatter(x=list(part.n) + list(part.n)[::-1], y=list(upper) + list(lower)[::-1],
                                 fill="toself", line={"width": 0}, fillcolor=_translucent(colour),
                                 hoverinfo="skip", showlegend=False, legendgroup=treatment))
        fig.add_trace(go.Scatter(
            x=part.n, y=part["mean"], mode="lines+markers", name=treatment, legendgroup=treatment,
            line={"color": colour}, customdata=part[["ci95", "seeds", "jobs"]].values,
            hovertemplate=(f"{treatment}, n=%{{x}}: %{{y:.4g}} ± %{{customdata[0]:.2g}}"
                           "<br>%{customdata[1]} seeds, jobs %{customdata[2]}<extra></extra>")))
    fig.update_layout(xaxis_title="units transferred (n)", yaxis_title=y_title or f"{SCORES.get(score, score)} (%)",
                      xaxis={"dtick": 1}, legend={"orientation": "h", "y": -0.2}, margin={"t": 30},
                      height=height, hovermode="closest")
    return fig


def _translucent(hex_colour: str, alpha: float = 0.15) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def gain_table(scores: pd.DataFrame, score: str) -> pd.DataFrame:
    """Each transfer job's score minus baseB's of the same study and seed, in points."""
    base = (scores[scores.treatment == "baseB"].groupby(["study", "seed"])[score].mean()
            .rename("base").reset_index())
    rows = scores[~scores.treatment.isin(["baseA", "baseB"])].merge(base, on=["study", "seed"], how="inner")
    return rows.assign(gain=100 * (rows[score] - rows["base"]), accuracy=100 * rows[score])


def cka_figure(panels: list[dict]) -> go.Figure:
    """CKA heatmaps side by side on one colour scale (0..1): network A's units down, B's across.
    Each panel: title, job, units_a, units_b, matrix (list of rows)."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p["title"] for p in panels],
                        horizontal_spacing=0.08)
    for i, p in enumerate(panels, 1):
        fig.add_trace(go.Heatmap(
            z=p["matrix"], x=p["units_b"], y=p["units_a"], coloraxis="coloraxis",
            hovertemplate=f"A %{{y}} × B %{{x}}: CKA %{{z:.4f}}<br>job {p['job']}<extra></extra>"), 1, i)
        fig.update_yaxes(autorange="reversed", title_text="network A unit" if i == 1 else None, row=1, col=i)
        fig.update_xaxes(title_text="network B unit", row=1, col=i)
    fig.update_layout(coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1, "colorbar": {"title": "CKA"}},
                      height=420, margin={"t": 60})
    return fig


def cka_diagonal_figure(panels: list[dict]) -> go.Figure:
    """CKA of each unit with the same unit of the other network, one line per panel."""
    fig = go.Figure()
    for p in panels:
        depth = min(len(p["units_a"]), len(p["units_b"]))
        units = p["units_a"][:depth]
        fig.add_trace(go.Scatter(x=units, y=[p["matrix"][i][i] for i in range(depth)], mode="lines+markers",
                                 name=p["title"], hovertemplate="%{x}: CKA %{y:.4f}<extra>" + p["title"] + "</extra>"))
    fig.update_layout(xaxis_title="unit", yaxis_title="CKA with the same unit", yaxis={"range": [0, 1.02]},
                      height=340, margin={"t": 30}, legend={"orientation": "h", "y": -0.3})
    return fig
