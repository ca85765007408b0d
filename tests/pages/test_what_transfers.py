"""The quick presets of Neyshabur's block shuffle and pretraining stage and Yosinski's dissimilar
split, run end to end through a real worker into one store, and drawn by the pages that answer them."""

import json

import pytest

PRESETS = ("neyshabur-block-shuffle", "neyshabur-pretraining-stage", "yosinski-digits-dissimilar", "yosinski-digits")


@pytest.fixture(scope="module")
def preset_store(tmp_path_factory):
    """(database URL, preset name -> study id), every quick preset above finished."""
    from backend.specs import PRESETS as ALL
    from backend.studies import parse_study
    from backend.worker import Worker
    from db.queue import Queue
    from db.session import get_engine
    from db.submit import submit_study

    folder = tmp_path_factory.mktemp("presets")
    url = f"sqlite:///{folder / 'store.db'}"
    queue = Queue(get_engine(url))
    studies = {}
    for name in PRESETS:
        spec = ALL[name].spec_dict(quick=True)
        if "sharpness" in spec.get("probes", {}):
            spec["probes"]["sharpness"] = None  # read by the Sharpness page, not by these: off (most of the time)
        studies[name] = submit_study(queue, parse_study(spec), name=name, preset=name)
    Worker(queue, "cpu", artifacts=folder / "artifacts").serve(idle_exit=0)
    for name, study_id in studies.items():
        counts = queue.counts(study_id)
        assert set(counts) == {"succeeded"}, (name, counts)
    return url, studies


@pytest.fixture
def page(preset_store, app, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", preset_store[0])
    return app


def traces(at) -> list[dict]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]


def test_block_shuffle_plots_accuracy_and_speed_against_block_size(page, preset_store):
    study = preset_store[1]["neyshabur-block-shuffle"]
    at = page("explorer.py")
    at.query_params.update({"studies": str(study), "x": "strength", "y": "accuracy"})
    at.run()
    assert not at.exception
    means = at.dataframe[0].value
    assert set(means.treatment) == {"baseB", "AnB+"} and sorted(means.strength) == [1, 1, 2, 2, 4, 4, 8, 8]
    assert means.accuracy.between(0, 100).all()
    from ui.explore import METRICS

    assert METRICS["epochs_to_90pct"] in at.selectbox(key="explorer.y").options
    at.selectbox(key="explorer.y").set_value("epochs_to_90pct").run()
    assert not at.exception and at.query_params["y"] == "epochs_to_90pct"
    speed = at.dataframe[0].value
    assert (speed.epochs_to_90pct >= 1).all() and (speed.epochs_to_90pct <= 8).all()  # quick: 8 epochs


def test_pretraining_stage_plots_accuracy_against_the_source_epoch(page, preset_store):
    study = preset_store[1]["neyshabur-pretraining-stage"]
    at = page("explorer.py")
    at.query_params.update({"studies": str(study), "x": "source_epoch", "y": "accuracy"})
    at.run()
    assert not at.exception
    assert at.query_params["x"] == "source_epoch"
    means = at.dataframe[0].value
    fine_tuned = means[means.treatment == "AnB+"]
    assert sorted(fine_tuned.source_epoch) == [1, 4, 8]  # one network per pretraining checkpoint
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert "pretraining epoch" in layout["xaxis"]["title"]["text"]


def test_dissimilar_split_sits_beside_the_similar_one_on_compare(page, preset_store):
    similar, dissimilar = (preset_store[1][name] for name in ("yosinski-digits", "yosinski-digits-dissimilar"))
    at = page("compare.py")
    at.query_params.update({"studies": f"{similar},{dissimilar}"})
    at.run()
    assert not at.exception
    difference = at.dataframe[0].value
    assert "groups" in difference.index  # the one field the two studies differ in
    names = {t.get("name") for t in traces(at)}
    assert {f"#{similar} yosinski-digits · AnB", f"#{dissimilar} yosinski-digits-dissimilar · AnB"} <= names
