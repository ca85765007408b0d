"""A study as a DAG of jobs. Torch-free: the dashboard expands studies when it submits them.

The queue stores a plan in the database and workers run it job by job; `backend.studies.local`
runs one in this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.specs import SpecError, TrainJobSpec, TransferJobSpec, parse, spec_hash

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
    return (spec_hash(spec.source),) if spec.copies_units else ()


JOB_KINDS: dict[str, type] = {"train": TrainJobSpec, "transfer": TransferJobSpec}


def parse_job(kind: str, spec_json: str) -> JobSpec:
    """A stored job's spec, validated; an unknown kind or a malformed spec is a SpecError."""
    if kind not in JOB_KINDS:
        raise SpecError(f"unknown job kind {kind!r} (known: {', '.join(JOB_KINDS)})", field="kind")
    return parse(JOB_KINDS[kind], spec_json)
