"""Lab mode: nothing changes state before a login; the shared password is stored only as its hash."""

import pytest

from backend.settings import hash_password, password_matches


@pytest.fixture
def lab(app, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_ACCESS_MODE", "lab")
    monkeypatch.setenv("TRANSFERLAB_PASSWORD_HASH", hash_password("correct horse"))
    return app


def test_the_hash_checks_the_password_and_hides_it():
    stored = hash_password("correct horse")
    assert "correct horse" not in stored and stored != hash_password("correct horse")  # salted
    assert password_matches("correct horse", stored) and not password_matches("wrong", stored)
    assert not password_matches("correct horse", "plain text")


def login_script():
    import streamlit as st

    from ui import access

    access.login_box()
    st.button("Queue study", key="queue", disabled=access.locked())


def test_the_sidebar_login_unlocks_this_session_only(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TRANSFERLAB_ACCESS_MODE", "lab")
    monkeypatch.setenv("TRANSFERLAB_PASSWORD_HASH", hash_password("correct horse"))
    at = AppTest.from_function(login_script).run()
    assert at.button(key="queue").disabled
    at.text_input(key="access.password").input("wrong")
    at.button[0].click().run()  # the form's Log in
    assert any("Wrong password" in e.value for e in at.error) and at.button(key="queue").disabled
    at.text_input(key="access.name").input("ada")
    at.text_input(key="access.password").input("correct horse")
    at.button[0].click().run()
    assert not at.exception and any("Logged in as ada" in c.value for c in at.caption)
    assert not at.button(key="queue").disabled
    assert AppTest.from_function(login_script).run().button(key="queue").disabled  # another session: locked


def test_the_new_study_page_is_readable_but_locked(lab):
    at = lab("new_study.py").run()
    assert not at.exception and any(" jobs** (" in m.value for m in at.markdown)
    assert at.button(key="new.submit").disabled and "Log in" in at.button(key="new.submit").help


def test_every_state_changing_control_is_locked_before_a_login(lab, seeded_store):
    _, study_id = seeded_store
    for page, keys in (("jobs.py", ["jobs.cancel", "jobs.retry", "jobs.clone"]),
                       ("studies.py", ["studies.rename", "studies.archive", "studies.delete"]),
                       ("layers.py", ["layers.share"])):
        at = lab(page)
        at.query_params["study"] = str(study_id)
        at.run()
        assert not at.exception, page
        for key in keys:
            assert at.button(key=key).disabled, (page, key)


def test_open_mode_changes_nothing_for_a_laptop(app):
    at = app("new_study.py").run()
    assert not at.button(key="new.submit").disabled
