"""The Studies page on a fresh store of its own (it renames, archives and deletes)."""

import pytest

from tests.pages.conftest import ROOT, STUDY


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """(AppTest factory, queue, study ids) over a new store with two queued studies, the second tagged."""
    from backend.specs import YosinskiSpec, parse
    from db.queue import Queue
    from db.session import get_engine
    from db.studies import Studies
    from db.submit import submit_study

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", url)
    monkeypatch.setenv("TRANSFERLAB_EMBEDDED_WORKER", "0")
    monkeypatch.setenv("TRANSFERLAB_ARTIFACTS", str(tmp_path / "artifacts"))
    queue = Queue(get_engine(url))
    spec = parse(YosinskiSpec, STUDY)
    pilot = submit_study(queue, spec, name="pilot", preset="yosinski-digits")
    wide = submit_study(queue, spec.model_copy(update={"seeds": [5]}), name="wide")
    Studies(queue.engine).annotate(wide, "wider layers", ["ablation"])

    return lambda **params: make_page("app_pages/studies.py", **params), queue, (pilot, wide)


def test_lists_studies_and_searches_by_tag(fresh):
    make, _, (pilot, wide) = fresh
    at = make()
    assert not at.exception
    table = at.dataframe[0].value
    assert table.id.tolist() == [wide, pilot]
    assert table.preset.tolist() == ["custom", "yosinski-digits"] and set(table.kind) == {"yosinski"}
    assert table.tags.tolist() == ["ablation", ""] and "queued" in table.status[0]
    at.text_input(key="studies.q").input("ablat").run()
    assert not at.exception
    assert at.dataframe[0].value.id.tolist() == [wide]
    assert at.query_params["q"] == "ablat"  # the search is in the link
    at.text_input(key="studies.q").input("nothing like it").run()
    assert "No study matches." in [i.value for i in at.info]


def test_rename_and_archive_through_the_widgets(fresh):
    make, _, (pilot, wide) = fresh
    at = make(study=str(pilot))
    at.text_input(key=f"studies.name.{pilot}").input("pilot, 2 seeds")
    at.button(key="studies.rename").click().run()
    assert not at.exception
    assert any("now called “pilot, 2 seeds”" in s.value for s in at.success)
    assert at.dataframe[0].value.set_index("id").name[pilot] == "pilot, 2 seeds"

    at.button(key="studies.archive").click().run()
    assert any("Archived study" in s.value for s in at.success)
    assert at.dataframe[0].value.id.tolist() == [wide]  # hidden
    at.toggle(key="studies.archived").set_value(True).run()
    assert at.dataframe[0].value.set_index("id").archived[pilot]
    assert at.query_params["archived"] == "1"

    # The study picker of other pages leaves it out, but a link still opens it.
    jobs = make_page("app_pages/jobs.py", live="0")
    assert not jobs.exception and all("pilot" not in o for o in jobs.selectbox(key="jobs.study").options)
    linked = make_page("app_pages/study.py", study=str(pilot))
    assert not linked.exception and linked.selectbox(key="study.study").value == pilot


def test_delete_asks_first_and_keeps_what_another_study_reuses(fresh, tmp_path):
    import json

    from db.queue import NewJob

    make, queue, _ = fresh
    artifacts = tmp_path / "artifacts"
    (artifacts / "ckpt").mkdir(parents=True)
    jobs = [NewJob(k, "train", json.dumps({"k": k}), f"hash-{k}", {"name": k}) for k in ("shared", "own")]
    first = queue.submit("first", {"study": "yosinski"}, "1", jobs, priority=5)  # claimed before the others
    for _ in jobs:
        claimed = queue.claim("w", 30)
        path = f"ckpt/{claimed.spec_hash}.safetensors"
        (artifacts / path).write_bytes(b"weights")
        queue.complete(claimed.id, "w", {"final_accuracy": 0.5},
                       artifacts=[{"kind": "checkpoint", "path": path, "sha256": "0" * 64, "bytes": 7}])
    second = queue.submit("second", {"study": "yosinski"}, "2", jobs[:1])  # reuses the shared run

    at = make(study=str(first))
    delete = at.button(key="studies.delete")
    assert delete.disabled  # not before the user confirms
    at.checkbox(key=f"studies.sure.{first}").check().run()
    at.button(key="studies.delete").click().run()
    assert not at.exception
    said = " ".join(s.value for s in at.success)
    assert f"Deleted study #{first} “first” and its 2 jobs" in said
    assert "the results of 1 of its runs" in said and f"study #{second}" in said
    assert "Removed 1 artifact file" in said
    assert first not in at.dataframe[0].value.id.tolist()
    assert (artifacts / "ckpt/hash-shared.safetensors").exists()
    assert not (artifacts / "ckpt/hash-own.safetensors").exists()


def make_page(page, **params):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).switch_page(page)
    at.query_params.update(params)
    return at.run()


def test_new_study_records_an_edited_preset_as_custom_and_estimates_by_shape(fresh):
    from backend.specs import PRESETS
    from backend.studies import parse_study
    from db.studies import Studies
    from db.submit import submit_study

    _, queue, _ = fresh
    earlier = submit_study(queue, parse_study(PRESETS["yosinski-digits"].spec_dict()), preset="yosinski-digits",
                           priority=5)  # its jobs are claimed first
    claimed = queue.claim("w", 30)  # a past run: one base network, seed 0
    assert queue.complete(claimed.id, "w", {"final_accuracy": 0.9})

    at = make_page("app_pages/new_study.py")
    assert not at.exception
    said = " ".join(m.value for m in at.markdown)
    # Its shape is that of the base A and B networks of every seed: 6 of the 270 planned jobs.
    assert "min on one worker (from past runs of 6 of 270 jobs' shapes)" in said
    assert "Recorded as the preset yosinski-digits." in [c.value for c in at.caption]

    at.number_input(key="new.epochs").set_value(3).run()
    assert "no past run of these jobs' shapes to estimate from" in " ".join(m.value for m in at.markdown)
    assert any("custom study" in c.value for c in at.caption)
    at.text_input(key="new.name").input("short training")
    at.button(key="new.submit").click().run()
    assert not at.exception
    newest = Studies(queue.engine).listing()[0]
    assert newest.id != earlier and newest.name == "short training" and newest.origin == "custom"
