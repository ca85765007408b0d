from sqlalchemy import func, select

from db.schema import Job
from db.session import get_engine, session_scope


def job_count(url):
    with session_scope(get_engine(url)) as s:
        return s.scalar(select(func.count()).select_from(Job))


def test_default_preset_is_valid_and_counts_its_jobs(app):
    at = app("new_study.py").run()
    assert not at.exception
    assert any("189 jobs" in m.value for m in at.markdown)
    assert at.query_params["preset"] == "yosinski-digits"


def test_a_bad_field_shows_its_error_and_queues_nothing(app, seeded_store):
    url, _ = seeded_store
    before = job_count(url)
    at = app("new_study.py").run()
    at.text_input(key="new.seeds").input("0,x").run()
    assert not at.exception
    assert any("seeds" in e.value and "whole numbers" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "new.submit"]  # no queue button until valid
    at.text_input(key="new.n").input("9").run()
    at.text_input(key="new.seeds").input("0").run()
    assert any("out of range" in e.value for e in at.error)
    assert job_count(url) == before


def test_queueing_a_study(app, seeded_store):
    url, _ = seeded_store
    before = job_count(url)
    at = app("../app.py").run()  # the whole app: its link to the Jobs page needs the navigation
    at.text_input(key="new.seeds").input("5").run()
    at.button(key="new.submit").click().run()
    assert not at.exception
    assert at.success and "63 jobs" in at.success[0].value
    assert job_count(url) == before + 63
    [link] = at.get("page_link")
    assert link.proto.page == "jobs" and link.proto.query_string.startswith("study=")


def test_a_tampered_preset_falls_back_with_a_message(app):
    at = app("new_study.py")
    at.query_params["preset"] = "yosinski-<script>"
    at.run()
    assert not at.exception
    assert any("Ignored" in w.value for w in at.warning)
    assert at.selectbox(key="new.preset").value == "yosinski-digits"


def test_an_empty_folder_path_is_refused_where_it_was_typed(app, seeded_store):
    url, _ = seeded_store
    before = job_count(url)
    at = app("new_study.py").run()
    at.radio(key="new.kind").set_value("folder").run()
    assert not at.exception
    assert any("no folder given" in e.value for e in at.error)  # not the working directory
    assert not [b for b in at.button if b.key == "new.submit"] and job_count(url) == before
