import copy
import json
import re
from pathlib import Path

import yaml
from sqlalchemy import func, select

from backend.studies import parse_study
from db.schema import Job, Study
from db.session import get_engine, session_scope


def job_count(url):
    with session_scope(get_engine(url)) as s:
        return s.scalar(select(func.count()).select_from(Job))


def test_default_preset_is_valid_and_counts_its_jobs(app):
    at = app("new_study.py").run()
    assert not at.exception
    assert any("270 jobs" in m.value for m in at.markdown)  # 81 networks, their sharpness, 108 CKA comparisons
    assert at.query_params["preset"] == "yosinski-digits"


def test_a_bad_field_shows_its_error_and_queues_nothing(app, seeded_store):
    url, _ = seeded_store
    before = job_count(url)
    at = app("new_study.py").run()
    at.text_input(key="new.seeds").input("0,x").run()
    assert not at.exception
    assert any("seeds" in e.value and "whole numbers" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "new.submit"]  # no queue button until valid
    at.text_input(key="new.n").input("9").run()
    at.text_input(key="new.seeds").input("0").run()
    assert any("out of range" in e.value for e in at.error)
    assert job_count(url) == before


def test_queueing_a_study(app, seeded_store):
    url, _ = seeded_store
    before = job_count(url)
    at = app("../app.py").run()  # the whole app: its link to the Jobs page needs the navigation
    at.text_input(key="new.seeds").input("5").run()
    at.button(key="new.submit").click().run()
    assert not at.exception
    assert at.success and "90 jobs" in at.success[0].value  # 27 networks, their sharpness, 36 CKA comparisons
    assert job_count(url) == before + 90
    [link] = at.get("page_link")
    assert link.proto.page == "jobs" and link.proto.query_string.startswith("study=")


def test_a_tampered_preset_falls_back_with_a_message(app):
    at = app("new_study.py")
    at.query_params["preset"] = "yosinski-<script>"
    at.run()
    assert not at.exception
    assert any("Ignored" in w.value for w in at.warning)
    assert at.selectbox(key="new.preset").value == "yosinski-digits"


def test_an_empty_folder_path_is_refused_where_it_was_typed(app, seeded_store):
    url, _ = seeded_store
    before = job_count(url)
    at = app("new_study.py").run()
    at.radio(key="new.kind").set_value("folder").run()
    assert not at.exception
    assert any("no folder given" in e.value for e in at.error)  # not the working directory
    assert not [b for b in at.button if b.key == "new.submit"] and job_count(url) == before


def test_a_folder_without_class_folders_is_refused_under_the_field(app, seeded_store, tmp_path):
    from PIL import Image

    url, _ = seeded_store
    before = job_count(url)
    for i in range(2):
        Image.new("L", (4, 4)).save(tmp_path / f"{i}.png")
    at = app("new_study.py").run()
    at.radio(key="new.kind").set_value("folder").run()
    at.text_input(key="new.folder_root").input(str(tmp_path)).run()
    assert not at.exception
    data_column = at.columns[0]
    assert any("holds 2 image(s) directly" in e.value for e in data_column.error)  # where it was typed
    assert any("Not queued" in e.value for e in at.error)
    assert not [b for b in at.button if b.key in ("new.submit", "new.preview")] and job_count(url) == before


def test_a_good_folder_shows_its_classes_at_once(app, tmp_path):
    from tests.backend.files import write_image_folder

    # four classes: a Yosinski study splits them into two halves of at least two
    write_image_folder(tmp_path / "train", {"cat": 3, "dog": 2, "elk": 2, "fox": 2})
    write_image_folder(tmp_path / "test", {"cat": 1, "dog": 1, "elk": 1, "fox": 1})
    at = app("new_study.py").run()
    at.radio(key="new.kind").set_value("folder").run()
    at.text_input(key="new.folder_root").input(str(tmp_path)).run()
    assert not at.exception and not at.columns[0].error
    assert any("4 classes (train/ and test/): 9 train, 4 test images" in c.value for c in at.caption)
    assert at.button(key="new.preview")


def test_a_folder_with_too_few_classes_for_the_halves_is_refused_at_the_data_field(app, tmp_path, seeded_store):
    from tests.backend.files import write_image_folder

    url, _ = seeded_store
    before = job_count(url)
    write_image_folder(tmp_path, {"cat": 3, "dog": 3})
    at = app("new_study.py").run()
    at.radio(key="new.kind").set_value("folder").run()
    at.text_input(key="new.folder_root").input(str(tmp_path)).run()
    assert not at.exception
    assert any("data.classes" in e.value and "half" in e.value and "at least 2" in e.value for e in at.columns[0].error)
    assert not [b for b in at.button if b.key == "new.submit"] and job_count(url) == before


def test_the_data_preview_is_queued_first_and_shown_when_a_worker_ran_it(app, tmp_path, monkeypatch):
    from backend.worker import Worker
    from db.queue import Queue
    from db.session import get_engine

    url = f"sqlite:///{tmp_path / 'fresh.db'}"  # a store no worker has served yet
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
    at = app("new_study.py").run()
    at.number_input(key="new.per_class").set_value(20).run()  # a spec no earlier test previewed
    at.button(key="new.preview").click().run()
    assert not at.exception
    assert any("Preview (job #" in i.value and "waiting for a worker" in i.value for i in at.info)
    assert Worker(Queue(get_engine(url)), "cpu", artifacts=tmp_path).serve(max_jobs=1) == 1
    at.run()
    assert not at.exception
    assert any("10 classes, 200 training" in c.value for c in at.caption)
    [grid] = at.get("image")
    assert grid.captions[0].startswith("one row per class, top to bottom: 0, 1, 2")
    halves = at.dataframe[-1].value
    assert list(halves["seed"]) == [0, 1, 2] and all(halves["A"].str.count(",") == 4)


def test_a_cross_data_set_preset_is_edited_and_queued_like_any_study(app, tmp_path, monkeypatch):
    from db.results import Results
    from db.session import get_engine

    url = f"sqlite:///{tmp_path / 'cross.db'}"
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
    at = app("new_study.py")
    at.query_params["preset"] = "amount-digits-halves"
    at.run()
    assert not at.exception
    assert any("Cross-data-set transfer" in c.value for c in at.caption)
    assert any("What answers it" in m.value and "data amount (log axis)" in m.value for m in at.markdown)
    assert at.checkbox(key="new.probe_CrossDatasetSpec.chen_t").value  # the kind's own probes
    at.text_input(key="new.seeds").input("0").run()
    assert not at.exception and not at.error
    at.button(key="new.submit").click().run()
    assert not at.exception and "Queued study #1" in at.success[0].value
    spec = Results(get_engine(url)).study_spec(1)
    assert spec["study"] == "cross_dataset" and spec["seeds"] == [0]
    assert spec["source"]["classes"]["include"] == [0, 1, 2, 3, 4]


def test_the_targets_and_the_cross_grid_are_edited_on_the_page(app, tmp_path, monkeypatch):
    from db.results import Results
    from db.session import get_engine

    url = f"sqlite:///{tmp_path / 'cross.db'}"
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
    at = app("new_study.py")
    at.query_params["preset"] = "gap-digits-shifts"
    at.run()
    assert "name:" in at.text_area(key="new.targets.gap-digits-shifts").value
    at.text_area(key="new.targets.gap-digits-shifts").input(
        "- {name: blurred, strength: 1.5, data: {source: {kind: digits}, shifts: [{kind: blur, sigma: 1.5}]}}").run()
    at.text_input(key="new.amounts").input("5, all").run()
    at.text_input(key="new.class_fractions").input("0.5,all").run()
    at.text_input(key="new.depths").input("1").run()
    assert any("out of range" in e.value for e in at.error)  # the preset's n beyond one conv block's units
    at.text_input(key="new.n").input("").run()  # every depth's own units
    at.text_input(key="new.seeds").input("0").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="new.submit").click().run()
    spec = Results(get_engine(url)).study_spec(1)
    assert [t["name"] for t in spec["targets"]] == ["blurred"]
    assert spec["targets"][0]["data"]["shifts"][0]["sigma"] == 1.5
    assert spec["amounts"] == [5, None] and spec["class_fractions"] == [0.5, None] and spec["depths"] == [1]
    before = job_count(url)
    at.text_area(key="new.targets.gap-digits-shifts").input("- name: [unclosed").run()
    assert any("targets" in e.value and "YAML" in e.value for e in at.columns[0].error)  # under the box
    at.text_area(key="new.targets.gap-digits-shifts").input("- {name: x}").run()  # no data
    assert any("targets.0.data" in e.value for e in at.error)
    at.text_area(key="new.targets.gap-digits-shifts").input(  # a class the digits do not have
        "- {name: x, data: {source: {kind: digits}, classes: {include: [0, 1000000000000]}}}").run()
    assert any("targets.0.data.classes.include" in e.value and "ids 0..9" in e.value for e in at.columns[0].error)
    at.text_input(key="new.amounts").input("5,lots").run()
    assert any("amounts" in e.value and "or all" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "new.submit"] and job_count(url) == before


def test_every_preset_is_valid_as_the_page_shows_it(app):
    from backend.specs import PRESETS

    for name, preset in PRESETS.items():
        at = app("new_study.py")
        at.query_params["preset"] = name
        at.run()
        assert not at.exception, name
        if "../shared/datasets" in json.dumps(preset.spec) and not Path("../shared/datasets").is_dir():
            # A fresh clone has no real data sets: the page names the missing folder, where it is typed.
            assert all("root" in e.value for e in at.error), (name, [e.value for e in at.error])
            continue
        assert not at.error, (name, [e.value for e in at.error])
        assert any(" jobs** (" in m.value for m in at.markdown), name
        assert any(m.value.startswith("**What answers it.**") for m in at.markdown), name


def test_a_folder_outside_the_data_roots_is_refused_before_it_is_listed(app, seeded_store, tmp_path, monkeypatch):
    from tests.backend.files import write_image_folder

    url, _ = seeded_store
    before = job_count(url)
    write_image_folder(tmp_path / "private", {"secret": 2, "other": 2})
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tmp_path / "public"))
    at = app("new_study.py").run()
    at.radio(key="new.kind").set_value("folder").run()
    at.text_input(key="new.folder_root").input(str(tmp_path / "private")).run()
    assert not at.exception
    assert any("outside the folders data may be read from" in e.value and "public" in e.value
               for e in at.columns[0].error)
    assert not any("secret" in c.value or "2 classes" in c.value for c in at.caption)  # nothing listed
    assert not [b for b in at.button if b.key in ("new.submit", "new.preview")] and job_count(url) == before


# ---------------------------------------------------------------- seeds: a fixed list, or until precise


def tiny_form(at):
    """The default preset made tiny, as a user would: AnB+ at n = 1 only, 20 digits a class, one epoch,
    no probes (6 jobs for 2 seeds)."""
    at.multiselect(key="new.treatments").set_value(["AnB+"])
    at.text_input(key="new.n").input("1")
    at.number_input(key="new.per_class").set_value(20)
    at.number_input(key="new.epochs").set_value(1)
    at.text_input(key="new.channels").input("4")
    at.text_input(key="new.hidden").input("8")
    at.checkbox(key="new.probe_YosinskiSpec.similarity").uncheck()
    at.checkbox(key="new.probe_YosinskiSpec.sharpness").uncheck()
    return at.run()


def until_precise(at, half_width, max_seeds=4, seeds="0,1"):
    at.radio(key="new.seed_mode").set_value("precise").run()
    at.text_input(key="new.seeds").input(seeds)
    at.number_input(key="new.half_width").set_value(half_width)
    at.number_input(key="new.max_seeds").set_value(max_seeds)
    return at.run()


def shown_spec(at) -> dict:
    """The validated spec the page shows, the text Export JSON writes."""
    return json.loads(at.code[-1].value)


def test_until_precise_queues_its_rule_and_sizes_the_next_study_from_it(empty_app, tmp_path):
    from backend.worker import Worker
    from db.queue import Queue

    make, url = empty_app
    at = until_precise(tiny_form(make("new_study.py").run()), 1000.0)
    assert not at.exception
    assert any(i.value.startswith("No history") for i in at.info)  # an empty store
    rule = {"quantity": "anb_plus_gain", "half_width": 1000.0, "max_seeds": 4}
    assert shown_spec(at)["precision"] == rule
    exported = yaml.safe_dump(shown_spec(at), sort_keys=False)  # Export YAML, then import it again
    assert parse_study(yaml.safe_load(exported)).precision.model_dump() == rule
    at.button(key="new.submit").click().run()
    assert not at.exception and "6 jobs" in at.success[0].value
    with session_scope(get_engine(url)) as s:
        [study] = s.scalars(select(Study)).all()
        assert study.spec["precision"] == rule
        assert study.seed_progress == {"quantity": "anb_plus_gain", "asked": 1000.0, "max_seeds": 4,
                                       "state": "running"}
    Worker(Queue(get_engine(url)), "cpu", artifacts=tmp_path / "artifacts").serve(idle_exit=0)
    at.run()  # the same form, with a finished study of its shape in the store now
    assert not at.exception and not any(i.value.startswith("No history") for i in at.info)
    cost = " ".join(m.value for m in at.markdown)
    assert "varied by sd" in cost and "past seeds (studies #1" in cost
    assert re.search(r"For ±1000, about \*\*2 seeds\*\*", cost)  # the first seeds suffice for so loose a width
    assert re.search(r"about \d+\.\d min on one worker, \d+\.\d min a seed \(from past runs of 3 of a seed's 3", cost)
    at.radio(key="new.seed_mode").set_value("fixed").run()
    at.text_input(key="new.seeds").input("0,1,2,3").run()
    assert "With the 4 seeds listed, its 95% interval is likely about ±" in " ".join(m.value for m in at.markdown)


def test_a_bad_half_width_shows_its_error_where_it_was_typed_and_queues_nothing(empty_app):
    make, url = empty_app
    at = until_precise(make("new_study.py").run(), 1.0, max_seeds=12, seeds="0,1,2")
    assert [b for b in at.button if b.key == "new.submit"]
    for bad in (0.0, -0.5):
        at.number_input(key="new.half_width").set_value(bad).run()
        assert not at.exception
        assert any("precision.half_width" in e.value and "greater than 0" in e.value for e in at.error)
        assert any("Not queued: fix **precision.half_width** above." in e.value for e in at.error)
        assert not [b for b in at.button if b.key == "new.submit"]  # no queue button until valid
    at.number_input(key="new.half_width").set_value(1.0)
    at.number_input(key="new.max_seeds").set_value(2).run()  # fewer than the 3 first seeds
    assert any("precision.max_seeds" in e.value for e in at.error)
    assert job_count(url) == 0


def test_with_no_history_a_2_seed_pilot_sets_two_seeds_and_no_rule(empty_app):
    make, _ = empty_app
    at = until_precise(make("new_study.py").run(), 1.0, max_seeds=12, seeds="0,1,2")
    assert any("No history" in i.value and "2-seed pilot" in i.value for i in at.info)
    at.button(key="new.pilot").click().run()
    assert not at.exception
    assert at.text_input(key="new.seeds").value == "0,1" and at.radio(key="new.seed_mode").value == "fixed"
    assert shown_spec(at)["seeds"] == [0, 1] and shown_spec(at).get("precision") is None


def test_a_preset_s_class_groups_meeting_another_folder_are_refused(app, seeded_store, tmp_path):
    from tests.backend.files import write_image_folder

    url, _ = seeded_store
    classes = {name: 2 for name in ("apple", "bear", "cloud", "daisy", "eagle", "fern", "goat", "harp", "iris",
                                    "jay")}
    write_image_folder(tmp_path / "train", classes)
    write_image_folder(tmp_path / "test", {name: 1 for name in classes})
    at = app("new_study.py")
    at.query_params["preset"] = "yosinski-cifar10-dissimilar"
    at.run()
    before = job_count(url)
    at.text_input(key="new.folder_root").input(str(tmp_path)).run()
    assert not at.exception
    assert any("groups" in e.value and "bird, cat, deer" in e.value and "apple" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "new.submit"] and job_count(url) == before


def test_a_vit_network_is_offered_and_its_patch_must_tile_the_images(app):
    at = app("new_study.py").run()
    at.selectbox(key="new.arch").select("vit").run()
    assert not at.exception
    at.number_input(key="new.vit.patch").set_value(3).run()  # the digits are 8x8: 3 does not tile them
    at.number_input(key="new.vit.depth").set_value(2).run()
    assert not at.exception
    assert any("8x8 images do not tile into 3x3 patches" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "new.submit"]  # nothing to queue until it tiles
    at.number_input(key="new.vit.patch").set_value(4).run()
    assert not at.exception and not at.error
    assert json.loads(at.code[-1].value)["model"] == {"arch": "vit", "patch": 4, "dim": 192, "depth": 2, "heads": 3,
                                                      "mlp_ratio": 4.0}


def test_the_page_says_what_sharpness_adds_to_the_training(app):
    """The default preset measures sharpness by the cost rule: the page gives the estimate beside the jobs;
    fewer epochs make the same probes dearer, past the budget: a warning."""
    from backend.specs import PRESETS
    from backend.studies import expand, parse_study
    from backend.studies.plan import sharpness_cost

    at = app("new_study.py").run()
    assert not at.exception
    ratio = sharpness_cost(expand(parse_study(PRESETS["yosinski-digits"].spec_dict()))).ratio
    said = [c.value for c in at.caption if c.value.startswith("Sharpness adds about")]
    assert said and said[0].startswith(f"Sharpness adds about {ratio:.1f}x the training's time") and not at.warning
    at.number_input(key="new.epochs").set_value(1).run()
    assert not at.exception and any(w.value.startswith("Sharpness adds about") for w in at.warning)


def test_turning_sharpness_on_gives_settings_within_the_budget(app, monkeypatch):
    """A preset whose rule left sharpness off: ticking the box takes the richest settings that fit this
    study's budget (SHARPNESS_LADDER), not SharpnessSettings()'s 512 images, 3 scopes and density."""
    from backend.specs import PRESETS
    from backend.specs.probes import SHARPNESS_LADDER
    from backend.studies import fitting_sharpness

    preset = PRESETS["yosinski-digits"]
    monkeypatch.setitem(preset.__dict__, "fitting_sharpness", None)  # the rule said off
    at = app("new_study.py").run()
    box = at.checkbox(key="new.probe_YosinskiSpec.sharpness")
    assert not at.exception and box.value is False
    box.check().run()
    assert not at.exception
    spec = json.loads(at.code[0].value)
    chosen = {k: spec["probes"]["sharpness"][k] for k in SHARPNESS_LADDER[0]}
    assert chosen == fitting_sharpness(copy.deepcopy(preset.spec)) == SHARPNESS_LADDER[0]
    assert any(c.value.startswith("Sharpness adds about") for c in at.caption)
