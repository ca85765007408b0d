"""Presets as the result pages point at them: which presets' studies measure a kind of result, and the
empty state that names them, each a link opening it on the New study page (`?preset=NAME`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

import streamlit as st

from backend.specs import PRESETS
from backend.studies import expand, parse_study
from ui import store

DEFAULT = "yosinski-digits"  # the New study page's preset on a first visit
NEW_STUDY = "app_pages/new_study.py"
NAMED = 3  # presets an empty state names at most
BUILT_IN = ("digits", "synthetic")  # sources that need no data set on disk
PENDING = ("running", "queued")


@cache
def job_kinds(name: str) -> frozenset[str]:
    """The kinds of job a preset's study plans (its probes as the preset sets them)."""
    return frozenset(job.kind for job in expand(parse_study(PRESETS[name].spec_dict())))


def offline(name: str) -> bool:
    """Whether a preset runs on built-in data alone (no data set on disk)."""
    def sources(obj) -> Iterable[dict]:
        if isinstance(obj, dict):
            if isinstance(obj.get("source"), dict) and "kind" in obj["source"]:
                yield obj["source"]
            for value in obj.values():
                yield from sources(value)
        elif isinstance(obj, list):
            for value in obj:
                yield from sources(value)

    return all(source["kind"] in BUILT_IN for source in sources(PRESETS[name].spec))


def filled_by(kinds: Iterable[str]) -> list[str]:
    """The presets whose studies have jobs of any of `kinds`, at most NAMED: the default preset first,
    then those that run offline, in the presets' order; those needing data on disk only when no
    offline one does."""
    kinds = set(kinds)
    found = [name for name in PRESETS if kinds & job_kinds(name)]
    ranked = sorted(found, key=lambda name: (name != DEFAULT, not offline(name)))
    shown = [name for name in ranked if offline(name)] or ranked
    return shown[:NAMED]


def empty_state(message: str, presets: Sequence[str], together: bool = False) -> None:
    """An info box saying what is missing and which presets fill the page (any one of them, or all
    `together`), then a link per preset that opens it on the New study page."""
    names = [f"**{name}**" for name in presets]
    named = (f"the {names[0]} preset" if len(names) == 1 else
             f"the presets {', '.join(names[:-1])} and {names[-1]}" if together else
             f"one of the presets {', '.join(names[:-1])} or {names[-1]}")
    fill = f" Queue {named} on the New study page to fill this page." if presets else ""
    st.info(message + fill)
    for name in presets:
        st.page_link(NEW_STUDY, label=f"New study with the {name} preset: {PRESETS[name].asks}",
                     query_params={"preset": name}, icon=":material/add_circle:")


def no_study() -> None:
    """The empty state of a page on an empty store."""
    empty_state("No study yet.", [DEFAULT])


def no_result(what: str, kinds: Sequence[str], study: int, page: str) -> None:
    """The empty state of a result page for a study with no result of `kinds` (e.g. "CKA result"):
    when the study planned such jobs, whether they are still to come or did not succeed; when it did
    not, the presets that measure it and a study of the store that has it, if any, on this page."""
    planned = [store.results().jobs(study_id=study, kind=kind, limit=1) for kind in kinds]
    planned = [jobs.iloc[0] for jobs in planned if not jobs.empty]
    if any(job.status in PENDING for job in planned):
        st.info(f"No {what} in study #{study} yet: it lands as its {', '.join(job.kind for job in planned)} jobs "
                "finish.")
        return
    failed = [job for job in planned if job.status != "succeeded"]  # failed, cancelled, blocked
    if failed:
        st.warning(f"No {what} in study #{study}: its {failed[0].kind} jobs did not succeed "
                   f"({', '.join(sorted({job.status for job in failed}))}).")
        st.page_link("app_pages/jobs.py", label="Their jobs and errors on the Jobs page",
                     query_params={"study": study, "kind": failed[0].kind}, icon=":material/list:")
        return
    if planned:
        st.info(f"No {what} in study #{study}: its {', '.join(job.kind for job in planned)} jobs stored none.")
        return
    listed = f"{', '.join(kinds[:-1])} or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
    empty_state(f"No {what} in study #{study}: it has no {listed} job.", filled_by(kinds))
    holders = [store.results().jobs(kind=kind, status="succeeded", limit=20).study_id.dropna() for kind in kinds]
    holder = next((int(ids.iloc[0]) for ids in holders if not ids.empty), None)
    if holder is not None:
        st.page_link(page, label=f"Open study #{holder} here: it has {what}s", query_params={"study": holder},
                     icon=":material/arrow_forward:")
