"""Submitting a study: expand it into its job DAG and queue that in one transaction."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from backend.jobs import JOB_KINDS, parse_job
from backend.specs import Spec, canonical_json, set_field, spec_hash
from backend.specs.base import shape_hash
from backend.specs.classes import check_classes
from backend.specs.memory import check_fits
from backend.specs.pretrained import pin_files
from backend.specs.roots import check_data_roots
from backend.specs.training import check_batch_norm
from backend.studies import STUDY_KINDS, expand
from backend.studies.plan import PlannedJob
from db.queue import NewJob, Queue


def check_study(study: Spec, plan: list[PlannedJob] | None = None) -> None:
    """What the spec's validation cannot know: that its data folders lie inside the data roots, that
    every task's class ids exist in its source (listed without loading an image; folders only once
    inside the roots), and that each network it trains fits in a worker's memory; and, kept out of
    parse so that stored job specs still read, that a BatchNorm network trains on batches of 2 or more.
    A SpecError naming the field otherwise. `plan`: the study's expansion, when the caller has it."""
    check_data_roots(study)
    pin_files(study)  # every weights file readable, and the same bytes as any digest the study records
    check_batch_norm(study)
    plan = expand(study) if plan is None else plan
    check_classes(study, ((job.spec, job.labels) for job in plan), dict(STUDY_KINDS[study.study].class_fields))
    for job in plan:
        if JOB_KINDS[job.kind].trains:
            check_fits(job.spec)


def check_job(spec: Spec) -> None:
    """check_study's checks for one network job run outside a study (`python -m backend train`): the
    same data roots, batch, class ids and memory, so what trains here also submits."""
    check_data_roots(spec)
    check_batch_norm(spec)
    check_classes(spec)
    check_fits(spec)


def plan_size(study: Spec) -> dict[str, int]:
    """How many jobs of each kind submitting `study` would create."""
    kinds = {job.key: job.kind for job in expand(study)}  # identical jobs are queued once
    return dict(sorted(Counter(kinds.values()).items()))


def planned_shapes(study: Spec) -> list[str]:
    """The shape of each job submitting `study` would create (identical jobs once), for estimates."""
    return list(_shapes(expand(study)).values())


def _shapes(jobs: list[PlannedJob]) -> dict[str, str]:
    """spec hash -> shape of each job; a job's dependencies come before it, so a probe naming its
    networks by hash gets their shapes."""
    shapes: dict[str, str] = {}
    for job in jobs:
        shapes.setdefault(job.key, shape_hash(job.spec, shapes))
    return shapes


def submit_study(queue: Queue, study: Spec, name: str | None = None, preset: str | None = None,
                 priority: int = 0) -> int:
    """Queue every job of `study` (any study kind); returns the study id. Identical jobs are queued once.
    A data folder outside the allowed data roots, or a network that cannot fit in a worker's memory,
    is a SpecError, and nothing is queued. Weights files are pinned first: the study records their digests."""
    study = pin_files(study)
    planned = expand(study)
    check_study(study, planned)
    precision = getattr(study, "precision", None)
    progress = None if precision is None else seed_rule(precision.quantity, precision.half_width, precision.max_seeds)
    return queue.submit(name or preset or study.study, json.loads(canonical_json(study)), spec_hash(study),
                        new_jobs(planned), preset=preset, priority=priority, seed_progress=progress)


def new_jobs(planned: list[PlannedJob]) -> list[NewJob]:
    """The queue's rows of a plan; identical jobs once."""
    jobs: dict[str, NewJob] = {}
    shapes = _shapes(planned)
    for job in planned:
        jobs.setdefault(job.key, NewJob(job.key, job.kind, canonical_json(job.spec), job.key, job.labels,
                                        job.depends_on, shapes[job.key]))
    return list(jobs.values())


def seed_rule(quantity: str, half_width: float, max_seeds: int) -> dict[str, Any]:
    """A study's sequential-seeds record as first stored: the rule, nothing measured yet."""
    return {"quantity": quantity, "asked": half_width, "max_seeds": max_seeds, "state": "running"}


def clone_job(queue: Queue, job_id: int, edits: dict[str, Any]) -> int:
    """Queue a copy of `job_id` with spec fields changed, e.g. {"train.epochs": 20}; the edited spec
    is validated first (a SpecError names the field) and nothing is queued when it is invalid."""
    kind, text = queue.job_spec(job_id)
    spec = json.loads(text)
    for path, value in edits.items():
        set_field(spec, path, value)
    edited = parse_job(kind, spec)
    return queue.clone(job_id, canonical_json(edited), spec_hash(edited))
