"""Comparing studies: where their specs differ, and their layer curves on one figure. Pure functions."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from backend.stats import seed_differences
from ui.charts import SCORES, layer_traces, value_range

# One look per study, in the order the studies are given: line dash and marker symbol.
STUDY_DASHES = ("solid", "dot", "dashdot", "longdashdot", "longdash")
STUDY_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star")


def spec_fields(spec: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A spec flattened to dotted paths, each value as one string: {"train.epochs": "2", "seeds": "0,1"}."""
    fields: dict[str, str] = {}
    for name, value in spec.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            fields.update(spec_fields(value, f"{path}."))
        else:
            fields[path] = _shown(value)
    return fields


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list) and value and all(isinstance(v, (str, int, float, bool)) for v in value):
        return ",".join(map(str, value))
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)  # [] and {} stay visible, unlike a missing field
    return str(value)


def spec_difference(specs: dict[Any, dict[str, Any]], every: bool = False) -> pd.DataFrame:
    """One row per dotted field path (the index, "field"), one column per study (the keys of `specs`);
    a field a spec lacks is blank. Only the fields whose values differ, unless `every`."""
    flat = {study: spec_fields(spec) for study, spec in specs.items()}
    paths = sorted({path for fields in flat.values() for path in fields})
    table = pd.DataFrame({study: [fields.get(path, "") for path in paths] for study, fields in flat.items()},
                         index=pd.Index(paths, name="field"), dtype=object)
    return table if every else table[differing(table)]


def differing(table: pd.DataFrame) -> pd.Series:
    """Per row of a spec_difference table: do the studies disagree?"""
    return table.nunique(axis=1, dropna=False) > 1


def highlight_differences(table: pd.DataFrame, colour: str = "#fff3b0") -> pd.DataFrame:
    """CSS per cell for `Styler.apply(..., axis=None)`: a background on every cell of a differing row."""
    rows = differing(table)
    return pd.DataFrame([[f"background-color: {colour}" if rows[i] else "" for _ in table.columns]
                         for i in table.index], index=table.index, columns=table.columns)


def compare_figure(summaries: dict[str, pd.DataFrame], score: str, treatments: list[str],
                   height: int = 520) -> go.Figure:
    """Layer curves of several studies on one figure: accuracy (%) against units transferred, colour =
    treatment (the colours of every page), line dash and marker = study, a 95% band (lines only,
    clipped to 0..100) per curve, and each study's baseB as a dashed grey reference.

    `summaries`: study label -> its ui.charts.layer_summary table (treatment, n, mean, ci95, seeds, jobs)."""
    bounds = (0.0, 100.0)
    x_max = max((n for s in summaries.values() for n in s.loc[s.n > 0, "n"]), default=1)
    fig = go.Figure()
    for i, (study, summary) in enumerate(summaries.items()):
        fig.add_traces(layer_traces(summary, treatments, bounds, study=study, x_max=x_max,
                                    dash=STUDY_DASHES[i % len(STUDY_DASHES)],
                                    symbol=STUDY_SYMBOLS[i % len(STUDY_SYMBOLS)]))
    fig.update_layout(xaxis_title="units transferred (n)", yaxis_title=f"{SCORES.get(score, score)} (%)",
                      xaxis={"dtick": 1}, yaxis={"range": value_range(list(summaries.values()), bounds)},
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 30}, height=height,
                      hovermode="closest")
    return fig


def compare_table(summaries: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The summaries one under the other, with a leading study column."""
    frames = [s.assign(study=study) for study, s in summaries.items() if not s.empty]
    if not frames:
        return pd.DataFrame(columns=["study", "treatment", "n", "mean", "ci95", "seeds", "jobs"])
    table = pd.concat(frames, ignore_index=True)
    return table[["study"] + [c for c in table.columns if c != "study"]]


def paired_by_seed(a: pd.DataFrame, b: pd.DataFrame, score: str) -> pd.DataFrame:
    """Per treatment, n and seed number both studies measured: study a's score minus study b's, in
    points (seed s against seed s: the same class split, initialisation and batch order when the studies
    share data; rows of one seed, e.g. several targets, averaged first), with both studies' job ids
    (`jobs`). `a`, `b`: the studies' `Results.study_scores`."""
    if score not in a or score not in b:
        return pd.DataFrame(columns=["treatment", "n", "seed", "difference", "jobs"])
    both = pd.concat([a.assign(study="a"), b.assign(study="b")], ignore_index=True)
    return seed_differences(both.assign(value=100 * both[score]), ["treatment", "n"], "study", "a", "b", jobs="job")


def difference_caption(first: str, second: str, score: str, seeds: list[int]) -> str:
    band = ("one seed in common: no band" if len(seeds) == 1 else
            f"band: paired 95% t interval of the per-seed difference, {len(seeds)} seeds")
    return (f"{first} minus {second}, per treatment and n, in points of {SCORES.get(score, score)}: seeds are paired "
            f"by number, seed s of {first} against seed s of {second} (the same class split when the studies share "
            f"data; seeds {', '.join(map(str, seeds))}); line: the mean of the per-seed differences; {band}. "
            "Dashed grey: the difference of the baseBs.")
