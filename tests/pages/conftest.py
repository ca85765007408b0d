"""Pages run against a real store seeded by a real worker run of a small study."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUDY = {"data": {"source": {"kind": "synthetic", "n_classes": 4, "train_per_class": 10, "test_per_class": 5,
                             "size": 8}},
         "model": {"arch": "convnet", "channels": [4, 8], "hidden": [8]}, "train": {"epochs": 2, "batch_size": 8},
         "seeds": [0, 1], "treatments": ["AnB", "AnB+", "random"],
         "probes": {"sharpness": {"images": 16, "trace_samples": 6, "density_iterations": 8, "max_iterations": 20},
                    "similarity": {"images": 16, "batch_size": 8}}}
NETWORKS = 2 * (2 + 3 * 3)
JOBS = 2 * NETWORKS + 2 * (3 * 2 + 3 * 2 + 3 + 1)  # networks, their sharpness, their CKA comparisons


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory):
    """(database URL, study id) of a finished study; built once for all page tests."""
    from backend.specs import YosinskiSpec, parse
    from backend.worker import Worker
    from db.queue import Queue
    from db.session import get_engine
    from db.submit import submit_study

    folder = tmp_path_factory.mktemp("store")
    url = f"sqlite:///{folder / 'store.db'}"
    queue = Queue(get_engine(url))
    study_id = submit_study(queue, parse(YosinskiSpec, STUDY), name="tiny", preset="yosinski-digits")
    Worker(queue, "cpu", artifacts=folder / "artifacts").serve(idle_exit=0)
    return url, study_id


def app_factory(url: str, monkeypatch):
    """An AppTest factory for a page, wired to the store at `url`, no embedded worker."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
    monkeypatch.setenv("TRANSFERLAB_EMBEDDED_WORKER", "0")

    def make(page: str) -> AppTest:
        """The whole app (its navigation and sidebar) switched to `page`, as a browser sees it: the
        pages link to each other, which needs the navigation."""
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        return at.switch_page(f"app_pages/{page}") if page != "../app.py" else at

    return make


@pytest.fixture
def app(seeded_store, monkeypatch):
    """An AppTest factory for a page, wired to the seeded store, no embedded worker."""
    return app_factory(seeded_store[0], monkeypatch)


@pytest.fixture
def empty_app(tmp_path, monkeypatch):
    """(an AppTest factory, the store's URL) on an empty store of the test's own."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    return app_factory(url, monkeypatch), url
