"""The data preview under the New study page's Data column (torch-free).

At once, where the path is typed: an ImageFolder's classes and images per split, from its listing.
On request: a preview job the worker runs ahead of studies (decoding needs the engine), shown when
it is done: format, images per class, sample images per class, and each seed's class halves A/B.
"""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import streamlit as st

from backend.specs import SpecError, parse, spec_hash
from backend.specs.folders import image_folder
from backend.specs.preview import DataPreviewSpec
from backend.specs.roots import check_data_roots
from db.previews import DataPreview, Previews, request_preview
from ui import access, store
from ui.state import ints

LIVE = ("queued", "running")


@st.cache_data(ttl=10, show_spinner=False, max_entries=32)
def folder_counts(root: str) -> tuple[str, dict[str, dict[str, int]]]:
    """(layout, split -> class -> images) of an ImageFolder root, or the SpecError saying what is
    wrong with it. Listed at most every 10 s per root: a large tree takes a while to walk."""
    folder = image_folder(root)
    return folder.layout, folder.counts()


def data_preview(data: dict, seeds: str) -> None:
    """What the task holds, for the data spec `data` and the seeds typed (comma-separated); nothing
    when the spec is invalid (the page shows that error under its field)."""
    try:
        typed = ints(seeds)
    except ValueError:  # the grid shows that error; preview the data without halves meanwhile
        typed = []
    try:
        spec = parse(DataPreviewSpec, {"data": data, "seeds": typed})
        check_data_roots(spec)  # nothing outside the data roots is listed, let alone queued
        if spec.data.source.kind == "folder":
            _folder_summary(*folder_counts(spec.data.source.root))
    except SpecError:
        return
    job = worker_preview(
        f"new.preview_job.{spec_hash(spec)}", "Preview",
        lambda: st.button("Preview data", key="new.preview", disabled=access.locked(),
                          help=access.hint("preview data") or "decodes the data on a worker, ahead of any study"),
        lambda: request_preview(store.queue(), spec))
    if job is not None:
        show(job.preview)


def worker_preview(key: str, what: str, ask: Callable[[], bool], request: Callable[[], int]) -> Any:
    """A job a worker runs ahead of any study (a data preview, a model's import): queued once `ask()` (its
    button) says so, its id kept in the session under `key`; the finished job once it has succeeded, else
    None, with its progress meanwhile or why it failed (and the button asks again)."""
    if key not in st.session_state:
        if not ask():
            return None
        st.session_state[key] = request()
    job_id = st.session_state[key]
    job = Previews(store.queue().engine).get(job_id)
    if job is None or job.status not in (*LIVE, "succeeded"):
        del st.session_state[key]  # failed, cancelled, or gone with its database
        if job is not None:
            st.error(f"The {what.lower()} (job #{job_id}) {job.status}: {job.error}")
        return None
    if job.status in LIVE:
        waiting(job_id, what)
        return None
    return job


def _folder_summary(layout: str, counts: dict[str, dict[str, int]]) -> None:
    splits = list(counts)
    classes = list(next(iter(counts.values())))
    totals = ", ".join(f"{sum(counts[s].values())} {s}" for s in splits)
    st.caption(f"{len(classes)} classes ({layout}): {totals} images")
    st.dataframe(pd.DataFrame({"class": classes, **{s: list(counts[s].values()) for s in splits}}),
                 hide_index=True, height=min(36 * (len(classes) + 1), 200))


@st.fragment(run_every=1)
def waiting(job_id: int, what: str = "Preview") -> None:
    """Polls a preview job each second; reruns the page once it has finished, to show the preview."""
    job = Previews(store.queue().engine).get(job_id)
    if job is None or job.status not in LIVE:
        st.rerun()
    line = f"{what} (job #{job_id}) {job.status}: {job.message or 'waiting'}"
    if job.status == "queued" and store.results().workers(seen_within=30).empty:
        line += "; waiting for a worker (none is running: start one with `python -m backend worker`)"
    st.info(line)


def show(p: DataPreview) -> None:
    c, h, w = p.image_shape
    st.caption(f"{len(p.classes)} classes, {sum(p.counts['train'])} training and {sum(p.counts['test'])} test "
               f"images, {h}×{w} {'grey' if c == 1 else 'RGB'}")
    shown = "" if len(p.sample_classes) == len(p.classes) else f" (the first {len(p.sample_classes)})"
    st.image(p.samples[..., 0] if c == 1 else p.samples,
             caption=f"one row per class{shown}, top to bottom: {', '.join(p.sample_classes)}")
    with st.expander("Images per class"):
        st.dataframe(pd.DataFrame({"class": p.classes, **p.counts}), hide_index=True)
    if p.halves:
        st.markdown("**Class halves A / B per seed** (Yosinski: train on A, transfer to B)")
        st.dataframe(pd.DataFrame([{"seed": seed, "A": ", ".join(h["A"]), "B": ", ".join(h["B"])} if "A" in h
                                   else {"seed": seed, "A": h["error"], "B": ""} for seed, h in p.halves.items()]),
                     hide_index=True)
