from sqlalchemy import select

from db.schema import Share
from db.session import get_engine, session_scope


def figure(at, index=0):
    import json

    return json.loads(at.get("plotly_chart")[index].proto.spec)


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
