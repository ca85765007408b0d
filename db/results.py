"""What the dashboard reads: plain dataclasses and DataFrames, filtered and paged in SQL.

Pages call these and nothing else of the store; no ORM row or session leaves this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Text, case, cast, func, select
from sqlalchemy.orm import aliased

from db.outputs import parse_many
from db.schema import (
    ArrayRecord, Artifact, Job, JobDependency, JobScores, Metric, Result, Study, Worker, db_time,
)
from db.session import get_engine, session_scope


@dataclass(frozen=True)
class StoredArray:
    job: int
    labels: dict[str, Any]
    name: str
    value: np.ndarray


@dataclass(frozen=True)
class JobDetail:
    """Everything the job page shows about one job (results are those of the run it reuses, if linked)."""

    id: int
    study_id: int | None
    kind: str
    spec: dict[str, Any]
    spec_hash: str
    labels: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    worker: str | None
    device: str | None
    versions: dict[str, Any]
    progress: float
    message: str
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    result_of: int | None
    depends_on: list[int]
    dependants: list[int]
    scalars: dict[str, float]
    curve_keys: list[str]


class Results:
    def __init__(self, engine: Engine | None = None):
        self.engine = engine or get_engine()

    def study_spec(self, study_id: int) -> dict[str, Any] | None:
        with session_scope(self.engine) as s:
            study = s.get(Study, study_id)
            return dict(study.spec) if study else None

    def study_spec_hash(self, study_id: int) -> str | None:
        with session_scope(self.engine) as s:
            return s.scalar(select(Study.spec_hash).where(Study.id == study_id))

    def jobs(self, study_id: int | None = None, status: str | None = None, kind: str | None = None,
             offset: int = 0, limit: int = 100, labels: dict[str, Any] | None = None,
             ids: Iterable[int] | None = None) -> pd.DataFrame:
        """One page of jobs (with the given labels, among `ids`), running first, then queued, then
        finished, newest first within each, with progress, message and error."""
        query = select(Job.id, Job.study_id, Job.kind, Job.status, Job.labels, Job.progress, Job.message,
                       Job.error, Job.attempts, Job.worker_id, Job.created_at, Job.started_at, Job.finished_at,
                       Job.result_of).where(*_job_filters(None, labels))
        if ids is not None:
            query = query.where(Job.id.in_(list(ids)))
        for column, value in ((Job.study_id, study_id), (Job.status, status), (Job.kind, kind)):
            if value is not None:
                query = query.where(column == value)
        with session_scope(self.engine) as s:
            # Running jobs first, then queued ones, then the finished, newest first within each.
            live_first = case((Job.status == "running", 0), (Job.status == "queued", 1), else_=2)
            rows = s.execute(query.order_by(live_first, Job.id.desc()).offset(offset).limit(limit)).all()
        return pd.DataFrame(rows, columns=["id", "study_id", "kind", "status", "labels", "progress", "message",
                                           "error", "attempts", "worker", "created_at", "started_at",
                                           "finished_at", "result_of"])

    def label_values(self, study_id: int, keys: Iterable[str]) -> dict[str, list[Any]]:
        """The distinct values each label takes among a study's jobs (sorted; absent labels left out)."""
        out: dict[str, list[Any]] = {}
        with session_scope(self.engine) as s:
            for key in keys:
                values = s.scalars(select(Job.labels[key].as_string()).where(Job.study_id == study_id).distinct())
                found = [v for v in values if v is not None]
                out[key] = sorted((int(v) for v in found), key=int) if all(v.lstrip("-").isdigit() for v in found) \
                    else sorted(found)
        return {key: values for key, values in out.items() if values}

    def throughput(self, study_id: int) -> tuple[int, float]:
        """(runs finished, seconds since the study's first start, by the database clock): the pace an
        ETA extrapolates. Links to earlier results are not runs and are not counted."""
        runs = select(func.count()).where(Job.study_id == study_id, Job.status == "succeeded",
                                          Job.result_of.is_(None)).scalar_subquery()
        query = select(runs, func.min(Job.started_at), db_time()).where(Job.study_id == study_id)
        with session_scope(self.engine) as s:
            done, started, now = s.execute(query).one()
        return done, (now - started) if started else 0.0

    def latest(self, job_ids: list[int], key: str) -> dict[int, float]:
        """Each job's value of `key` at its latest step (e.g. a running job's images/s of its last epoch)."""
        last = (select(Metric.job_id, func.max(Metric.step).label("step"))
                .where(Metric.job_id.in_(job_ids), Metric.key == key).group_by(Metric.job_id).subquery())
        query = select(Metric.job_id, Metric.value).join(
            last, (Metric.job_id == last.c.job_id) & (Metric.step == last.c.step)).where(Metric.key == key)
        with session_scope(self.engine) as s:
            return dict(s.execute(query).all())

    def study_scores(self, study_id: int, kinds: Iterable[str] | None = None,
                     labels: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per succeeded job of a study (of the given kinds, with the given labels) that has
        scalar results: its labels, spec hash and named scalar results (for linked jobs, those of the
        run they reuse), oldest job first. Read from the one-row-per-job scores (db.outputs) as text
        and parsed in one call: the layer figure's query at 10,000 jobs (bench/store.py)."""
        query = (select(Job.id, cast(Job.labels, Text), Job.spec_hash, JobScores.scores)
                 .join(JobScores, JobScores.job_id == func.coalesce(Job.result_of, Job.id))
                 .where(Job.study_id == study_id, Job.status == "succeeded", JobScores.scores != "{}",
                        *_job_filters(kinds, labels))
                 .order_by(Job.id))
        with session_scope(self.engine) as s:
            rows = s.execute(query).all()
        if not rows:
            return pd.DataFrame(columns=["job", "spec_hash"])
        jobs, label_texts, hashes, score_texts = zip(*rows)
        scores = pd.DataFrame(parse_many(list(score_texts)), dtype=float)
        wide = pd.concat([pd.DataFrame({"job": jobs, "spec_hash": hashes}), scores[sorted(scores.columns)]], axis=1)
        frame = pd.DataFrame(parse_many(list(label_texts)), index=range(len(jobs)))
        frame.insert(0, "job", jobs)
        return frame.merge(wide, on="job")

    def arrays(self, study_id: int, name: str, kinds: Iterable[str] | None = None,
               labels: dict[str, Any] | None = None, jobs: Iterable[int] | None = None) -> list[StoredArray]:
        """The arrays called `name` of a study's succeeded jobs (of the given kinds, with the given
        labels, among `jobs`), oldest job first, each with its job's labels; filtered in SQL."""
        query = (select(Job.id, Job.labels, ArrayRecord)
                 .join(ArrayRecord, ArrayRecord.job_id == func.coalesce(Job.result_of, Job.id))
                 .where(Job.study_id == study_id, Job.status == "succeeded", ArrayRecord.name == name,
                        *_job_filters(kinds, labels)).order_by(Job.id))
        if jobs is not None:
            query = query.where(Job.id.in_(list(jobs)))
        with session_scope(self.engine) as s:
            return [StoredArray(job, dict(job_labels), name, record.to_numpy())
                    for job, job_labels, record in s.execute(query).all()]

    def job_tables(self, job_id: int) -> dict[str, Any]:
        """A finished job's small JSON tables: estimator settings, units, provenance."""
        query = (select(Result.name, Result.table).join(Job, Result.job_id == func.coalesce(Job.result_of, Job.id))
                 .where(Job.id == job_id, Result.table.is_not(None)))
        with session_scope(self.engine) as s:
            return dict(s.execute(query).all())

    def job(self, job_id: int) -> JobDetail | None:
        """One job in full, or None when there is no such job."""
        with session_scope(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None:
                return None
            source = job.result_of or job.id
            worker = s.get(Worker, job.worker_id) if job.worker_id else None
            parents = s.scalars(select(JobDependency.depends_on).where(JobDependency.job_id == job_id)).all()
            children = s.scalars(select(JobDependency.job_id).where(JobDependency.depends_on == job_id)).all()
            scalars = dict(s.execute(select(Result.name, Result.value).where(
                Result.job_id == source, Result.value.is_not(None))).all())
            keys = s.scalars(select(Metric.key).where(Metric.job_id == source).distinct()).all()
            return JobDetail(job.id, job.study_id, job.kind, json.loads(job.spec), job.spec_hash, dict(job.labels),
                             job.status, job.attempts, job.max_attempts, job.worker_id,
                             worker.device if worker else None, dict(worker.versions) if worker else {},
                             job.progress, job.message, job.error, job.created_at, job.started_at,
                             job.finished_at, job.result_of, sorted(parents), sorted(children), scalars,
                             sorted(keys))

    def job_artifacts(self, job_id: int) -> pd.DataFrame:
        """Files a job wrote (or the run it reuses): kind, path under the artifacts folder, sha256, bytes."""
        query = (select(Artifact.kind, Artifact.path, Artifact.sha256, Artifact.bytes)
                 .join(Job, Artifact.job_id == func.coalesce(Job.result_of, Job.id)).where(Job.id == job_id))
        with session_scope(self.engine) as s:
            return pd.DataFrame(s.execute(query).all(), columns=["kind", "path", "sha256", "bytes"])

    def curves(self, job_ids: list[int], key: str = "test_accuracy") -> pd.DataFrame:
        """Per-epoch points of `key` for the given jobs (following links to reused runs)."""
        job = aliased(Job)
        query = (select(job.id, Metric.step, Metric.value)
                 .join(Metric, Metric.job_id == func.coalesce(job.result_of, job.id))
                 .where(job.id.in_(job_ids), Metric.key == key).order_by(job.id, Metric.step))
        with session_scope(self.engine) as s:
            return pd.DataFrame(s.execute(query).all(), columns=["job", "step", "value"])

    def artifacts(self, study_id: int) -> pd.DataFrame:
        """Files the study's jobs wrote: job, kind, path (under the artifacts folder), sha256, bytes."""
        query = (select(Artifact.job_id, Artifact.kind, Artifact.path, Artifact.sha256, Artifact.bytes)
                 .join(Job, Job.id == Artifact.job_id).where(Job.study_id == study_id).order_by(Artifact.job_id))
        with session_scope(self.engine) as s:
            return pd.DataFrame(s.execute(query).all(), columns=["job", "kind", "path", "sha256", "bytes"])

    def timings(self, study_id: int) -> dict[str, float]:
        """Wall time from the first start to the last finish, and summed job time, in seconds."""
        query = select(func.min(Job.started_at), func.max(Job.finished_at),
                       func.sum(Job.finished_at - Job.started_at)).where(
            Job.study_id == study_id, Job.result_of.is_(None), Job.status == "succeeded")
        with session_scope(self.engine) as s:
            first, last, total = s.execute(query).one()
        return {"wall": (last - first) if first and last else 0.0, "job_seconds": total or 0.0}

    def workers(self, seen_within: float = 120.0) -> pd.DataFrame:
        """Workers seen in the last `seen_within` seconds, by the database clock."""
        query = (select(Worker.id, Worker.host, Worker.device, Worker.last_seen_at)
                 .where(Worker.last_seen_at > db_time() - seen_within).order_by(Worker.id))
        with session_scope(self.engine) as s:
            return pd.DataFrame(s.execute(query).all(), columns=["id", "host", "device", "last_seen_at"])


def _job_filters(kinds: Iterable[str] | None, labels: dict[str, Any] | None) -> list:
    """SQL conditions on a job's kind and on values of its JSON labels (a None value: label absent)."""
    conditions = [Job.kind.in_(list(kinds))] if kinds is not None else []
    for key, value in (labels or {}).items():
        field = Job.labels[key]
        if value is None:
            conditions.append(field.as_string().is_(None))
        elif isinstance(value, bool) or not isinstance(value, int):
            conditions.append(field.as_string() == str(value))
        else:
            conditions.append(field.as_integer() == value)
    return conditions
