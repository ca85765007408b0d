"""The studies list and study management: search, rename, archive, delete; estimates by job shape,
and past studies of a study's shape.

Deleting a study keeps what other studies reuse: a job of another study that links to one of this
study's runs (`result_of`) inherits that run's results, curves, arrays and artifacts before the
study's rows go, so every remaining link still reads the same numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import Engine, String, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from db.outputs import OUTPUT_TABLES
from db.queue import QueueError
from db.schema import RUNNING, SUCCEEDED, Artifact, Job, Study
from db.session import get_engine, session_scope

NAME_LENGTH = 200  # studies.name is String(200)
# What a study's shape leaves out: its seeds and its rule for adding more (and a name, should a spec carry one).
SHAPE_FREE_FIELDS = frozenset({"seeds", "precision", "name"})
SHAPE_SCAN = 500  # the newest studies of a kind compared by shape; older ones are not searched


def study_shape(spec: dict[str, Any]) -> str:
    """The hash of a study spec (its canonical JSON form) without its seeds, precision rule and name.
    Studies of one shape run the same jobs but for their seeds, so the past ones' seed-to-seed spread
    and run times size a new one's seeds before it is queued."""
    kept = {key: value for key, value in spec.items() if key not in SHAPE_FREE_FIELDS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class StudyListing:
    """One row of the studies list."""

    id: int
    name: str
    kind: str  # the study kind, spec["study"]: "yosinski", ...
    preset: str | None  # None: a custom study (its spec is no preset's own)
    created_at: float
    tags: list[Any]
    notes: str
    archived: bool
    counts: dict[str, int]  # jobs by status
    wall_seconds: float  # first start to last finish of the study's runs (not links)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def origin(self) -> str:
        return self.preset or "custom"


@dataclass(frozen=True)
class DeletedStudy:
    """What deleting a study did."""

    id: int
    name: str
    jobs: int  # jobs deleted with it
    kept: dict[int, int]  # deleted run -> the job of another study that now holds its results
    kept_for: list[int]  # the studies those jobs belong to
    orphaned_paths: list[str]  # artifact files (under the artifacts folder) no job references any more


class Studies:
    def __init__(self, engine: Engine | None = None):
        self.engine = engine or get_engine()

    # ------------------------------------------------------------ reading

    def listing(self, search: str | None = None, archived: bool = False, limit: int = 200,
                include: Iterable[int] = (), kind: str | None = None) -> list[StudyListing]:
        """Newest first; `search` matches the name or a tag (case-insensitive, in SQL); archived
        studies only when `archived`; only studies of `kind` (in SQL) when given. `include` adds those
        studies whatever the filters (a link)."""
        query = select(Study)
        if kind is not None:
            query = query.where(Study.spec["study"].as_string() == kind)
        if search and search.strip():
            text = search.strip()
            query = query.where(or_(Study.name.icontains(text, autoescape=True),
                                    cast(Study.tags, String).icontains(text, autoescape=True)))
        if not archived:
            query = query.where(Study.archived.is_(False))
        with session_scope(self.engine) as s:
            rows = list(s.scalars(query.order_by(Study.id.desc()).limit(limit)))
            missing = set(include) - {r.id for r in rows}
            if missing:
                rows += s.scalars(select(Study).where(Study.id.in_(missing)).order_by(Study.id.desc())).all()
            return _listings(s, rows)

    def get(self, study_id: int) -> StudyListing | None:
        """One study's row, archived or not; None when there is no such study."""
        with session_scope(self.engine) as s:
            row = s.get(Study, study_id)
            return _listings(s, [row])[0] if row is not None else None

    def mean_seconds_by_shape(self, shapes: Iterable[str]) -> dict[str, float]:
        """Mean wall seconds of the succeeded runs (not links) of each of `shapes` that ran before."""
        wanted = set(shapes)
        if not wanted:
            return {}
        query = (select(Job.shape, func.avg(Job.finished_at - Job.started_at))
                 .where(Job.shape.in_(wanted), Job.status == SUCCEEDED, Job.result_of.is_(None),
                        Job.started_at.is_not(None), Job.finished_at.is_not(None))
                 .group_by(Job.shape))
        with session_scope(self.engine) as s:
            return {shape: float(seconds) for shape, seconds in s.execute(query).all() if seconds is not None}

    def same_shape(self, spec: dict[str, Any]) -> list[int]:
        """The studies (archived too, newest first) whose spec equals `spec` (canonical form) but for
        its seeds, precision rule and name: the kind is filtered in SQL, the shape compared here."""
        shape = study_shape(spec)
        query = (select(Study.id, Study.spec).where(Study.spec["study"].as_string() == str(spec.get("study")))
                 .order_by(Study.id.desc()).limit(SHAPE_SCAN))
        with session_scope(self.engine) as s:
            return [study_id for study_id, stored in s.execute(query).all() if study_shape(stored) == shape]

    # ------------------------------------------------------------ managing

    def rename(self, study_id: int, name: str) -> str:
        """Give a study a new name (surrounding spaces dropped); returns it."""
        name = name.strip()
        if not name:
            raise QueueError("a study needs a name")
        if len(name) > NAME_LENGTH:
            raise QueueError(f"a study name has at most {NAME_LENGTH} characters, this one has {len(name)}")
        with session_scope(self.engine) as s:
            _study(s, study_id).name = name
        return name

    def annotate(self, study_id: int, notes: str, tags: list[str]) -> None:
        """Set a study's notes and tags (sorted, without repeats)."""
        with session_scope(self.engine) as s:
            study = _study(s, study_id)
            study.notes, study.tags = notes, sorted(set(tags))

    def set_archived(self, study_id: int, archived: bool = True) -> None:
        """Archive (hide from lists; nothing is deleted) or bring back a study."""
        with session_scope(self.engine) as s:
            _study(s, study_id).archived = archived

    def delete(self, study_id: int) -> DeletedStudy:
        """Delete a study and its jobs, handing each run another study reuses to the first job that
        reuses it; refused (nothing changed) while any of its jobs runs."""
        with session_scope(self.engine) as s:
            study = _lock(s, study_id)
            running = s.scalar(select(func.count()).where(Job.study_id == study_id, Job.status == RUNNING))
            if running:
                raise QueueError(f"study {study_id} has {running} running job{'s' if running != 1 else ''}: "
                                 "cancel them or let them finish before deleting it; nothing was deleted")
            own = select(Job.id).where(Job.study_id == study_id)
            paths = set(s.scalars(select(Artifact.path).where(Artifact.job_id.in_(own))))
            reusers = s.execute(select(Job.result_of, Job.id, Job.study_id)
                                .where(Job.result_of.in_(own), Job.study_id.is_distinct_from(study_id))
                                .order_by(Job.id)).all()
            heirs: dict[int, tuple[int, int]] = {}  # deleted run -> (its heir, the heir's study)
            for run, job_id, other_study in reusers:
                heirs.setdefault(run, (job_id, other_study))
            for run, (heir, _) in heirs.items():
                _hand_over(s, run, heir)
            jobs = s.scalar(select(func.count()).where(Job.study_id == study_id))
            s.execute(delete(Study).where(Study.id == study_id))  # jobs and their rows cascade
            still_used = set(s.scalars(select(Artifact.path).where(Artifact.path.in_(paths)))) if paths else set()
            return DeletedStudy(study_id, study.name, jobs or 0, {run: heir for run, (heir, _) in heirs.items()},
                                sorted({other for _, other in heirs.values() if other is not None}),
                                sorted(paths - still_used))


def _listings(s: Session, rows: list[Study]) -> list[StudyListing]:
    """The studies' rows with their job counts and wall times, in two grouped queries."""
    ids = [r.id for r in rows]
    counts: dict[int, dict[str, int]] = {}
    for study_id, status, n in s.execute(select(Job.study_id, Job.status, func.count())
                                         .where(Job.study_id.in_(ids)).group_by(Job.study_id, Job.status)):
        counts.setdefault(study_id, {})[status] = n
    walls = dict(s.execute(
        select(Job.study_id, func.max(Job.finished_at) - func.min(Job.started_at))
        .where(Job.study_id.in_(ids), Job.result_of.is_(None), Job.status == SUCCEEDED)
        .group_by(Job.study_id)).all())
    return [StudyListing(r.id, r.name, str(r.spec.get("study", "")), r.preset, r.created_at, list(r.tags),
                         r.notes, bool(r.archived), counts.get(r.id, {}), float(walls.get(r.id) or 0.0))
            for r in rows]


def _study(s: Session, study_id: int) -> Study:
    study = s.get(Study, study_id)
    if study is None:
        raise QueueError(f"no study {study_id}")
    return study


def _lock(s: Session, study_id: int) -> Study:
    """The study, with its jobs held until the end of the transaction: a worker claims none of them
    meanwhile (Postgres: row locks, which the claim skips; SQLite: the write lock, taken first)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(Job.id).where(Job.study_id == study_id).with_for_update())
    else:
        s.execute(update(Study).where(Study.id == study_id).values(name=Study.name))
    return _study(s, study_id)


def _hand_over(s: Session, run: int, heir: int) -> None:
    """Make `heir` (a link to `run`) the run itself: its results, curves, arrays and artifacts move
    over with the run's timings and worker, and every other link to `run` points at `heir`."""
    source = s.get(Job, run)
    for table in OUTPUT_TABLES:  # what moves from a deleted run to the job of another study that reuses it
        s.execute(delete(table).where(table.job_id == heir))  # a link holds none; be sure
        s.execute(update(table).where(table.job_id == run).values(job_id=heir))
    s.execute(update(Job).where(Job.id == heir).values(
        result_of=None, status=source.status, started_at=source.started_at, finished_at=source.finished_at,
        worker_id=source.worker_id, attempts=source.attempts,
        message=f"holds the results of job {run} (study {source.study_id}, deleted)"))
    s.execute(update(Job).where(Job.result_of == run, Job.id != heir).values(result_of=heir))
