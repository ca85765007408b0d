"""The dashboard's figures (Plotly) and the tables behind them. Pure functions of DataFrames."""

from __future__ import annotations

import math
import textwrap

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backend.stats import ci95, paired_table
from backend.studies.cross import SETTING

SCORES = {"final_accuracy": "final test accuracy", "best10_accuracy": "mean of the 10 best evaluations"}
# How the summary tables' columns are shown (and kept in a snapshot).
SHOWN_COLUMNS = {"mean": "mean %", "ci95": "± 95% CI"}
# How a table of paired differences (backend.stats.paired_table) is shown.
PAIRED_SHOWN = {"mean": "mean difference", "low": "95% t low", "high": "95% t high", "boot_low": "bootstrap low",
                "boot_high": "bootstrap high", "improvement": "P(improvement)"}
SHARPNESS = {"top_eigenvalue": "Hessian top eigenvalue", "trace": "Hessian trace"}
COLOURS = {"baseB": "#444444", "baseA": "#999999", "BnB": "#1f77b4", "BnB+": "#17becf", "AnB": "#d62728",
           "AnB+": "#ff7f0e", "random": "#7f7f7f", "scratch": "#444444"}


def layer_summary(scores: pd.DataFrame, score: str, scale: float = 100.0) -> pd.DataFrame:
    """Per (treatment, n): mean, 95% confidence half-width over seeds, seed count and job ids, of
    `score` times `scale` (100: accuracies in %)."""
    if scores.empty or score not in scores:
        return pd.DataFrame(columns=["treatment", "n", "mean", "ci95", "seeds", "jobs"])
    grouped = scores.dropna(subset=[score]).assign(value=scale * scores[score]).groupby(["treatment", "n"])
    table = grouped.agg(mean=("value", "mean"), std=("value", "std"), seeds=("value", "size"),
                        jobs=("job", lambda j: ",".join(map(str, sorted(j))))).reset_index()
    table["ci95"] = ci95(table["std"], table["seeds"])
    return table.drop(columns="std")


def layer_figure(summary: pd.DataFrame, score: str, treatments: list[str], y_title: str | None = None,
                 height: int = 460, bounds: tuple[float, float] | None = (0.0, 100.0),
                 points: pd.DataFrame | None = None, zoom: bool = False) -> go.Figure:
    """Yosinski's figure: accuracy (or any per-network value) against units transferred, one line and
    band per treatment, baseB (the target trained from scratch) as the reference line.

    Bands are lines only (no vertex markers) and clipped to `bounds`, the range the value can take;
    `points` (treatment, n, value, job) adds one dot per network; `zoom` fits the axis to the lines
    of the chosen treatments other than the random control, up to the upper bound."""
    fig = go.Figure(layer_traces(summary, treatments, bounds))
    if points is not None:
        for treatment, part in points[points.treatment.isin(treatments + ["baseB"])].groupby("treatment"):
            fig.add_trace(go.Scatter(
                x=part.n.tolist(), y=part.value.tolist(), mode="markers", name=f"{treatment} (one network each)",
                legendgroup=treatment, showlegend=False, customdata=part[["job"]].values.tolist(),
                marker={"color": COLOURS.get(treatment, "#2ca02c"), "size": 6, "opacity": 0.5},
                hovertemplate=f"{treatment}, n=%{{x}}: %{{y:.4g}} (job %{{customdata[0]}})<extra></extra>"))
    y_axis: dict = {}
    if zoom:
        top = summary[summary.treatment.isin([t for t in treatments if t != "random"] + ["baseB"])]
        if not top.empty:
            low = float((top["mean"] - top.ci95).min())
            high = bounds[1] if bounds else float((top["mean"] + top.ci95).max())
            y_axis["range"] = [low - 0.05 * (high - low + 1e-9), high]
    elif bounds is not None:
        y_axis["range"] = value_range([summary], bounds)
    fig.update_layout(xaxis_title="units transferred (n)", yaxis_title=y_title or f"{SCORES.get(score, score)} (%)",
                      xaxis={"dtick": 1}, yaxis=y_axis, legend={"orientation": "h", "y": -0.2}, margin={"t": 30},
                      height=height, hovermode="closest")
    return fig


def layer_traces(summary: pd.DataFrame, treatments: list[str], bounds: tuple[float, float] | None,
                 study: str = "", dash: str = "solid", symbol: str = "circle", x_max: int | None = None) -> list:
    """One study's curves: a band and a mean line per treatment, and baseB's dashed reference across
    the figure (to `x_max`). With `study`, every trace is named and hovered '<study> · <treatment>',
    drawn with that line dash and marker symbol, so several studies can share one figure. The job
    ids come last in each point's customdata (a click opens them)."""
    traces = []
    x_max = x_max or max(summary.loc[summary.n > 0, "n"], default=1)
    prefix = f"{study} · " if study else ""
    base = summary[summary.treatment == "baseB"]
    if not base.empty:
        row, group = base.iloc[0], f"{prefix}baseB"
        x = [0, x_max]
        traces.append(band(x, [row["mean"]] * 2, [row.ci95] * 2, bounds, "rgba(68,68,68,0.12)", group))
        traces.append(go.Scatter(
            x=x, y=[row["mean"]] * 2, mode="lines+markers" if study else "lines", name=group, legendgroup=group,
            line={"color": COLOURS["baseB"], "dash": "dash"}, marker={"symbol": symbol},
            customdata=[[row.ci95, row.seeds, row.jobs]] * 2,
            hovertemplate=f"{group}: %{{y:.4g}} ± {row.ci95:.2g} ({row.seeds} seeds, jobs {row.jobs})<extra></extra>"))
    for treatment in treatments:
        part = summary[(summary.treatment == treatment) & (summary.n > 0)].sort_values("n")
        if part.empty:
            continue
        colour, group = COLOURS.get(treatment, "#2ca02c"), f"{prefix}{treatment}"
        traces.append(band(list(part.n), list(part["mean"]), list(part.ci95), bounds, translucent(colour), group))
        traces.append(go.Scatter(
            x=part.n, y=part["mean"], mode="lines+markers", name=group, legendgroup=group,
            line={"color": colour, "dash": dash}, marker={"color": colour, "symbol": symbol},
            customdata=part[["ci95", "seeds", "jobs"]].values,
            hovertemplate=(f"{group}, n=%{{x}}: %{{y:.4g}} ± %{{customdata[0]:.2g}}"
                           "<br>%{customdata[1]} seeds, jobs %{customdata[2]}<extra></extra>")))
    return traces


def value_range(summaries: list[pd.DataFrame], bounds: tuple[float, float]) -> list[float]:
    """A y range from just under the lowest band to just over the upper bound."""
    lows = [float((s["mean"] - s.ci95).min()) for s in summaries if not s.empty]
    return [max(bounds[0], min(lows, default=bounds[0]) - 2), bounds[1] + 1]


def band(x: list, mean: list, half: list, bounds: tuple[float, float] | None, fill: str, group: str) -> go.Scatter:
    """A filled confidence band, clipped to the range the value can take; a line trace, no markers."""
    low, high = bounds if bounds else (-math.inf, math.inf)
    upper = [min(m + h, high) for m, h in zip(mean, half)]
    lower = [max(m - h, low) for m, h in zip(mean, half)]
    return go.Scatter(x=list(x) + list(x)[::-1], y=upper + lower[::-1], mode="lines", fill="toself",
                      line={"width": 0}, fillcolor=fill, hoverinfo="skip", showlegend=False, legendgroup=group)


def error_bars_as_bands(fig: go.Figure) -> go.Figure:
    """Each line's error bars drawn as a filled band behind it instead (same colour, same subplot):
    for a quantity whose interval is the point of the figure. Lines must be sorted by x."""
    shades = []
    for trace in fig.data:
        half = trace.error_y.array if trace.error_y is not None else None
        if half is None or trace.x is None:
            continue
        colour = trace.line.color if trace.line.color and trace.line.color.startswith("#") else "#444444"
        shade = band(list(trace.x), list(trace.y), list(half), None, translucent(colour), trace.legendgroup)
        shades.append(shade.update(xaxis=trace.xaxis, yaxis=trace.yaxis))
        trace.error_y.visible = False
    fig.add_traces(shades)
    fig.data = fig.data[-len(shades):] + fig.data[:-len(shades)] if shades else fig.data  # bands behind lines
    return fig


def translucent(hex_colour: str, alpha: float = 0.15) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def gain_table(scores: pd.DataFrame, score: str) -> pd.DataFrame:
    """Each target network's score minus baseB's of the same study, seed and (in a cross-data-set
    study) setting: depth, target task, class share and data amount, in points. baseB itself is kept
    (gain 0): the reference its probes are compared with."""
    keys = ["study", "seed"] + [c for c in SETTING[1:] if c in scores]
    base = scores[scores.treatment == "baseB"].groupby(keys)[score].mean().rename("base").reset_index()
    rows = scores[scores.treatment != "baseA"].merge(base, on=keys, how="inner")
    return rows.assign(gain=100 * (rows[score] - rows["base"]), accuracy=100 * rows[score])


def paired_curves(differences: pd.DataFrame, value: str, jobs: str = "job") -> pd.DataFrame:
    """Per (treatment, n): the paired summary (backend.stats.paired_table) of the per-seed differences
    in `value`, job ids from the `jobs` column, and ci95 the half-width of the paired t interval (0 for
    one seed: no band), so layer_figure draws it as its band."""
    table = paired_table(differences, ["treatment", "n"], value, jobs=jobs).sort_values(["treatment", "n"])
    return table.assign(ci95=((table.high - table.low) / 2).fillna(0.0)).reset_index(drop=True)


# Characters of subplot title across the whole figure at TITLE_SIZE px: each panel's title wraps to its
# share, so side-by-side titles never run into each other on a screen-wide figure.
TITLE_CHARS, TITLE_SIZE = 100, 13


def wrap_title(title: str, width: int) -> list[str]:
    """A panel title in lines of at most `width` characters, broken after its commas first."""
    lines: list[str] = []
    for part in title.split(", "):
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += ", " + part
        else:
            if lines:
                lines[-1] += ","
            lines.append(part)
    return [piece for line in lines for piece in textwrap.wrap(line, width) or [""]]


def cka_figure(panels: list[dict]) -> go.Figure:
    """CKA heatmaps side by side on one colour scale (0..1): network A's units down, B's across.
    Each panel: title (a short name), job, units_a, units_b, matrix (list of rows), and optionally
    detail (its numbers, for the tooltip)."""
    spacing = 0.08
    width = max(12, int(TITLE_CHARS * (1 - spacing * (len(panels) - 1)) / len(panels)))
    titles = [wrap_title(p["title"], width) for p in panels]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=["<br>".join(t) for t in titles],
                        horizontal_spacing=spacing)
    fig.update_annotations(font_size=TITLE_SIZE)  # the subplot titles, before any caption is added
    for i, p in enumerate(panels, 1):
        detail = p.get("detail") or f"job {p['job']}"
        fig.add_trace(go.Heatmap(
            z=p["matrix"], x=p["units_b"], y=p["units_a"], coloraxis="coloraxis", name=p["title"],
            hovertemplate=f"A %{{y}} × B %{{x}}: CKA %{{z:.4f}}<br>{p['title']}<br>{detail}<extra></extra>"), 1, i)
        repeated = i > 1 and p["units_a"] == panels[0]["units_a"]  # the first panel's labels say them
        fig.update_yaxes(autorange="reversed", title_text="network A unit" if i == 1 else None,
                         showticklabels=not repeated, row=1, col=i)
        fig.update_xaxes(title_text="network B unit", row=1, col=i)
    lines = max(len(t) for t in titles)
    fig.update_layout(coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1, "colorbar": {"title": "CKA"}},
                      height=400 + 18 * lines, margin={"t": 30 + 18 * lines})
    return fig


def cka_diagonal_figure(panels: list[dict]) -> go.Figure:
    """CKA of each unit with the same unit of the other network, one line per panel."""
    fig = go.Figure()
    for p in panels:
        depth = min(len(p["units_a"]), len(p["units_b"]))
        units = p["units_a"][:depth]
        fig.add_trace(go.Scatter(x=units, y=[p["matrix"][i][i] for i in range(depth)], mode="lines+markers",
                                 name=p["title"], customdata=[[p["job"]]] * depth,
                                 hovertemplate="%{x}: CKA %{y:.4f} (job %{customdata[0]})<extra>" + p["title"] + "</extra>"))
    fig.update_layout(xaxis_title="unit", yaxis_title="CKA with the same unit", yaxis={"range": [0, 1.02]},
                      height=340, margin={"t": 30}, legend={"orientation": "h", "y": -0.3})
    return fig


def captioned(fig: go.Figure, caption: str, width: int = 150) -> go.Figure:
    """The figure with its caption under the plot, so an exported PNG or SVG says what it shows."""
    lines = textwrap.wrap(caption, width) or [""]
    if fig.layout.legend.orientation == "h":  # a legend under the plot moves above it, out of the caption's way
        fig.update_layout(legend={"y": 1.02, "yanchor": "bottom"}, margin={"t": 60})
    fig.add_annotation(text="<br>".join(lines), xref="paper", yref="paper", x=0, y=0, yshift=-55, xanchor="left",
                       yanchor="top", showarrow=False, align="left", font={"size": 11, "color": "#555555"})
    margin = fig.layout.margin.b if fig.layout.margin.b is not None else 80
    fig.update_layout(margin={"b": margin + 16 * len(lines) + 20},
                      height=(fig.layout.height or 450) + 16 * len(lines))
    return fig
