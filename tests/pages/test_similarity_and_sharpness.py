import pytest

from db.schema import Share
from db.session import get_engine, session_scope


def figure(at, index=0):
    import json

    return json.loads(at.get("plotly_chart")[index].proto.spec)


def split_caption(spec: dict) -> str:
    """The caption drawn under a figure (wrapped with <br>), as one line."""
    [text] = [a["text"] for a in spec["layout"]["annotations"] if a["text"].startswith("Study #")]
    return text.replace("<br>", " ")


def test_similarity_heatmaps_on_one_scale_with_unit_names(app, seeded_store):
    _, study_id = seeded_store
    at = app("similarity.py")
    at.query_params["study"] = str(study_id)
    at.run()
    assert not at.exception
    chosen = at.multiselect(key="similarity.jobs").value
    heatmaps = [t for t in figure(at)["data"] if t["type"] == "heatmap"]
    assert len(heatmaps) == len(chosen) >= 1
    assert all(t["coloraxis"] == "coloraxis" for t in heatmaps)  # one shared colour scale
    assert heatmaps[0]["x"] == ["conv1", "conv2", "fc1", "classifier"]
    assert all(0 <= v <= 1 for t in heatmaps for row in t["z"] for v in row)
    captions = [a["text"] for a in figure(at)["layout"]["annotations"] if "estimator" in a["text"]]
    assert "CKA" in captions[0] and at.query_params["jobs"]  # the caption travels with an exported image


def test_similarity_share_round_trip_and_bad_parameters(app, seeded_store):
    url, study_id = seeded_store
    at = app("similarity.py")
    at.query_params["study"] = str(study_id)
    at.run()
    at.button(key="similarity.share").click().run()
    assert not at.exception
    share_id = at.code[0].value.rsplit("share=", 1)[1]
    with session_scope(get_engine(url)) as s:
        assert s.get(Share, share_id).page == "similarity"
    opened = app("similarity.py")
    opened.query_params["share"] = share_id
    opened.run()
    assert not opened.exception and "Snapshot" in opened.info[0].value
    assert figure(opened)["data"][0]["z"] == figure(at)["data"][0]["z"]
    bad = app("similarity.py")
    bad.query_params.update({"study": str(study_id), "jobs": "1,abc"})
    bad.run()
    assert not bad.exception and any("jobs=1,abc" in w.value for w in bad.warning)


def test_sharpness_page_split_at_the_cut_and_density(app, seeded_store):
    _, study_id = seeded_store
    at = app("sharpness.py")
    at.query_params.update({"study": str(study_id), "metric": "trace"})
    at.run()
    assert not at.exception
    split = figure(at, 0)
    scopes = {t["legendgroup"].split(", ")[1] for t in split["data"]}
    assert scopes == {"all", "transferred", "new"}
    # the caption says which line is which scope, and the lines are drawn so
    styles = {t["legendgroup"].split(", ")[1]: t["line"]["dash"] for t in split["data"]}
    assert styles == {"all": "solid", "transferred": "dash", "new": "dot"}
    caption = split_caption(split)
    assert all(said in caption for said in ("Solid: every parameter", "dashed: the transferred units only",
                                            "dotted: the units trained anew only"))
    assert "split at the cut" in at.subheader[0].value
    density = figure(at, 1)
    assert density["layout"]["yaxis"]["type"] == "log" and len(density["data"]) >= 1
    at.button(key="sharpness.share").click().run()
    assert not at.exception and "share=" in at.code[0].value


def test_probe_pages_without_probes_say_so(app, tmp_path, monkeypatch):
    from backend.specs import YosinskiSpec, parse
    from db.queue import Queue
    from db.submit import submit_study
    from tests.pages.conftest import STUDY

    url = f"sqlite:///{tmp_path / 'bare.db'}"
    bare = submit_study(Queue(get_engine(url)), parse(YosinskiSpec, {**STUDY, "probes": {
        "sharpness": None, "similarity": None}}), name="no probes")
    for page in ("similarity.py", "sharpness.py"):
        at = app(page)
        monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
        at.query_params["study"] = str(bare)
        at.run()
        assert not at.exception and "No" in at.info[0].value


@pytest.fixture(scope="module")
def whole_network_store(tmp_path_factory):
    """(URL, study id) of a finished tiny study whose sharpness measured the whole network only, no density."""
    from backend.specs import YosinskiSpec, parse
    from backend.worker import Worker
    from db.queue import Queue
    from db.submit import submit_study
    from tests.pages.conftest import STUDY

    folder = tmp_path_factory.mktemp("whole")
    url = f"sqlite:///{folder / 'store.db'}"
    queue = Queue(get_engine(url))
    spec = {**STUDY, "seeds": [0], "treatments": ["AnB"], "n": [1], "probes": {
        "similarity": None, "sharpness": {"images": 8, "trace_samples": 3, "max_iterations": 3, "density": False,
                                          "scopes": ["all"]}}}
    study_id = submit_study(queue, parse(YosinskiSpec, spec), name="whole network")
    Worker(queue, "cpu", artifacts=folder / "artifacts").serve(idle_exit=0)
    return url, study_id


def test_sharpness_captions_say_what_a_whole_network_study_drew(app, whole_network_store, monkeypatch):
    """Only the whole network measured: no dashes promised, no split in the heading; the density box
    names the preset that measures the density (the default one: every scope and the density)."""
    from backend.specs import PRESETS
    from backend.studies import parse_study
    from tests.pages.conftest import app_factory
    from tests.pages.test_first_visit import preset_links

    url, study_id = whole_network_store
    at = app_factory(url, monkeypatch)("sharpness.py")
    at.query_params["study"] = str(study_id)
    at.run()
    assert not at.exception
    split = figure(at, 0)
    assert {t["legendgroup"].split(", ")[1] for t in split["data"]} == {"all"}
    assert {t["line"]["dash"] for t in split["data"]} == {"solid"}
    caption = split_caption(split)
    assert "Every parameter" in caption and "no split at the cut" in caption and "yosinski-digits" in caption
    assert "dash" not in caption.lower() and "split at the cut" not in at.subheader[0].value
    assert len(at.get("plotly_chart")) == 1  # no density figure
    assert "density off" in at.info[0].value and "yosinski-digits" in at.info[0].value
    assert preset_links(at)[0] == "yosinski-digits"
    sharpness = parse_study(PRESETS["yosinski-digits"].spec_dict()).probes.sharpness  # it does measure both
    assert sharpness.density and {"transferred", "new"} <= set(sharpness.scopes)
    at.radio(key="sharpness.scope").set_value("new").run()
    assert not at.exception and "did not measure the 'new' scope" in at.info[0].value
