"""One contract suite, every backend: a real SQLite file and a real PostgreSQL server."""

import os

import pytest

from bench.postgres import fresh_database
from db.queue import Queue
from db.session import get_engine

POSTGRES = os.environ.get("TRANSFERLAB_TEST_POSTGRES_URL")


def postgres_database() -> str:
    """A fresh database on the test server; its URL."""
    if not POSTGRES:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must test PostgreSQL: TRANSFERLAB_TEST_POSTGRES_URL is not set (.ci/run starts a server)")
        pytest.skip("no PostgreSQL server: set TRANSFERLAB_TEST_POSTGRES_URL to run these (.ci/run does)")
    return fresh_database(POSTGRES, prefix="test")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return postgres_database()


@pytest.fixture
def queue(database_url):
    return Queue(get_engine(database_url))
