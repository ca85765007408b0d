"""The Model selection page on a store seeded by a real worker run of a tiny model-selection study: each
candidate's score against its fine-tuned accuracy, the stored rank agreement in the caption, bad links
falling back with a message, and the empty and unfinished states."""

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as hypothesis

from backend.specs.selection import RANK_SCORES
from tests.backend.test_model_selection import STUDY
from tests.pages.conftest import app_factory
from tests.test_properties import TEXT

NAMES = [c["name"] for c in STUDY["candidates"]]


def submit(url: str, run_jobs: int | None = -1, folder=None) -> int:
    """The tiny study queued in the store at `url`; then `run_jobs` of its jobs run (-1: all, None: none)."""
    from backend.studies import parse_study
    from backend.worker import Worker
    from db.queue import Queue
    from db.session import get_engine
    from db.submit import submit_study

    queue = Queue(get_engine(url))
    study_id = submit_study(queue, parse_study(STUDY), name="tiny selection")
    if run_jobs is not None:
        Worker(queue, "cpu", artifacts=folder / "artifacts").serve(idle_exit=0,
                                                                  max_jobs=None if run_jobs < 0 else run_jobs)
    return study_id


@pytest.fixture(scope="module")
def selection_store(tmp_path_factory):
    """(database URL, study id) of a finished tiny model-selection study; built once for this module."""
    folder = tmp_path_factory.mktemp("selection")
    url = f"sqlite:///{folder / 'store.db'}"
    return url, submit(url, folder=folder)


@pytest.fixture
def app(selection_store, monkeypatch):
    return app_factory(selection_store[0], monkeypatch)


def stored(url: str, study_id: int):
    """The ranking job's stored row and the stored scores and accuracies, as the store holds them."""
    from db.results import Results
    from db.session import get_engine

    results = Results(get_engine(url))
    ranking = results.study_scores(study_id, kinds=["rank_agreement"]).iloc[0]
    scores = results.study_scores(study_id, kinds=["scores"]).set_index("candidate").loc[NAMES]
    tuned = results.study_scores(study_id, kinds=["transfer"])
    accuracy = (100 * tuned.groupby("candidate").final_accuracy.mean())[NAMES]
    return ranking, scores, accuracy, tuned


def chart(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def caption(at) -> str:
    """The figure's caption as drawn into it (and exported with it), spaces left out: it wraps at spaces
    and after hyphens (top-<br>1), so only the characters are compared (see `said`)."""
    texts = [a["text"] for a in chart(at)["layout"].get("annotations", [])]
    return squash(next(t for t in texts if "One dot per candidate" in t).replace("<br>", ""))


def squash(text: str) -> str:
    return text.replace(" ", "")


def number(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"


def hit(value: float) -> str:
    return "n/a" if value != value else "yes" if value == 1 else "no"


def test_each_candidate_sits_at_its_score_and_accuracy_with_the_stored_agreement(app, selection_store):
    url, study_id = selection_store
    ranking, scores, accuracy, tuned = stored(url, study_id)
    at = app("selection.py")
    at.query_params["study"] = str(study_id)
    at.run()
    assert not at.exception and not at.warning
    dots = chart(at)["data"][0]
    assert dots["text"] == NAMES
    assert dots["x"] == pytest.approx(scores.logme.tolist()) and dots["y"] == pytest.approx(accuracy.tolist())
    for name, custom in zip(NAMES, dots["customdata"]):  # a click opens the candidate's fine-tuning runs
        assert sorted(map(int, custom[-1].split(","))) == sorted(tuned[tuned.candidate == name].job)
    assert any(s.get("type") == "rect" for s in chart(at)["layout"]["shapes"])  # the from-scratch band

    text = caption(at)
    said = [f"weighted Kendall's tau {number(ranking['logme.weighted_tau'])}",
            f"Spearman's rho {number(ranking['logme.spearman'])}", f"top-1 hit {hit(ranking['logme.top1'])}",
            f"{ranking.lead:.2f} points", "ahead of",  # the best candidate's lead, as stored
            f"took {ranking.score_seconds:.3g} s", f"them {ranking.fine_tune_seconds:.3g} s",
            f"({ranking.cost_ratio:.3g}x the scoring)", f"(job {int(ranking.job)})"]
    assert all(squash(part) in text for part in said), (said, text)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Weighted Kendall's tau"] == number(ranking["logme.weighted_tau"])
    assert metrics["Fine-tuning / scoring time"] == f"{ranking.cost_ratio:.3g}x"

    table = at.dataframe[0].value
    assert table.candidate.tolist() == [*NAMES, "from scratch"] and (table.seeds == 2).all()
    assert table["accuracy (%)"].tolist()[:3] == pytest.approx(accuracy.tolist())
    agreement = at.dataframe[1].value
    assert agreement.score.tolist() == ["LogME", "LEEP", "NCE", "H-score"] and set(agreement.amount) == {"6"}

    at.selectbox(key="selection.score").set_value("leep").run()  # another score: its own numbers, in the URL
    assert not at.exception and at.query_params["score"] == "leep"
    assert chart(at)["data"][0]["x"] == pytest.approx(scores.leep.tolist())
    assert squash(f"Spearman's rho {number(ranking['leep.spearman'])}") in caption(at)


@pytest.mark.parametrize("params, ignored", [
    ({"study": "abc"}, ["study=abc"]),
    ({"study": "999"}, ["study=999"]),
    ({"study": "9" * 25}, ["study=" + "9" * 25]),  # past SQLite's integers: never sent to the store
    ({"study": "²"}, ["study=²"]),  # a digit to str.isdigit, not to int()
    ({"score": "nope", "amount": "7"}, ["score=nope", "amount=7"]),
])
def test_a_bad_link_falls_back_with_a_message(app, selection_store, params, ignored):
    at = app("selection.py")
    at.query_params.update(params)
    at.run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert all(f"Ignored `{i}`" in warnings for i in ignored), warnings
    assert squash("One dot per candidate") in caption(at)  # the default view, drawn
    assert at.query_params["score"] == RANK_SCORES[0] and at.query_params["amount"] == "6"


def test_an_empty_store_says_how_to_get_a_model_selection_study(tmp_path, monkeypatch):
    make = app_factory(f"sqlite:///{tmp_path / 'store.db'}", monkeypatch)
    at = make("selection.py").run()
    assert not at.exception and not at.get("plotly_chart")
    assert "No model-selection study" in at.info[0].value and "model_selection" in at.info[0].value


def test_an_unfinished_study_shows_what_is_there(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    queued = submit(url, run_jobs=None, folder=tmp_path)
    make = app_factory(url, monkeypatch)
    at = make("selection.py").run()
    assert not at.exception and at.query_params["study"] == str(queued)
    infos = " ".join(i.value for i in at.info)
    assert "still running" in infos and "Nothing at 6 training images per class has finished yet" in infos

    part = submit(url.replace("store.db", "part.db"), run_jobs=8, folder=tmp_path)  # no ranking yet
    at = app_factory(url.replace("store.db", "part.db"), monkeypatch)("selection.py")
    at.query_params["study"] = str(part)
    at.run()
    assert not at.exception
    assert "still running" in at.info[0].value
    assert squash("No rank agreement is stored at this amount yet") in caption(at)
    assert not at.metric and len(at.dataframe) == 1  # the candidates so far; no agreement table


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=hypothesis.dictionaries(hypothesis.sampled_from(["study", "amount", "score"]), TEXT, min_size=1))
def test_any_tampered_link_renders(app, params):
    at = app("selection.py")
    at.query_params.update(params)
    at.run()
    assert not at.exception, (params, at.exception)


@pytest.mark.parametrize("page", ["study.py", "jobs.py", "layers.py", "explorer.py", "compare.py", "curves.py",
                                  "similarity.py", "sharpness.py", "landscape.py", "findings.py", "studies.py"])
def test_every_other_page_renders_a_model_selection_study(app, selection_store, page):
    at = app(page)
    at.query_params.update({"study": str(selection_store[1]), "studies": str(selection_store[1])})
    at.run()
    assert not at.exception, (page, at.exception)
