"""Studies from the literature, each expanded into a plan of jobs (torch-free)."""

from __future__ import annotations

from backend.specs import YosinskiSpec
from backend.studies import yosinski
from backend.studies.plan import PlannedJob


def expand(study: YosinskiSpec) -> list[PlannedJob]:
    """A study's jobs, every job after the jobs it depends on."""
    return yosinski.expand(study)
