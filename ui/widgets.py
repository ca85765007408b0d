"""Widgets more than one page uses."""

from __future__ import annotations

import streamlit as st

from ui import store
from ui.state import PageState


def study_picker(state: PageState, label: str = "Study") -> int | None:
    """A study select box bound to the URL's `study`; newest study by default. Archived studies are
    left out, except the one a link names."""
    raw = str(st.query_params.get("study", ""))
    studies = store.studies().listing(include=int(raw) if raw.isdigit() else None)
    if not studies:
        st.info("No study yet: queue one on the New study page.")
        return None
    names = {s.id: f"#{s.id} {s.name}{' (archived)' if s.archived else ''} ({s.total} jobs: {_counts(s.counts)})"
             for s in studies}
    key = state.bind("study", studies[0].id, int, lambda v: v in names)
    return st.selectbox(label, list(names), format_func=names.get, key=key)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def absolute_link(path_and_query: str) -> str:
    """A full address for a page link, from the address this browser used (relative in tests)."""
    url = getattr(st.context, "url", None) or ""
    base = url.split("?", 1)[0].rsplit("/", 1)[0] if url.startswith("http") else ""
    return f"{base}/{path_and_query}" if base else path_and_query


def job_role(labels: dict) -> str:
    """A job's place in its study, in words: 'AnB n=3 seed 0 vs baseB'."""
    words = {"treatment": "{}", "n": "n={}", "seed": "seed {}", "against": "vs {}"}
    known = [form.format(labels[key]) for key, form in words.items() if key in labels]
    return " ".join(known + [f"{key} {value}" for key, value in labels.items() if key not in words])
