import json

import pytest

from sqlalchemy import select

from db.schema import Share
from db.session import get_engine, session_scope
from tests.pages.conftest import JOBS, NETWORKS


def test_jobs_page_lists_the_study(app, seeded_store):
    _, study_id = seeded_store
    at = app("jobs.py")
    at.query_params.update({"study": str(study_id), "live": "0", "kind": "transfer"})
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 2 * 3 * 3 and set(table.status) == {"succeeded"}
    assert f"{JOBS} of {JOBS} succeeded" in at.get("progress")[0].proto.text


def test_jobs_page_shows_probe_jobs(app, seeded_store):
    _, study_id = seeded_store
    at = app("jobs.py")
    at.query_params.update({"study": str(study_id), "live": "0", "kind": "sharpness"})
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == NETWORKS and set(table.kind) == {"sharpness"} and (table.progress == 1).all()


def test_jobs_filters_and_bad_parameters(app, seeded_store):
    _, study_id = seeded_store
    at = app("jobs.py")
    at.query_params.update({"study": str(study_id), "status": "exploded", "kind": "train", "live": "0"})
    at.run()
    assert not at.exception
    assert any("status=exploded" in w.value for w in at.warning)
    assert set(at.dataframe[0].value.kind) == {"train"}
    assert at.query_params["status"] == "any"


@pytest.mark.parametrize("study", ["9999999999999999999999999", "²", "1,2"])
def test_a_study_id_no_database_can_hold_falls_back(app, seeded_store, study):
    at = app("jobs.py")
    at.query_params.update({"study": study, "live": "0"})
    at.run()
    assert not at.exception and at.query_params["study"] == str(seeded_store[1])


def test_cloning_with_bad_edits_names_the_field(app, seeded_store):
    at = app("jobs.py")
    at.query_params["live"] = "0"
    at.run()
    at.number_input(key="jobs.act_id").set_value(1)
    at.text_input(key="jobs.edits").input('{"train.epochs": 0}')
    at.button(key="jobs.clone").click().run()
    assert not at.exception
    assert "train.epochs" in at.error[0].value


def test_layer_figure_with_its_table(app, seeded_store):
    _, study_id = seeded_store
    at = app("layers.py")
    at.query_params["study"] = str(study_id)
    at.run()
    assert not at.exception
    assert at.get("plotly_chart")
    table = at.dataframe[0].value
    assert set(table.treatment) == {"baseA", "baseB", "AnB", "AnB+", "random"}
    assert (table[table.treatment != "baseA"]["seeds"] == 2).all()


def test_share_snapshot_round_trip_and_tampered_links(app, seeded_store):
    url, study_id = seeded_store
    at = app("layers.py")
    at.query_params.update({"study": str(study_id), "score": "best10_accuracy", "treatments": "AnB,random"})
    at.run()
    at.button(key="layers.share").click().run()
    assert not at.exception
    link = at.code[0].value
    share_id = link.rsplit("share=", 1)[1]
    with session_scope(get_engine(url)) as s:
        shared = s.get(Share, share_id)
        assert shared.params == {"study": study_id, "score": "best10_accuracy", "treatments": "AnB,random",
                                 "view": "accuracy"}
    opened = app("layers.py")
    opened.query_params["share"] = share_id
    opened.run()
    assert not opened.exception
    assert "Snapshot" in opened.info[0].value and opened.get("plotly_chart")
    assert len(opened.dataframe[0].value) == len(at.dataframe[0].value)
    for bad in ("nope", "../../etc", "x" * 200):
        tampered = app("layers.py")
        tampered.query_params["share"] = bad
        tampered.run()
        assert not tampered.exception and "unknown or damaged" in tampered.warning[0].value


def test_unknown_study_falls_back(app, seeded_store):
    at = app("layers.py")
    at.query_params.update({"study": "99999", "score": "loss"})
    at.run()
    assert not at.exception
    assert len(at.warning) == 2


def test_layer_page_shows_the_sharpness_panel(app, seeded_store):
    _, study_id = seeded_store
    at = app("layers.py")
    at.query_params["study"] = str(study_id)
    at.run()
    assert not at.exception
    assert any(h.value == "Sharpness" for h in at.subheader)
    assert len(at.get("plotly_chart")) == 3  # the layer figure, top eigenvalue, trace


def layer_traces(at):
    import json

    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]


def test_layer_bands_are_lines_within_0_100_and_dots_are_networks(app, seeded_store):
    _, study_id = seeded_store
    at = app("layers.py")
    at.query_params.update({"study": str(study_id), "dots": "1", "zoom": "1"})
    at.run()
    assert not at.exception
    traces = layer_traces(at)
    bands = [t for t in traces if t.get("fill") == "toself"]
    assert bands and all(t["mode"] == "lines" for t in bands)  # no vertex markers posing as results
    assert all(0 <= y <= 100 for t in bands for y in t["y"])
    dots = [t for t in traces if t.get("mode") == "markers"]
    assert sum(len(t["x"]) for t in dots) == 2 * (1 + 3 * 3)  # baseB and every transfer, both seeds
    assert "95% confidence interval" in figure_caption(at)


def figure_caption(at) -> str:
    """The caption drawn into the layer figure (so an exported image carries it)."""
    import json

    return " ".join(a["text"] for a in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["annotations"])


def test_gain_over_baseb_is_the_paired_interval_of_per_seed_differences(app, seeded_store):
    import numpy as np
    import pytest
    from scipy.stats import ttest_rel

    from backend.jobs import NETWORK_KINDS
    from db.results import Results

    url, study_id = seeded_store
    at = app("layers.py")
    at.query_params.update({"study": str(study_id), "view": "gain", "dots": "1"})
    at.run()
    assert not at.exception
    assert "band: paired 95% t interval of the per-seed difference, 2 seeds" in figure_caption(at)
    table = at.dataframe[0].value
    assert {"mean gain (points)", "95% t low", "95% t high", "bootstrap low", "bootstrap high", "seeds",
            "P(improvement)"} <= set(table)
    assert set(table.treatment) == {"AnB", "AnB+", "random"} and (table.seeds == 2).all()
    assert table["bootstrap low"].isna().all()  # two seeds: no bootstrap
    # Known answers: per seed, the treatment at n minus baseB of that seed, and scipy's paired t test.
    scores = Results(get_engine(url)).study_scores(study_id, kinds=NETWORK_KINDS).set_index(
        ["treatment", "n", "seed"]).sort_index()
    base = scores.loc[("baseB", 0)].final_accuracy.sort_index()
    spread = 0
    for row in table.to_dict(orient="records"):
        a, b = 100 * scores.loc[(row["treatment"], row["n"])].final_accuracy.sort_index(), 100 * base
        assert row["mean gain (points)"] == pytest.approx((a - b).mean())
        if np.std(a - b) > 0:
            spread += 1
            ci = ttest_rel(a, b).confidence_interval(0.95)
            assert (row["95% t low"], row["95% t high"]) == pytest.approx((ci.low, ci.high))
        assert row["P(improvement)"] == pytest.approx(np.mean((a > b) + 0.5 * (a == b)))
    assert spread  # at least one interval was checked against scipy's
    traces = layer_traces(at)
    assert "gain over baseB" in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["yaxis"]["title"]["text"]
    base_line = next(t for t in traces if t.get("name") == "baseB")
    assert base_line["y"] == [0, 0]  # baseB against itself
    dots = [t for t in traces if t.get("mode") == "markers"]
    assert sum(len(t["x"]) for t in dots) == 2 * (1 + 3 * 3)  # one gain per network, baseB's 0 included
    at.radio(key="layers.view").set_value("accuracy").run()
    assert not at.exception and at.query_params["view"] == "accuracy"
    assert "not paired" in figure_caption(at) and "mean %" in at.dataframe[0].value


def test_a_one_seed_study_says_it_has_no_band(app, tmp_path, monkeypatch):
    from backend.specs import YosinskiSpec, parse
    from backend.worker import Worker
    from db.queue import Queue
    from db.submit import submit_study
    from tests.pages.conftest import STUDY

    url = f"sqlite:///{tmp_path / 'one.db'}"
    queue = Queue(get_engine(url))
    study_id = submit_study(queue, parse(YosinskiSpec, {**STUDY, "seeds": [0], "n": [1], "treatments": ["AnB"],
                                                        "probes": {"sharpness": None, "similarity": None}}))
    Worker(queue, "cpu", artifacts=tmp_path / "artifacts").serve(idle_exit=0)
    at = app("layers.py")
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
    at.query_params["study"] = str(study_id)
    at.run()
    assert not at.exception
    assert "no band" in figure_caption(at).lower()


def test_job_detail_shows_the_job_its_neighbours_and_curves(app, seeded_store):
    import json

    from db.results import Results

    url, study_id = seeded_store
    results = Results(get_engine(url))
    jobs = results.jobs(study_id=study_id, kind="transfer", limit=1000)
    transfer = int(jobs[jobs.labels.map(lambda labels: labels["treatment"] == "AnB")].id.iloc[0])
    at = app("job.py")
    at.query_params["job"] = str(transfer)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Job" and any("transfer" in m.value and "AnB" in m.value for m in at.markdown)
    detail = results.job(transfer)
    assert len(detail.depends_on) == 1 and len(detail.dependants) >= 2  # its source; its probes
    links = [link.proto.query_string for link in at.get("page_link")]
    assert f"job={detail.depends_on[0]}" in links and all(f"job={d}" in links for d in detail.dependants)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2 and {t["name"] for t in charts[0]["data"]} == {"train_loss", "test_loss"}
    paths = sorted(at.dataframe[1].value["path"].str.rsplit("/", n=1).str[-1])
    assert paths == ["init.safetensors", "model.safetensors"]  # its checkpoint and its starting weights
    missing = app("job.py")
    missing.query_params["job"] = "999999"
    missing.run()
    assert not missing.exception and "no job 999999" in missing.info[0].value


def test_jobs_filter_by_treatment_n_and_seed_in_the_url(app, seeded_store):
    _, study_id = seeded_store
    at = app("jobs.py")
    at.query_params.update({"study": str(study_id), "live": "0", "treatment": "AnB+", "n": "2", "seed": "1"})
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    # the AnB+ n=2 network of seed 1, its sharpness, and its two CKA comparisons
    assert len(table) == 4 and all(role.startswith("AnB+ n=2, seed 1") for role in table.role)
    assert at.selectbox(key="jobs.treatment").options == ["any", "AnB", "AnB+", "baseA", "baseB", "random"]
    bad = app("jobs.py")
    bad.query_params.update({"study": str(study_id), "live": "0", "n": "seven"})
    bad.run()
    assert not bad.exception and any("n=seven" in w.value for w in bad.warning)


def test_layer_figure_carries_its_caption_and_saves_as_chosen(app, seeded_store):
    import json

    _, study_id = seeded_store
    at = app("layers.py")
    at.query_params["study"] = str(study_id)
    at.session_state["figures.format"] = "svg"  # the sidebar's choice
    at.run()
    assert not at.exception
    assert "95% confidence interval" in figure_caption(at)
    assert json.loads(at.get("plotly_chart")[0].proto.config)["toImageButtonOptions"]["format"] == "svg"


def test_share_keeps_caption_columns_and_spec_hash(app, seeded_store):
    url, study_id = seeded_store
    at = app("layers.py")
    at.query_params["study"] = str(study_id)
    at.run()
    at.button(key="layers.share").click().run()
    share_id = at.code[0].value.rsplit("share=", 1)[1]
    from db.results import Results
    from db.shares import Shares

    snapshot = Shares(get_engine(url)).get(share_id)
    assert "seeds" in snapshot.caption and "final test accuracy" in snapshot.caption
    assert snapshot.columns == list(at.dataframe[0].value.columns)  # as shown: "mean %", "± 95% CI"
    assert snapshot.spec_hash == Results(get_engine(url)).study_spec_hash(study_id)
    opened = app("layers.py")
    opened.query_params["share"] = share_id
    opened.run()
    assert snapshot.spec_hash[:12] in opened.info[0].value
    assert list(opened.dataframe[0].value.columns) == snapshot.columns


def test_training_curves_overlay_jobs_of_a_treatment(app, seeded_store):
    _, study_id = seeded_store
    at = app("curves.py")
    at.query_params.update({"study": str(study_id), "treatments": "AnB+", "colour": "n"})
    at.run()
    assert not at.exception
    import json

    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert {t["name"] for t in traces} == {"1", "2", "3"}  # coloured by n
    assert sum(len(t["x"]) for t in traces) == 2 * 3 * 2  # 2 seeds x 3 n x 2 epochs
    picked = app("curves.py")
    picked.query_params.update({"study": str(study_id), "jobs": "1,2"})
    picked.run()
    assert not picked.exception and "picked on a chart" in picked.caption[0].value


def test_a_clicked_point_names_its_jobs():
    from types import SimpleNamespace

    from ui.widgets import jobs_of_point

    def event(points):
        return SimpleNamespace(selection=SimpleNamespace(points=points))

    assert jobs_of_point(event([{"customdata": [0.4, 2, "12,31"]}])) == [12, 31]  # a mean over two seeds
    assert jobs_of_point(event([{"customdata": [7]}])) == [7]  # one network's dot
    assert jobs_of_point(event([])) == [] and jobs_of_point(None) == []
