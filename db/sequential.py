"""Sequential seeds: when a study with a precision rule has no job left to run, measure its key
quantity's 95% interval over the seeds so far and, while that is wider than asked and the budget
allows, queue the next seed (its pretraining first).

It stops on the interval's width, never on significance (PAPERS.md, "Sequential seeds"). The rule
and the latest evaluation live in `studies.seed_progress`, set at submit from spec.precision or
later by "Add seeds until decided"; every decision is recomputed from the store, so a worker that
dies anywhere leaves nothing to repair: the next worker to go idle evaluates again. A round is
added under a conditional UPDATE of `studies.seed_round`, so two workers never add the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import func, select, update

from backend.quantities import BUDGET, OPEN, REACHED, STALLED, per_seed, precision_state
from backend.studies import expand_seed, parse_study
from db.dag import topological
from db.queue import Queue, insert_jobs
from db.results import Results
from db.schema import QUEUED, RUNNING, Job, Study
from db.session import session_scope
from db.studies import Studies
from db.submit import new_jobs, seed_rule


@dataclass(frozen=True)
class SeedProgress:
    quantity: str
    asked: float  # the half-width asked for
    max_seeds: int
    seeds: int = 0  # seeds queued so far
    measured: int = 0  # seeds that have measured the quantity
    half_width: float | None = None  # the latest 95% t half-width; None below 2 measured seeds
    mean: float | None = None
    state: str = OPEN  # running | reached | budget | stalled

    @classmethod
    def of(cls, record: dict[str, Any] | None) -> SeedProgress | None:
        return None if not record else cls(**{k: v for k, v in record.items() if k in cls.__dataclass_fields__})

    def text(self) -> str:
        """'seed 5 of at most 12: interval ±1.8, asked ±1.0' and why it stopped, if it did."""
        width = "no interval yet" if self.half_width is None else f"interval ±{self.half_width:.3g}"
        line = f"seed {self.seeds} of at most {self.max_seeds}: {width}, asked ±{self.asked:g} ({self.quantity})"
        return line + {OPEN: "", REACHED: "; done: precision reached", BUDGET: "; done: seed budget spent",
                       STALLED: "; stopped: a seed measured nothing (failed or cancelled jobs)"}[self.state]


@dataclass(frozen=True)
class SeedHistory:
    """What past studies of one shape measured of a quantity, one value per seed."""

    quantity: str
    values: pd.Series  # seed -> the quantity; a seed two studies share is one measurement (one job, reused)
    studies: tuple[int, ...]  # the past studies of the shape that measured it, newest first

    @property
    def std(self) -> float | None:
        """The seed-to-seed standard deviation (n - 1 in the denominator); None below 2 seeds."""
        return float(self.values.std(ddof=1)) if len(self.values) > 1 else None


def seed_history(queue: Queue, spec: dict[str, Any], quantity: str) -> SeedHistory:
    """`quantity` per seed over every past study of `spec`'s shape (db.studies.study_shape: the same
    spec but for seeds, precision and name), pooled: the spread a new study of that shape can expect."""
    found, studies = [], []
    results = Results(queue.engine)
    for study_id in Studies(queue.engine).same_shape(spec):
        values = per_seed(quantity, results.study_scores(study_id), spec)
        if not values.empty:
            found.append(values)
            studies.append(study_id)
    # The same seed in two studies of one shape is the same job, so one value, not two.
    pooled = pd.concat(found).groupby(level=0).mean() if found else pd.Series(dtype=float)
    return SeedHistory(quantity, pooled.rename_axis("seed").rename(quantity), tuple(studies))


def progress(queue: Queue, study_id: int) -> SeedProgress | None:
    with session_scope(queue.engine) as s:
        return SeedProgress.of(s.scalar(select(Study.seed_progress).where(Study.id == study_id)))


def set_rule(queue: Queue, study_id: int, quantity: str, half_width: float, max_seeds: int) -> None:
    """Start (or restart) adding seeds to a study until `quantity`'s interval is +/- half_width wide."""
    with session_scope(queue.engine) as s:
        s.execute(update(Study).where(Study.id == study_id)
                  .values(seed_progress=seed_rule(quantity, half_width, max_seeds)))
    advance(queue, study_id)


def advance_all(queue: Queue) -> list[int]:
    """Evaluate every study whose rule is still open and that has no job queued or running; returns
    the studies a seed was added to."""
    with session_scope(queue.engine) as s:
        rules = s.execute(select(Study.id, Study.seed_progress).where(Study.seed_progress.is_not(None))).all()
        open_ = [i for i, record in rules if (record or {}).get("state") == OPEN]
        busy = set(s.scalars(select(Job.study_id).where(Job.study_id.in_(open_), Job.status.in_((QUEUED, RUNNING)))
                             .distinct()))
    return [i for i in open_ if i not in busy and advance(queue, i)]


def advance(queue: Queue, study_id: int) -> bool:
    """Evaluate one study's rule; True when its next seed was queued."""
    with session_scope(queue.engine) as s:
        study = s.get(Study, study_id)
        rule = SeedProgress.of(study.seed_progress if study else None)
        if rule is None or rule.state != OPEN:
            return False
        live = s.scalar(select(func.count()).where(Job.study_id == study_id, Job.status.in_((QUEUED, RUNNING))))
        spec, round_, priority = dict(study.spec), study.seed_round, s.scalar(
            select(func.max(Job.priority)).where(Job.study_id == study_id)) or 0
    if live:
        return False
    results = Results(queue.engine)
    seeds = sorted(int(v) for v in results.label_values(study_id, ["seed"]).get("seed", []) if v is not None)
    state, summary = precision_state(per_seed(rule.quantity, results.study_scores(study_id), spec), len(seeds),
                                     rule.asked, rule.max_seeds)
    half = summary.half_width if summary.seeds > 1 else None
    now = {**rule.__dict__, "seeds": len(seeds), "measured": summary.seeds, "half_width": half,
           "mean": None if summary.seeds == 0 else summary.mean, "state": state}
    if state != OPEN:
        store_progress(queue, study_id, round_, now)
        return False
    study_spec = parse_study(spec)
    following = max(seeds, default=-1) + 1
    planned = expand_seed(study_spec, following)
    return add_round(queue, study_id, new_jobs(planned), round_, {**now, "seeds": len(seeds) + 1}, priority)


def store_progress(queue: Queue, study_id: int, round_: int, record: dict[str, Any]) -> None:
    """Store an evaluation, unless a round was added meanwhile (that worker's record is newer)."""
    with session_scope(queue.engine) as s:
        s.execute(update(Study).where(Study.id == study_id, Study.seed_round == round_).values(seed_progress=record))


def add_round(queue: Queue, study_id: int, jobs: list, seed_round: int, record: dict[str, Any],
              priority: int = 0) -> bool:
    """Add a seed's jobs to a study, unless another process has already added the round after
    `seed_round`: the round is bumped by a conditional UPDATE in the same transaction, so a round is
    added exactly once. A job whose spec the study already holds is not added again (dependencies
    point at the study's row). False when the round was taken."""
    order = topological(jobs)
    with session_scope(queue.engine) as s:
        won = s.execute(update(Study).where(Study.id == study_id, Study.seed_round == seed_round)
                        .values(seed_round=seed_round + 1, seed_progress=record)).rowcount == 1
        if not won:
            return False
        held = dict(s.execute(select(Job.spec_hash, func.min(Job.id)).where(Job.study_id == study_id)
                              .group_by(Job.spec_hash)).all())
        insert_jobs(s, study_id, order, priority, held)
        return True
