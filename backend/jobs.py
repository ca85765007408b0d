"""Job kinds: what each kind of job is, which engine function runs it and what it writes.

Torch-free: the dashboard and the submit path read this registry; only the worker and the local
runner import the engine functions, by name, when they run a job. Adding a probe is its engine
module, a spec, a runner and one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from backend.specs import (
    ChenJobSpec, CriticalityJobSpec, DomainGapJobSpec, InterpolationJobSpec, PlaneJobSpec, ScoresJobSpec,
    SharpnessJobSpec, SimilarityJobSpec, SmoothnessJobSpec, Spec, SpecError, TrainJobSpec, TransferJobSpec, parse,
    spec_hash,
)
from backend.specs.pretrained import NetworkFile
from backend.specs.preview import DataPreviewSpec
from backend.specs.selection import RankAgreementJobSpec


@dataclass(frozen=True)
class JobKind:
    spec: type[Spec]
    runner: str  # "module:function", imported when a job of this kind runs
    writes: tuple[str, ...]  # what its results hold: checkpoint, scalars, curves, matrices
    description: str
    networks: Callable[[Any], tuple[str, ...]]  # spec hashes of the networks it reads
    results: Callable[[Any], tuple[str, ...]] = lambda spec: ()  # spec hashes of the jobs whose scalars it reads

    @property
    def yields_network(self) -> bool:
        """Whether it yields a network later jobs read (saved as a checkpoint)."""
        return "checkpoint" in self.writes

    @property
    def trains(self) -> bool:
        """Whether it trains that network (resumed per epoch, with training curves; an import does not)."""
        return self.yields_network and "curves" in self.writes


def _source_network(spec: TransferJobSpec) -> tuple[str, ...]:
    return (spec_hash(spec.source),) if spec.copies_units else ()


JOB_KINDS: dict[str, JobKind] = {
    "train": JobKind(TrainJobSpec, "backend.runners:run_train", ("checkpoint", "scalars", "curves"),
                     "a network trained from scratch", lambda spec: ()),
    "transfer": JobKind(TransferJobSpec, "backend.runners:run_transfer", ("checkpoint", "scalars", "curves"),
                        "a network whose first n units come from a source network", _source_network),
    "import": JobKind(NetworkFile, "backend.pretrained:run_import", ("checkpoint", "scalars"),
                      "a pretrained network imported from a weights file (checked, mapped onto named units)",
                      lambda spec: ()),
    "similarity": JobKind(SimilarityJobSpec, "backend.runners:run_similarity", ("scalars", "matrices"),
                          "CKA between every unit of two networks", lambda spec: spec.networks),
    "sharpness": JobKind(SharpnessJobSpec, "backend.runners:run_sharpness", ("scalars", "curves", "matrices"),
                         "Hessian top eigenvalues, trace and spectral density", lambda spec: spec.networks),
    "gap": JobKind(DomainGapJobSpec, "backend.measures:run_gap", ("scalars",),
                   "the domain gap source -> target (proxy A-distance, MMD) and the target's diversity",
                   lambda spec: spec.networks),
    "chen_t": JobKind(ChenJobSpec, "backend.measures:run_chen_t", ("scalars", "matrices"),
                      "Chen et al.'s T per layer: how near the fine-tuned layer stayed to the pretrained one",
                      lambda spec: spec.networks),
    "scores": JobKind(ScoresJobSpec, "backend.measures:run_scores", ("scalars",),
                      "transferability scores of a pretrained network on a target (LogME, LEEP, NCE, H-score)",
                      lambda spec: spec.networks),
    "interpolation": JobKind(InterpolationJobSpec, "backend.landscapes:run_interpolation", ("scalars", "matrices"),
                             "test loss and accuracy along the line between two networks (barrier), their "
                             "mistake overlap and parameter distance", lambda spec: spec.networks),
    "plane": JobKind(PlaneJobSpec, "backend.landscapes:run_plane", ("scalars", "matrices"),
                     "the loss on a filter-normalised random plane around a network", lambda spec: spec.networks),
    "criticality": JobKind(CriticalityJobSpec, "backend.landscapes:run_criticality", ("scalars", "matrices"),
                           "module criticality: the error with one unit rewound towards its start, plus noise",
                           lambda spec: spec.networks),
    "smoothness": JobKind(SmoothnessJobSpec, "backend.landscapes:run_smoothness", ("scalars", "curves"),
                          "the landscape along a network's training: loss spread, gradient change, gradient "
                          "singular values (a replay of its run)", lambda spec: spec.networks),
    "rank_agreement": JobKind(RankAgreementJobSpec, "backend.measures:run_rank_agreement", ("scalars",),
                              "how well each transferability score ranks candidate sources by fine-tuned accuracy "
                              "(weighted Kendall's tau, Spearman, top-1 hit)", lambda spec: (),
                              lambda spec: spec.results),
    "preview": JobKind(DataPreviewSpec, "backend.runners:run_preview", ("scalars", "matrices"),
                       "a look at the data: classes, images per split, samples, each seed's halves A/B",
                       lambda spec: ()),
}
# Kinds whose jobs train a network: the accuracy figures read these; probes read the networks.
NETWORK_KINDS = tuple(name for name, kind in JOB_KINDS.items() if kind.trains)


def kind_of(spec: Spec) -> str:
    """The job kind whose spec class `spec` is."""
    for name, kind in JOB_KINDS.items():
        if type(spec) is kind.spec:
            return name
    raise SpecError(f"{type(spec).__name__} is not a job spec", field="kind")


def parse_job(kind: str, spec_json: str | dict) -> Spec:
    """A stored job's spec, validated; an unknown kind or a malformed spec is a SpecError."""
    if kind not in JOB_KINDS:
        raise SpecError(f"unknown job kind {kind!r} (known: {', '.join(JOB_KINDS)})", field="kind")
    return parse(JOB_KINDS[kind].spec, spec_json)


def runner(kind: str) -> Callable[..., JobOutput]:
    """The engine function that runs jobs of `kind` (imports torch)."""
    module, _, name = JOB_KINDS[kind].runner.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass
class JobOutput:
    """What a finished job hands to whoever stores it (the worker) or keeps it (the local runner)."""

    scalars: dict[str, float] = field(default_factory=dict)  # -> the results table
    curves: list[tuple[str, int, float]] = field(default_factory=list)  # (key, step, value) -> metrics
    arrays: dict[str, Any] = field(default_factory=dict)  # name -> numpy array -> the arrays table
    tables: dict[str, Any] = field(default_factory=dict)  # small JSON: estimator settings, provenance
    network: Any = None  # backend.train.Trained, or backend.pretrained.Imported: for kinds that yield a network

    def checked(self) -> JobOutput:
        """Itself, once sure no scalar and table share a name: the store keeps both as named results of the
        job, one row per name, so a clash would fail the job when it is stored, after all its work."""
        both = sorted(set(self.scalars) & set(self.tables))
        if both:
            raise ValueError(f"a scalar and a table are both named {both[0]!r}: rename one in the job's runner")
        return self
