"""A study as a DAG of jobs, and an in-process runner for it.

The queue stores the same plan in the database and workers run it job by job; `run_local` runs it
here, in order, keeping base networks in memory for the transfers that depend on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from backend.data import TaskData, load_task
from backend.specs import TrainJobSpec, TransferJobSpec, canonical_json, spec_hash
from backend.train import ProgressFn, Trained, train_job
from backend.transfer import SourceNet, transfer_job

JobSpec = TrainJobSpec | TransferJobSpec


@dataclass(frozen=True)
class PlannedJob:
    spec: JobSpec
    labels: dict[str, Any]  # what the job is in the study: seed, treatment, n
    depends_on: tuple[str, ...] = ()  # keys of the jobs whose networks it starts from

    @property
    def key(self) -> str:
        return spec_hash(self.spec)

    @property
    def kind(self) -> str:
        return "train" if isinstance(self.spec, TrainJobSpec) else "transfer"


def transfer_source_key(spec: TransferJobSpec) -> tuple[str, ...]:
    """The job a transfer depends on: its source network's training, when it copies units."""
    copies = spec.transfer.init == "source" and spec.transfer.n > 0
    return (spec_hash(spec.source),) if copies and spec.source is not None else ()


@dataclass
class JobOutcome:
    job: PlannedJob
    result: dict[str, Any]  # TrainResult.to_dict()
    seconds: float
    sources: dict[str, SourceNet] = field(default_factory=dict, repr=False)


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
