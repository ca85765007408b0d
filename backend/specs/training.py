"""Training specs: how one network is optimised, and the job that trains one from scratch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backend.specs.base import Spec
from backend.specs.data import DataSpec
from backend.specs.models import ConvNetSpec, ModelSpec


class TrainSpec(Spec):
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(128, ge=1, description="training batch; 512 doubles CPU throughput")
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0, le=10, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only (Nesterov)")
    weight_decay: float = Field(5e-4, ge=0, description="not applied to frozen, norm or bias params")
    schedule: Literal["cosine", "step", "constant"] = Field("cosine", description="per-step decay")
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up before the schedule")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: Literal["none", "crop", "flip_crop"] = Field(
        "none", description="random translation by up to 2 px (crop), plus horizontal flips")
    eval_batch_size: int | None = Field(
        None, ge=1, description="evaluation batch; None: 2048 on CUDA, 128 on the CPU (2.3x faster there than 2048)")
    amp: bool = Field(True, description="bfloat16/float16 autocast; CUDA only")
    channels_last: bool = Field(True, description="NHWC memory format; ~3x faster convs on CPU")
    seed: int = Field(0, description="model init, batch order, augmentation: a CPU run is exact")


class TrainJobSpec(Spec):
    """One network trained from scratch on one task."""

    data: DataSpec
    model: ModelSpec = ConvNetSpec()
    train: TrainSpec = TrainSpec()
