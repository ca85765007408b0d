"""The Findings page's widgets: one finding as a card (measured, paper, claim, verdict badge, links to
its figure and its jobs) and "Add seeds until decided" for an undecided one.

The report is backend.findings' (torch-free), computed from the store and cached briefly per
database URL: it reads every preset study's scores, about a second on a small store.
"""

from __future__ import annotations

import math
import re

import streamlit as st

from backend import findings
from backend.quantities import label as quantity_label
from backend.stats import t_half_width
from backend.specs import SpecError
from backend.verdicts import Finding
from db import sequential
from db.queue import QueueError
from db.session import StoreError, get_engine
from ui import access, store

REPORT_TTL_S = 30  # a worker finishing a job shows here within half a minute, or on "Recompute now"
MAX_SEEDS_CAP = 30  # the largest budget the page offers by default
FLOOR = 0.1  # the asked half-width never goes below this share of the finding's margin

# verdict -> (badge text, colour, icon); None: a table set beside the paper, no verdict
BADGES = {"agrees": ("agrees", "green", ":material/check_circle:"),
          "disagrees": ("disagrees", "red", ":material/cancel:"),
          "undecided": ("undecided", "orange", ":material/help:"),
          None: ("table, no verdict", "gray", ":material/table:")}
VERDICTS = ["any", "agrees", "disagrees", "undecided", "table"]  # the filter; "table": no verdict

# Finding.page -> (page file, title, the query parameter that names the studies it draws)
FIGURES = {"layers": ("app_pages/layers.py", "Layer transfer", "study"),
           "landscape": ("app_pages/landscape.py", "Landscape", "study"),
           "explorer": ("app_pages/explorer.py", "Explorer", "studies"),
           "compare": ("app_pages/compare.py", "Compare studies", "studies"),
           "selection": ("app_pages/selection.py", "Model selection", "study")}


@st.cache_data(ttl=REPORT_TTL_S, show_spinner="Reading every preset study's results ...")
def report(url: str) -> findings.Report:
    return findings.collect(get_engine(url))


def shown(finding: Finding, verdict: str) -> bool:
    """Whether the verdict filter keeps this finding."""
    return verdict == "any" or finding.verdict == (None if verdict == "table" else verdict)


def studies_named(finding: Finding) -> list[int]:
    """The studies a finding across studies compares, from its title ('Study 4 (...) vs study 2 ...')."""
    return list(dict.fromkeys(int(i) for i in re.findall(r"(?i)\bstudy (\d+)", finding.title)))


def badge(finding: Finding) -> None:
    text, colour, icon = BADGES[finding.verdict]
    if finding.verdict == "undecided" and finding.seeds_needed:
        text += f": about {finding.seeds_needed} seeds would decide it"
    st.badge(text, color=colour, icon=icon)


def card(finding: Finding, studies: list[int], key: str, seeds: list[int] | None = None) -> None:
    """One finding: what was measured (paired difference, interval, seeds), the paper's number, the
    claim and margin, the verdict, the tables in an expander, links to its figure and its jobs;
    `seeds`: the study's seeds so far, for "Add seeds until decided" (None across studies)."""
    with st.container(border=True):
        title, verdict = st.columns([3, 2])
        title.markdown(f"**{finding.title}**")
        with verdict:
            badge(finding)
        if finding.difference is not None:
            unit = f" ({finding.unit})" if finding.unit else ""
            st.markdown(f"**Measured**{unit}: {finding.difference.text()}")
        st.markdown(f"**Paper**: {finding.paper}")
        if finding.rule:
            st.markdown(f"**Claim tested**: {finding.rule}")
            st.markdown(finding.sentence)
        with st.expander("Measured: the tables and per-seed values"):
            st.markdown(finding.measured)
        links = st.columns(2)
        if finding.page in FIGURES and studies:
            path, name, param = FIGURES[finding.page]
            ids = studies if param == "studies" else studies[:1]
            links[0].page_link(path, label=f"The figure: {name}", icon=":material/insert_chart:",
                               query_params={param: ",".join(map(str, ids))})
        for study in studies[:1] if seeds is not None else studies:
            links[1].page_link("app_pages/jobs.py", label=f"The jobs behind it: study #{study}", icon=":material/list:",
                               query_params={"study": study})
        if finding.verdict == "undecided" and studies:
            if finding.quantity and seeds is not None and not finding.moot:
                add_seeds(finding, studies[0], seeds, key)
            else:
                st.caption(no_seeds_offered(finding, seeds is None))


def no_seeds_offered(finding: Finding, across: bool) -> str:
    """Why an undecided finding has no "Add seeds until decided": what would decide it instead."""
    if finding.moot:
        return "More seeds are not offered: they would not make the claim testable here (see above)."
    if across:
        return ("This compares two studies seed by seed: add seeds to both (from each study's own undecided "
                "findings, or `--until` on the CLI), and the comparison reads the seeds they share.")
    return ("No seeds rule follows this difference yet, so none can be added from here: queue the study again with "
            "more `--seeds` (its finished jobs are reused), or add seeds on a quantity its rules follow "
            "(`python -m backend presets` lists them).")


def deciding_half_width(finding: Finding) -> float:
    """The half-width at which the observed spread would decide the finding: the 95% t interval's at
    the seeds needed; with no spread yet (one seed), the margin; never below FLOOR x margin."""
    margin = finding.margin or 1.0
    d = finding.difference
    spread = d is not None and d.seeds > 1 and math.isfinite(d.std)
    asked = t_half_width(d.std, finding.seeds_needed) if spread and finding.seeds_needed else margin
    return max(asked, FLOOR * margin)


def default_max_seeds(finding: Finding, seeds_now: int) -> int:
    return min(max(finding.seeds_needed or 0, seeds_now + 2), max(MAX_SEEDS_CAP, seeds_now + 1))


def add_seeds(finding: Finding, study: int, seeds: list[int], key: str) -> None:
    """Show the study's sequential-seeds progress, or offer to start it on this finding's quantity."""
    notice = st.session_state.pop(f"{key}.notice", None)
    if notice:
        getattr(st, notice[0])(notice[1])
    progress = sequential.progress(store.queue(), study)
    if progress is not None:
        st.info(f"Sequential seeds: {progress.text()}", icon=":material/playlist_add:")
        if progress.state == "running":
            return
    if finding.difference is not None and finding.difference.seeds > 1 and not finding.seeds_needed:
        st.caption("No number of seeds up to 1,000 would decide it at this spread, so none are offered.")
        return
    asked = deciding_half_width(finding)
    unit = f" {finding.unit}" if finding.unit else ""
    count, go = st.columns([1, 2], vertical_alignment="bottom")
    budget = count.number_input("At most this many seeds", len(seeds) + 1, 200,
                                default_max_seeds(finding, len(seeds)), key=f"{key}.max_seeds",
                                help="The budget: no seed is added beyond it, decided or not")
    go.button("Add seeds until decided", key=f"{key}.add", icon=":material/playlist_add:", on_click=start_rule,
              args=(study, finding.quantity, asked, key), disabled=access.locked(),
              help=access.hint("add seeds to a study"))
    st.caption(f"Adds one seed at a time (its pretraining first) until the 95% interval of "
               f"{quantity_label(finding.quantity)} is at most ±{asked:.3g}{unit}, the width at which the spread "
               f"seen so far would decide this finding, or {budget} seeds are queued. Seeds stop on the "
               "interval's width (precision), never on significance: stopping when a result turns significant "
               "biases it.")


def start_rule(study: int, quantity: str, asked: float, key: str) -> None:
    """The button's callback, so the page then renders the rule it started."""
    budget = int(st.session_state[f"{key}.max_seeds"])
    try:
        sequential.set_rule(store.queue(), study, quantity, asked, budget)
        st.session_state[f"{key}.notice"] = ("success", f"Study #{study} now adds seeds until the interval of "
                                                        f"{quantity} is ±{asked:.3g}, at most {budget} seeds.")
    except (QueueError, SpecError, StoreError) as exc:  # e.g. a spec the store can no longer expand
        st.session_state[f"{key}.notice"] = ("error", f"No seed was added to study #{study}: {exc}")
