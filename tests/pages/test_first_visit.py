"""A first visit reads well: comparisons named as a researcher names them, a New study page whose text
says which probes the chosen spec runs, and on every page either a result or the presets that fill it,
each a link opening it on the New study page."""

import json
import re
import sqlite3

import pytest

from tests.pages.conftest import STUDY, app_factory

PAGES = ("layers.py", "similarity.py", "sharpness.py", "landscape.py", "explorer.py", "compare.py", "curves.py",
         "findings.py", "study.py", "studies.py", "jobs.py", "job.py")


def preset_links(at) -> list[str]:
    """The presets the page's links open on the New study page (the app's default page)."""
    return [e.proto.query_string.removeprefix("preset=") for e in at.get("page_link")
            if e.proto.query_string.startswith("preset=")]


def subplot_titles(at) -> list[str]:
    """The heatmaps' panel titles: the figure's annotations but the caption drawn under it."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return [a["text"] for a in spec["layout"]["annotations"] if "estimator" not in a["text"]]


def copy_store(url: str, folder) -> str:
    """A copy of a SQLite store (WAL included), for a test to add to without touching the shared one."""
    target = folder / "copy.db"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return f"sqlite:///{target}"


def submit(url: str, **probes) -> int:
    """A study of the page tests' shape with these probes, queued and not run."""
    from backend.specs import YosinskiSpec, parse
    from db.queue import Queue
    from db.session import get_engine
    from db.submit import submit_study

    return submit_study(Queue(get_engine(url)), parse(YosinskiSpec, {**STUDY, "probes": {**STUDY["probes"], **probes}}),
                        name="bare")


def test_comparisons_are_named_as_a_researcher_names_them():
    from ui.widgets import job_role

    scores = {"job": 113, "cka_diagonal_mean": 0.7322072662969882, "cka_mean": 0.676, "probe": "similarity"}
    row = {"seed": 1, "treatment": "AnB+", "n": 4, "against": "baseA", **scores}  # a results row, scalars and all
    assert job_role(row) == "AnB+ n=4, seed 1 vs baseA"
    assert job_role({"seed": 0, "treatment": "baseB", "n": 0}) == "baseB, seed 0"
    assert job_role({"seed": 0, "target": "digits 5-9", "pair": "P-T", "runs": "0-1"}) == \
        "P-T runs 0 and 1, seed 0, target digits 5-9"
    assert job_role({"seed": 1, "target": "t", "pair": "P-T vs RI-T", "runs": "0-0"}) == \
        "P-T run 0 vs RI-T run 0, seed 1, target t"
    cross = {"seed": 0, "depth": 3, "target": "noise 0.2", "class_fraction": 1.0, "amount": "all",
             "treatment": "AnB", "n": 3.0, "source_epoch": float("nan")}
    assert job_role(cross, ["target"]) == "AnB n=3, seed 0, target noise 0.2"


def test_similarity_heatmap_titles_are_short_names_with_the_numbers_in_the_tooltip(app, seeded_store):
    from db.results import Results
    from db.session import get_engine

    url, study_id = seeded_store
    jobs = Results(get_engine(url)).study_scores(study_id, kinds=["similarity"]).job.tolist()
    at = app("similarity.py")
    at.query_params.update({"study": str(study_id), "jobs": ",".join(map(str, jobs[:4]))})  # four side by side
    at.run()
    assert not at.exception
    titles = subplot_titles(at)
    assert len(titles) == 4
    for title in titles:
        text = title.replace("<br>", " ")
        assert re.search(r"\d\.\d", text) is None and "cka" not in text.lower() and "job" not in text
        assert "seed" in text and " vs base" in text
        assert all(len(line) <= 25 for line in title.split("<br>"))  # a quarter of the width each: no overlap
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert all("CKA, same units (mean) 0." in t["hovertemplate"] for t in spec["data"])  # the numbers, on hover
    assert at.dataframe[0].value["comparison"].tolist() == [t.replace("<br>", " ") for t in titles]
    assert set(at.dataframe[0].value.job) == set(jobs[:4])


def test_every_page_on_an_empty_store_links_the_preset_that_fills_it(empty_app):
    make, _ = empty_app
    for page in PAGES:
        at = make(page).run()
        assert not at.exception, page
        assert "yosinski-digits" in preset_links(at), page
        assert any("New study page" in i.value for i in at.info), page
    compare = make("compare.py").run()
    assert preset_links(compare) == ["yosinski-digits", "yosinski-digits-dissimilar"]


def test_a_study_without_the_result_names_the_presets_that_fill_it(app, seeded_store, tmp_path, monkeypatch):
    from ui.presets import filled_by

    url, study_id = seeded_store
    landscape = app("landscape.py")  # a Yosinski study: no path, plane, criticality or smoothness
    landscape.query_params["study"] = str(study_id)
    landscape.run()
    assert not landscape.exception
    assert preset_links(landscape) == ["neyshabur-basins", "liu-flatness"]
    assert "neyshabur-basins" in landscape.info[0].value

    copy = copy_store(url, tmp_path)
    bare = submit(copy, sharpness=None, similarity=None)
    make = app_factory(copy, monkeypatch)
    for page, kind in (("sharpness.py", "sharpness"), ("similarity.py", "similarity")):
        at = make(page)
        at.query_params["study"] = str(bare)
        at.run()
        assert not at.exception
        assert preset_links(at) == filled_by([kind]) and preset_links(at)
        assert f"it has no {kind} job" in at.info[0].value
        here = [e.proto.query_string for e in at.get("page_link") if not e.proto.query_string.startswith("preset=")]
        assert here == [f"study={study_id}"]  # the seeded study has them: a link to it on this page


def test_a_study_whose_probes_are_queued_says_they_are_coming(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'queued.db'}"
    study = submit(url)
    make = app_factory(url, monkeypatch)
    for page in ("similarity.py", "sharpness.py"):
        at = make(page)
        at.query_params["study"] = str(study)
        at.run()
        assert not at.exception and "yet" in at.info[0].value and not preset_links(at)


@pytest.mark.parametrize("preset", ["yosinski-digits", "neyshabur-basins"])
def test_the_new_study_page_says_which_probes_the_spec_runs(app, preset):
    from backend.specs import PRESETS
    from backend.studies import STUDY_KINDS, parse_study
    from ui.probes import switches

    at = app("new_study.py")
    at.query_params["preset"] = preset
    at.run()
    assert not at.exception
    kind = STUDY_KINDS[PRESETS[preset].study]
    probes = parse_study(PRESETS[preset].spec_dict()).probes
    fields = type(probes).model_fields

    def line() -> str:
        return next(c.value for c in at.caption if c.value.startswith(("Probes on", "No probe on")))

    def said(text: str, name: str) -> str:
        """'on' or 'off': the part of the line that names the probe."""
        on, _, off = text.partition("Off:")
        return "on" if fields[name].description in on else "off" if fields[name].description in off else "?"

    assert "the Hessian sharpness of every network" not in kind.description  # no claim the spec may not keep
    for name, on in switches(probes).items():
        assert said(line(), name) == ("on" if on else "off"), name
    name = "sharpness" if "sharpness" in fields else "plane"  # flip one and the line follows
    box = at.checkbox(key=f"new.probe_{kind.spec.__name__}.{name}")
    box.set_value(not box.value).run()
    assert not at.exception and said(line(), name) == ("on" if box.value else "off")
