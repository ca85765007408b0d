"""A study as a DAG of jobs. Torch-free: the dashboard expands studies when it submits them.

The queue stores a plan in the database and workers run it job by job; `backend.studies.local`
runs one in this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from backend.jobs import JOB_KINDS, kind_of
from backend.specs import Spec, spec_hash


@dataclass(frozen=True)
class PlannedJob:
    spec: Spec  # one of the job kinds' specs
    labels: dict[str, Any]  # what the job is in the study: seed, treatment, n, probe, ...

    @cached_property
    def key(self) -> str:
        return spec_hash(self.spec)

    @cached_property
    def kind(self) -> str:
        return kind_of(self.spec)

    @cached_property
    def depends_on(self) -> tuple[str, ...]:
        """Keys of the jobs it reads: the networks (a transfer's source, a probe's networks), and the
        jobs whose results it reads (a ranking's scores and fine-tunings)."""
        kind = JOB_KINDS[self.kind]
        return kind.networks(self.spec) + kind.results(self.spec)
