"""The worker against a real store (SQLite file and PostgreSQL), in-process and as real processes."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

import torch
from safetensors.torch import load_file

from backend.checkpoints import load_init
from backend.data import load_task
from backend.models import build_model
from backend.specs import SimilarityJobSpec, SpecError, TrainJobSpec, YosinskiSpec, canonical_json, parse, spec_hash
from backend.transfer import SourceNet
import backend.worker as worker_module
from backend.worker import Worker
from db.queue import NewJob, Queue
from db.schema import Artifact, Job, JobDependency, Metric, Result
from db.session import get_engine, session_scope
from db.submit import submit_study

ROOT = Path(__file__).resolve().parents[2]
NO_PROBES = {"sharpness": None, "similarity": None}
TINY_DATA = {"source": {"kind": "synthetic", "n_classes": 4, "train_per_class": 8, "test_per_class": 4, "size": 8}}


def tiny(seed, epochs=1, data=TINY_DATA):
    return parse(TrainJobSpec, {"data": data, "model": {"arch": "mlp", "hidden": [8]},
                                "train": {"epochs": epochs, "batch_size": 8, "seed": seed}})


def new_job(spec, kind="train", raw=None):
    text = raw if raw is not None else canonical_json(spec)
    key = spec_hash(spec) if spec is not None else hashlib.sha256(f"{kind}{raw}".encode()).hexdigest()
    return NewJob(key, kind, text, key, {})


def jobs_by_status(queue):
    with session_scope(queue.engine) as s:
        return {j.id: (j.status, j.error, j.attempts) for j in s.scalars(select(Job))}


@pytest.fixture
def artifacts(tmp_path):
    return tmp_path / "artifacts"


def test_worker_runs_a_study_and_stores_everything(queue, artifacts):
    study = parse(YosinskiSpec, {"data": TINY_DATA, "model": {"arch": "convnet", "channels": [4], "hidden": [4]},
                                 "train": {"epochs": 2, "batch_size": 8}, "treatments": ["AnB", "BnB+"],
                                 "probes": NO_PROBES})
    study_id = submit_study(queue, study, preset="tiny")
    ran = Worker(queue, "cpu", artifacts=artifacts).serve(idle_exit=0)
    assert ran == 2 + 2 * 2 and queue.counts(study_id) == {"succeeded": 6}
    with session_scope(queue.engine) as s:
        for job in s.scalars(select(Job)):
            names = set(s.scalars(select(Result.name).where(Result.job_id == job.id)))
            assert {"final_accuracy", "best10_accuracy", "train_seconds", "provenance"} <= names
            epochs = s.scalars(select(Metric.step).where(Metric.job_id == job.id, Metric.key == "test_accuracy")).all()
            assert sorted(epochs) == [1, 2]
            stored = s.scalars(select(Artifact).where(Artifact.job_id == job.id).order_by(Artifact.kind)).all()
            assert [a.kind for a in stored] == ["checkpoint", "init"]  # every network keeps its start
            for artifact in stored:
                assert hashlib.sha256((artifacts / artifact.path).read_bytes()).hexdigest() == artifact.sha256
    assert not list(artifacts.rglob("state.safetensors"))  # epoch states are removed once done


def test_bad_jobs_fail_clearly_and_the_worker_serves_the_rest(queue, artifacts):
    good = tiny(1)
    queue.submit("bad", {}, "bad", [
        new_job(None, raw="{not json"),
        new_job(None, kind="teleport", raw=canonical_json(good)),
        new_job(good),
    ])
    Worker(queue, "cpu", artifacts=artifacts).serve(idle_exit=0)
    states = sorted(jobs_by_status(queue).values(), key=lambda v: v[0])
    assert states[0][0] == "failed" and states[1][0] == "failed" and states[2][0] == "succeeded"
    errors = " | ".join(e for _, e, _ in states if e)
    assert "invalid job spec" in errors and "Invalid JSON" in errors
    assert "unknown job kind 'teleport'" in errors


def test_missing_source_checkpoint_fails_the_transfer_only(queue, artifacts):
    study = parse(YosinskiSpec, {"data": TINY_DATA, "model": {"arch": "mlp", "hidden": [8, 8]},
                                 "train": {"epochs": 1, "batch_size": 8}, "treatments": ["AnB"], "n": [1],
                                 "probes": NO_PROBES})
    submit_study(queue, study)
    worker = Worker(queue, "cpu", artifacts=artifacts)
    worker.serve(max_jobs=1)  # baseA, which the worker then holds in memory
    for checkpoint in artifacts.rglob("model.safetensors"):
        checkpoint.unlink()
    worker.serve(idle_exit=0)  # the store records a file that is gone: held or not, the transfer fails
    failed = [e for st, e, _ in jobs_by_status(queue).values() if st == "failed"]
    assert len(failed) == 1 and "missing from the artifacts folder" in failed[0]


def test_a_damaged_checkpoint_is_refused_never_loaded(queue, artifacts):
    study = parse(YosinskiSpec, {"data": TINY_DATA, "model": {"arch": "mlp", "hidden": [8, 8]},
                                 "train": {"epochs": 1, "batch_size": 8}, "treatments": ["AnB", "AnB+"], "n": [1],
                                 "probes": NO_PROBES})
    submit_study(queue, study)
    Worker(queue, "cpu", artifacts=artifacts, held_networks=0).serve(max_jobs=2)  # the two bases, oldest first
    worker = Worker(queue, "cpu", artifacts=artifacts)  # holds nothing: it reads the files
    for checkpoint in artifacts.rglob("model.safetensors"):
        data = bytearray(checkpoint.read_bytes())
        data[-1] ^= 0xFF  # one payload byte flipped: still a readable safetensors file, wrong weights
        checkpoint.write_bytes(bytes(data))
        load_file(str(checkpoint))  # safetensors itself cannot tell
    worker.serve(idle_exit=0)
    failed = [e for st, e, _ in jobs_by_status(queue).values() if st == "failed"]
    assert len(failed) == 2 and all("damaged or replaced" in e and "re-run the job" in e for e in failed)
    assert not [st for st, _, _ in jobs_by_status(queue).values() if st == "succeeded"][2:]  # only the bases
    # The fix the message names: re-run the source, then retry what failed for want of it.
    with session_scope(queue.engine) as s:
        failed_ids = s.scalars(select(Job.id).where(Job.status == "failed")).all()
        sources = {d for j in failed_ids for d in s.scalars(select(JobDependency.depends_on)
                                                            .where(JobDependency.job_id == j))}
    for source in sources:
        assert queue.rerun(source) == [source]
    worker.serve(idle_exit=0)
    for job_id in failed_ids:
        queue.retry(job_id)
    worker.serve(idle_exit=0)
    assert {st for st, _, _ in jobs_by_status(queue).values()} == {"succeeded"}


def test_cancel_stops_a_running_job_within_seconds(queue, artifacts):
    queue.submit("long", {}, "long", [new_job(tiny(0, epochs=500))])
    worker = Worker(queue, "cpu", artifacts=artifacts, heartbeat_seconds=0.2)
    thread = threading.Thread(target=worker.serve, kwargs={"once": True})
    thread.start()
    job_id = next(iter(jobs_by_status(queue)))
    deadline = time.time() + 60
    while jobs_by_status(queue)[job_id][0] != "running" and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    asked = time.time()
    queue.cancel(job_id)
    thread.join(timeout=30)
    assert not thread.is_alive() and time.time() - asked < 5
    assert jobs_by_status(queue)[job_id][0] == "cancelled"


def test_identical_spec_in_a_later_study_links_instead_of_running(queue, artifacts):
    queue.submit("one", {}, "one", [new_job(tiny(3))])
    Worker(queue, "cpu", artifacts=artifacts).serve(idle_exit=0)
    queue.submit("two", {}, "two", [new_job(tiny(3))])
    with session_scope(queue.engine) as s:
        first, second = s.scalars(select(Job).order_by(Job.id)).all()
        assert second.status == "succeeded" and second.result_of == first.id


def artifacts_of(queue, job_id):
    with session_scope(queue.engine) as s:
        return {a.kind: (a.path, a.sha256) for a in s.scalars(select(Artifact).where(Artifact.job_id == job_id))}


def test_train_job_keeps_its_random_init_as_an_artifact(queue, artifacts):
    spec = tiny(7, epochs=2)
    queue.submit("init", {}, "init", [new_job(spec)])
    worker = Worker(queue, "cpu", artifacts=artifacts)
    assert worker.serve(idle_exit=0) == 1
    job_id = next(iter(jobs_by_status(queue)))
    stored = artifacts_of(queue, job_id)
    path, sha = stored["init"]
    assert hashlib.sha256((artifacts / path).read_bytes()).hexdigest() == sha
    task = load_task(spec.data)
    torch.manual_seed(spec.train.seed)
    fresh = build_model(spec.model, task.image_shape, task.n_classes).state_dict()
    init = load_init(artifacts / path)
    assert init.keys() == fresh.keys() and all(torch.equal(init[k], fresh[k]) for k in fresh)
    trained = load_file(str(artifacts / stored["checkpoint"][0]))
    assert not all(torch.equal(trained[k], fresh[k]) for k in fresh)  # training moved the weights
    # A probe reads theta_r through the network it names.
    source = worker._network(spec_hash(spec))
    assert all(torch.equal(source.init[k], fresh[k]) for k in fresh)
    assert SourceNet.load(str(artifacts / path)).build() is not None  # the init is a network of its own too
    with pytest.raises(SpecError, match="not a network's initial"):
        load_init(artifacts / stored["checkpoint"][0])


def similarity_of(network, data=TINY_DATA):
    key = spec_hash(network)
    return parse(SimilarityJobSpec, {"a": key, "b": key, "images": {"data": data, "images": 8},
                                     "settings": {"images": 8, "batch_size": 8}})


def reading(spec, kind, *networks):
    """A job of `spec` depending on the jobs that train `networks`."""
    return NewJob(spec_hash(spec), kind, canonical_json(spec), spec_hash(spec), {},
                  tuple(spec_hash(n) for n in networks))


def test_after_training_a_worker_runs_that_networks_probe_from_memory(queue, artifacts, monkeypatch):
    x, y = tiny(1), tiny(2)
    queue.submit("two", {}, "two", [new_job(x), new_job(y), reading(similarity_of(x), "similarity", x),
                                    reading(similarity_of(y), "similarity", y)])
    first, second = Worker(queue, "cpu", artifacts=artifacts), Worker(queue, "cpu", artifacts=artifacts)
    assert first.serve(max_jobs=1) == second.serve(max_jobs=1) == 1  # first trained x, second y
    reads, load, load_task = [], SourceNet.load, worker_module.load_task
    monkeypatch.setattr(SourceNet, "load", staticmethod(lambda *a: reads.append(a[0]) or load(*a)))
    monkeypatch.setattr(worker_module, "load_task", lambda data: reads.append("data") or load_task(data))
    with session_scope(queue.engine) as s:
        job_of = {j.spec_hash: j.id for j in s.scalars(select(Job))}
    probe_x, probe_y = job_of[spec_hash(similarity_of(x))], job_of[spec_hash(similarity_of(y))]
    assert second.serve(max_jobs=1) == 1
    assert jobs_by_status(queue)[probe_x][0] == "queued"  # older, but second holds y, not x
    assert jobs_by_status(queue)[probe_y][0] == "succeeded"
    assert first.serve(max_jobs=1) == 1 and jobs_by_status(queue)[probe_x][0] == "succeeded"
    assert reads == []  # neither checkpoint nor data read again
    # What the worker holds is what reading the checkpoint back gives.
    files = queue.network_files(spec_hash(y))
    read = load(str(artifacts / files["checkpoint"][0]), files["checkpoint"][1], files["init"][1])
    sha, held = second.networks.get(spec_hash(y))
    assert sha == files["checkpoint"][1] and held.state.keys() == read.state.keys()
    assert all(torch.equal(held.state[k], read.state[k]) and held.state[k].device.type == "cpu" for k in read.state)
    fields = ("normalization", "model", "image_shape", "n_classes", "init_path", "init_sha256")
    assert [getattr(held, f) for f in fields] == [getattr(read, f) for f in fields]
    assert all(torch.equal(held.init[k], read.init[k]) for k in read.init)
    # The store now records other bytes for y (a re-run elsewhere): the held copy is not used.
    with session_scope(queue.engine) as s:
        s.execute(update(Artifact).where(Artifact.kind == "checkpoint", Artifact.job_id == job_of[spec_hash(y)])
                  .values(sha256="0" * 64))
    with pytest.raises(SpecError, match="damaged or replaced"):
        second._network(spec_hash(y))


def test_a_worker_holds_its_last_few_networks_and_loads_shared_data_once(queue, artifacts, monkeypatch):
    loads, load_task = [], worker_module.load_task
    monkeypatch.setattr(worker_module, "load_task", lambda data: loads.append(data) or load_task(data))
    queue.submit("five", {}, "five", [new_job(tiny(seed)) for seed in range(5)])
    worker = Worker(queue, "cpu", artifacts=artifacts, held_networks=2)
    assert worker.serve(idle_exit=0) == 5
    assert worker.networks.keys() == [spec_hash(tiny(3)), spec_hash(tiny(4))]
    assert len(loads) == 1 and len(worker.tasks.keys()) == 1
    queue.submit("more", {}, "more", [new_job(tiny(seed)) for seed in range(5, 7)])
    assert Worker(queue, "cpu", artifacts=artifacts, held_data_bytes=0).serve(idle_exit=0) == 2
    assert len(loads) == 3  # a worker allowed no bytes holds no data


class StopAfterFirstEpoch(Worker):
    """Stops at the step after the first epoch state is saved, as a SIGTERM would."""

    def _resume_options(self, job, spec, beat):
        options = super()._resume_options(job, spec, beat)
        save = options["on_epoch"]

        def on_epoch(state):
            save(state)
            self.stopping.set()

        return {**options, "on_epoch": on_epoch}


def test_resumed_job_keeps_the_init_saved_at_its_first_start(queue, artifacts):
    spec = tiny(5, epochs=3)
    queue.submit("resume", {}, "resume", [new_job(spec)])
    StopAfterFirstEpoch(queue, "cpu", artifacts=artifacts).serve(once=True)
    (job_id, (status, _, _)), = jobs_by_status(queue).items()
    assert status == "queued" and (artifacts / f"job-{job_id}" / "state.safetensors").exists()
    init = artifacts / f"job-{job_id}" / "init.safetensors"
    first = init.stat()
    first_bytes = init.read_bytes()
    assert Worker(queue, "cpu", artifacts=artifacts).serve(idle_exit=0) == 1
    with session_scope(queue.engine) as s:
        resumed = s.scalar(select(Result.value).where(Result.job_id == job_id, Result.name == "resumed_from_epoch"))
    assert resumed == 1
    after = init.stat()
    assert (after.st_ino, after.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # not rewritten
    path, sha = artifacts_of(queue, job_id)["init"]
    assert artifacts / path == init and sha == hashlib.sha256(first_bytes).hexdigest()


# ---------------------------------------------------------------- real worker processes

def start_worker(database_url, artifacts, *args):
    env = {**os.environ, "TRANSFERLAB_DATABASE_URL": database_url, "TRANSFERLAB_ARTIFACTS": str(artifacts),
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "backend", "worker", "--device", "cpu", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_four_workers_drain_300_jobs_each_exactly_once(database_url, artifacts):
    queue = Queue(get_engine(database_url))
    queue.submit("many", {}, "many", [new_job(tiny(seed)) for seed in range(300)])
    workers = [start_worker(database_url, artifacts, "--idle-exit", "3") for _ in range(4)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    ran = [int(out.strip().rsplit("ran ", 1)[1].split()[0]) for out in outputs]
    assert sum(ran) == 300  # every job run once, by exactly one worker
    with session_scope(queue.engine) as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.status == "succeeded")) == 300
        assert s.scalar(select(func.max(Job.attempts))) == 1
        assert s.scalar(select(func.count()).select_from(Artifact).where(Artifact.kind == "checkpoint")) == 300
        assert s.scalar(select(func.count(func.distinct(Job.worker_id)))) >= 2


def wait_for(predicate, timeout=120, every=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def test_killed_worker_job_is_reclaimed_and_resumed_without_duplicates(database_url, artifacts):
    queue = Queue(get_engine(database_url))
    epochs = 60
    spec = tiny(0, epochs=epochs, data={"source": {"kind": "digits"}})
    queue.submit("crash", {}, "crash", [new_job(spec)])
    victim = start_worker(database_url, artifacts, "--lease", "2")
    assert wait_for(lambda: list(artifacts.rglob("state.safetensors")) and _epochs_done(queue) >= 3)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    survivor = start_worker(database_url, artifacts, "--lease", "2", "--idle-exit", "5")
    out = survivor.communicate(timeout=600)[0]
    assert survivor.returncode == 0, out
    with session_scope(queue.engine) as s:
        job = s.scalars(select(Job)).one()
        assert job.status == "succeeded" and job.attempts == 2
        results = dict(s.execute(select(Result.name, Result.value).where(Result.job_id == job.id)).all())
        assert results["resumed_from_epoch"] >= 3  # not from zero
        steps = s.scalars(select(Metric.step).where(Metric.job_id == job.id, Metric.key == "test_accuracy")).all()
        assert sorted(steps) == list(range(1, epochs + 1))  # no duplicated or missing points
        assert sorted(s.scalars(select(Artifact.kind))) == ["checkpoint", "init"]


def _epochs_done(queue):
    with session_scope(queue.engine) as s:
        return s.scalar(select(func.count()).select_from(Metric).where(Metric.key == "test_accuracy"))


def test_sigterm_requeues_the_current_job_and_exits(database_url, artifacts):
    queue = Queue(get_engine(database_url))
    queue.submit("long", {}, "long", [new_job(tiny(0, epochs=10_000))])
    worker = start_worker(database_url, artifacts)
    assert wait_for(lambda: next(iter(jobs_by_status(queue).values()))[0] == "running")
    time.sleep(1)
    worker.send_signal(signal.SIGTERM)
    out = worker.communicate(timeout=60)[0]
    assert worker.returncode == 0, out
    status, _, attempts = next(iter(jobs_by_status(queue).values()))
    assert status == "queued" and attempts == 0
    assert "ran 0 jobs" in out  # given back, not counted as run


def test_out_of_memory_fails_that_job_and_the_worker_serves_the_next(queue, artifacts, monkeypatch):
    import backend.worker as worker_module

    real = worker_module.runner

    def runner(kind):
        def too_big(spec, *args, **kwargs):
            if spec.train.seed == 1:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
            return real(kind)(spec, *args, **kwargs)
        return too_big

    monkeypatch.setattr(worker_module, "runner", runner)
    queue.submit("oom", {}, "oom", [new_job(tiny(1)), new_job(tiny(2))])
    assert Worker(queue, "cpu", artifacts=artifacts).serve(idle_exit=0) == 2
    states = sorted(jobs_by_status(queue).values())
    assert [s for s, _, _ in states] == ["failed", "succeeded"]
    failed = next(e for s, e, _ in states if s == "failed")
    assert "out of memory on cpu" in failed and "Tried to allocate 80.00 GiB" in failed
