"""Landscape probe specs (Neyshabur et al. 2020; Liu et al. 2019): the path between two networks, the
plane around one, module criticality, and the landscape's smoothness along a network's training."""

from __future__ import annotations

from pydantic import Field, model_validator

from backend.specs.base import Seed, Spec, SpecError, spec_hash
from backend.specs.probes import SPEC_HASH, ProbeImages
from backend.specs.training import TrainJobSpec
from backend.specs.transfer import TransferJobSpec


class InterpolationSettings(Spec):
    """Linear interpolation theta(l) = (1 - l) theta_a + l theta_b (Neyshabur et al.)."""

    points: int = Field(25, ge=2, le=201, description="evenly spaced l in [0, 1], both networks included")
    bn_images: int = Field(512, ge=8, le=100_000, description="training images that re-estimate BatchNorm "
                           "statistics at every point (networks with BatchNorm only)")
    batch_size: int = Field(256, ge=1, description="images per forward pass")


class InterpolationJobSpec(Spec):
    """Test loss and accuracy along the straight line from network a to network b, Frankle et al.'s
    barrier, where their mistakes overlap and how far apart their parameters are."""

    a: str = Field(pattern=SPEC_HASH, description="spec hash of the job that trained network a (l = 0)")
    b: str = Field(pattern=SPEC_HASH, description="spec hash of the job that trained network b (l = 1)")
    images: ProbeImages = Field(description="the images the path is evaluated on (test split by default)")
    settings: InterpolationSettings = InterpolationSettings()

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.a, self.b)))


class PlaneSettings(Spec):
    """Li et al. 2018's filter-normalised random plane around one network."""

    resolution: int = Field(11, ge=3, le=101, description="points per direction")
    span: float = Field(1.0, gt=0, le=10, description="each direction runs over -span..span")
    bn_images: int = Field(512, ge=8, le=100_000, description="training images that re-estimate BatchNorm "
                           "statistics at every point (networks with BatchNorm only)")
    batch_size: int = Field(256, ge=1)
    seed: Seed = Field(0, description="seed of the two random directions")


class PlaneJobSpec(Spec):
    network: str = Field(pattern=SPEC_HASH, description="spec hash of the job that trained the network")
    images: ProbeImages
    settings: PlaneSettings = PlaneSettings()

    @property
    def networks(self) -> tuple[str, ...]:
        return (self.network,)


class CriticalitySettings(Spec):
    """Module criticality (Chatterji et al. 2020): one unit rewound towards its starting weights,
    theta_i(a) = (1 - a) theta_i^0 + a theta_i^final, with Gaussian noise of relative scale sigma."""

    alphas: list[float] = Field([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], min_length=2,
                                description="rewind factors a in [0, 1]: 0 = the unit's start, 1 = trained")
    sigmas: list[float] = Field([0.0, 0.05, 0.1, 0.2], min_length=1,
                                description="noise std relative to each tensor's RMS; must include 0")
    samples: int = Field(3, ge=1, le=100, description="noise draws averaged per point with sigma > 0")
    epsilon: float = Field(0.05, ge=0, le=1, description="error tolerance above the trained error")
    units: list[str] | None = Field(None, description="units to probe; None = all")
    batch_size: int = Field(256, ge=1)
    seed: Seed = Field(0, description="seed of the noise")

    @model_validator(mode="after")
    def _grid(self) -> CriticalitySettings:
        if any(not 0 <= a <= 1 for a in self.alphas):
            raise SpecError("rewind factors a lie in [0, 1]", field="alphas")
        if 0 not in self.sigmas or any(s < 0 for s in self.sigmas):
            raise SpecError("noise scales are >= 0 and include 0 (no noise)", field="sigmas")
        return self


class CriticalityJobSpec(Spec):
    network: str = Field(pattern=SPEC_HASH, description="spec hash of the job that trained the network")
    images: ProbeImages = Field(description="the images errors are measured on (test split)")
    settings: CriticalitySettings = CriticalitySettings()

    @property
    def networks(self) -> tuple[str, ...]:
        return (self.network,)


class SmoothnessSettings(Spec):
    """The landscape along training (Liu et al.; Santurkar et al. 2018): at evenly spaced steps, the
    loss along -eta g for several eta, the change of the gradient, and each unit's top singular value
    of its gradient."""

    points: int = Field(8, ge=2, le=1000, description="probe points, evenly spaced from step 0 to the end")
    step_sizes: list[float] = Field([0.01, 0.05, 0.1, 0.2, 0.5], min_length=1,
                                    description="eta: how far each probe moves along the negative gradient")
    images: int = Field(256, ge=4, le=100_000, description="training images of the fixed probe batch")
    seed: Seed = Field(0, description="seed of the probe batch's draw")

    @model_validator(mode="after")
    def _positive(self) -> SmoothnessSettings:
        if any(eta <= 0 for eta in self.step_sizes):
            raise SpecError("step sizes are > 0", field="step_sizes")
        return self


class SmoothnessJobSpec(Spec):
    """Replays a network's training exactly (same spec, same seeds) and probes the landscape at
    evenly spaced steps: the training job itself stays untouched and is never slowed."""

    network: str = Field(pattern=SPEC_HASH, description="spec hash of the network job replayed")
    run: TrainJobSpec | TransferJobSpec = Field(union_mode="left_to_right", description="that job's spec")
    settings: SmoothnessSettings = SmoothnessSettings()

    @model_validator(mode="after")
    def _same_run(self) -> SmoothnessJobSpec:
        if spec_hash(self.run) != self.network:
            raise SpecError("the replayed run is not the network named", field="run")
        return self

    @property
    def networks(self) -> tuple[str, ...]:
        """The source network a replayed transfer copies its units from."""
        run = self.run
        return (spec_hash(run.source),) if isinstance(run, TransferJobSpec) and run.copies_units else ()
