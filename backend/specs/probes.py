"""Probe specs: measurements of trained networks, each run as a job that depends on the jobs whose
networks it reads (named by their spec hash) and records the estimator settings that produced it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from backend.specs.base import Seed, Spec, SpecError
from backend.specs.data import DataSpec

SPEC_HASH = r"^[0-9a-f]{64}$"

# Parameter subsets a sharpness probe can measure: the whole network, the units copied from the
# source (the first n), the units trained anew (the rest): the curvature split at the transfer cut.
SCOPES = ("all", "transferred", "new")


class ProbeImages(Spec):
    """The fixed, seeded set of images a probe measures on."""

    data: DataSpec = Field(description="the task the images come from (a study uses the network's own)")
    split: Literal["train", "test"] = Field("train", description="train: the training loss's landscape")
    images: int = Field(512, ge=4, le=100_000, description="how many, drawn at random without replacement")
    seed: Seed = Field(0, description="seed of the draw: the same images for every network probed")


class SimilaritySettings(Spec):
    """CKA between the units of two networks (Kornblith et al. 2019)."""

    kernel: Literal["linear", "rbf"] = Field("linear", description="linear CKA, or RBF with a median-distance width")
    estimator: Literal["full", "minibatch"] = Field(
        "full", description="full: exact CKA on all images; minibatch: the unbiased HSIC estimator "
        "(Nguyen, Raghu, Kornblith 2021) averaged over batches, for many images")
    batch_size: int = Field(256, ge=4, description="images per forward pass (and per HSIC batch)")
    pool: Literal["flatten", "mean"] = Field(
        "flatten", description="a unit's representation: its output flattened, or spatially mean-pooled")
    rbf_width: float = Field(0.8, gt=0, description="RBF sigma as a multiple of the median pairwise distance")
    split: Literal["train", "test"] = Field("test", description="images the representations are compared on")
    images: int = Field(512, ge=4, le=100_000, description="probe images")
    seed: Seed = Field(0, description="seed of the image draw")


class SharpnessSettings(Spec):
    """Hessian of the training loss on a probe set, networks in eval mode (Liu et al. 2019)."""

    top_k: int = Field(1, ge=1, le=100, description="top eigenvalues to estimate")
    eig_method: Literal["lanczos", "power"] = Field(
        "lanczos", description="Lanczos (full reorthogonalisation) or power iteration")
    max_iterations: int = Field(100, ge=2, le=10_000, description="cap on Hessian-vector products per eigen-solve")
    tol: float = Field(1e-3, gt=0, lt=1, description="stop when the top-k estimates change by less (relative)")
    trace_method: Literal["hutchinson", "hutch++"] = Field("hutch++", description="stochastic trace estimator")
    trace_samples: int = Field(60, ge=3, le=100_000, description="Hessian-vector products for the trace")
    density: bool = Field(True, description="spectral density by stochastic Lanczos quadrature")
    density_runs: int = Field(1, ge=1, le=100, description="SLQ runs (random start vectors)")
    density_iterations: int = Field(40, ge=2, le=1000, description="Lanczos steps per SLQ run")
    scopes: list[Literal[SCOPES]] = Field(  # type: ignore[valid-type]
        list(SCOPES), min_length=1, description="parameter subsets: all, transferred (units < n), new (units >= n)")
    units: list[list[str]] = Field(default_factory=list, description="further subsets, each a list of unit names")
    batch_size: int = Field(512, ge=1, description="images per Hessian-vector product pass")
    split: Literal["train", "test"] = Field("train", description="the loss whose curvature is measured")
    images: int = Field(512, ge=4, le=100_000, description="probe images")
    seed: Seed = Field(0, description="seed of the image draw and the estimators' random vectors")

    def products(self, scopes: int = 1) -> int:
        """Hessian-vector products a probe of `scopes` parameter scopes is expected to spend: the trace's
        and the density's exactly; the eigen-solver's as measured on the digits networks (Lanczos
        settles a top eigenvalue in 3-5 products at tol 1e-3, power iteration in about 20), never more
        than its cap."""
        per_eigenvalue = LANCZOS_STEPS if self.eig_method == "lanczos" else POWER_STEPS
        eigen = min(self.max_iterations, per_eigenvalue * self.top_k) if self.eig_method == "lanczos" else \
            min(self.max_iterations, per_eigenvalue) * self.top_k
        density = self.density_runs * self.density_iterations if self.density else 0
        return scopes * (eigen + self.trace_samples + density)


# Sharpness a study can afford, richest first: on the New study page and for a preset that leaves
# `probes.sharpness` unset, the first whose estimated cost (backend.studies.plan.sharpness_cost) is
# within SHARPNESS_BUDGET of the training is taken, none when even the last is over it.
SHARPNESS_LADDER: tuple[dict, ...] = (
    # the curvature split at the cut and the spectrum: every scope, SLQ of 16 steps (the bulk and the
    # outliers apart; 40 steps cost more than the rest of the probe), on 64 images
    {"images": 64, "trace_samples": 12, "density": True, "density_iterations": 16, "scopes": list(SCOPES)},
    # the whole network's top eigenvalue and trace, Hutch++ with 20 products on 128 images (the digits
    # presets' settings before this rule)
    {"images": 128, "trace_samples": 20, "density": False, "scopes": ["all"]},
    # the least that still measures: Hutch++ with 9 products on 64 images
    {"images": 64, "trace_samples": 9, "density": False, "scopes": ["all"], "max_iterations": 20},
)
LANCZOS_STEPS, POWER_STEPS = 8, 20  # products per top eigenvalue the estimate assumes


class SimilarityJobSpec(Spec):
    """CKA matrix between every unit of network `a` and every unit of network `b`."""

    a: str = Field(pattern=SPEC_HASH, description="spec hash of the job that trained network A")
    b: str = Field(pattern=SPEC_HASH, description="spec hash of the job that trained network B (may be A)")
    images: ProbeImages
    settings: SimilaritySettings = SimilaritySettings()

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.a, self.b)))


class SharpnessJobSpec(Spec):
    """Top eigenvalues, trace and spectral density of one network's loss Hessian, per parameter scope."""

    network: str = Field(pattern=SPEC_HASH, description="spec hash of the job that trained the network")
    cut: int = Field(0, ge=0, description="units transferred into it (n): where 'transferred' ends")
    images: ProbeImages
    settings: SharpnessSettings = SharpnessSettings()

    @property
    def networks(self) -> tuple[str, ...]:
        return (self.network,)

    @model_validator(mode="after")
    def _units_named(self) -> SharpnessJobSpec:
        if any(not subset for subset in self.settings.units):
            raise SpecError("a unit subset is empty", field="settings.units")
        return self


class GapSettings(Spec):
    """Domain gap between the source and a target, and the target's diversity (Chen et al.)."""

    space: Literal["features", "pixels"] = Field(
        "features", description="features: the pretrained network's penultimate unit; pixels: raw images")
    images: int = Field(1000, ge=20, le=100_000, description="test images drawn per domain")
    seed: Seed = Field(0, description="seed of the draws and of the A-distance's held-out halves")


class ScoreSettings(Spec):
    """Transferability scores from the pretrained network and the target's data, without fine-tuning."""

    images: int = Field(1000, ge=20, le=100_000, description="target training images scored")
    seed: Seed = Field(0, description="seed of the draw")


class DomainGapJobSpec(Spec):
    """Proxy A-distance and MMD between a source and a target sample, in the pretrained network's
    penultimate features or in pixels, and the target's diversity."""

    network: str = Field(pattern=SPEC_HASH, description="spec hash of the pretrained network (its features)")
    source: ProbeImages
    target: ProbeImages
    settings: GapSettings = GapSettings()

    @property
    def networks(self) -> tuple[str, ...]:
        return (self.network,)


class ChenJobSpec(Spec):
    """Chen et al.'s T per layer: D(theta_r, theta_B) / D(theta_A, theta_B), theta_r the saved random
    init of the pretraining, theta_A the pretrained network, theta_B it fine-tuned on the target."""

    pretrained: str = Field(pattern=SPEC_HASH, description="spec hash of the pretraining job (theta_A, theta_r)")
    fine_tuned: str = Field(pattern=SPEC_HASH, description="spec hash of the fine-tuning job (theta_B)")
    units: int = Field(ge=1, description="units copied from theta_A (n): the layers measured; those above "
                       "were re-initialised, so T means nothing there")

    @property
    def networks(self) -> tuple[str, ...]:
        return (self.pretrained, self.fine_tuned)


class ScoresJobSpec(Spec):
    """LogME, LEEP, NCE and H-score of a pretrained network on a target's images, without training."""

    network: str = Field(pattern=SPEC_HASH, description="spec hash of the pretrained network")
    images: ProbeImages
    settings: ScoreSettings = ScoreSettings()

    @property
    def networks(self) -> tuple[str, ...]:
        return (self.network,)


class StudyProbes(Spec):
    """Which probes a study attaches to its networks; None turns one off."""

    sharpness: SharpnessSettings | None = Field(
        SharpnessSettings(), description="sharpness of every network at the end of its training")
    similarity: SimilaritySettings | None = Field(
        SimilaritySettings(), description="CKA of each transfer against the target's baseline and its source")
    treatments: list[str] | None = Field(None, description="probe only these treatments' networks; None = all")
