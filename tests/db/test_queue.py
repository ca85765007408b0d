import json
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select, text

from db.queue import NewJob, Queue, QueueError
from db.schema import Job, JobDependency, Metric, Result, Study
from db.session import get_engine, session_scope


def job(key, *deps, kind="train"):
    return NewJob(key, kind, json.dumps({"k": key}), f"hash-{key}", {"name": key}, tuple(deps))


def submit(queue, jobs, name="study"):
    return queue.submit(name, {"study": name}, f"study-{name}", jobs)


def ids(queue, study_id):
    with session_scope(queue.engine) as s:
        rows = s.execute(select(Job.labels, Job.id).where(Job.study_id == study_id)).all()
    return {labels["name"]: job_id for labels, job_id in rows}


def status(queue, job_id):
    with session_scope(queue.engine) as s:
        return s.get(Job, job_id).status


def test_migrations_create_the_schema_and_are_idempotent(database_url):
    engine = get_engine(database_url)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from db.session import MIGRATIONS, migrate

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert version == ScriptDirectory.from_config(config).get_current_head()  # every migration ran

    migrate(engine)  # a second start changes nothing
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Study)) == 0


def test_sqlite_pragmas(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_two_processes_starting_together_migrate_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = f"from db.session import get_engine; get_engine({url!r})"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]


def test_claim_follows_dependencies_and_priority(queue):
    study = submit(queue, [job("a"), job("b", "a"), job("c")])
    by = ids(queue, study)
    first = queue.claim("w1", 30)
    second = queue.claim("w2", 30)
    assert {first.id, second.id} == {by["a"], by["c"]}
    assert queue.claim("w3", 30) is None  # b waits for a
    a = first if first.id == by["a"] else second
    assert queue.complete(a.id, "w1" if a is first else "w2", {"final_accuracy": 0.9})
    b = queue.claim("w3", 30)
    assert b.id == by["b"] and b.depends_on == (by["a"],)
    urgent = queue.submit("urgent", {}, "u", [job("z")], priority=5)
    queue.submit("later", {}, "l", [job("y")])
    assert queue.claim("w4", 30).id == ids(queue, urgent)["z"]


def test_a_job_is_claimed_once(queue):
    submit(queue, [job(str(i)) for i in range(20)])
    claimed = [queue.claim(f"w{i}", 30) for i in range(25)]
    got = [c.id for c in claimed if c is not None]
    assert len(got) == len(set(got)) == 20


def test_succeeded_spec_is_not_run_again(queue):
    first = submit(queue, [job("a")])
    claimed = queue.claim("w", 30)
    queue.complete(claimed.id, "w", {"final_accuracy": 0.5})
    again = submit(queue, [job("a"), job("b", "a")], name="again")
    by = ids(queue, again)
    assert status(queue, by["a"]) == "succeeded"
    assert queue.source_of(by["a"]) == ids(queue, first)["a"]
    assert queue.claim("w", 30).id == by["b"]  # its dependency is already satisfied


def test_expired_lease_requeues_then_fails_and_blocks_dependants(queue):
    study = submit(queue, [job("a"), job("b", "a"), job("c", "b")])
    by = ids(queue, study)
    for attempt in range(1, 4):
        claimed = queue.claim("dead", 0.2)
        assert claimed.id == by["a"] and claimed.attempts == attempt
        time.sleep(0.4)
        assert queue.requeue_expired() == [by["a"]]
    with session_scope(queue.engine) as s:
        a = s.get(Job, by["a"])
        assert a.status == "failed" and "lease expired" in a.error and "no attempts left" in a.error
        assert s.get(Job, by["b"]).status == "blocked" and s.get(Job, by["c"]).status == "blocked"
        assert str(by["a"]) in s.get(Job, by["b"]).error or "failed" in s.get(Job, by["b"]).error


def test_heartbeat_keeps_the_lease(queue):
    submit(queue, [job("a")])
    claimed = queue.claim("w", 0.5)
    for _ in range(3):
        time.sleep(0.25)
        assert queue.heartbeat(claimed.id, "w", 0.5, 0.5, "half way").held
        assert queue.requeue_expired() == []
    assert not queue.heartbeat(claimed.id, "someone else", 0.5).held


def test_complete_after_losing_the_lease_keeps_one_set_of_results(queue):
    submit(queue, [job("a")])
    first = queue.claim("slow", 0.2)
    time.sleep(0.4)
    queue.requeue_expired()
    second = queue.claim("fast", 30)
    assert second.id == first.id
    assert queue.complete(second.id, "fast", {"final_accuracy": 0.8}, [("test_accuracy", 1, 0.8)])
    assert not queue.complete(first.id, "slow", {"final_accuracy": 0.1}, [("test_accuracy", 1, 0.1)])
    with session_scope(queue.engine) as s:
        assert s.scalars(select(Result.value).where(Result.job_id == first.id)).all() == [0.8]
        assert s.scalar(select(func.count()).select_from(Metric).where(Metric.job_id == first.id)) == 1


def test_failure_retries_then_blocks(queue):
    study = submit(queue, [job("a"), job("b", "a")])
    by = ids(queue, study)
    claimed = queue.claim("w", 30)
    assert queue.fail(claimed.id, "w", "out of memory", retry=True) == "queued"
    claimed = queue.claim("w", 30)
    assert queue.fail(claimed.id, "w", "bad spec") == "failed"
    assert status(queue, by["b"]) == "blocked"
    assert sorted(queue.retry(by["a"])) == sorted([by["a"], by["b"]])
    assert status(queue, by["a"]) == status(queue, by["b"]) == "queued"
    with pytest.raises(QueueError, match="only failed, cancelled or blocked"):
        queue.retry(by["a"])


def test_cancel_queued_and_running(queue):
    study = submit(queue, [job("a"), job("b"), job("c", "b")])
    by = ids(queue, study)
    assert queue.cancel(by["b"]) == "cancelled"
    assert status(queue, by["c"]) == "blocked"
    running = queue.claim("w", 30)
    assert running.id == by["a"]
    assert queue.cancel(by["a"]) == "running"
    assert queue.heartbeat(running.id, "w", 30).cancel_requested
    queue.mark_cancelled(running.id, "w")
    assert status(queue, by["a"]) == "cancelled"


def test_clone_with_an_edited_spec(queue):
    study = submit(queue, [job("a"), job("b", "a")])
    by = ids(queue, study)
    clone = queue.clone(by["b"], json.dumps({"k": "b2"}), "hash-b2")
    with session_scope(queue.engine) as s:
        new = s.get(Job, clone)
        assert new.status == "queued" and new.labels["cloned_from"] == by["b"] and new.study_id == study
        deps = s.scalars(select(JobDependency.depends_on).where(JobDependency.job_id == clone)).all()
        assert deps == [by["a"]]


@pytest.mark.parametrize("jobs, message", [
    ([job("a", "b"), job("b", "a")], "dependency cycle: "),
    ([job("a", "a")], "dependency cycle: a -> a"),
    ([job("a", "zz")], "not in the submission"),
    ([job("a"), job("a")], "two jobs share the key"),
])
def test_bad_submissions_are_refused_and_store_nothing(queue, jobs, message):
    with pytest.raises(QueueError, match=message):
        submit(queue, jobs)
    with session_scope(queue.engine) as s:
        assert s.scalar(select(func.count()).select_from(Study)) == 0
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_a_cycle_already_in_the_store_fails_with_its_path(queue):
    study = submit(queue, [job("a"), job("b"), job("c")])
    by = ids(queue, study)
    with session_scope(queue.engine) as s:  # written by hand, as a broken import might
        s.add_all([JobDependency(job_id=by["a"], depends_on=by["b"]),
                   JobDependency(job_id=by["b"], depends_on=by["a"])])
    cycle = queue.fail_cycles()
    assert sorted(cycle) == sorted([by["a"], by["b"]])
    with session_scope(queue.engine) as s:
        assert "dependency cycle" in s.get(Job, by["a"]).error
    assert queue.claim("w", 30).id == by["c"]  # the rest is still served


def test_queue_uses_its_own_engine(database_url):
    q1, q2 = Queue(get_engine(database_url)), Queue(get_engine(database_url))
    assert q1.engine is q2.engine  # one engine per URL per process


def test_clone_with_edits_validates_through_the_spec_parser(queue):
    from backend.specs import SpecError, TrainJobSpec, canonical_json, parse, spec_hash
    from db.submit import clone_job

    spec = parse(TrainJobSpec, {"data": {"source": {"kind": "digits"}}})
    study = queue.submit("s", {}, "s", [NewJob("a", "train", canonical_json(spec), spec_hash(spec), {"name": "a"})])
    original = ids(queue, study)["a"]
    clone = clone_job(queue, original, {"train.epochs": 3, "data.per_class": 5})
    kind, text = queue.job_spec(clone)
    edited = parse(TrainJobSpec, text)
    assert kind == "train" and edited.train.epochs == 3 and edited.data.per_class == 5
    with session_scope(queue.engine) as s:
        assert s.get(Job, clone).spec_hash == spec_hash(edited) != spec_hash(spec)
    with pytest.raises(SpecError) as info:
        clone_job(queue, original, {"train.epochs": 0})
    assert info.value.field == "train.epochs"
    with session_scope(queue.engine) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 2  # the bad edit queued nothing


# ---------------------------------------------------------------- locality: probes beside their network

def test_a_worker_prefers_the_jobs_reading_the_networks_it_holds(queue):
    study = submit(queue, [job("x"), job("a"), job("px", "x", kind="similarity"), job("pa", "a", kind="similarity"),
                           job("pxa", "x", "a", kind="similarity")])
    by = ids(queue, study)
    for worker in ("w0", "w1"):
        queue.complete(queue.claim(worker, 30).id, worker, {"v": 1.0})  # w0 trained x, w1 trained a
    # px is older and as claimable, but w1 holds a: it takes a job reading a, the one reading both first
    # when it holds both, and the oldest job when it holds nothing any queued job reads.
    assert queue.claim("w1", 30, prefer=["hash-a", "hash-x"]).id == by["pxa"]
    assert queue.claim("w1", 30, prefer=["hash-a"]).id == by["pa"]
    assert queue.claim("w2", 30, prefer=["hash-nothing"]).id == by["px"]
    with pytest.raises(TypeError, match="not one string"):
        queue.claim("w1", 30, prefer="hash-a")


def test_priority_wins_over_locality_and_a_link_counts_as_its_network(queue):
    first = submit(queue, [job("a")])
    queue.complete(queue.claim("w", 30).id, "w", {"v": 1.0})
    # A later study reusing a depends on its own row for a (a link, the same spec hash).
    later = submit(queue, [job("b"), job("a"), job("pa", "a", kind="similarity")], name="later")
    by = ids(queue, later)
    assert by["a"] != ids(queue, first)["a"] and status(queue, by["a"]) == "succeeded"
    urgent = queue.submit("urgent", {}, "u", [job("z")], priority=5)
    assert queue.claim("w", 30, prefer=["hash-a"]).id == ids(queue, urgent)["z"]
    assert queue.claim("w", 30, prefer=["hash-a"]).id == by["pa"]  # before b, which is older
    assert queue.claim("w", 30, prefer=["hash-a"]).id == by["b"]


def test_a_preferred_job_another_worker_holds_is_not_claimed_again(queue):
    study = submit(queue, [job("a"), job("pa", "a", kind="similarity"), job("c")])
    by = ids(queue, study)
    queue.complete(queue.claim("trainer", 30).id, "trainer", {"v": 1.0})
    assert queue.claim("other", 30).id == by["pa"]  # the oldest claimable, taken by another worker
    assert queue.claim("trainer", 30, prefer=["hash-a"]).id == by["c"]  # not pa a second time
    assert queue.claim("trainer", 30, prefer=["hash-a"]) is None
    with session_scope(queue.engine) as s:
        pa = s.get(Job, by["pa"])
        assert (pa.worker_id, pa.attempts, pa.status) == ("other", 1, "running")


# A worker process: claims with the networks it trained lately as its preference, and finishes each
# job at once; prints the jobs it ran and whether each read a network it held.
CLAIMING_WORKER = """
import json, sys, time
from db.queue import Queue
from db.session import get_engine
queue, name, held, ran = Queue(get_engine(sys.argv[1])), sys.argv[2], [], []
while True:
    job = queue.claim(name, 60, prefer=held[-4:])
    if job is None:
        counts = queue.counts()
        if not counts.get("queued") and not counts.get("running"):
            break
        time.sleep(0.005)
        continue
    ran.append([job.id, job.kind, bool(set(json.loads(job.spec)["reads"]) & set(held[-4:]))])
    assert queue.complete(job.id, name, {"value": 1.0})
    if job.kind == "train":
        held.append(job.spec_hash)
print(json.dumps(ran))
"""


def test_four_workers_preferring_their_networks_claim_300_jobs_exactly_once(database_url):
    queue = Queue(get_engine(database_url))
    networks = [f"net{i}" for i in range(60)]
    jobs = [NewJob(n, "train", json.dumps({"k": n, "reads": []}), f"hash-{n}", {"name": n}) for n in networks]
    jobs += [NewJob(f"{n}-p{p}", "similarity", json.dumps({"k": f"{n}-p{p}", "reads": [f"hash-{n}"]}),
                    f"hash-{n}-p{p}", {"name": f"{n}-p{p}"}, (n,)) for n in networks for p in range(4)]
    submit(queue, jobs)
    workers = [subprocess.Popen([sys.executable, "-c", CLAIMING_WORKER, database_url, f"w{i}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outputs]
    ran = [row for out, _ in outputs for row in json.loads(out)]
    claimed = [job_id for job_id, _, _ in ran]
    assert len(claimed) == len(set(claimed)) == 300  # each job once, by one worker
    with session_scope(queue.engine) as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.status == "succeeded")) == 300
        assert s.scalar(select(func.max(Job.attempts))) == 1
        assert s.scalar(select(func.count(func.distinct(Job.worker_id)))) >= 2
    beside = [held for _, kind, held in ran if kind == "similarity"]
    # In age order a probe would meet its network's worker about 1 time in 4.
    assert sum(beside) / len(beside) > 0.5, sum(beside)


def test_an_idle_worker_asks_less_and_less_often_until_it_gets_a_job():
    from db.claims import IdleBackoff

    idle = IdleBackoff(1.0, 8.0, seed=0)
    waits = [idle.next() for _ in range(6)]
    for wait, ceiling in zip(waits, [1, 2, 4, 8, 8, 8]):
        assert ceiling / 2 <= wait <= ceiling  # drawn in the upper half: a fleet started together drifts apart
    idle.reset()
    assert 0.5 <= idle.next() <= 1.0


def test_a_fleet_started_at_once_spreads_its_first_claims_over_one_poll():
    from db.claims import IdleBackoff

    starts = [IdleBackoff(1.0, 8.0, seed=worker).start() for worker in range(500)]
    assert all(0.0 <= s < 1.0 for s in starts)
    # Spread over the whole poll, not bunched: each tenth of it holds some of the 500 first claims.
    assert all(any(k / 10 <= s < (k + 1) / 10 for s in starts) for k in range(10))
