"""Property-based tests (hypothesis) of what outsiders type: the spec parser, the pages' URL state and
the share reader. Whatever comes in, the only exception is the project's own SpecError naming a field,
and nothing is queued or stored. CI runs at least 1,000 inputs each (`CI=true`); a local run, fewer."""

import copy
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backend.specs import PRESETS, SpecError
from backend.studies import parse_study

ROOT = Path(__file__).resolve().parents[1]
MANY = 1000 if os.environ.get("CI") == "true" else 200
# Every parameter a page reads from its URL, and the values a tamperer tries.
PARAMS = ["archived", "at_n", "colour", "curve", "dots", "every", "facet", "fit", "job", "jobs", "kind", "live",
          "measure", "metric", "page", "path", "preset", "q", "scope", "score", "status", "study", "studies", "x",
          "y", "zoom", "share", "treatments", "seed", "n", "target", "amount"]
TEXT = st.one_of(st.text(max_size=20), st.sampled_from(["", "1", "0", "-1", "1,2", "999999", "1e400", "nan", "all",
                                                         "<script>", "1,,x", "AnB", "gain", "../../etc"]),
                 st.integers(-10**12, 10**12).map(str))
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**15, 10**15),
                              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12)),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=8)


def paths(tree, prefix=()):
    """Every (path, value) of a nested spec dict, lists included."""
    yield prefix, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from paths(v, (*prefix, i))


@st.composite
def tampered_specs(draw):
    """A preset's spec with one to three of its fields replaced, removed or misspelt."""
    spec = copy.deepcopy(PRESETS[draw(st.sampled_from(sorted(PRESETS)))].spec_dict(quick=True))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from([p for p, _ in paths(spec) if p]))
        parent = spec
        for step in where[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "remove", "misspell"]))
        if action == "replace":
            parent[where[-1]] = draw(JSON)
        elif action == "remove" and isinstance(parent, dict):
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[f"{where[-1]}_"] = parent.pop(where[-1])
        if not isinstance(spec, dict):
            break
    return spec


@settings(max_examples=MANY, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tampered_specs())
def test_the_spec_parser_raises_only_spec_errors_that_name_a_field(spec):
    try:
        study = parse_study(spec)
    except SpecError as exc:
        assert str(exc) and (exc.field or ": " in str(exc)), repr(exc)
    else:
        json.dumps(study.model_dump(mode="json"))  # a valid one round-trips


@settings(max_examples=MANY, deadline=None)
@given(JSON)
def test_any_json_at_all_is_refused_cleanly(obj):
    try:
        parse_study(obj if isinstance(obj, dict) else {"study": obj})
    except SpecError:
        pass


@pytest.fixture(scope="module")
def shares(tmp_path_factory):
    from db.session import get_engine
    from db.shares import Shares

    store = Shares(get_engine(f"sqlite:///{tmp_path_factory.mktemp('shares') / 'store.db'}"))
    kept = store.create("layers", {"study": "1"}, [{"n": 1, "final": 50.0}], caption="kept")
    return store, kept


@settings(max_examples=MANY, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TEXT)
def test_the_share_reader_answers_any_id_with_a_snapshot_or_none(shares, share_id):
    store, kept = shares
    snapshot = store.get(share_id)
    assert snapshot is None or snapshot.id == share_id == kept


def bound_page():
    """A page's kinds of URL state: a list of ids, a choice, a number, a switch, free text."""
    import streamlit as st_

    from ui.state import PageState, flag, ints, joined, shown

    state = PageState("prop")
    st_.multiselect("Studies", [1, 2, 3], key=state.bind("studies", [1], ints, lambda v: set(v) <= {1, 2, 3},
                                                            show=joined))
    st_.selectbox("y", ["gain", "accuracy"], key=state.bind("y", "gain", valid=["gain", "accuracy"].__contains__))
    st_.number_input("n", 0, 9, key=state.bind("n", 1, int, lambda v: 0 <= v <= 9))
    st_.toggle("fit", key=state.bind("fit", False, flag, show=shown))
    st_.text_input("q", key=state.bind("q", ""))
    state.report()
    state.sync()


@settings(max_examples=MANY, deadline=None)
@given(st.dictionaries(st.sampled_from(["studies", "y", "n", "fit", "q", "other"]), TEXT, max_size=5))
def test_url_state_takes_a_valid_value_or_falls_back_with_a_message(params):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(bound_page)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    assert set(at.multiselect[0].value) <= {1, 2, 3} and at.selectbox[0].value in ("gain", "accuracy")
    assert 0 <= at.number_input[0].value <= 9
