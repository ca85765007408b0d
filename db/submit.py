"""Submitting a study: expand it into its job DAG and queue that in one transaction."""

from __future__ import annotations

import json

from backend.specs import YosinskiSpec, canonical_json, spec_hash
from backend.studies import expand
from db.queue import NewJob, Queue


def submit_study(queue: Queue, study: YosinskiSpec, name: str | None = None, preset: str | None = None,
                 priority: int = 0) -> int:
    """Queue every job of `study`; returns the study id. Identical jobs are queued once."""
    jobs: dict[str, NewJob] = {}
    for job in expand(study):
        jobs.setdefault(job.key, NewJob(job.key, job.kind, canonical_json(job.spec), job.key, job.labels,
                                        job.depends_on))
    return queue.submit(name or preset or study.study, json.loads(canonical_json(study)), spec_hash(study),
                        list(jobs.values()), preset=preset, priority=priority)
