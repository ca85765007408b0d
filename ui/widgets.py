"""Widgets more than one page uses."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
import streamlit as st

from ui import presets, store
from ui.charts import captioned
from ui.state import PageState


def study_picker(state: PageState, label: str = "Study") -> int | None:
    """A study select box bound to the URL's `study`; newest study by default. Archived studies are
    left out, except the one a link names."""
    linked = study_id(str(st.query_params.get("study", "")))
    studies = store.studies().listing(include=[linked] if linked is not None else [])
    if not studies:
        presets.no_study()
        return None
    names = {s.id: f"#{s.id} {s.name}{' (archived)' if s.archived else ''} ({s.total} jobs: {_counts(s.counts)})"
             for s in studies}
    key = state.bind("study", studies[0].id, int, lambda v: v in names)
    return st.selectbox(label, list(names), format_func=names.get, key=key)


def study_choices() -> dict[int, str]:
    """Study id -> "#id name" for a multi-study picker bound to the URL's `studies`: newest first,
    archived studies left out except those the link names."""
    linked = [i for i in map(study_id, str(st.query_params.get("studies", "")).split(",")) if i is not None]
    return {s.id: f"#{s.id} {s.name}" for s in store.studies().listing(include=linked)}


def study_id(text: str) -> int | None:
    """A study id as a link spells it, or None: plain ASCII digits ('²' is a digit to str.isdigit) short
    enough for a database integer (a 25-digit id overflows SQLite's)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdecimal() and len(text) < 16 else None


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def absolute_link(path_and_query: str) -> str:
    """A full address for a page link, from the address this browser used (relative in tests)."""
    url = getattr(st.context, "url", None) or ""
    base = url.split("?", 1)[0].rsplit("/", 1)[0] if url.startswith("http") else ""
    return f"{base}/{path_and_query}" if base else path_and_query


def _label(value):
    """A label as it reads: None for an absent one (NaN in a table of mixed jobs), 4 for 4.0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value) if isinstance(value, float) and value.is_integer() else value


# The setting a job ran in, after its treatment and seed, as a researcher says it.
SETTING_WORDS = {"target": "target {}", "amount": "{} images per class", "class_fraction": "{:.0%} of the classes",
                 "depth": "depth {}", "source_epoch": "from pretraining epoch {}", "run": "run {}"}


def job_role(labels: dict, setting: Iterable[str] | None = None) -> str:
    """A job's place in its study, as a researcher names it, from its labels alone (anything else, such
    as the scalars of a results row, is left out, and so is the probe: the page or kind says it):
    'AnB+ n=4, seed 1 vs baseA'; 'baseB, seed 0, target noise 0.2, all images per class';
    'P-T runs 0 and 1, seed 0, target digits 5-9'; 'P-T run 0 vs RI-T run 0, seed 1, ...'. With
    `setting`, only those of the setting's labels (target, amount, ...) are named."""
    value = {key: v for key, v in ((key, _label(labels.get(key))) for key in
                                   ("pair", "runs", "treatment", "n", "seed", "against", *SETTING_WORDS))
             if v is not None}
    head = ""
    if "pair" in value:  # a measurement between two runs of a basins study
        first, _, second = str(value.get("runs", "")).partition("-")
        sides = str(value["pair"]).split(" vs ")
        head = (f"{sides[0]} run {first} vs {sides[1]} run {second}" if len(sides) == 2 and second else
                f"{value['pair']} runs {first} and {second}" if second else str(value["pair"]))
    elif "treatment" in value:
        base = str(value["treatment"]).startswith("base")  # nothing transferred: n says nothing
        head = f"{value['treatment']}{'' if base or 'n' not in value else ' n=' + str(value['n'])}"
    seed = f"seed {value['seed']}" if "seed" in value else ""
    if "against" in value:
        seed = f"{seed} vs {value['against']}".strip()
    named = [form.format(value[key]) for key, form in SETTING_WORDS.items()
             if key in value and (setting is None or key in setting)]
    return ", ".join(part for part in (head, seed, *named) if part)


def job_names(rows: pd.DataFrame) -> dict[int, str]:
    """Job id -> its `job_role` for a table of jobs (`study_scores`), naming of the setting only the
    labels that vary among its rows: 'AnB+ n=4, seed 1 vs baseA', with a target only when there are
    several."""
    varying = [key for key in SETTING_WORDS if key in rows and rows[key].nunique() > 1]
    return {int(row["job"]): job_role(row, varying) for row in rows.to_dict(orient="records")}


def eta_text(done: int, elapsed: float, pending: int) -> str:
    """'  ·  about 3 min left', extrapolating the study's pace so far (runs finished per second since
    its first start) over the jobs still queued or running; empty before the first run finishes."""
    if done == 0 or elapsed <= 0:
        return ""
    seconds = pending * elapsed / done
    left = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
    return f"  ·  about {left} left at {done / elapsed * 60:.1f} jobs/min"


def jobs_of_point(event) -> list[int]:
    """The job ids behind the point clicked on a chart drawn with `on_select`: every figure here puts
    them last in a point's customdata, as one id or a comma-separated list (a mean over seeds)."""
    points = event.selection.points if event is not None else []
    if not points or not points[0].get("customdata"):
        return []
    return [int(v) for v in str(points[0]["customdata"][-1]).split(",") if v.strip().isdigit()]


FIGURE_FORMATS = ("png", "svg")


def figure(fig, key: str, caption: str, clickable: bool = False):
    """A Plotly figure with its caption drawn into it, so the camera button of its toolbar saves a
    PNG or SVG (the sidebar's choice) that says what it shows; with `clickable`, the selection event
    of a click (see `jobs_of_point`)."""
    export = {"format": st.session_state.get("figures.format", "png"), "filename": key.replace(".", "-"), "scale": 2}
    options = {"on_select": "rerun", "selection_mode": "points"} if clickable else {}
    return st.plotly_chart(captioned(fig, caption), key=key, config={"toImageButtonOptions": export}, **options)


def open_jobs(study: int | None, jobs: list[int]) -> None:
    """Go to what a clicked point stands for: one job's detail, or the curves of several overlaid."""
    if len(jobs) == 1:
        st.switch_page("app_pages/job.py", query_params={"job": jobs[0]})
    elif jobs:
        st.switch_page("app_pages/curves.py", query_params={"jobs": ",".join(map(str, jobs)),
                                                        **({"study": study} if study is not None else {})})


def job_table(frame, key: str, study: int | None, jobs: str = "jobs", **options) -> None:
    """A table whose rows open their jobs when selected (the `jobs` column: one id or a list);
    `options` go to st.dataframe (column_config, width)."""
    picked = st.dataframe(frame, hide_index=True, on_select="rerun", selection_mode="single-row", key=key, **options)
    if picked.selection.rows:
        value = frame[jobs].iloc[picked.selection.rows[0]]
        open_jobs(study, [int(v) for v in str(value).split(",") if v.strip().isdigit()])


def label_filters(state: PageState, study: int | None, labels: dict[str, str], columns=None,
                  every: str | None = None) -> dict:
    """One select box per job label (name -> title), its choices the values the study's jobs take,
    bound to the URL; returns {label: chosen value} for `Results` filters. With `every` (e.g. "any")
    each box also offers no filter and every label gets its box, disabled while its label is absent;
    without, only the labels the study carries get one, and one value is always chosen."""
    values = store.results().label_values(study, labels) if study is not None else {}
    shown = list(labels) if every else list(values)
    columns = columns if columns is not None else (st.columns(len(shown)) if shown else [])
    chosen = {}
    for column, name in zip(columns, shown):
        options = ([every] if every else []) + [str(v) for v in values.get(name, [])]
        picked = column.selectbox(labels[name], options, key=state.bind(name, options[0], str, options.__contains__),
                                  disabled=len(options) == 1 and every is not None)
        if picked != every:
            chosen[name] = int(picked) if picked.lstrip("-").isdigit() else picked
    return chosen


TASK_LABELS = {"target": "Target task", "amount": "Training images per class"}


def task_filter(state: PageState, study: int | None) -> dict:
    """For a study with several target tasks or data amounts (a cross-data-set study), one of each,
    bound to the URL: figures that average over seeds must not average over targets too."""
    return label_filters(state, study, TASK_LABELS)
