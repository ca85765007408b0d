"""The readers the dashboard uses, on a store seeded by a real worker run."""

import pytest

from backend.specs import YosinskiSpec, parse
from backend.worker import Worker
from db.results import Results
from db.submit import submit_study

STUDY = {"data": {"source": {"kind": "synthetic", "n_classes": 4, "train_per_class": 8, "test_per_class": 4,
                             "size": 8}},
         "model": {"arch": "mlp", "hidden": [8, 8]}, "train": {"epochs": 3, "batch_size": 8},
         "treatments": ["AnB", "random"], "probes": {"sharpness": None, "similarity": None}}


@pytest.fixture
def seeded(queue, tmp_path):
    study_id = submit_study(queue, parse(YosinskiSpec, STUDY), name="tiny", preset="yosinski-digits")
    Worker(queue, "cpu", artifacts=tmp_path / "artifacts").serve(idle_exit=0)
    return Results(queue.engine), study_id


def test_studies_with_counts(seeded):
    from db.studies import Studies

    results, study_id = seeded
    [study] = Studies(results.engine).listing()
    assert study.id == study_id and study.name == "tiny" and study.counts == {"succeeded": 6} and study.total == 6
    assert Studies(results.engine).get(study_id) == study and Studies(results.engine).get(999) is None
    assert results.study_spec(study_id)["treatments"] == ["AnB", "random"]


def test_jobs_filtered_by_labels_and_the_values_labels_take(seeded):
    results, study_id = seeded
    values = results.label_values(study_id, ["treatment", "n", "seed", "nothing"])
    assert values == {"treatment": ["AnB", "baseA", "baseB", "random"], "n": [0, 1, 2], "seed": [0]}  # base networks at n = 0
    anb = results.jobs(study_id=study_id, labels={"treatment": "AnB", "n": 2})
    assert len(anb) == 1 and anb.labels[0] == {"seed": 0, "treatment": "AnB", "n": 2}


def test_pace_and_the_latest_value_of_a_curve(seeded):
    results, study_id = seeded
    done, elapsed = results.throughput(study_id)
    assert done == 6 and elapsed > 0
    jobs = results.jobs(study_id=study_id)["id"].tolist()
    latest = results.latest(jobs, "images_per_second")
    curves = results.curves(jobs, "images_per_second")
    assert set(latest) == set(jobs) and all(v > 0 for v in latest.values())
    assert latest == curves[curves.step == 3].set_index("job")["value"].to_dict()  # the third, last epoch


def test_jobs_are_filtered_and_paged_in_sql(seeded):
    results, study_id = seeded
    page = results.jobs(study_id=study_id, limit=4)
    assert len(page) == 4 and list(page["id"]) == sorted(page["id"], reverse=True)
    rest = results.jobs(study_id=study_id, offset=4, limit=4)
    assert len(rest) == 2 and set(rest["id"]).isdisjoint(page["id"])
    assert len(results.jobs(kind="train")) == 2 and results.jobs(status="failed").empty


def test_study_scores_have_labels_and_results(seeded):
    results, study_id = seeded
    scores = results.study_scores(study_id)
    assert len(scores) == 6
    assert {"seed", "treatment", "n", "final_accuracy", "best10_accuracy"} <= set(scores.columns)
    assert scores["final_accuracy"].between(0, 1).all()
    assert set(scores["treatment"]) == {"baseA", "baseB", "AnB", "random"}


def test_curves_follow_linked_jobs(seeded, queue):
    results, study_id = seeded
    again = submit_study(queue, parse(YosinskiSpec, STUDY), name="again")  # every job reuses a result
    linked = results.jobs(study_id=again)["id"].tolist()
    curves = results.curves(linked)
    assert len(curves) == 6 * 3 and sorted(curves["step"].unique()) == [1, 2, 3]
    assert len(results.study_scores(again)) == 6


def test_workers_seen_recently(seeded):
    results, _ = seeded
    workers = results.workers()
    assert len(workers) == 1 and workers["device"][0] == "cpu"
    assert results.workers(seen_within=-60).empty


def test_jobs_list_running_then_queued_then_finished(queue):
    from tests.db.test_worker import new_job, tiny

    queue.submit("order", {}, "order", [new_job(tiny(seed)) for seed in range(4)])
    claimed = queue.claim("w", 60)
    queue.complete(queue.claim("w", 60).id, "w", {"final_accuracy": 0.5})
    statuses = Results(queue.engine).jobs()["status"].tolist()
    assert statuses == ["running", "queued", "queued", "succeeded"]
    assert Results(queue.engine).jobs()["id"][0] == claimed.id
