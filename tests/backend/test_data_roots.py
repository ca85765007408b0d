"""Data roots: a typed folder outside the allowed ones is refused where it was typed and by the worker."""

import os

import pytest

from backend.specs import SpecError, YosinskiSpec, parse
from backend.specs.roots import check_data_roots
from tests.backend.files import write_image_folder


def study_on(root):
    return parse(YosinskiSpec, {"data": {"source": {"kind": "folder", "root": str(root)}},
                                "model": {"arch": "mlp", "hidden": [8, 8]}, "train": {"epochs": 1, "batch_size": 4},
                                "treatments": ["AnB"], "n": [1], "probes": {"sharpness": None, "similarity": None}})


@pytest.fixture
def roots(tmp_path, monkeypatch):
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    for folder in (allowed, elsewhere):
        write_image_folder(folder / "set", {"a": 4, "b": 4, "c": 4, "d": 4})
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(allowed))
    return allowed, elsewhere


def test_a_folder_inside_a_root_passes_and_one_outside_is_refused_naming_the_roots(roots):
    allowed, elsewhere = roots
    check_data_roots(study_on(allowed / "set"))
    with pytest.raises(SpecError, match="outside the folders data may be read from") as err:
        check_data_roots(study_on(elsewhere / "set"))
    assert err.value.field == "data.source.root" and str(allowed) in str(err.value)
    with pytest.raises(SpecError):  # climbing out with .. is resolved first
        check_data_roots(study_on(allowed / ".." / "elsewhere" / "set"))


def test_a_symlink_inside_a_root_that_points_out_is_refused(roots):
    allowed, elsewhere = roots
    os.symlink(elsewhere / "set", allowed / "link")
    with pytest.raises(SpecError, match="outside"):
        check_data_roots(study_on(allowed / "link"))


def test_submit_and_worker_refuse_and_nothing_outside_is_read(roots, tmp_path):
    from backend.worker import Worker
    from db.queue import NewJob, Queue
    from db.session import get_engine
    from db.results import Results
    from db.submit import submit_study
    from backend.specs import TrainJobSpec, canonical_json, spec_hash

    allowed, elsewhere = roots
    queue = Queue(get_engine(f"sqlite:///{tmp_path / 'store.db'}"))
    with pytest.raises(SpecError, match="outside"):
        submit_study(queue, study_on(elsewhere / "set"))
    assert queue.counts() == {}  # nothing queued
    # A job queued around the submit path (by hand, or before the roots changed): the worker refuses it.
    job = parse(TrainJobSpec, {"data": {"source": {"kind": "folder", "root": str(elsewhere / "set")}},
                               "model": {"arch": "mlp", "hidden": [8]}, "train": {"epochs": 1, "batch_size": 4}})
    queue.submit("by hand", {}, "by hand", [NewJob(spec_hash(job), "train", canonical_json(job), spec_hash(job), {})])
    Worker(queue, "cpu", artifacts=tmp_path / "artifacts").serve(idle_exit=0)
    assert queue.counts() == {"failed": 1}
    [failed] = Results(queue.engine).jobs(status="failed").itertuples()
    assert "outside the folders data may be read from" in failed.error
    assert not (tmp_path / "var" / "cache").exists() or not any((tmp_path / "var" / "cache").rglob("*"))


def test_train_sweep_and_submit_refuse_the_same_folder_outside_the_roots(roots, capsys, monkeypatch, tmp_path):
    """The three commands read data by one rule: what trains here also submits, and a folder the lab's
    workers may not read is refused by the local commands too, with the same message."""
    from backend.cli import main

    allowed, elsewhere = roots
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    for command in (["train", "--data", str(elsewhere / "set")],
                    ["sweep", "--data", str(elsewhere / "set")],
                    ["submit", "--data", str(elsewhere / "set")]):
        assert main([*command, "--epochs", "1", "--set", "model.channels=[4]"]) == 2, command
        err = capsys.readouterr().err
        assert "data.source.root" in err and "outside the folders data may be read from" in err, command
    assert main(["train", "--data", str(allowed / "set"), "--epochs", "1", "--batch-size", "4",
                 "--set", "model.channels=[4]", "--set", "model.hidden=[]"]) == 0
