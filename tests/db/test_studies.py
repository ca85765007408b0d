"""Studies list and management on every backend: search, rename, archive, delete keeping what others reuse."""

import json

import numpy as np
import pytest
from sqlalchemy import inspect, select, text

from backend.specs.base import shape_hash
from db.queue import NewJob, QueueError
from db.results import Results
from db.schema import Job
from db.sequential import seed_history
from db.session import get_engine, session_scope
from db.studies import Studies, study_shape


def job(key, *deps, seed=0):
    spec = json.dumps({"k": key, "train": {"seed": seed}})
    return NewJob(key, "train", spec, f"hash-{key}-{seed}", {"name": key, "seed": seed}, tuple(deps))


def run(queue, worker="w", accuracy=0.9, path=None):
    """Claim the next job and complete it with a score, a curve, an array and a checkpoint."""
    claimed = queue.claim(worker, 30)
    artifacts = [{"kind": "checkpoint", "path": path or f"ckpt/{claimed.spec_hash}.safetensors",
                  "sha256": "0" * 64, "bytes": 10}]
    assert queue.complete(claimed.id, worker, {"final_accuracy": accuracy}, [("test_accuracy", 1, accuracy)],
                          artifacts, arrays={"cka": np.eye(2)})
    return claimed.id


def jobs_of(queue, study_id):
    with session_scope(queue.engine) as s:
        return {j.labels["name"]: (j.id, j.status, j.result_of)
                for j in s.scalars(select(Job).where(Job.study_id == study_id))}


def test_the_migrations_add_archived_and_shape(database_url):
    columns = inspect(get_engine(database_url)).get_columns
    assert "archived" in {c["name"] for c in columns("studies")}
    assert "shape" in {c["name"] for c in columns("jobs")}


def test_jobs_differing_only_in_seed_share_a_shape(queue):
    seeds = [NewJob(f"s{seed}", "train", json.dumps({"k": "a", "train": {"seed": seed}}), f"h{seed}", {"seed": seed})
             for seed in (0, 1)]
    study = queue.submit("s", {"study": "yosinski"}, "s", seeds + [job("b")])
    with session_scope(queue.engine) as s:
        shapes = {j.spec_hash: j.shape for j in s.scalars(select(Job).where(Job.study_id == study))}
    assert shapes["h0"] == shapes["h1"] == shape_hash({"k": "a", "train": {"seed": 5}}) != shapes["hash-b-0"]
    assert shape_hash({"k": "a", "data": {"classes": {"half": "A"}}}) == shape_hash({"k": "a", "data": {"classes": {}}})
    assert shape_hash({"k": "a", "lr": 0.1}) != shape_hash({"k": "a", "lr": 0.2})
    # A probe names its network by hash: two seeds' probes share a shape through their networks'.
    assert (shape_hash({"network": "h0"}, {"h0": "shape"}) == shape_hash({"network": "h1"}, {"h1": "shape"})
            != shape_hash({"network": "h1"}))


def test_mean_seconds_by_shape_counts_runs_not_links(queue):
    first = queue.submit("first", {"study": "yosinski"}, "1", [job("a")])
    run(queue)
    queue.submit("second", {"study": "yosinski"}, "2", [job("a")])  # a link to the first run
    with session_scope(queue.engine) as s:
        shape = s.scalar(select(Job.shape).where(Job.study_id == first))
        s.execute(Job.__table__.update().where(Job.study_id == first).values(started_at=100.0, finished_at=112.0))
    assert Studies(queue.engine).mean_seconds_by_shape([shape, "unknown"]) == {shape: pytest.approx(12.0)}


def test_listing_searches_name_and_tags_and_hides_archived(queue):
    studies = Studies(queue.engine)
    mnist = queue.submit("mnist pilot", {"study": "yosinski"}, "m", [job("a")], preset="yosinski-mnist")
    custom = queue.submit("wide_net", {"study": "yosinski"}, "w", [job("b"), job("c", "b")])
    Studies(queue.engine).annotate(custom, "wider layers", ["ablation", "width"])
    listed = {s.id: s for s in studies.listing()}
    assert list(listed) == [custom, mnist]
    assert listed[custom].origin == "custom" and listed[mnist].origin == "yosinski-mnist"
    assert listed[custom].kind == "yosinski" and listed[custom].counts == {"queued": 2}
    assert listed[custom].tags == ["ablation", "width"] and listed[custom].notes == "wider layers"
    assert [s.id for s in studies.listing(search="PILOT")] == [mnist]
    assert [s.id for s in studies.listing(search="ablat")] == [custom]
    assert [s.id for s in studies.listing(search="_")] == [custom]  # a wildcard in SQL, a character here
    studies.set_archived(custom)
    assert [s.id for s in studies.listing()] == [mnist]
    assert [s.id for s in studies.listing(archived=True)] == [custom, mnist]
    assert [s.id for s in studies.listing(include=[custom])] == [mnist, custom]  # opened from a link
    studies.set_archived(custom, False)
    assert not studies.listing(search="wide")[0].archived


def test_rename_round_trips_and_refuses_blank_names(queue):
    studies = Studies(queue.engine)
    study = queue.submit("old", {"study": "yosinski"}, "o", [job("a")])
    assert studies.rename(study, "  new name ") == "new name"
    assert studies.listing()[0].name == "new name"
    with pytest.raises(QueueError, match="needs a name"):
        studies.rename(study, "   ")
    with pytest.raises(QueueError, match="no study"):
        studies.rename(study + 99, "x")
    assert studies.listing()[0].name == "new name"


def test_deleting_a_study_keeps_the_runs_another_study_reuses(queue):
    studies, results = Studies(queue.engine), Results(queue.engine)
    first = queue.submit("first", {"study": "yosinski"}, "1", [job("shared"), job("own", "shared")])
    shared_run = run(queue, accuracy=0.75, path="ckpt/shared.safetensors")
    run(queue, accuracy=0.5, path="ckpt/own.safetensors")
    second = queue.submit("second", {"study": "yosinski"}, "2", [job("shared")])
    third = queue.submit("third", {"study": "yosinski"}, "3", [job("shared")])
    heir, status, link = jobs_of(queue, second)["shared"]
    assert (status, link) == ("succeeded", shared_run)
    wall_before = studies.listing(search="first")[0].wall_seconds

    deleted = studies.delete(first)

    assert deleted.jobs == 2 and deleted.kept == {shared_run: heir} and deleted.kept_for == [second]
    assert deleted.orphaned_paths == ["ckpt/own.safetensors"]  # the shared checkpoint is still used
    assert [s.id for s in studies.listing(archived=True)] == [third, second]
    assert jobs_of(queue, second)["shared"] == (heir, "succeeded", None)  # now the run itself
    assert jobs_of(queue, third)["shared"][2] == heir  # the other link follows it
    for study in (second, third):
        assert results.study_scores(study)["final_accuracy"].tolist() == [0.75]
        assert results.job_artifacts(jobs_of(queue, study)["shared"][0]).path.tolist() == ["ckpt/shared.safetensors"]
        assert results.arrays(study, "cka")[0].value.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert results.artifacts(second).path.tolist() == ["ckpt/shared.safetensors"]
    assert results.curves([heir]).value.tolist() == [0.75]
    assert studies.listing(search="second")[0].wall_seconds == pytest.approx(wall_before, abs=60)


def test_deleting_a_study_with_a_running_job_is_refused_and_changes_nothing(queue):
    studies = Studies(queue.engine)
    study = queue.submit("busy", {"study": "yosinski"}, "b", [job("a"), job("b")])
    queue.claim("w", 30)
    before = jobs_of(queue, study)
    with pytest.raises(QueueError, match="1 running job"):
        studies.delete(study)
    assert jobs_of(queue, study) == before
    assert [s.id for s in studies.listing()] == [study]
    with pytest.raises(QueueError, match="no study"):
        studies.delete(study + 1)


def test_upgrading_an_old_store_gives_its_jobs_shapes(tmp_path):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from db.session import MIGRATIONS, migrate

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        for i, seed in enumerate((0, 1)):
            connection.execute(text(
                "INSERT INTO jobs (study_id, kind, spec, spec_hash, labels, status, priority, attempts, max_attempts,"
                " progress, message, cancel_requested) VALUES (NULL, 'train', :spec, :hash, '{}', 'queued', 0, 0, 3,"
                " 0, '', 0)"), {"spec": json.dumps({"k": "a", "seed": seed}), "hash": f"h{i}"})
    migrate(engine)
    with engine.connect() as conn:
        shapes = conn.execute(text("SELECT shape FROM jobs")).scalars().all()
    assert shapes[0] == shapes[1] == shape_hash({"k": "a"})


# ---------------------------------------------------------------- past studies of a study's shape

SHAPED = {"study": "yosinski", "data": {"source": {"kind": "digits"}}, "train": {"epochs": 1}, "n": [1]}


def yosinski_study(queue, seeds, gains, name="s", **changes):
    """A finished study with AnB+ (n = 1) `gains[i]` points above baseB in seed seeds[i]."""
    spec = {**SHAPED, **changes, "seeds": seeds}
    jobs = [NewJob(f"{t}-{seed}", "train", json.dumps({"t": t, "seed": seed, **changes}), f"{name}-{t}-{seed}",
                   {"seed": seed, "treatment": t, **({"n": 1} if t == "AnB+" else {})})
            for seed in seeds for t in ("baseB", "AnB+")]
    study_id = queue.submit(name, spec, f"hash-{name}", jobs)
    for seed, gain in zip(seeds, gains):
        for accuracy in (0.5, 0.5 + gain / 100):  # baseB, then AnB+ (claimed in order)
            claimed = queue.claim("w", 30)
            assert queue.complete(claimed.id, "w", {"final_accuracy": accuracy}, [], [])
    return study_id


def test_a_study_shape_leaves_out_seeds_precision_and_name():
    rule = {"quantity": "anb_plus_gain", "half_width": 1.0, "max_seeds": 8}
    assert study_shape({**SHAPED, "seeds": [0]}) == study_shape({**SHAPED, "seeds": [3, 4], "precision": rule,
                                                                  "name": "again"})
    assert study_shape({**SHAPED, "seeds": [0]}) != study_shape({**SHAPED, "seeds": [0], "n": [2]})
    assert study_shape(SHAPED) != study_shape({**SHAPED, "study": "basins"})


def test_past_studies_of_a_shape_pool_their_seeds_once_each(queue):
    first = yosinski_study(queue, [0, 1], [2.0, 4.0], name="a")
    second = yosinski_study(queue, [1, 2], [4.0, 9.0], name="b")  # seed 1 again: the same measurement
    yosinski_study(queue, [0, 1], [50.0, -50.0], name="c", n=[2])  # another shape: left out
    spec = {**SHAPED, "seeds": [7], "precision": {"quantity": "anb_plus_gain", "half_width": 1.0}}
    assert Studies(queue.engine).same_shape(spec) == [second, first]  # newest first
    history = seed_history(queue, spec, "anb_plus_gain")
    assert history.studies == (second, first)
    assert history.values.round(6).to_dict() == {0: 2.0, 1: 4.0, 2: 9.0}
    assert history.std == pytest.approx(np.std([2.0, 4.0, 9.0], ddof=1))
    assert seed_history(queue, {**SHAPED, "n": [3]}, "anb_plus_gain").std is None  # no history


def test_the_listing_filters_by_study_kind_in_sql(queue):
    from backend.studies import parse_study
    from db.studies import Studies
    from db.submit import submit_study
    from tests.backend.test_model_selection import STUDY as SELECTION

    chosen = submit_study(queue, parse_study(SELECTION), name="choose")
    listing = Studies(queue.engine).listing(kind="model_selection")
    assert [s.id for s in listing] == [chosen]
    assert all(s.kind == "yosinski" for s in Studies(queue.engine).listing(kind="yosinski"))
