import subprocess
import sys

from tests.pages.conftest import ROOT


def test_app_navigates_and_shows_store_status(seeded_store, monkeypatch):
    from streamlit.testing.v1 import AppTest

    url, _ = seeded_store
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
    monkeypatch.setenv("TRANSFERLAB_EMBEDDED_WORKER", "0")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "Database" in sidebar and "store.db" in sidebar and "succeeded" in sidebar
    assert at.title[0].value == "New study"  # the default page


def test_the_web_tier_never_imports_torch(seeded_store):
    url, study_id = seeded_store
    code = f"""
import os, sys
os.environ["TRANSFERLAB_DATABASE_URL"] = {url!r}
os.environ["TRANSFERLAB_EMBEDDED_WORKER"] = "0"
from streamlit.testing.v1 import AppTest
from pathlib import Path
for page in sorted(str(p) for p in Path("app_pages").glob("*.py")):  # every page, new ones included
    at = AppTest.from_file("app.py", default_timeout=60).switch_page(page)
    at.query_params.update({{"study": "{study_id}", "live": "0"}})
    at.run()
    assert not at.exception, (page, at.exception)
assert "torch" not in sys.modules, "a page imported torch"
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
