"""The Landscape page against a store a real worker filled by running the quick neyshabur-basins and
liu-flatness presets: the end-to-end check of the landscape job kinds as the page reads them."""

import json
import subprocess
import sys

import pytest

from tests.pages.conftest import ROOT


@pytest.fixture(scope="module")
def landscape_store(tmp_path_factory):
    """(database URL, {"basins": study id, "flatness": study id}), both studies finished."""
    from backend.specs import PRESETS, set_field
    from backend.studies import parse_study
    from backend.worker import Worker
    from db.queue import Queue
    from db.session import get_engine
    from db.submit import submit_study

    folder = tmp_path_factory.mktemp("landscape")
    url = f"sqlite:///{folder / 'store.db'}"
    queue = Queue(get_engine(url))
    # The quick presets, trimmed where the page reads nothing more (on 2 busy cores they took 18 minutes):
    # fewer rewind factors; two targets (one near, one far), fewer epochs and no sharpness (the Sharpness
    # page's) for the flatness study.
    basins = PRESETS["neyshabur-basins"].spec_dict(quick=True)
    set_field(basins, "probes.criticality.alphas", [0.0, 0.25, 0.5, 0.75, 1.0])
    basins = submit_study(queue, parse_study(basins), preset="neyshabur-basins")
    flatness = PRESETS["liu-flatness"].spec_dict(quick=True)
    flatness["targets"] = [flatness["targets"][0], flatness["targets"][-1]]
    set_field(flatness, "train.epochs", 4)
    set_field(flatness, "probes.sharpness", None)
    flatness = submit_study(queue, parse_study(flatness), preset="liu-flatness")
    Worker(queue, "cpu", artifacts=folder / "artifacts").serve(idle_exit=0)
    return url, {"basins": basins, "flatness": flatness}


@pytest.fixture
def page(landscape_store, monkeypatch):
    """The conftest `app` factory's twin for this store: the whole app switched to the Landscape page
    with the given query parameters, run."""
    from streamlit.testing.v1 import AppTest

    url, _ = landscape_store
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
    monkeypatch.setenv("TRANSFERLAB_EMBEDDED_WORKER", "0")

    def make(**params):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).switch_page("app_pages/landscape.py")
        at.query_params.update({k: str(v) for k, v in params.items()})
        return at.run()

    return make


def figures(at) -> dict:
    """The page's figures by chart key."""
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def stored(url: str, study: int, kind: str):
    from db.results import Results
    from db.session import get_engine

    return Results(get_engine(url)).study_scores(study, kinds=[kind])


def test_the_barrier_segment_rises_from_the_chord_to_the_path():
    from ui.landscape import path_figure

    path = {"job": 1, "pair": "RI-T", "runs": "0-1", "seed": 0, "target": "t", "alphas": [0.0, 0.25, 0.5, 1.0],
            "loss": [1.0, 2.0, 4.0, 2.0], "accuracy": [0.9, 0.8, 0.4, 0.7]}
    loss = next(t for t in path_figure([path], "loss").data if t.name.startswith("barrier"))
    assert list(loss.x) == [0.5, 0.5] and list(loss.y) == [1.5, 4.0]  # chord at l = 0.5: (1 + 2) / 2
    accuracy = next(t for t in path_figure([path], "accuracy").data if t.name.startswith("barrier"))
    assert list(accuracy.x) == [0.5, 0.5] and list(accuracy.y) == pytest.approx([80.0, 40.0])


def test_basins_study_draws_paths_with_barriers_pairs_plane_and_criticality(page, landscape_store):
    url, studies = landscape_store
    at = page(study=studies["basins"])
    assert not at.exception
    assert [s.value for s in at.subheader] == ["Between runs: the linear path and its barrier",
                                               "Around one run: the loss plane", "Module criticality"]
    drawn = figures(at)
    paths = drawn["landscape.paths"]
    assert {t["legendgroup"] for t in paths["data"]} == {"P-T", "RI-T", "P-T vs RI-T"}
    scalars = stored(url, studies["basins"], "interpolation").set_index("job")
    barriers = [t for t in paths["data"] if t.get("name", "").startswith("barrier")]
    assert len(barriers) == len(scalars) == 3
    for t in barriers:  # the marked segment rises from the chord by exactly the stored barrier
        job = int(t["customdata"][0][0])
        assert t["y"][1] - t["y"][0] == pytest.approx(scalars.loc[job, "barrier"], abs=1e-9)
    caption = " ".join(a["text"] for a in paths["layout"]["annotations"])
    assert "Frankle" in caption and "re-estimated" in caption

    pairs = at.dataframe[0].value
    assert set(pairs.pair) == {"P-T", "RI-T", "P-T vs RI-T"}
    for row in pairs.itertuples():
        assert row.barrier == pytest.approx(scalars.loc[row.job, "barrier"])
        assert row.mistake_jaccard == pytest.approx(scalars.loc[row.job, "mistakes.mistake_jaccard"])
        assert 0 <= row.cka <= 1
    means = at.dataframe[1].value
    assert means.set_index("pair").loc["RI-T", "barrier"] == pytest.approx(
        pairs.set_index("pair").loc["RI-T", "barrier"])
    paired = at.dataframe[2].value.set_index("measure")  # P-T minus RI-T, paired by seed and target
    assert {"barrier", "l2_distance", "mistake_jaccard"} <= set(paired.index)
    assert {"95% t low", "95% t high", "bootstrap low", "P(P-T > RI-T)", "seeds"} <= set(paired)
    per_pair = pairs.set_index("pair")
    assert (paired.seeds == 1).all()  # one seed: the difference, no interval
    assert paired.loc["barrier", "P-T − RI-T"] == pytest.approx(
        per_pair.loc["P-T", "barrier"] - per_pair.loc["RI-T", "barrier"])
    higher = per_pair.loc["P-T", "barrier"] > per_pair.loc["RI-T", "barrier"]
    assert paired.loc["barrier", "P(P-T > RI-T)"] == float(higher)

    planes = [t for t in drawn["landscape.planes"]["data"] if t["type"] == "contour"]
    assert len(planes) == 2 and {t["coloraxis"] for t in planes} == {"coloraxis"}  # one colour scale
    assert len(planes[0]["z"]) == len(planes[0]["x"]) == 7  # the quick preset's resolution
    heatmaps = [t for t in drawn["landscape.criticality"]["data"] if t["type"] == "heatmap"]
    runs = at.dataframe[3].value
    units = [c.removeprefix("rewind.") for c in runs if c.startswith("rewind.")]
    assert len(heatmaps) == 2 * len(units)  # every unit, P-T and RI-T
    assert set(runs.kind) == {"P-T (AnB+)", "RI-T (baseB)"} and len(runs) == 4


def test_flatness_study_draws_smoothness_per_target_and_weight_deviation(page, landscape_store):
    url, studies = landscape_store
    at = page(study=studies["flatness"])
    assert not at.exception
    assert [s.value for s in at.subheader] == ["Along training: smoothness", "How far fine-tuning moves each layer"]
    assert at.query_params["measure"] == "loss_spread" and "path" not in at.query_params
    smooth = figures(at)["landscape.smoothness"]
    titles = {a["text"] for a in smooth["layout"]["annotations"]}
    assert {"same classes", "other classes, noise"} <= titles
    assert {t["name"] for t in smooth["data"]} == {"P-T (AnB+)", "RI-T (baseB)"}
    # One seed: each line is one job's stored curve.
    from db.results import Results
    from db.session import get_engine

    line = smooth["data"][0]
    job = int(line["customdata"][0][2])
    curve = Results(get_engine(url)).curves([job], key="loss_spread")
    assert line["y"] == pytest.approx(curve.value.tolist()) and line["x"] == curve.step.tolist()

    deviation = figures(at)["landscape.deviation"]
    chen = stored(url, studies["flatness"], "chen_t")
    assert len(deviation["data"]) == len(chen) == 2  # one bar series per target
    assert deviation["data"][0]["x"] == [c.removeprefix("deviation.") for c in chen if c.startswith("deviation.")]

    # Paired by seed: P-T minus RI-T of the smoothness averaged along training, per setting.
    smooth_paired = at.dataframe[0].value.set_index("setting")
    assert {"same classes", "other classes, noise"} <= set(smooth_paired.index)
    assert {"P-T − RI-T", "95% t low", "P(P-T > RI-T)", "seeds"} <= set(smooth_paired)
    networks = stored(url, studies["flatness"], "smoothness")
    curves = Results(get_engine(url)).curves(networks.job.astype(int).tolist(), key="loss_spread")
    along = curves.groupby("job").value.mean()
    near = networks[networks.target == networks.target.iloc[0]].set_index("treatment").job
    setting = next(s for s in smooth_paired.index if s.startswith(networks.target.iloc[0]))
    assert smooth_paired.loc[setting, "P-T − RI-T"] == pytest.approx(along[near["AnB+"]] - along[near["baseB"]])
    # The deviation has no RI-T: its paired table compares each target with the first, layer by layer.
    dev_paired = at.dataframe[1].value
    layers = [c for c in chen if c.startswith("deviation.")]
    assert len(dev_paired) == len(layers) and dev_paired.comparison.nunique() == 1
    first, last = chen.target.iloc[0], chen.target.iloc[-1]
    row = dev_paired.iloc[0]
    by_target = chen.set_index("target")
    assert row["difference"] == pytest.approx(by_target.loc[last, f"deviation.{row.layer}"]
                                              - by_target.loc[first, f"deviation.{row.layer}"])


def test_switching_widgets_writes_the_url(page, landscape_store):
    _, studies = landscape_store
    at = page(study=studies["basins"])
    at.radio(key="landscape.path").set_value("accuracy").run()
    assert not at.exception and at.query_params["path"] == "accuracy"
    assert figures(at)["landscape.paths"]["layout"]["yaxis"]["title"]["text"] == "test accuracy (%)"
    flat = page(study=studies["flatness"])
    flat.selectbox(key="landscape.measure").set_value("gradient_sv.conv1").run()
    assert not flat.exception and flat.query_params["measure"] == "gradient_sv.conv1"
    assert "conv1" in figures(flat)["landscape.smoothness"]["layout"]["yaxis"]["title"]["text"]


def test_tampered_links_fall_back_with_a_warning(page, landscape_store):
    _, studies = landscape_store
    at = page(study="abc")
    assert not at.exception and any("study=abc" in w.value for w in at.warning)
    at = page(study=studies["flatness"], measure="curvature")
    assert not at.exception and any("measure=curvature" in w.value for w in at.warning)
    assert at.query_params["measure"] == "loss_spread"
    at = page(study=studies["basins"], path="height")
    assert not at.exception and any("path=height" in w.value for w in at.warning)
    assert at.query_params["path"] == "loss"
    at = page(share="nonsense")
    assert not at.exception and any("unknown or damaged" in w.value for w in at.warning)


def test_share_stores_a_snapshot_that_reopens_the_same_figures(page, landscape_store):
    from db.schema import Share
    from db.session import get_engine, session_scope

    url, studies = landscape_store
    at = page(study=studies["basins"], path="accuracy")
    at.button(key="landscape.share").click().run()
    assert not at.exception
    share_id = at.code[0].value.rsplit("share=", 1)[1]
    with session_scope(get_engine(url)) as s:
        snapshot = s.get(Share, share_id)
        assert snapshot.page == "landscape" and snapshot.params["path"] == "accuracy"
    opened = page(share=share_id)
    assert not opened.exception and "Snapshot" in opened.info[0].value
    live, shared = figures(at), figures(opened)
    assert set(shared) == set(live)
    for key in live:
        assert [t.get("y") for t in shared[key]["data"]] == [t.get("y") for t in live[key]["data"]]
    assert opened.dataframe[0].value.equals(at.dataframe[0].value)


def test_a_study_without_landscape_jobs_names_the_presets_that_make_them(page, tmp_path, monkeypatch):
    from backend.specs import YosinskiSpec, parse
    from db.queue import Queue
    from db.session import get_engine
    from db.submit import submit_study
    from tests.pages.conftest import STUDY

    url = f"sqlite:///{tmp_path / 'bare.db'}"
    bare = submit_study(Queue(get_engine(url)), parse(YosinskiSpec, STUDY), name="no landscape")
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
    at = page(study=bare)
    assert not at.exception
    assert "neyshabur-basins" in at.info[0].value and "liu-flatness" in at.info[0].value


def test_the_landscape_page_never_imports_torch(landscape_store):
    url, studies = landscape_store
    code = f"""
import os, sys
os.environ["TRANSFERLAB_DATABASE_URL"] = {url!r}
os.environ["TRANSFERLAB_EMBEDDED_WORKER"] = "0"
from streamlit.testing.v1 import AppTest
for study in {list(studies.values())!r}:
    at = AppTest.from_file("app.py", default_timeout=60).switch_page("app_pages/landscape.py")
    at.query_params["study"] = str(study)
    at.run()
    assert not at.exception, at.exception
assert "torch" not in sys.modules, "the landscape page imported torch"
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_smoothness_bands_stay_positive_on_a_log_axis():
    import pandas as pd

    from ui.landscape import log_axis, smoothness_figure, smoothness_summary

    # Two seeds a decade apart, spanning four decades along training: a t interval over two seeds
    # (half-width 12.7 x std / sqrt 2) reaches below 0, which a log axis cannot draw.
    networks = pd.DataFrame({"job": [1, 2], "treatment": "AnB+", "n": 5, "seed": [0, 1], "target": "B"})
    curves = pd.DataFrame({"job": [1, 1, 2, 2], "step": [0, 10, 0, 10], "value": [10.0, 0.01, 1.0, 0.001]})
    summary = smoothness_summary(curves, networks)
    assert log_axis(summary) and (summary["mean"] - summary.ci95 < 0).all()
    fig = smoothness_figure(summary, "loss spread")
    band, line = fig.data
    assert fig.layout.yaxis.type == "log" and line.y == pytest.approx((5.5, 0.0055))
    assert sorted(band.y) == pytest.approx(sorted([10.0, 0.01, 1.0, 0.001]))  # the seeds' range
    # Within two decades: a linear axis and the 95% CI band.
    linear = smoothness_summary(curves.assign(value=[2.0, 1.0, 3.0, 1.5]), networks)
    fig = smoothness_figure(linear, "loss spread")
    assert not log_axis(linear) and fig.layout.yaxis.type == "linear"
    assert max(fig.data[0].y) == pytest.approx(linear["mean"].iloc[0] + linear.ci95.iloc[0])


def test_the_explorer_opens_a_basins_study_whose_cka_is_between_pairs_of_runs(landscape_store, monkeypatch):
    """A basins study's CKA jobs compare pairs of runs (P-T, RI-T), not a network with a base one: the
    Explorer, which reads CKA against baseA/baseB, draws the study's networks without them."""
    from streamlit.testing.v1 import AppTest

    url, ids = landscape_store
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
    monkeypatch.setenv("TRANSFERLAB_EMBEDDED_WORKER", "0")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).switch_page("app_pages/explorer.py")
    at.query_params.update({"studies": str(ids["basins"])})
    at.run()
    assert not at.exception and at.get("plotly_chart")
    assert not any(o.startswith("cka_vs_") for o in at.selectbox(key="explorer.y").options)
