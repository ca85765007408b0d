"""Share links: an immutable snapshot of what a page shows, behind `?share=<id>`."""

from __future__ import annotations

import datetime
from typing import Any

import streamlit as st

from db.shares import Snapshot
from ui import access, store
from ui.widgets import absolute_link


def open_snapshot(page: str) -> Snapshot | None:
    """The snapshot the URL's `share` names, announced with a link to the live view; None (with a
    warning for an unknown or tampered id) when the page should show the live view."""
    share_id = st.query_params.get("share")
    if share_id is None:
        return None
    snapshot = store.shares().get(share_id)
    if snapshot is None or snapshot.page != page:
        st.warning("This share link is unknown or damaged; showing the live view instead.")
        st.query_params.pop("share", None)
        return None
    taken = datetime.datetime.fromtimestamp(snapshot.created_at, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    live = f"{page}?" + "&".join(f"{k}={v}" for k, v in snapshot.params.items())
    spec = f" (study spec `{snapshot.spec_hash[:12]}`)" if snapshot.spec_hash else ""
    studies = snapshot.params.get("study") or snapshot.params.get("studies", "")
    what = f"{'studies' if ',' in str(studies) else 'study'} #{str(studies).replace(',', ', #')}"
    st.info(f"Snapshot `{snapshot.id}` of {what}{spec}, taken {taken}: it stays as it "
            f"was when shared. [Open the live view]({live})")
    return snapshot


def share_button(page: str, params: dict[str, Any], rows: list[dict[str, Any]], caption: str,
                 columns: list[str] | None = None) -> None:
    """A button that stores the view (its rows, the column names shown, its caption and the study's
    spec hash) and shows its link."""
    if st.button("Share this view", key=f"{page}.share", disabled=access.locked(), help=access.hint("share views")):
        study = params.get("study")
        spec_hash = store.results().study_spec_hash(study) if study is not None else None
        link_id = store.shares().create(page, params, rows, caption=caption, columns=columns, spec_hash=spec_hash)
        st.success("A snapshot that will not change as more jobs land:")
        st.code(absolute_link(f"{page}?share={link_id}"), language=None)
