"""The job queue: submit a study's DAG, claim with leases, heartbeat, finish, cancel, retry.

Claiming is one conditional UPDATE (`... WHERE id = (first claimable) AND status = 'queued'`), with
`FOR UPDATE SKIP LOCKED` in the subquery on Postgres, so two workers never get the same job (which job
comes first, priority, then the networks the worker holds, then age, is in db.claims). A job's lease
is extended by heartbeats; a job whose lease ran out goes back to the queue until it has used its
attempts, then fails with the reason, and everything depending on it is blocked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable

import numpy as np
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session

from backend.specs.base import shape_hash
from db.schema import (
    BLOCKED, CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Artifact, Job, JobDependency, Metric, Result, Study,
    Worker, db_time,
)
from db.claims import ClaimedJob, claim
from db.outputs import clear_outputs, store_outputs
from db.dag import GraphError, find_cycle, topological
from db.session import get_engine, session_scope


class QueueError(ValueError):
    """A submission or an operation the queue refuses; nothing was changed."""


PRIORITIES = (-1_000_000, 1_000_000)  # a job's priority, inclusive: well inside the 32-bit column on any database


def check_priority(priority: Any) -> int:
    """`priority` when a whole number in PRIORITIES, else a QueueError saying the range."""
    if isinstance(priority, bool) or not isinstance(priority, int) or not PRIORITIES[0] <= priority <= PRIORITIES[1]:
        raise QueueError("priority must be a whole number from {:,} to {:,}, got {!r}".format(*PRIORITIES, priority))
    return priority


@dataclass(frozen=True)
class NewJob:
    """A job to submit: `key` names it within the submission, `depends_on` lists keys."""

    key: str
    kind: str
    spec: str  # canonical JSON
    spec_hash: str
    labels: dict[str, Any]
    depends_on: tuple[str, ...] = ()
    shape: str | None = None  # shape_hash of the spec; worked out from `spec` when not given


@dataclass(frozen=True)
class Lease:
    """What a heartbeat learns: whether the worker still holds the job, and whether to stop."""

    held: bool
    cancel_requested: bool


class Queue:
    def __init__(self, engine: Engine | None = None):
        self.engine = engine or get_engine()

    # ------------------------------------------------------------ submit

    def submit(self, name: str, spec: dict[str, Any], spec_hash: str, jobs: list[NewJob],
               preset: str | None = None, priority: int = 0, seed_progress: dict[str, Any] | None = None) -> int:
        """Insert a study and its job DAG in one transaction; returns the study id.

        A job whose spec hash already succeeded is stored as succeeded, linked to that result.
        """
        check_priority(priority)
        try:
            order = topological(jobs)
        except GraphError as exc:
            raise QueueError(str(exc)) from None
        with session_scope(self.engine) as s:
            study = Study(name=name, preset=preset, spec=spec, spec_hash=spec_hash, seed_progress=seed_progress)
            s.add(study)
            s.flush()
            insert_jobs(s, study.id, order, priority, {})
            return study.id

    def enqueue(self, kind: str, spec: str, spec_hash: str, priority: int = 0,
                labels: dict[str, Any] | None = None) -> int:
        """One job outside any study (a data preview); returns its id. A run of the same spec that
        succeeded, or one still queued or running, is returned instead of queuing it again."""
        live = (select(Job.id).where(Job.spec_hash == spec_hash, Job.result_of.is_(None),
                                     Job.status.in_((SUCCEEDED, RUNNING, QUEUED)))
                .order_by((Job.status == SUCCEEDED).desc(), Job.id.desc()).limit(1))
        check_priority(priority)
        with session_scope(self.engine) as s:
            earlier = s.scalar(live)
            if earlier is not None:
                return earlier
            job = Job(kind=kind, spec=spec, spec_hash=spec_hash, labels=labels or {}, priority=priority)
            s.add(job)
            s.flush()
            return job.id

    # ------------------------------------------------------------ workers

    def claim(self, worker_id: str, lease_seconds: float, prefer: Collection[str] = ()) -> ClaimedJob | None:
        """Take the first claimable job, or None: highest priority, then the one reading the most of
        the networks `prefer` names (spec hashes of those the worker holds in memory), then oldest."""
        with session_scope(self.engine) as s:
            return claim(s, self.engine.dialect.name, worker_id, lease_seconds, prefer)

    def heartbeat(self, job_id: int, worker_id: str, lease_seconds: float,
                  progress: float | None = None, message: str | None = None) -> Lease:
        values: dict[str, Any] = {"lease_expires_at": db_time() + lease_seconds, "heartbeat_at": db_time()}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, progress))
        if message is not None:
            values["message"] = message
        with session_scope(self.engine) as s:
            held = s.execute(update(Job).where(*_owned(job_id, worker_id)).values(**values)
                             .returning(Job.cancel_requested).execution_options(**_UNSYNCED)).first()
            cancel = held[0] if held else s.scalar(select(Job.cancel_requested).where(Job.id == job_id))
            s.execute(update(Worker).where(Worker.id == worker_id).values(last_seen_at=db_time())
                      .execution_options(**_UNSYNCED))
        return Lease(held is not None, bool(cancel))

    def complete(self, job_id: int, worker_id: str, results: dict[str, float],
                 metrics: Iterable[tuple[str, int, float]] = (), artifacts: Iterable[dict[str, Any]] = (),
                 tables: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None) -> bool:
        """Store the results (scalars, small JSON tables, curves, arrays, artifacts) and mark the job
        succeeded, all or nothing; False if the lease was lost (another worker has the job now, and
        its results will be the ones kept)."""
        with session_scope(self.engine) as s:
            done = s.execute(update(Job).where(*_owned(job_id, worker_id)).values(
                status=SUCCEEDED, progress=1.0, message="done", finished_at=db_time(),
                lease_expires_at=None).execution_options(**_UNSYNCED)).rowcount == 1
            if not done:
                return False
            store_outputs(s, job_id, results, metrics, artifacts, tables, arrays)
        return True

    def fail(self, job_id: int, worker_id: str | None, error: str, retry: bool = False) -> str:
        """Record a failure: back to the queue while attempts remain and `retry`, else failed, with
        every job depending on it blocked. Returns the new status."""
        with session_scope(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None or (worker_id is not None and (job.worker_id != worker_id or job.status != RUNNING)):
                return job.status if job else "missing"
            if retry and job.attempts < job.max_attempts:
                _requeue(job, f"attempt {job.attempts} failed: {error}")
            else:
                _finish(job, FAILED, error)
                _block_dependants(s, [job.id], f"depends on job {job.id}, which failed")
            return job.status

    def release(self, job_id: int, worker_id: str, reason: str) -> None:
        """Give a running job back to the queue untouched (graceful stop); the attempt is not counted."""
        with session_scope(self.engine) as s:
            s.execute(update(Job).where(*_owned(job_id, worker_id)).values(
                status=QUEUED, worker_id=None, lease_expires_at=None, attempts=Job.attempts - 1,
                message=reason))

    def mark_cancelled(self, job_id: int, worker_id: str) -> None:
        with session_scope(self.engine) as s:
            job = s.get(Job, job_id)
            if job is not None and job.worker_id == worker_id and job.status == RUNNING:
                _finish(job, CANCELLED, "cancelled while running")
                _block_dependants(s, [job.id], f"depends on job {job.id}, which was cancelled")

    def requeue_expired(self) -> list[int]:
        """Jobs whose worker stopped heartbeating: back to the queue, or failed when out of attempts."""
        with session_scope(self.engine) as s:
            stale = s.scalars(select(Job).where(Job.status == RUNNING, Job.lease_expires_at < db_time())
                              .with_for_update(skip_locked=True)).all()
            failed = []
            for job in stale:
                reason = f"lease expired on worker {job.worker_id} (attempt {job.attempts} of {job.max_attempts})"
                if job.attempts < job.max_attempts:
                    _requeue(job, reason)
                else:
                    _finish(job, FAILED, reason + "; no attempts left")
                    failed.append(job.id)
            _block_dependants(s, failed, "depends on a job that failed")
            return [j.id for j in stale]

    def fail_cycles(self) -> list[int]:
        """Queued jobs that depend on themselves through a cycle can never run: fail them, naming it."""
        with session_scope(self.engine) as s:
            edges = s.execute(select(JobDependency.job_id, JobDependency.depends_on)
                              .join(Job, Job.id == JobDependency.job_id).where(Job.status == QUEUED)).all()
            cycle = find_cycle(edges)
            if not cycle:
                return []
            for job in s.scalars(select(Job).where(Job.id.in_(cycle))):
                _finish(job, FAILED, "dependency cycle: " + " -> ".join(map(str, cycle + [cycle[0]])))
            _block_dependants(s, cycle, "depends on a job in a dependency cycle")
            return cycle

    # ------------------------------------------------------------ users

    def cancel(self, job_id: int) -> str:
        """Queued: cancelled now. Running: the worker is told at its next heartbeat or step."""
        with session_scope(self.engine) as s:
            job = _get(s, job_id)
            if job.status in (QUEUED, BLOCKED):
                _finish(job, CANCELLED, "cancelled before it ran")
                _block_dependants(s, [job.id], f"depends on job {job.id}, which was cancelled")
            elif job.status == RUNNING:
                job.cancel_requested = True
                job.message = "cancel requested"
            return job.status

    def retry(self, job_id: int) -> list[int]:
        """Queue a failed, cancelled or blocked job again, and unblock what it blocked."""
        with session_scope(self.engine) as s:
            job = _get(s, job_id)
            if job.status not in (FAILED, CANCELLED, BLOCKED):
                raise QueueError(f"job {job_id} is {job.status}; only failed, cancelled or blocked jobs can be retried")
            _reset(job)
            return [job.id] + [child.id for child in _walk_dependants(s, [job.id], BLOCKED, _reset)]

    def rerun(self, job_id: int) -> list[int]:
        """Run a succeeded job again, when its checkpoint was damaged or lost: its results, curves,
        arrays and artifact records go, and it (or the run it reuses) and every job reusing its result
        are queued. Dependants that failed for want of it can then be retried."""
        with session_scope(self.engine) as s:
            job = _get(s, job_id)
            job = _get(s, job.result_of) if job.result_of is not None else job
            if job.status != SUCCEEDED:
                raise QueueError(f"job {job.id} is {job.status}; only a succeeded job can be re-run (retry the others)")
            clear_outputs(s, job.id)
            linked = s.scalars(select(Job).where(Job.result_of == job.id)).all()
            for j in [job, *linked]:
                _reset(j)
                j.result_of, j.message = None, "re-run"
            return [job.id] + [j.id for j in linked]

    def clone(self, job_id: int, spec: str, spec_hash: str) -> int:
        """A new queued job like `job_id` (same study, dependencies, labels) with an edited spec."""
        with session_scope(self.engine) as s:
            job = _get(s, job_id)
            deps = s.scalars(select(JobDependency.depends_on).where(JobDependency.job_id == job_id)).all()
            named = dict(s.execute(select(Job.spec_hash, Job.shape)
                                   .where(Job.id.in_(deps), Job.shape.is_not(None))).all())  # a probe's networks
            new = Job(study_id=job.study_id, kind=job.kind, spec=spec, spec_hash=spec_hash,
                      shape=shape_hash(json.loads(spec), named),
                      labels={**job.labels, "cloned_from": job.id}, priority=job.priority)
            s.add(new)
            s.flush()
            s.add_all(JobDependency(job_id=new.id, depends_on=d) for d in deps)
            return new.id

    def job_spec(self, job_id: int) -> tuple[str, str]:
        """(kind, spec JSON) of a job."""
        with session_scope(self.engine) as s:
            job = _get(s, job_id)
            return job.kind, job.spec

    def source_of(self, job_id: int) -> int:
        """The job whose results stand for `job_id`: itself, or the earlier run it reuses."""
        with session_scope(self.engine) as s:
            job = _get(s, job_id)
            return job.result_of or job.id

    def link_to_earlier(self, job_id: int, worker_id: str, spec_hash: str) -> bool:
        """If an identical spec already succeeded, finish this job as a link to it (run nothing)."""
        with session_scope(self.engine) as s:
            earlier = _succeeded_by_hash(s, [spec_hash], exclude=job_id).get(spec_hash)
            if earlier is None:
                return False
            return s.execute(update(Job).where(*_owned(job_id, worker_id)).values(
                status=SUCCEEDED, result_of=earlier, progress=1.0, finished_at=db_time(),
                message=f"reused the result of job {earlier}", lease_expires_at=None)).rowcount == 1

    def add_metrics(self, job_id: int, rows: Iterable[tuple[str, int, float]]) -> None:
        """Stream points of a running job's curves (the full set is stored again on completion)."""
        values = [{"job_id": job_id, "key": k, "step": step, "value": float(v)} for k, step, v in rows]
        if values:
            with session_scope(self.engine) as s:
                s.execute(insert(Metric), values)

    def network_files(self, spec_hash: str) -> dict[str, tuple[str, str, int]]:
        """Artifact kind (checkpoint, init) -> (path relative to the artifacts folder, recorded sha256,
        job id) of the latest succeeded run of `spec_hash` that has a checkpoint; {} when none has."""
        latest = (select(Job.id).join(Artifact, Artifact.job_id == Job.id)
                  .where(Job.spec_hash == spec_hash, Job.status == SUCCEEDED, Artifact.kind == "checkpoint")
                  .order_by(Job.id.desc()).limit(1)).scalar_subquery()
        query = select(Artifact.kind, Artifact.path, Artifact.sha256, Artifact.job_id).where(Artifact.job_id == latest)
        with session_scope(self.engine) as s:
            return {kind: (path, sha, job) for kind, path, sha, job in s.execute(query).all()}

    def scalars_of(self, spec_hashes: Collection[str]) -> dict[str, dict[str, float]]:
        """Spec hash -> the scalar results of its latest succeeded run (a job that reads others' results)."""
        runs = (select(Job.spec_hash, func.max(Job.id).label("id"))
                .where(Job.spec_hash.in_(list(spec_hashes)), Job.status == SUCCEEDED, Job.result_of.is_(None))
                .group_by(Job.spec_hash).subquery())
        query = select(runs.c.spec_hash, Result.name, Result.value).join(Result, Result.job_id == runs.c.id)
        found: dict[str, dict[str, float]] = {}
        with session_scope(self.engine) as s:
            for key, name, value in s.execute(query).all():
                found.setdefault(key, {})[name] = value
        return found

    def register_worker(self, worker_id: str, host: str, device: str, versions: dict[str, Any]) -> None:
        with session_scope(self.engine) as s:
            row = s.get(Worker, worker_id)
            if row is None:
                s.add(Worker(id=worker_id, host=host, device=device, versions=versions))
            else:
                row.host, row.device, row.versions, row.started_at = host, device, versions, db_time()
                row.last_seen_at = db_time()

    def worker_seen(self, worker_id: str) -> None:
        with session_scope(self.engine) as s:
            s.execute(update(Worker).where(Worker.id == worker_id).values(last_seen_at=db_time()))

    def counts(self, study_id: int | None = None) -> dict[str, int]:
        query = select(Job.status, func.count()).group_by(Job.status)
        if study_id is not None:
            query = query.where(Job.study_id == study_id)
        with session_scope(self.engine) as s:
            return dict(s.execute(query).all())


# ---------------------------------------------------------------- helpers

def insert_jobs(s: Session, study_id: int, order: list[NewJob], priority: int, held: dict[str, int]) -> None:
    """Insert a study's jobs in dependency order; `held`: spec hash -> the study's own row already
    holding that spec (not inserted again). A spec that succeeded anywhere is stored as succeeded,
    linked to that result."""
    done = _succeeded_by_hash(s, [j.spec_hash for j in order])
    ids: dict[str, int] = {}
    shapes: dict[str, str] = {}  # spec hash -> shape, for the jobs a probe names
    for job in order:
        shapes[job.spec_hash] = job.shape or _shape(job.spec, shapes)
        if job.spec_hash in held:
            ids[job.key] = held[job.spec_hash]
            continue
        earlier = done.get(job.spec_hash)
        row = Job(study_id=study_id, kind=job.kind, spec=job.spec, spec_hash=job.spec_hash,
                  shape=shapes[job.spec_hash], labels=job.labels, priority=priority,
                  status=SUCCEEDED if earlier else QUEUED, result_of=earlier,
                  progress=1.0 if earlier else 0.0, message="reused an earlier result" if earlier else "")
        s.add(row)
        s.flush()
        ids[job.key] = row.id
        s.add_all(JobDependency(job_id=row.id, depends_on=ids[d]) for d in job.depends_on)


def _shape(spec: str, shapes: dict[str, str]) -> str | None:
    """A job's shape (see shape_hash); None for a spec that is not JSON: the queue stores it as given
    and the worker fails it with the reason."""
    try:
        return shape_hash(json.loads(spec), shapes)
    except ValueError:
        return None


# The hot paths' UPDATEs touch rows no session holds: skip matching them against the session's objects.
_UNSYNCED = {"synchronize_session": False}


def _owned(job_id: int, worker_id: str):
    return Job.id == job_id, Job.worker_id == worker_id, Job.status == RUNNING


def _get(s: Session, job_id: int) -> Job:
    job = s.get(Job, job_id)
    if job is None:
        raise QueueError(f"no job {job_id}")
    return job


def _requeue(job: Job, reason: str) -> None:
    job.status, job.worker_id, job.lease_expires_at, job.message = QUEUED, None, None, reason
    job.error = reason


def _finish(job: Job, status: str, error: str) -> None:
    job.status, job.error, job.message = status, error, error
    job.finished_at, job.lease_expires_at = db_time(), None


def _reset(job: Job) -> None:
    job.status, job.attempts, job.error, job.message = QUEUED, 0, None, "retried"
    job.cancel_requested, job.progress, job.worker_id, job.finished_at = False, 0.0, None, None


def _block_dependants(s: Session, job_ids: list[int], reason: str) -> None:
    """Every queued job that depends, directly or not, on `job_ids` is blocked with the reason."""
    def block(job: Job) -> None:
        job.status, job.error, job.message = BLOCKED, reason, reason

    _walk_dependants(s, job_ids, QUEUED, block)


def _walk_dependants(s: Session, job_ids: list[int], status: str, change: Callable[[Job], None]) -> list[Job]:
    """Apply `change` to every job in `status` depending, directly or not, on `job_ids`, level by
    level; `change` must move a job out of `status`, so each job is visited once, cycles included."""
    changed, frontier = [], list(job_ids)
    while frontier:
        children = s.scalars(select(Job).join(JobDependency, JobDependency.job_id == Job.id)
                             .where(JobDependency.depends_on.in_(frontier), Job.status == status)).all()
        for child in children:
            change(child)
        changed += children
        frontier = [c.id for c in children]
    return changed


def _succeeded_by_hash(s: Session, hashes: list[str], exclude: int | None = None) -> dict[str, int]:
    """spec hash -> id of the first job that ran it successfully (not a link itself)."""
    query = (select(Job.spec_hash, func.min(Job.id)).where(
        Job.spec_hash.in_(set(hashes)), Job.status == SUCCEEDED, Job.result_of.is_(None))
        .group_by(Job.spec_hash))
    if exclude is not None:
        query = query.where(Job.id != exclude)
    return dict(s.execute(query).all())
