"""The store as the pages see it: one set of readers per database URL per server process."""

from __future__ import annotations

import streamlit as st

from db.queue import Queue
from db.results import Results
from db.session import database_url, get_engine
from db.shares import Shares
from db.studies import Studies


@st.cache_resource(show_spinner=False)
def _store(url: str) -> tuple[Queue, Results, Shares, Studies]:
    engine = get_engine(url)
    return Queue(engine), Results(engine), Shares(engine), Studies(engine)


def queue() -> Queue:
    return _store(database_url())[0]


def results() -> Results:
    return _store(database_url())[1]


def shares() -> Shares:
    return _store(database_url())[2]


def studies() -> Studies:
    return _store(database_url())[3]
