"""Which job a worker takes next, and the one conditional UPDATE that takes it.

A job is claimable when it is queued and every job it depends on has succeeded. Among those the
worker takes the highest priority first; within a priority, the job that reads the most networks the
worker already holds in memory (its `prefer`: their spec hashes), so a network's transfers and probes
run beside it without loading it or its data again; then the oldest. Priority wins over locality: a
user who raised a study's priority gets it first, whichever networks the worker holds.

The choice and the claim are one statement, `UPDATE jobs ... WHERE id = (first claimable) AND status
= 'queued'`, with `FOR UPDATE SKIP LOCKED` in the subquery on PostgreSQL, and its row count checked,
so two workers never get the same job whatever they prefer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection

from sqlalchemy import Update, exists, func, select, update
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


def claim_statement(dialect: str, worker_id: str, lease_seconds: float, prefer: Collection[str] = ()) -> Update:
    """The UPDATE that claims the first claimable job for `worker_id`, returning its id (no row when
    there is none, or when another worker took it between the choice and the update)."""
    if isinstance(prefer, str):  # one hash would be read as a set of characters
        raise TypeError("prefer: a collection of spec hashes, not one string")
    parent = aliased(Job)
    unfinished_dependency = exists().where(
        JobDependency.job_id == Job.id, JobDependency.depends_on == parent.id, parent.status != SUCCEEDED)
    first = select(Job.id).where(Job.status == QUEUED, ~unfinished_dependency)
    order = [Job.priority.desc(), Job.id]
    if prefer:
        held = held_networks_read(prefer)
        first = first.outerjoin(held, held.c.job_id == Job.id)
        order.insert(1, func.coalesce(held.c.networks, 0).desc())
    first = first.order_by(*order).limit(1)
    if dialect == "postgresql":
        first = first.with_for_update(skip_locked=True, of=Job)
    return (update(Job).where(Job.id == first.scalar_subquery(), Job.status == QUEUED)
            .values(status=RUNNING, worker_id=worker_id, attempts=Job.attempts + 1,
                    lease_expires_at=db_time() + lease_seconds, heartbeat_at=db_time(),
                    started_at=db_time(), progress=0.0, message="claimed", error=None)
            .returning(Job.id))


def held_networks_read(prefer: Collection[str]):
    """Per job depending on a job that ran one of the specs in `prefer`: how many such jobs it depends
    on (`networks`). By spec hash, not job id: a study that reuses an earlier network depends on a link
    to it (its own row, the same hash), and a worker names what it holds by the spec it was trained from.
    A derived table, computed once per claim from the few dependants of those networks."""
    network = aliased(Job)
    return (select(JobDependency.job_id, func.count().label("networks"))
            .join(network, network.id == JobDependency.depends_on)
            .where(network.spec_hash.in_(sorted(set(prefer))))
            .group_by(JobDependency.job_id).subquery("held"))


def claimed(s: Session, job_id: int) -> ClaimedJob:
    """The job just claimed, with the ids of the jobs it depends on."""
    job = s.get(Job, job_id)
    deps = s.scalars(select(JobDependency.depends_on).where(JobDependency.job_id == job_id)).all()
    return ClaimedJob(job.id, job.kind, job.spec, job.spec_hash, job.attempts, dict(job.labels), tuple(deps))
