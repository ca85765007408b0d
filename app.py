"""Transfer Lab in the browser: navigation, the shared sidebar, and the embedded worker."""

from pathlib import Path

import streamlit as st

from db.session import StoreError, database_url
from ui import access, embedded_worker, store
from ui.widgets import FIGURE_FORMATS

# A local icon: a :material/...: favicon is fetched from a font host, which fails offline.
st.set_page_config(page_title="Transfer Lab", page_icon=str(Path(__file__).parent / "ui" / "icon.png"), layout="wide")

pages = [
    st.Page("app_pages/new_study.py", title="New study", icon=":material/add_circle:", default=True),
    st.Page("app_pages/jobs.py", title="Jobs", icon=":material/list:", url_path="jobs"),
    st.Page("app_pages/studies.py", title="Studies", icon=":material/folder_open:", url_path="studies"),
    st.Page("app_pages/job.py", title="Job detail", icon=":material/info:", url_path="job"),
    st.Page("app_pages/curves.py", title="Training curves", icon=":material/show_chart:", url_path="curves"),
    st.Page("app_pages/layers.py", title="Layer transfer", icon=":material/stacked_line_chart:", url_path="layers"),
    st.Page("app_pages/similarity.py", title="Similarity", icon=":material/grid_on:", url_path="similarity"),
    st.Page("app_pages/sharpness.py", title="Sharpness", icon=":material/landscape:", url_path="sharpness"),
    st.Page("app_pages/landscape.py", title="Landscape", icon=":material/multiline_chart:", url_path="landscape"),
    st.Page("app_pages/explorer.py", title="Explorer", icon=":material/scatter_plot:", url_path="explorer"),
    st.Page("app_pages/selection.py", title="Model selection", icon=":material/leaderboard:", url_path="selection"),
    st.Page("app_pages/compare.py", title="Compare studies", icon=":material/compare:", url_path="compare"),
    st.Page("app_pages/findings.py", title="Findings", icon=":material/fact_check:", url_path="findings"),
    st.Page("app_pages/study.py", title="Study overview", icon=":material/description:", url_path="study"),
]
# The default page is served at the root; this hidden twin answers its own address, /new.
pages.append(st.Page("app_pages/new_study.py", title="New study", url_path="new", visibility="hidden"))
page = st.navigation(pages)

with st.sidebar:
    st.caption("What transfers in transfer learning, from which layers, and when.")
    access.login_box()
    worker = embedded_worker.ensure_running()
    try:
        workers = store.results().workers()
        counts = store.queue().counts()
    except StoreError as exc:
        st.error(f"The database cannot be read: {exc}")
        st.stop()
    url = database_url()
    st.markdown(f"**Database** `{url.split('@')[-1] if '@' in url else url.removeprefix('sqlite:///')}`")
    starting = "the embedded worker is starting" if worker is not None else "none seen in 2 minutes"
    live = ", ".join(f"{r.device} ({r.host})" for r in workers.itertuples()) or starting
    st.markdown(f"**Workers** {live}")
    if worker is not None:
        st.caption(f"embedded worker pid {worker.pid}; log `{embedded_worker.log_path()}`")
    if counts:
        st.markdown("**Jobs** " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    st.radio("Figures save as", FIGURE_FORMATS, horizontal=True, key="figures.format",
             help="The camera button of a figure's toolbar saves it, caption included, in this format")

page.run()
