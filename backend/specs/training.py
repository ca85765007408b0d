"""Training specs: how one network is optimised, and the job that trains one from scratch."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from backend.specs.base import Seed, Spec, SpecError, late_field
from backend.specs.data import DataSpec
from backend.specs.models import ConvNetSpec, ModelSpec, ResNetSpec


class TrainSpec(Spec):
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(128, ge=1, description="training batch; 512 doubles CPU throughput")
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0, le=10, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only (Nesterov)")
    weight_decay: float = Field(5e-4, ge=0, le=10, description="not applied to frozen, norm or bias params")
    schedule: Literal["cosine", "step", "constant"] = Field("cosine", description="per-step decay")
    warmup_epochs: float = Field(0.0, ge=0, le=10_000, description="linear warm-up before the schedule")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: Literal["none", "crop", "flip_crop"] = Field(
        "none", description="random translation by up to 2 px (crop), plus horizontal flips")
    eval_batch_size: int | None = Field(
        None, ge=1, description="evaluation batch; None: 2048 on CUDA, 128 on the CPU (2.3x faster there than 2048)")
    amp: bool = Field(True, description="bfloat16/float16 autocast; CUDA only")
    channels_last: bool = Field(True, description="NHWC memory format; ~3x faster convs on CPU")
    seed: Seed = Field(0, description="model init, batch order, augmentation: a CPU run is exact")
    stop_after: int | None = late_field(
        None, "train only the first k epochs of this schedule: the network at epoch k of the full run (a "
        "pretraining checkpoint, Neyshabur et al.); None = every epoch", ge=1)

    @model_validator(mode="after")
    def _stops_within(self) -> TrainSpec:
        if self.stop_after is not None and self.stop_after > self.epochs:
            raise SpecError(f"stop_after {self.stop_after} is beyond the schedule's {self.epochs} epochs",
                            field="stop_after")
        return self

    @property
    def epochs_run(self) -> int:
        return self.stop_after or self.epochs


def check_batch_norm(spec: Any) -> None:
    """A SpecError naming train.batch_size when a network with BatchNorm (a convnet with norm "batch", a
    ResNet) would train on batches of one image: where its map has shrunk to one pixel, BatchNorm gets a
    single value per channel and torch refuses it, on a worker. Run at submit on a study or a job."""
    model, train = getattr(spec, "model", None), getattr(spec, "train", None)
    if train is None or train.batch_size > 1:
        return
    if (model.norm == "batch") if isinstance(model, ConvNetSpec) else isinstance(model, ResNetSpec):
        raise SpecError("BatchNorm needs at least 2 images per training batch: set train.batch_size to 2 or "
                        "more, or model.norm to group or none", field="train.batch_size")


class TrainJobSpec(Spec):
    """One network trained from scratch on one task."""

    data: DataSpec
    model: ModelSpec = ConvNetSpec()
    train: TrainSpec = TrainSpec()
