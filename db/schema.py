"""The store's tables (SQLAlchemy 2.0 typed ORM). Changed only through Alembic migrations.

Times are Unix seconds read from the database's clock (`db_time()`), so leases and heartbeats
from many hosts are judged against one clock.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, false
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement

# Job states. A job is claimable when queued and every job it depends on has succeeded.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, BLOCKED = (
    "queued", "running", "succeeded", "failed", "cancelled", "blocked")
FINISHED = (SUCCEEDED, FAILED, CANCELLED, BLOCKED)


class db_time(FunctionElement):
    """The database server's clock, as Unix seconds (float)."""

    type = Float()
    inherit_cache = True


@compiles(db_time, "sqlite")
def _sqlite_time(element, compiler, **kw):
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_time, "postgresql")
def _postgres_time(element, compiler, **kw):
    return "(extract(epoch from clock_timestamp())::float8)"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]]  # the study spec, canonical form
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[float] = mapped_column(server_default=db_time())
    tags: Mapped[list[Any]] = mapped_column(default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    archived: Mapped[bool] = mapped_column(default=False, server_default=false())  # hidden from lists, kept
    # Sequential seeds (spec.precision): how many seed rounds were added, bumped by a conditional
    # UPDATE so two workers never add the same seed, and the latest evaluation the pages show.
    seed_round: Mapped[int] = mapped_column(default=0, server_default="0")
    seed_progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_study_status", "study_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # train | transfer
    spec: Mapped[str] = mapped_column(Text)  # canonical JSON, kept as text: parsed by the worker
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    # The spec's hash without seeds and halves (backend.specs.base.shape_hash): jobs of one shape cost
    # the same, so past runs of a shape estimate new ones. None on rows from before it was recorded.
    shape: Mapped[str | None] = mapped_column(String(64), index=True)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)  # role in the study: seed, treatment, n
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    priority: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[float | None]
    heartbeat_at: Mapped[float | None]
    progress: Mapped[float] = mapped_column(default=0.0)  # 0..1
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # A job whose spec had already succeeded elsewhere reuses that job's results instead of running.
    result_of: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    created_at: Mapped[float] = mapped_column(server_default=db_time())
    started_at: Mapped[float | None]
    finished_at: Mapped[float | None]


# The claim's order (db.claims): the first claimable job is the first index entry whose dependencies
# succeeded, found without sorting the queue.
Index("ix_jobs_claim", Job.status, Job.priority.desc(), Job.id)


class JobDependency(Base):
    __tablename__ = "job_dependencies"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    depends_on: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True,
                                            index=True)


class Metric(Base):
    """Long format, one value per (job, key, step): per-epoch curves."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_job_key_step", "job_id", "key", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)


class Result(Base):
    """Named scalars (final accuracy, best-10 score) and small tables (as JSON) of a finished job."""

    __tablename__ = "results"
    __table_args__ = (Index("ix_results_job_name", "job_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    table: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class JobScores(Base):
    """A finished job's named scalar results in one row, as JSON text (NaN and infinities as Python's
    json writes them), written and cleared with its results (db.outputs): a study's scores for the
    layer figure are one row per job, not a pivot of the results table."""

    __tablename__ = "job_scores"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    scores: Mapped[str] = mapped_column(Text)


class ArrayRecord(Base):
    """A small array (a CKA matrix, a spectral density) as raw little-endian bytes."""

    __tablename__ = "arrays"
    __table_args__ = (Index("ix_arrays_job_name", "job_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    dtype: Mapped[str] = mapped_column(String(16))  # numpy's name, little-endian: "<f8"
    shape: Mapped[list[Any]]
    data: Mapped[bytes] = mapped_column(LargeBinary)

    def to_numpy(self) -> np.ndarray:
        return np.frombuffer(self.data, dtype=np.dtype(self.dtype)).reshape(self.shape)


def array_record(job_id: int, name: str, array: np.ndarray) -> ArrayRecord:
    a = np.ascontiguousarray(array)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return ArrayRecord(job_id=job_id, name=name, dtype=a.dtype.str, shape=list(a.shape), data=a.tobytes())


class Artifact(Base):
    """A file a job wrote (a checkpoint), under the artifacts folder, with its checksum."""

    __tablename__ = "artifacts"
    __table_args__ = (Index("ix_artifacts_job_kind", "job_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # checkpoint | epoch_checkpoint
    path: Mapped[str] = mapped_column(Text)  # relative to the artifacts folder
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int]


class Share(Base):
    """An immutable snapshot of a dashboard view: its parameters and the rows it showed."""

    __tablename__ = "shares"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    page: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    rows: Mapped[list[Any]]
    caption: Mapped[str] = mapped_column(Text, default="")  # what the view shows: seeds, band, score
    columns: Mapped[list[Any] | None]  # the rows' column names, in the order shown
    spec_hash: Mapped[str | None] = mapped_column(String(64))  # of the study the view shows
    created_at: Mapped[float] = mapped_column(server_default=db_time())


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    device: Mapped[str] = mapped_column(String(100))
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[float] = mapped_column(server_default=db_time())
    last_seen_at: Mapped[float] = mapped_column(server_default=db_time())
