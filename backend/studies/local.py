"""Run a plan in this process, in order, keeping the networks later jobs read in memory."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from backend.data import TaskData, load_task
from backend.jobs import JOB_KINDS, JobOutput, runner
from backend.probes.representations import RepresentationCache
from backend.specs import DataSpec, canonical_json
from backend.studies.plan import PlannedJob
from backend.train import resolve_device
from backend.transfer import SourceNet


@dataclass
class JobOutcome:
    job: PlannedJob
    output: JobOutput
    seconds: float


def run_local(plan: list[PlannedJob], device: str | torch.device = "auto",
              on_done: Callable[[int, JobOutcome], None] | None = None,
              report: Callable[[float, str], None] | None = None) -> list[JobOutcome]:
    """Run every job once, in plan order (dependencies first); identical specs run once."""
    device = resolve_device(device) if isinstance(device, str) else device
    networks: dict[str, SourceNet] = {}
    tasks: dict[str, TaskData] = {}  # the jobs of a study share a few tasks: load each once
    done: dict[str, JobOutput] = {}
    representations = RepresentationCache()  # each network's CKA features once, for all its comparisons
    needed = {k for job in plan for k in job.depends_on}

    def load(spec: DataSpec) -> TaskData:
        key = canonical_json(spec)
        if key not in tasks:
            if len(tasks) >= 4:  # plans go seed by seed: the oldest task is done with
                tasks.pop(next(iter(tasks)))
            tasks[key] = load_task(spec)
        return tasks[key]

    outcomes = []
    for i, job in enumerate(plan):
        started = time.perf_counter()
        if job.key not in done:
            kind = JOB_KINDS[job.kind]
            missing = [k for k in kind.networks(job.spec) if k not in networks]
            missing += [k for k in kind.results(job.spec) if k not in done]
            if missing:
                raise ValueError(f"job {job.key[:12]} runs before the job {missing[0][:12]} it reads: "
                                 "plan out of order")
            options = {} if kind.trains else {"representations": representations}
            if kind.results(job.spec):
                options["results"] = {k: done[k].scalars for k in kind.results(job.spec)}
            output = runner(job.kind)(job.spec, networks, device, report or _quiet, load=load, **options).checked()
            if job.key in needed and kind.yields_network:
                networks[job.key] = SourceNet.of(output.network, job.spec.model)
            output.network = None  # the weights live on in `networks` only where a later job needs them
            done[job.key] = output
        outcome = JobOutcome(job, done[job.key], time.perf_counter() - started)
        outcomes.append(outcome)
        if on_done:
            on_done(i, outcome)
    return outcomes


def _quiet(fraction: float, message: str) -> None:
    pass
