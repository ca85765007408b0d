"""Studies: every study with its kind, preset, progress, wall time, tags and notes; search by name
or tag; rename, archive, delete (keeping what other studies reuse)."""

from pathlib import Path

import pandas as pd
import streamlit as st

from backend import settings
from db.queue import QueueError
from db.session import StoreError
from ui import access, presets, store
from ui.state import PageState, flag, shown

state = PageState("studies")
st.title("Studies")
left, right = st.columns([3, 1])
search = left.text_input("Search by name or tag", key=state.bind("q", ""), placeholder="e.g. pilot or mnist")
archived = right.toggle("Show archived", key=state.bind("archived", False, flag, show=shown))
state.report()

notice = st.session_state.pop("studies.notice", None)  # what the last action did (set in its callback)
if notice:
    getattr(st, notice[0])(notice[1])


def remove_artifacts(paths: list[str]) -> int:
    """Delete files (relative to the artifacts folder) that no job references any more; returns how many."""
    root = settings.artifacts_dir().resolve()
    removed = 0
    for path in paths:
        target = (root / path).resolve()
        if root in target.parents and target.is_file():
            target.unlink()
            removed += 1
    return removed


def act(action, *args) -> None:
    """Run a store action from a button's callback, so the page then renders what it changed."""
    try:
        st.session_state["studies.notice"] = ("success", action(*args))
    except (QueueError, StoreError) as exc:
        st.session_state["studies.notice"] = ("error", str(exc))


def rename(study_id: int) -> str:
    name = store.studies().rename(study_id, st.session_state[f"studies.name.{study_id}"])
    return f"Study #{study_id} is now called “{name}”."


def archive(study_id: int, archived_now: bool) -> str:
    store.studies().set_archived(study_id, not archived_now)
    return (f"Study #{study_id} is back in the lists." if archived_now else
            f"Archived study #{study_id}: hidden from the lists (“Show archived” finds it); nothing was deleted.")


def delete(study_id: int) -> str:
    done = store.studies().delete(study_id)
    removed = remove_artifacts(done.orphaned_paths)
    kept = (f"Kept for other studies: the results of {len(done.kept)} of its runs, now held by "
            f"{'job' if len(done.kept) == 1 else 'jobs'} {', '.join(map(str, done.kept.values()))} of "
            f"{'study' if len(done.kept_for) == 1 else 'studies'} {', '.join(f'#{s}' for s in done.kept_for)}."
            if done.kept else "No other study reused its results.")
    return (f"Deleted study #{done.id} “{done.name}” and its {done.jobs} jobs. {kept} "
            f"Removed {removed} artifact file{'s' if removed != 1 else ''} no job uses any more.")


studies = store.studies().listing(search=search, archived=archived)
if not studies:
    if search or store.studies().listing(archived=True, limit=1):  # none shown, yet some are archived
        st.info("No study matches.")
    else:
        presets.no_study()
    state.sync()
    st.stop()

table = pd.DataFrame([{
    "id": s.id, "name": s.name, "kind": s.kind, "preset": s.origin,
    "jobs": s.total, "status": ", ".join(f"{n} {status}" for status, n in sorted(s.counts.items())),
    "wall (min)": round(s.wall_seconds / 60, 1), "tags": ", ".join(map(str, s.tags)), "notes": s.notes,
    "created": pd.to_datetime(s.created_at, unit="s").floor("s"), "archived": s.archived} for s in studies])
picked = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                      key="studies.table", column_config={"notes": st.column_config.TextColumn("notes", width="large")})
st.caption("Select a row to open the study's overview; click a column header to sort.")
if picked.selection.rows:  # in this tab, keeping the session
    st.switch_page("app_pages/study.py", query_params={"study": int(table.id.iloc[picked.selection.rows[0]])})

st.subheader("Manage a study")
chosen = {s.id: s for s in studies}
study_id = st.selectbox("Study", list(chosen), format_func=lambda i: f"#{i} {chosen[i].name}",
                        key=state.bind("study", studies[0].id, int, chosen.__contains__))
study = chosen[study_id]
name_col, rename_col, archive_col = st.columns([3, 1, 1], vertical_alignment="bottom")
name_col.text_input("Name", study.name, key=f"studies.name.{study_id}")
rename_col.button("Rename", key="studies.rename", on_click=act, args=(rename, study_id), disabled=access.locked(),
                  help=access.hint("rename studies"))
archive_col.button("Unarchive" if study.archived else "Archive", key="studies.archive", on_click=act,
                   args=(archive, study_id, study.archived), disabled=access.locked(), help=access.hint("archive studies"))
with st.expander(f"Delete study #{study_id}"):
    st.warning(f"This deletes study #{study_id} “{study.name}” and its {study.total} jobs with their results. "
               "Runs another study reuses are kept for that study; checkpoints no job uses any more are "
               f"deleted from the artifacts folder ({Path(settings.artifacts_dir())}).")
    sure = st.checkbox("I understand: delete it", key=f"studies.sure.{study_id}")
    st.button("Delete study", type="primary", disabled=not sure or access.locked(), key="studies.delete", on_click=act,
              args=(delete, study_id))

state.sync()
