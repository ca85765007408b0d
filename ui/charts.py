"""The dashboard's figures (Plotly) and the tables behind them. Pure functions of DataFrames."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

SCORES = {"final_accuracy": "final test accuracy", "best10_accuracy": "mean of the 10 best evaluations"}
COLOURS = {"baseB": "#444444", "baseA": "#999999", "BnB": "#1f77b4", "BnB+": "#17becf", "AnB": "#d62728",
           "AnB+": "#ff7f0e", "random": "#7f7f7f", "scratch": "#444444"}
# Two-sided 95% Student t quantiles by degrees of freedom: bands over few seeds must be wide.
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}


def layer_summary(scores: pd.DataFrame, score: str) -> pd.DataFrame:
    """Per (treatment, n): mean, 95% confidence half-width over seeds, seed count and job ids, in %."""
    if scores.empty or score not in scores:
        return pd.DataFrame(columns=["treatment", "n", "mean", "ci95", "seeds", "jobs"])
    grouped = scores.assign(value=100 * scores[score]).groupby(["treatment", "n"])
    table = grouped.agg(mean=("value", "mean"), std=("value", "std"), seeds=("value", "size"),
                        jobs=("job", lambda j: ",".join(map(str, sorted(j))))).reset_index()
    table["ci95"] = [_t95(k) * s / math.sqrt(k) if k > 1 else 0.0 for k, s in zip(table.seeds, table["std"])]
    return table.drop(columns="std")


def _t95(k: int) -> float:
    return _T95.get(k - 1, 1.96)


def layer_figure(summary: pd.DataFrame, score: str, treatments: list[str]) -> go.Figure:
    """Yosinski's figure: accuracy against units transferred, one line and band per treatment,
    baseB (the target trained from scratch) as the reference line."""
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
                                 hovertemplate=f"baseB: %{{y:.2f}}% ± {row.ci95:.2f} (jobs {row.jobs})<extra></extra>"))
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
            hovertemplate=(f"{treatment}, n=%{{x}}: %{{y:.2f}}% ± %{{customdata[0]:.2f}}"
                           "<br>%{customdata[1]} seeds, jobs %{customdata[2]}<extra></extra>")))
    fig.update_layout(xaxis_title="units transferred (n)", yaxis_title=f"{SCORES.get(score, score)} (%)",
                      xaxis={"dtick": 1}, legend={"orientation": "h", "y": -0.2}, margin={"t": 30},
                      height=460, hovermode="closest")
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
