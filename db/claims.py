"""Which job a worker takes next, and the one conditional UPDATE that takes it.

A job is claimable when it is queued and every job it depends on has succeeded. Among those the
worker takes the highest priority first; within a priority, the job that reads the most networks the
worker already holds in memory (its `prefer`: their spec hashes), so a network's transfers and probes
run beside it without loading it or its data again; then the oldest. Priority wins over locality: a
user who raised a study's priority gets it first, whichever networks the worker holds.

The choice and the claim are one statement, `UPDATE jobs ... WHERE id = (first claimable) AND status
= 'queued' RETURNING ...`, with `FOR UPDATE SKIP LOCKED` in the subquery on PostgreSQL, and its row
count checked, so two workers never get the same job whatever they prefer.

At fleet size (bench/fleet.py) the claim must not sort the queue: the first claimable job is the
first entry of the index `ix_jobs_claim` (status, priority DESC, id) whose dependencies succeeded, and
a worker's preference is looked for among the few dependants of the networks it holds, at the top
claimable priority only, before that plain choice. The statements are built once per dialect, with
bound parameters (`claimer`, `lease`, `prefer`).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from sqlalchemy import Update, bindparam, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from db.schema import QUEUED, RUNNING, SUCCEEDED, Job, JobDependency, db_time


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    spec: str
    spec_hash: str
    attempts: int
    labels: dict[str, Any]
    depends_on: tuple[int, ...]


def claimable(job) -> tuple:
    """Conditions on `job` (Job or an alias of it): queued, and every job it depends on succeeded."""
    parent = aliased(Job)
    unfinished_dependency = exists().where(
        JobDependency.job_id == job.id, JobDependency.depends_on == parent.id, parent.status != SUCCEEDED)
    return job.status == QUEUED, ~unfinished_dependency


@lru_cache(maxsize=8)
def claim_statement(dialect: str, preferring: bool) -> Update:
    """The UPDATE that claims the first claimable job for the worker `claimer` with a lease of `lease`
    seconds, returning the job (no row when there is none, or when another worker took it between
    the choice and the update). `preferring`: the statement also takes `prefer`, a list of the spec
    hashes of the networks the worker holds."""
    def locked(query, job):
        return query.with_for_update(skip_locked=True, of=job) if dialect == "postgresql" else query

    first = aliased(Job, name="first_claimable")
    plain = select(first.id).where(*claimable(first)).order_by(first.priority.desc(), first.id).limit(1)
    target = locked(plain, first).scalar_subquery()
    if preferring:
        top = aliased(Job, name="top_claimable")
        top_priority = (select(top.priority).where(*claimable(top)).order_by(top.priority.desc(), top.id)
                        .limit(1).scalar_subquery())
        near = aliased(Job, name="near_held")
        held = held_networks_read()
        preferred = (select(near.id).join(held, held.c.job_id == near.id)
                     .where(*claimable(near), near.priority == top_priority)
                     .order_by(held.c.networks.desc(), near.id).limit(1))
        # COALESCE evaluates the plain choice (and locks its row) only when no preferred job is free.
        target = func.coalesce(locked(preferred, near).scalar_subquery(), target)
    return (update(Job).where(Job.id == target, Job.status == QUEUED)
            .values(status=RUNNING, worker_id=bindparam("claimer"), attempts=Job.attempts + 1,
                    lease_expires_at=db_time() + bindparam("lease"), heartbeat_at=db_time(),
                    started_at=db_time(), progress=0.0, message="claimed", error=None)
            .returning(Job.id, Job.kind, Job.spec, Job.spec_hash, Job.attempts, Job.labels)
            .execution_options(synchronize_session=False))


def held_networks_read():
    """Per job depending on a job that ran one of the specs in the `prefer` parameter: how many such
    jobs it depends on (`networks`). By spec hash, not job id: a study that reuses an earlier network
    depends on a link to it (its own row, the same hash), and a worker names what it holds by the spec
    it was trained from. A derived table, computed once per claim from the few dependants of those networks."""
    network = aliased(Job, name="held_network")
    return (select(JobDependency.job_id, func.count().label("networks"))
            .join(network, network.id == JobDependency.depends_on)
            .where(network.spec_hash.in_(bindparam("prefer", expanding=True)))
            .group_by(JobDependency.job_id).subquery("held"))


def claim(s: Session, dialect: str, worker_id: str, lease_seconds: float, prefer) -> ClaimedJob | None:
    """Claim in the session `s` (see claim_statement); the job with the ids of the jobs it depends on."""
    if isinstance(prefer, str):  # one hash would be read as a set of characters
        raise TypeError("prefer: a collection of spec hashes, not one string")
    hashes = sorted(set(prefer))
    params: dict[str, Any] = {"claimer": worker_id, "lease": lease_seconds}
    if hashes:
        params["prefer"] = hashes
    row = s.execute(claim_statement(dialect, bool(hashes)), params).first()
    if row is None:
        return None
    deps = s.scalars(select(JobDependency.depends_on).where(JobDependency.job_id == row.id)).all()
    return ClaimedJob(row.id, row.kind, row.spec, row.spec_hash, row.attempts, dict(row.labels), tuple(deps))


class IdleBackoff:
    """How long an idle worker waits before it asks for a job again: `first` seconds after its first
    empty claim, doubling up to `longest`, each wait drawn from its upper half so that workers started
    together drift apart; back to `first` once it gets a job. (500 idle workers asking every second
    made 2,500 transactions a second, which slowed every claim: bench/fleet.py.)"""

    def __init__(self, first: float, longest: float, seed: int | str | None = None):
        self.first, self.longest = first, max(first, longest)
        self.wait = first
        self.rng = random.Random(seed)

    def next(self) -> float:
        """The wait before the next claim, after an empty one."""
        wait = self.wait * self.rng.uniform(0.5, 1.0)
        self.wait = min(self.wait * 2, self.longest)
        return wait

    def reset(self) -> None:
        self.wait = self.first

    def start(self) -> float:
        """The wait before a worker's first claim, drawn from [0, first): a fleet started at one instant
        (a Slurm array, compose replicas, `worker --gpus all`) then spreads its first claims over one poll
        instead of meeting in one transaction herd (500 at once: p99 264-326 ms, bench/fleet.py)."""
        return self.rng.uniform(0.0, self.first)


class ClaimCycle:
    """How a worker asks for its next job (Worker.serve, and bench/fleet.py's simulated workers): claim;
    when there is nothing to run, at most once per `poll` seconds, first requeue expired leases (a dead
    worker's jobs), fail dependency cycles and run `maintain` (the worker adds sequential seeds), then
    claim again; while jobs keep coming, requeue expired leases once per `lease` seconds."""

    def __init__(self, queue: Any, poll: float, lease: float, maintain: Callable[[], None] = lambda: None):
        self.queue, self.poll, self.lease, self.maintain = queue, poll, lease, maintain
        self.maintained = float("-inf")

    def next(self, claim: Callable[[], ClaimedJob | None]) -> ClaimedJob | None:
        job = claim()
        if job is None and time.monotonic() - self.maintained > self.poll:
            self.queue.requeue_expired()
            self.queue.fail_cycles()
            self.maintain()
            self.maintained = time.monotonic()
            job = claim()
        elif job is not None and time.monotonic() - self.maintained > self.lease:
            self.queue.requeue_expired()  # lost jobs go back even while the queue is busy
            self.maintained = time.monotonic()
        return job
