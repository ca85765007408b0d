"""A study's scores (the layer figure's query) read from the one-row-per-job scores written when a job
finishes: right after completion, once per job whatever its attempts, cleared by a re-run, shared by
links, and filled by the migration for stores written before it."""

import json
import math
import time

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, func, insert, select

from db.queue import NewJob
from db.results import Results
from db.schema import Job, JobScores, Result, Study
from db.session import MIGRATIONS, get_engine, session_scope


def job(key, treatment="AnB", n=1):
    return NewJob(key, "transfer", json.dumps({"k": key}), f"hash-{key}", {"name": key, "treatment": treatment, "n": n})


def submit(queue, jobs, name="study"):
    return queue.submit(name, {"study": "yosinski"}, f"study-{name}", jobs)


def scores_rows(queue):
    with session_scope(queue.engine) as s:
        return s.scalar(select(func.count()).select_from(JobScores))


def test_scores_are_there_as_soon_as_the_job_finishes(queue):
    study = submit(queue, [job("a", n=1), job("b", "baseB", 0), job("c", n=2)])
    results = Results(queue.engine)
    assert results.study_scores(study).empty
    first = queue.claim("w", 30)
    assert queue.complete(first.id, "w", {"final_accuracy": 0.8, "best10_accuracy": 0.7},
                          tables={"units": {"conv1": 8}})
    scores = results.study_scores(study)
    assert scores.to_dict(orient="records") == [{"job": first.id, "name": "a", "treatment": "AnB", "n": 1,
                                                 "spec_hash": "hash-a", "best10_accuracy": 0.7,
                                                 "final_accuracy": 0.8}]
    second = queue.claim("w", 30)
    assert queue.complete(second.id, "w", {"final_accuracy": 0.9, "train_seconds": 3.0})
    scores = results.study_scores(study).set_index("name")
    assert scores.loc["b", "final_accuracy"] == 0.9 and math.isnan(scores.loc["a", "train_seconds"])
    assert list(results.study_scores(study, labels={"treatment": "baseB"}).name) == ["b"]
    assert results.study_scores(study, kinds=["train"]).empty


def test_a_retried_job_counts_once_with_the_attempt_that_finished(queue):
    study = submit(queue, [job("a")])
    results = Results(queue.engine)
    lost = queue.claim("slow", 0.2)
    time.sleep(0.4)
    assert queue.requeue_expired() == [lost.id]
    again = queue.claim("fast", 30)
    assert again.id == lost.id and again.attempts == 2
    assert queue.complete(again.id, "fast", {"final_accuracy": 0.6})
    assert not queue.complete(lost.id, "slow", {"final_accuracy": 0.1})  # the lease was lost: nothing kept
    assert results.study_scores(study).final_accuracy.tolist() == [0.6]
    assert scores_rows(queue) == 1


def test_a_rerun_clears_the_scores_until_it_finishes_again(queue):
    study = submit(queue, [job("a")])
    results = Results(queue.engine)
    first = queue.claim("w", 30)
    queue.complete(first.id, "w", {"final_accuracy": 0.5})
    queue.rerun(first.id)
    assert results.study_scores(study).empty and scores_rows(queue) == 0
    again = queue.claim("w", 30)
    queue.complete(again.id, "w", {"final_accuracy": 0.75})
    assert results.study_scores(study).final_accuracy.tolist() == [0.75] and scores_rows(queue) == 1


def test_a_linked_job_reads_the_scores_of_the_run_it_reuses(queue):
    submit(queue, [job("a")])
    first = queue.claim("w", 30)
    queue.complete(first.id, "w", {"final_accuracy": 0.5})
    later = submit(queue, [job("a")], name="later")
    scores = Results(queue.engine).study_scores(later)
    assert scores.final_accuracy.tolist() == [0.5] and scores.job.tolist() != [first.id]
    assert scores_rows(queue) == 1  # the link holds no scores of its own


def test_infinities_and_jobs_without_scalars(queue):
    study = submit(queue, [job("a"), job("b")])
    a, b = queue.claim("w", 30), queue.claim("w", 30)
    queue.complete(a.id, "w", {"top_eigenvalue": math.inf})
    queue.complete(b.id, "w", {}, tables={"units": {}})  # a table only: no scalar, no row in the scores
    scores = Results(queue.engine).study_scores(study)
    assert scores.name.tolist() == ["a"] and scores.top_eigenvalue.tolist() == [math.inf]


def test_the_migration_fills_the_scores_of_a_store_written_before_it(database_url):
    old = create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    with old.begin() as connection:  # what 0004's store held: results only
        study = connection.execute(insert(Study).values(name="old", spec={"study": "yosinski"}, spec_hash="s",
                                                        tags=[], notes="")).inserted_primary_key[0]
        rows = [{"study_id": study, "kind": "transfer", "spec": "{}", "spec_hash": f"h{i}", "labels": {"n": i},
                 "status": "succeeded", "progress": 1.0} for i in range(3)]
        connection.execute(insert(Job), rows)
        ids = connection.scalars(select(Job.id).order_by(Job.id)).all()
        connection.execute(insert(Result), [{"job_id": j, "name": name, "value": value}
                                            for j in ids[:2] for name, value in (("final_accuracy", j / 10),
                                                                                 ("best10_accuracy", None))])
    old.dispose()
    scores = Results(get_engine(database_url)).study_scores(study)  # get_engine migrates to the head
    assert scores.job.tolist() == ids[:2]
    assert scores.final_accuracy.tolist() == pytest.approx([ids[0] / 10, ids[1] / 10])
    assert "best10_accuracy" not in scores  # a value that is not a number is no score
