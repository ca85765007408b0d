"""A Yosinski study with its probes, through a real worker into the store (SQLite file and
PostgreSQL), read back through the readers the pages use."""

import numpy as np
import pytest
from sqlalchemy import select

from backend.specs import YosinskiSpec, parse
from backend.worker import Worker
from db.results import Results
from db.schema import Job
from db.session import session_scope
from db.submit import plan_size, submit_study

STUDY = {
    "data": {"source": {"kind": "synthetic", "n_classes": 4, "train_per_class": 12, "test_per_class": 6, "size": 8}},
    "model": {"arch": "convnet", "channels": [4, 8], "hidden": [8]},
    "train": {"epochs": 2, "batch_size": 8},
    "treatments": ["AnB", "BnB+", "random"], "n": [1, 2],
    "probes": {"sharpness": {"images": 24, "trace_samples": 12, "density_iterations": 10, "max_iterations": 40},
               "similarity": {"images": 20, "batch_size": 10}},
}
NETWORKS = 2 + 3 * 2
# per transfer: vs baseB, and vs baseA for AnB; baseA vs baseB once
COMPARISONS = 2 * 2 + 2 + 2 + 1


@pytest.fixture
def finished(queue, tmp_path):
    study = parse(YosinskiSpec, STUDY)
    study_id = submit_study(queue, study, name="probed")
    Worker(queue, "cpu", artifacts=tmp_path / "artifacts").serve(idle_exit=0)
    return study, study_id, Results(queue.engine)


def test_probes_are_jobs_of_the_dag(queue, finished):
    study, study_id, _ = finished
    assert plan_size(study) == {"sharpness": NETWORKS, "similarity": COMPARISONS, "train": 2, "transfer": 6}
    assert queue.counts(study_id) == {"succeeded": 2 * NETWORKS + COMPARISONS}
    with session_scope(queue.engine) as s:
        jobs = {j.id: j for j in s.scalars(select(Job).where(Job.study_id == study_id))}
        started = {j.id: j.started_at for j in jobs.values()}
        for job in jobs.values():
            if job.kind in ("sharpness", "similarity"):
                parents = [p for p in jobs.values() if p.spec_hash in job.spec]  # named by spec hash
                assert parents and all(p.finished_at <= started[job.id] for p in parents)


def test_sharpness_scalars_arrays_and_settings_read_back(finished):
    _, study_id, results = finished
    sharp = results.study_scores(study_id, kinds=["sharpness"])
    assert len(sharp) == NETWORKS and (sharp["top_eigenvalue"] > 0).all()
    transfers = sharp[sharp.n > 0]
    assert transfers["top_eigenvalue.transferred"].notna().all()
    assert sharp.loc[sharp.n == 0, "top_eigenvalue.transferred"].isna().all()  # nothing transferred at n = 0
    # Cauchy interlacing: a block of the Hessian has no larger top eigenvalue than the whole.
    for scope in ("transferred", "new"):
        part = transfers[f"top_eigenvalue.{scope}"]
        assert (part <= transfers["top_eigenvalue"] * (1 + 1e-3)).all()
    [density] = results.arrays(study_id, "density", kinds=["sharpness"],
                               labels={"treatment": "AnB", "n": 2, "seed": 0})
    grid, values = density.value
    assert abs(np.trapezoid(values, grid) - 1) < 0.02
    tables = results.job_tables(density.job)
    estimator = tables["estimator"]["all"]
    assert estimator["images"] == 24 and estimator["trace_samples"] == 12 and estimator["seed"] == 0
    assert estimator["hvps"] > 0 and len(tables["data_fingerprint"]) == 32
    assert not results.curves([density.job], key=estimator["convergence"][0]).empty


def test_cka_matrices_read_back_by_labels(finished):
    _, study_id, results = finished
    matrices = results.arrays(study_id, "cka", kinds=["similarity"])
    assert len(matrices) == COMPARISONS
    assert all(m.value.shape == (4, 4) and np.all((m.value > -1e-6) & (m.value < 1 + 1e-6)) for m in matrices)
    [frozen] = results.arrays(study_id, "cka", labels={"treatment": "AnB", "n": 2, "against": "baseA"})
    # AnB's first two units are baseA's, frozen, fed the same normalised images: the same features.
    assert np.allclose(np.diag(frozen.value)[:2], 1, atol=1e-5)
    units = results.job_tables(frozen.job)["units"]
    assert units == {"a": ["conv1", "conv2", "fc1", "classifier"], "b": ["conv1", "conv2", "fc1", "classifier"]}
    assert results.arrays(study_id, "cka", labels={"treatment": "random", "against": "baseA"}) == []


def test_each_network_is_run_once_for_all_its_comparisons(finished, tmp_path):
    """The worker keeps every compared network's CKA representations once, checksummed, in the artifacts."""
    files = sorted((tmp_path / "artifacts" / "representations").rglob("*.safetensors"))
    assert len(files) == NETWORKS  # every network of the study takes part in a comparison
    assert all(f.with_suffix(".json").exists() for f in files)


def test_a_second_submission_reuses_every_probe(queue, finished):
    study, study_id, results = finished
    again = submit_study(queue, study, name="again")
    assert queue.counts(again) == {"succeeded": 2 * NETWORKS + COMPARISONS}  # nothing queued: all linked
    assert len(results.arrays(again, "cka")) == COMPARISONS


def test_a_probe_waits_for_its_network_and_runs_after_a_retry(queue, tmp_path):
    study = parse(YosinskiSpec, {**STUDY, "treatments": ["AnB"], "n": [1]})
    study_id = submit_study(queue, study)
    with session_scope(queue.engine) as s:
        base_a = s.scalars(select(Job).where(Job.study_id == study_id, Job.kind == "train",
                                             Job.labels["treatment"].as_string() == "baseA")).one()
    queue.cancel(base_a.id)
    worker = Worker(queue, "cpu", artifacts=tmp_path / "artifacts")
    worker.serve(idle_exit=0)
    blocked = Results(queue.engine).jobs(study_id=study_id, status="blocked")
    assert {"transfer", "sharpness", "similarity"} <= set(blocked.kind)
    queue.retry(base_a.id)
    worker.serve(idle_exit=0)
    assert set(queue.counts(study_id)) == {"succeeded"}
