"""Any tampered link on any page: no exception, and a link alone queues nothing (hypothesis)."""

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.test_properties import PARAMS, TEXT

PAGES = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "app_pages").glob("*.py"))


@settings(max_examples=40 if os.environ.get("CI") == "true" else 15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(PAGES), st.dictionaries(st.sampled_from(PARAMS), TEXT, min_size=1, max_size=4))
def test_every_page_survives_a_tampered_link_and_queues_nothing(app, seeded_store, page, params):
    from sqlalchemy import func, select

    from db.schema import Job
    from db.session import get_engine, session_scope

    url, _ = seeded_store
    with session_scope(get_engine(url)) as s:
        before = s.scalar(select(func.count()).select_from(Job))
    at = app(page)
    at.query_params.update(params)
    at.run()
    assert not at.exception, (page, params, at.exception)
    with session_scope(get_engine(url)) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == before  # a link alone queues nothing
