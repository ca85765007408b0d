"""Seeds: the New study page's choice between a fixed list of seeds and seeds added until an interval
is precise; what those seeds will cost, sized from past studies of the same shape before anything is
queued; and a study's sequential-seeds progress line for the Jobs and Study pages.

It sizes seeds by the width of the interval asked for, never by significance (PAPERS.md, "Sequential
seeds"): n is about (t_{0.975, n-1} * sd / half-width)^2, with sd the seed-to-seed spread of past runs.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from backend.specs import Spec, canonical_json
from backend.specs.seeds import SEED_QUANTITIES
from backend.stats import seeds_for_half_width, t_half_width
from backend.studies import GridField
from db.sequential import progress, seed_history
from db.submit import planned_shapes
from ui import store

MODES = {"fixed": "A fixed list of seeds", "precise": "Until precise: add seeds until the interval is this narrow"}
PILOT = "0,1"  # a pilot's seeds: the fewest that measure a seed-to-seed spread


def seeds_section(kind: str, field: GridField, preset: dict[str, Any],
                  slots: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The Seeds section: (the seeds box's text, the spec's `precision` or None for a fixed list).
    Each field gets a slot in `slots` for the error that names it."""
    st.subheader("Seeds")
    mode = st.radio("How many seeds", list(MODES), format_func=MODES.get, horizontal=True, key="new.seed_mode")
    precise = mode == "precise"
    boxes = st.columns(4)
    with boxes[0]:
        text = st.text_input(f"First {field.label[0].lower()}{field.label[1:]}, at least 2" if precise else field.label,
                             field.text(preset.get(field.path)), key=f"new.{field.path}")
        slots[field.path] = st.empty()
    # Shown (greyed) with a fixed list too: a widget not drawn would forget what was typed in it.
    quantities = SEED_QUANTITIES[kind]
    with boxes[1]:
        quantity = st.selectbox("Stop on the interval of", list(quantities), format_func=quantities.get,
                                key=f"new.quantity.{kind}", disabled=not precise)  # each kind its own choices
        slots["precision.quantity"] = st.empty()
    with boxes[2]:
        half_width = st.number_input("Half-width asked (±, in the quantity's units)", value=1.0, step=0.1,
                                     format="%.3f", key="new.half_width", disabled=not precise,
                                     help="The 95% interval is narrow enough once it is at most ± this wide.")
        slots["precision.half_width"] = st.empty()
    with boxes[3]:
        budget = st.number_input("Budget: at most this many seeds", value=12, step=1, key="new.max_seeds",
                                 disabled=not precise)
        slots["precision.max_seeds"] = st.empty()
    slots["precision"] = st.empty()
    return text, {"quantity": quantity, "half_width": half_width, "max_seeds": int(budget)} if precise else None


def seed_seconds(study: Spec) -> tuple[float, int, int]:
    """(seconds one seed's jobs take on one worker, from past runs of their shapes; how many of those
    jobs' shapes ran before; how many jobs a seed has)."""
    shapes = planned_shapes(study.model_copy(update={"seeds": study.seeds[:1], "precision": None}))
    seconds = store.studies().mean_seconds_by_shape(shapes)
    timed = [seconds[shape] for shape in shapes if shape in seconds]
    return sum(timed), len(timed), len(shapes)


def seed_cost(study: Spec, pilot: bool = True) -> None:
    """Seeds and cost before queuing: the seed-to-seed spread of the quantity the study stops on (its
    kind's key quantity for a fixed list) over past studies of this shape, the seeds a half-width
    needs and their time; with no history, a 2-seed pilot to measure it (`pilot`: offer the button)."""
    rule = getattr(study, "precision", None)
    quantities = SEED_QUANTITIES[study.study]
    quantity = rule.quantity if rule is not None else next(iter(quantities))
    history = seed_history(store.queue(), json.loads(canonical_json(study)), quantity)
    st.markdown("**Seeds and cost before queuing**")
    if history.std is None:
        measured = f" (only seed {history.values.index[0]} measured it)" if len(history.values) else ""
        st.info(f"No history: no past study of this shape (this spec but for its seeds) has measured "
                f"{quantities[quantity]} on 2 seeds{measured}, so there is no seed-to-seed spread to size the "
                "seeds from. A 2-seed pilot measures it.")
        if pilot:
            st.button("Make it a 2-seed pilot (seeds 0,1, no precision rule)", key="new.pilot", on_click=_pilot)
        return
    seconds, timed, jobs = seed_seconds(study)
    spread = (f"{quantities[quantity]} varied by sd {history.std:.3g} from seed to seed over {len(history.values)} "
              f"past seeds (studies {', '.join(f'#{i}' for i in history.studies)}, this spec but for its seeds)")
    if rule is None:
        seeds = len(study.seeds)
        st.markdown(f"{spread}. With the {seeds} seeds listed, its 95% interval is likely about "
                    f"±{t_half_width(history.std, seeds):.3g}; {_time(seeds, seconds, timed, jobs)}.")
        return
    needed = seeds_for_half_width(history.std, rule.half_width, start=len(study.seeds))
    if needed is None:
        st.warning(f"{spread}. No practical number of seeds narrows it to ±{rule.half_width:g}: ask a wider "
                   "half-width.")
        return
    half = f"{rule.half_width:g}"
    st.markdown(f"{spread}. For ±{half}, about **{needed} seeds** (t × sd / √n ≤ {half}); "
                f"{_time(needed, seconds, timed, jobs)}.")
    if needed > rule.max_seeds:
        st.warning(f"That is beyond the budget of {rule.max_seeds} seeds: the rule would stop there, with an "
                   f"interval of about ±{t_half_width(history.std, rule.max_seeds):.3g}.")


def _time(seeds: int, seconds: float, timed: int, jobs: int) -> str:
    if not timed:
        return "no past run of one seed's jobs' shapes to time them"
    return (f"about {seeds * seconds / 60:.1f} min on one worker, {seconds / 60:.1f} min a seed (from past runs of "
            f"{timed} of a seed's {jobs} jobs' shapes)")


def _pilot() -> None:
    st.session_state["new.seeds"] = PILOT
    st.session_state["new.seed_mode"] = "fixed"


def progress_line(study_id: int) -> None:
    """A study's sequential-seeds progress, where it has a precision rule: seeds so far, the interval
    now and the one asked, and why it stopped."""
    rule = progress(store.queue(), study_id)
    if rule is not None:
        st.info(f"**Sequential seeds:** {rule.text()}")
