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
from backend.specs.memory import training_images


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


# ---- what a study's sharpness probes cost against its training, from the spec alone

# Probes at most this many times the training's time (issue 18): sharpness is on by default where its
# estimate stays within it.
SHARPNESS_BUDGET = 3.0
# One Hessian-vector product on one image, in images of training (one forward-backward pass each, the
# optimiser step and each epoch's evaluation shared out over them): a double backward, about 2-3
# forward-backward passes, plus each product's fixed cost, large beside the digits nets' tiny images.
# CALIBRATED once against bench/study_probes.py --seeds 1 (yosinski-digits at the quick size: 27
# networks, 12 epochs on ~720 images; products as SharpnessSettings.products counts them; wall time,
# 2 threads on 2 shared cores, load 5-7): sharpness 697 s against training 295 s with every scope and
# the density on 64 images (the rule's choice there) gives 3.0. The same bench before the rule (the
# whole network on 128 images) gave 1.9, and CPU seconds of one thread 1.5-1.7: 3.0 is the dearest,
# so the rule errs towards the cheaper settings.
HVP_COST = 3.0
TRAINING_KINDS = ("train", "transfer")


@dataclass(frozen=True)
class ProbeCost:
    """Work in images passed: training (epochs x training images, every network), sharpness (products x
    probe images x HVP_COST, every sharpness probe); `ratio` the second over the first, None when a
    network's training images are unknown (a folder without per_class)."""

    training: float
    sharpness: float
    ratio: float | None

    @property
    def over_budget(self) -> bool:
        return self.ratio is not None and self.ratio > SHARPNESS_BUDGET

    def text(self) -> str:
        if self.ratio is None:
            return "sharpness's cost against the training is not estimated (a task's image count is unknown)"
        return f"sharpness adds about {self.ratio:.1f}x the training's time"


def sharpness_cost(plan: list[PlannedJob]) -> ProbeCost:
    """The estimate for a plan: per network, its epochs x its training images; per sharpness probe, the
    products its settings spend on its scopes (SharpnessSettings.products; 'transferred' is empty at
    n = 0) x its probe images (no more than the task has) x HVP_COST."""
    training, sharpness, known = 0.0, 0.0, True
    for job in plan:
        if job.kind in TRAINING_KINDS:
            images = training_images(job.spec.data)
            known = known and images is not None
            training += job.spec.train.epochs * (images or 0)
        elif job.kind == "sharpness":
            s, cut = job.spec.settings, job.spec.cut
            scopes = sum(1 for scope in s.scopes if scope != "transferred" or cut > 0) + len(s.units)
            available = training_images(job.spec.images.data) if s.split == "train" else None
            sharpness += HVP_COST * s.products(scopes) * min(s.images, available or s.images)
    return ProbeCost(training, sharpness, sharpness / training if known and training > 0 else None)
