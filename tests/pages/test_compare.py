import copy
import json
import sqlite3

import pytest

from tests.pages.conftest import STUDY


@pytest.fixture
def three_studies(seeded_store, tmp_path, monkeypatch):
    """A copy of the seeded store (study #1, finished) plus #2, the same study on seed 0 and two
    treatments (every job reuses #1's results, so it is finished too), and #3, #1 with three epochs
    (queued, never run). The copy keeps the shared store as the other page tests expect it."""
    from backend.specs import YosinskiSpec, parse
    from db.queue import Queue
    from db.session import get_engine
    from db.submit import submit_study

    url, study_id = seeded_store
    copy_path = tmp_path / "store.db"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(copy_path) as target:
        source.backup(target)
    copy_url = f"sqlite:///{copy_path}"
    queue = Queue(get_engine(copy_url))
    fewer = copy.deepcopy(STUDY) | {"seeds": [0], "treatments": ["AnB", "random"]}
    reused = submit_study(queue, parse(YosinskiSpec, fewer), name="seed 0")
    longer = copy.deepcopy(STUDY)
    longer["train"]["epochs"] = 3
    queued = submit_study(queue, parse(YosinskiSpec, longer), name="three epochs")
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", copy_url)
    return study_id, reused, queued


def test_compare_shows_the_spec_difference_and_overlays_the_curves(app, three_studies):
    first, reused, _ = three_studies
    at = app("compare.py")
    at.query_params.update({"studies": f"{first},{reused}"})
    at.run()
    assert not at.exception
    difference = at.dataframe[0].value
    assert list(difference.index) == ["seeds", "treatments"]
    assert difference.loc["seeds"].tolist() == ["0,1", "0"]
    chart = at.get("plotly_chart")
    assert chart
    names = {trace.get("name") for trace in json.loads(chart[0].proto.spec)["data"]}
    assert {f"#{reused} seed 0 · AnB", f"#{reused} seed 0 · baseB", f"#{first} tiny · AnB+"} <= names
    rows = at.dataframe[1].value
    assert set(rows.study) == {f"#{first} tiny", f"#{reused} seed 0"}
    assert at.query_params["studies"] == f"{first},{reused}"


def test_a_study_without_finished_jobs_is_named_and_every_field_can_be_shown(app, three_studies):
    first, _, queued = three_studies
    at = app("compare.py")
    at.query_params.update({"studies": f"{first},{queued}", "every": "1"})
    at.run()
    assert not at.exception
    difference = at.dataframe[0].value
    assert len(difference) > 20 and difference.loc["train.epochs"].tolist() == ["2", "3"]
    assert any("three epochs" in i.value and "No finished job" in i.value for i in at.info)
    assert at.get("plotly_chart")  # the finished study's curves


def test_a_bad_link_falls_back_and_one_study_is_not_a_comparison(app, three_studies):
    first, reused, queued = three_studies
    at = app("compare.py")
    at.query_params.update({"studies": f"{first},999"})
    at.run()
    assert not at.exception
    assert any("studies=" in w.value for w in at.warning)
    assert at.query_params["studies"] == f"{queued},{reused}"  # the two newest
    at.multiselect(key="compare.studies").set_value([first]).run()
    assert not at.exception
    assert any("two studies or more" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_compare_share_round_trip(app, three_studies):
    first, reused, _ = three_studies
    at = app("compare.py")
    at.query_params.update({"studies": f"{first},{reused}"})
    at.run()
    at.button(key="compare.share").click().run()
    assert not at.exception
    share_id = at.code[0].value.rsplit("share=", 1)[1]
    opened = app("compare.py")
    opened.query_params["share"] = share_id
    opened.run()
    assert not opened.exception
    assert "Snapshot" in opened.info[0].value and "studies #" in opened.info[0].value
    assert opened.get("plotly_chart")


def chart(at, key: str) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == key)


def test_the_difference_of_two_studies_pairs_seeds_by_number(app, three_studies):
    first, reused, _ = three_studies
    at = app("compare.py")
    at.query_params.update({"studies": f"{first},{reused}", "minuend": str(first), "subtrahend": str(reused)})
    at.run()
    assert not at.exception
    figure = chart(at, "compare.difference")
    caption = " ".join(a["text"] for a in figure["layout"]["annotations"])
    assert "seeds are paired by number" in caption and "one seed in common: no band" in caption
    table = at.dataframe[2].value  # under the spec difference and the overlaid curves' table
    assert {"mean difference (points)", "95% t low", "P(improvement)", "seeds"} <= set(table)
    # #2 reran seed 0 of AnB and random: the same jobs' results, so every paired difference is 0.
    assert {"AnB", "random", "baseB"} <= set(table.treatment) and "AnB+" not in set(table.treatment)
    assert (table.seeds == 1).all() and (table["mean difference (points)"] == 0).all()
    assert at.query_params["minuend"] == str(first) and at.query_params["subtrahend"] == str(reused)
    at.selectbox(key="compare.subtrahend").set_value(first).run()
    assert not at.exception and any("two different studies" in i.value for i in at.info)


def test_studies_sharing_no_seed_say_so_instead_of_a_difference(app, three_studies):
    import os

    from backend.specs import YosinskiSpec, parse
    from db.queue import Queue
    from db.session import get_engine
    from db.submit import submit_study

    first, reused, queued = three_studies
    # Seed 1 of #1's study: every job reuses #1's results, so it is finished without a run.
    queue = Queue(get_engine(os.environ["TRANSFERLAB_DATABASE_URL"]))
    other = submit_study(queue, parse(YosinskiSpec, copy.deepcopy(STUDY) | {"seeds": [1], "treatments": ["AnB"]}),
                         name="seed 1")
    at = app("compare.py")
    at.query_params.update({"studies": f"{reused},{other}"})
    at.run()
    assert not at.exception
    assert any("share no seed number" in i.value for i in at.info)
    assert "compare.chart" in {c.key for c in at.get("plotly_chart")}  # the overlaid curves, no difference
    assert "compare.difference" not in {c.key for c in at.get("plotly_chart")}
    at = app("compare.py")
    at.query_params.update({"studies": f"{first},{queued}", "minuend": "999"})
    at.run()
    assert not at.exception and any("minuend=999" in w.value for w in at.warning)
    assert any("once both studies have finished jobs" in i.value for i in at.info)
