"""Run a plan in this process, in order, keeping base networks in memory for their transfers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from backend.data import TaskData, load_task
from backend.specs import TrainJobSpec, canonical_json
from backend.studies.plan import PlannedJob
from backend.train import ProgressFn, Trained, train_job
from backend.transfer import SourceNet, transfer_job


@dataclass
class JobOutcome:
    job: PlannedJob
    result: dict[str, Any]  # TrainResult.to_dict()
    seconds: float


def run_local(plan: list[PlannedJob], device: str | torch.device = "auto",
              on_done: Callable[[int, JobOutcome], None] | None = None,
              progress: ProgressFn | None = None) -> list[JobOutcome]:
    """Run every job once, in plan order (dependencies first); identical specs run once."""
    sources: dict[str, SourceNet] = {}
    tasks: dict[str, TaskData] = {}  # the jobs of a study share a few tasks: load each once
    done: dict[str, dict[str, Any]] = {}
    needed = {k for job in plan for k in job.depends_on}
    outcomes = []
    for i, job in enumerate(plan):
        started = time.perf_counter()
        if job.key not in done:
            data_key = canonical_json(job.spec.data)
            if data_key not in tasks:
                if len(tasks) >= 4:  # plans go seed by seed: the oldest task is done with
                    tasks.pop(next(iter(tasks)))
                tasks[data_key] = load_task(job.spec.data)
            trained = _run(job, sources, tasks[data_key], device, progress)
            done[job.key] = trained.result.to_dict()
            if job.key in needed:
                sources[job.key] = SourceNet.of(trained)
        outcome = JobOutcome(job, done[job.key], time.perf_counter() - started)
        outcomes.append(outcome)
        if on_done:
            on_done(i, outcome)
    return outcomes


def _run(job: PlannedJob, sources: dict[str, SourceNet], data: TaskData, device, progress) -> Trained:
    if isinstance(job.spec, TrainJobSpec):
        return train_job(job.spec, device, progress, data)
    missing = [k for k in job.depends_on if k not in sources]
    if missing:
        raise ValueError(f"job {job.key[:12]} runs before its source {missing[0][:12]}: plan out of order")
    source = sources[job.depends_on[0]] if job.depends_on else None
    return transfer_job(job.spec, source, device, progress, data)
