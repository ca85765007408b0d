"""The Jobs and Study overview pages show a study's sequential-seeds progress, where it has a precision rule."""

import pytest

from tests.pages.conftest import app_factory


@pytest.fixture(scope="module")
def precise_store(tmp_path_factory):
    """(URL, a finished study whose rule was reached at its 2 first seeds, a queued study without a rule)."""
    from backend.worker import Worker
    from db.queue import Queue
    from db.session import get_engine
    from db.submit import submit_study
    from tests.db.test_sequential import tiny_study

    folder = tmp_path_factory.mktemp("precise")
    url = f"sqlite:///{folder / 'store.db'}"
    queue = Queue(get_engine(url))
    precise = submit_study(queue, tiny_study(half_width=1000.0, max_seeds=4), name="precise")
    Worker(queue, "cpu", artifacts=folder / "artifacts").serve(idle_exit=0)
    fixed = submit_study(queue, tiny_study(half_width=1.0, max_seeds=4).model_copy(update={"precision": None}),
                         name="fixed")
    return url, precise, fixed


@pytest.mark.parametrize("page", ["jobs.py", "study.py"])
def test_a_study_with_a_precision_rule_shows_its_progress_line(precise_store, monkeypatch, page):
    url, precise, fixed = precise_store
    at = app_factory(url, monkeypatch)(page)
    at.query_params.update({"study": str(precise), "live": "0"})
    at.run()
    assert not at.exception
    [line] = [i.value for i in at.info if "Sequential seeds" in i.value]
    assert "seed 2 of at most 4: interval ±" in line and "asked ±1000 (anb_plus_gain); done: precision reached" in line
    at.selectbox(key=f"{page.removesuffix('.py')}.study").set_value(fixed).run()
    assert not at.exception and not [i for i in at.info if "Sequential seeds" in i.value]
