"""The contract: typed specs for data, models and training, validated once, at the edge.

The UI, the CLI, the queue and the engine all speak these. A spec has a canonical JSON form and a
content hash, so the same spec is never computed twice. This module must not import torch: the web
tier imports it on machines without a GPU stack.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class SpecError(ValueError):
    """A spec that cannot be run. The message names the offending field, e.g. `data.shifts.0.block`."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class Spec(BaseModel):
    """Base of every spec: immutable, unknown fields rejected (a typo is an error, not a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- data sources

TORCHVISION_SETS = (
    "MNIST", "FashionMNIST", "KMNIST", "EMNIST", "QMNIST", "USPS",
    "SVHN", "CIFAR10", "CIFAR100", "STL10",
)


class DigitsSource(Spec):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images): real images, always offline."""

    kind: Literal["digits"] = "digits"
    test_fraction: float = Field(0.2, gt=0, lt=1, description="held-out share, stratified, fixed split")


class SyntheticSource(Spec):
    """Procedural images: each class is a fixed arrangement of strokes; `gap` restyles every class
    continuously (0 = plain strokes on black, 1 = textured strokes on a textured background), so a
    test can dial the domain gap between two otherwise identical tasks."""

    kind: Literal["synthetic"] = "synthetic"
    n_classes: int = Field(10, ge=2, le=1000, description="number of classes")
    train_per_class: int = Field(100, ge=1, description="training images per class")
    test_per_class: int = Field(30, ge=1, description="test images per class")
    size: int = Field(16, ge=4, le=512, description="native side length in pixels")
    gap: float = Field(0.0, ge=0, le=1, description="domain style, 0..1; same classes at any gap")
    class_seed: int = Field(0, description="seed of the class shapes; same seed = same task")


class TorchvisionSource(Spec):
    """A torchvision data set read from `root` in torchvision's own layout."""

    kind: Literal["torchvision"] = "torchvision"
    name: Literal[TORCHVISION_SETS]  # type: ignore[valid-type]
    root: str = Field(description="folder torchvision reads, e.g. ../shared/datasets for MNIST")
    download: bool = Field(False, description="fetch when missing; needs a network")
    split: str = Field("balanced", description="EMNIST split (balanced, byclass, digits, ...)")


class FolderSource(Spec):
    """An ImageFolder tree: `root/train/<class>/*` and `root/test/<class>/*`, or one tree split here."""

    kind: Literal["folder"] = "folder"
    root: str = Field(description="folder with train/ and test/, or with one sub-folder per class")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="held-out share when there is no test/")


Source = Annotated[
    Union[DigitsSource, SyntheticSource, TorchvisionSource, FolderSource], Field(discriminator="kind")
]


# ---------------------------------------------------------------- class selection and shifts

class ClassSelection(Spec):
    """Which classes a task keeps, applied in this order: include, first, half, fraction.
    Kept classes are renumbered 0..k-1 in their original order."""

    include: list[int] | None = Field(None, description="explicit original class indices")
    first: int | None = Field(None, ge=1, description="keep the first k classes")
    half: Literal["A", "B"] | None = Field(None, description="Yosinski's random half A or B")
    fraction: float | None = Field(None, gt=0, le=1, description="random share of classes (diversity)")
    seed: int = Field(0, description="seed of the random halves and fractions")

    @model_validator(mode="after")
    def _distinct(self) -> ClassSelection:
        if self.include is not None and len(set(self.include)) != len(self.include):
            raise SpecError("class indices must be distinct", field="include")
        return self


class BlockShuffle(Spec):
    """Cut each image into b x b blocks and permute them with one fixed permutation (Neyshabur)."""

    kind: Literal["block_shuffle"] = "block_shuffle"
    block: int = Field(ge=1, description="block side in pixels; must divide the image size")
    seed: int = Field(0, description="seed of the one permutation used for every image")


class PixelShuffle(Spec):
    """Permute every value of the image, channels included, with one fixed permutation."""

    kind: Literal["pixel_shuffle"] = "pixel_shuffle"
    seed: int = 0


class Rotation(Spec):
    kind: Literal["rotation"] = "rotation"
    degrees: float = Field(description="counter-clockwise, the same for every image")


class Inversion(Spec):
    kind: Literal["inversion"] = "inversion"


class GaussianNoise(Spec):
    kind: Literal["noise"] = "noise"
    std: float = Field(gt=0, le=1, description="standard deviation in units of the full range")
    seed: int = 0


class Blur(Spec):
    kind: Literal["blur"] = "blur"
    sigma: float = Field(gt=0, le=20, description="Gaussian sigma in pixels")


class Contrast(Spec):
    kind: Literal["contrast"] = "contrast"
    factor: float = Field(ge=0, le=10, description="0 = flat grey, 1 = unchanged")


Shift = Annotated[
    Union[BlockShuffle, PixelShuffle, Rotation, Inversion, GaussianNoise, Blur, Contrast],
    Field(discriminator="kind"),
]


class DataSpec(Spec):
    """A task: a source, the classes kept, how much data, the input format and the target shifts."""

    source: Source
    classes: ClassSelection = ClassSelection()
    per_class: int | None = Field(None, ge=1, description="cap on training images per class")
    test_per_class: int | None = Field(None, ge=1, description="cap on test images per class")
    size: int | None = Field(None, ge=4, le=512, description="resize to size x size; None = native")
    channels: Literal[1, 3] | None = Field(None, description="1 = grey, 3 = RGB; None = native")
    shifts: list[Shift] = Field(default_factory=list, description="applied in order, train and test")
    seed: int = Field(0, description="seed of the per-class caps")

    @model_validator(mode="after")
    def _blocks_divide_size(self) -> DataSpec:
        size = self.size or (self.source.size if isinstance(self.source, SyntheticSource) else None)
        if size is not None:
            check_block_sizes(self.shifts, size, size, where="shifts")
        return self


def check_block_sizes(shifts: list, height: int, width: int, where: str = "data.shifts") -> None:
    """A block shuffle needs blocks that tile the image exactly."""
    for i, shift in enumerate(shifts):
        if isinstance(shift, BlockShuffle) and (height % shift.block or width % shift.block):
            raise SpecError(
                f"block size {shift.block} does not divide the {height}x{width} image "
                f"(pick a divisor of {height}, or set data.size)",
                field=f"{where}.{i}.block",
            )


# ---------------------------------------------------------------- models

class ConvNetSpec(Spec):
    """Yosinski-style net: conv blocks (conv 3x3, norm, ReLU, 2x2 max-pool while the map is > 1
    pixel) then fully connected layers; each block and each fc layer is one transfer unit."""

    arch: Literal["convnet"] = "convnet"
    channels: list[int] = Field([32, 64, 128], min_length=1, description="width of each conv block")
    hidden: list[int] = Field([128], description="width of each hidden fc layer")
    norm: Literal["batch", "group", "none"] = Field("batch", description="normalisation in conv blocks")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before each fc layer")


class MLPSpec(Spec):
    arch: Literal["mlp"] = "mlp"
    hidden: list[int] = Field([256, 128], min_length=1, description="width of each hidden layer")
    dropout: float = Field(0.0, ge=0, lt=1)


class ResNetSpec(Spec):
    """torchvision ResNet; units stem, layer1..layer4, fc."""

    arch: Literal["resnet18", "resnet50"] = "resnet18"
    small_input: bool = Field(True, description="3x3 stride-1 stem, no max-pool (for images < 64 px)")
    pretrained: bool = Field(False, description="torchvision ImageNet weights; needs them cached")


ModelSpec = Annotated[Union[ConvNetSpec, MLPSpec, ResNetSpec], Field(discriminator="arch")]


# ---------------------------------------------------------------- training

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
    eval_batch_size: int = Field(2048, ge=1, description="evaluation batch, in inference mode")
    amp: bool = Field(True, description="bfloat16/float16 autocast; CUDA only")
    channels_last: bool = Field(True, description="NHWC memory format; ~3x faster convs on CPU")
    seed: int = Field(0, description="model init, batch order, augmentation: a CPU run is exact")


class TrainJobSpec(Spec):
    """One network trained from scratch on one task."""

    data: DataSpec
    model: ModelSpec = ConvNetSpec()
    train: TrainSpec = TrainSpec()

    @field_validator("model", mode="before")
    @classmethod
    def _default_arch(cls, value: Any) -> Any:
        """`{"channels": [8, 16]}` means a convnet, as the default model is one."""
        return {"arch": "convnet", **value} if isinstance(value, dict) else value


# ---------------------------------------------------------------- parsing and hashing

S = TypeVar("S", bound=BaseModel)


def parse(cls: type[S], obj: Any, prefix: str = "") -> S:
    """Validate `obj` (a dict, or a JSON string) as `cls`; errors become one SpecError naming fields."""
    try:
        if isinstance(obj, (str, bytes)):
            return cls.model_validate_json(obj)
        return cls.model_validate(obj)
    except ValidationError as exc:
        raise spec_error(exc, prefix) from None


def spec_error(exc: ValidationError, prefix: str = "") -> SpecError:
    lines, fields = [], []
    for err in exc.errors():
        # Drop the discriminator tags pydantic inserts into union locations (e.g. 'block_shuffle').
        loc = [str(p) for p in err["loc"] if p not in _UNION_TAGS]
        msg = err["msg"].removeprefix("Value error, ")
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, SpecError) and cause.field:
            loc.append(cause.field)
            msg = str(cause).split(": ", 1)[1]
        field = ".".join(([prefix] if prefix else []) + loc) or "spec"
        fields.append(field)
        lines.append(f"{field}: {msg}")
    return SpecError("; ".join(lines) if len(lines) > 1 else lines[0].split(": ", 1)[1],
                     field=None if len(lines) > 1 else fields[0])


# Pydantic puts the discriminator value of a union member into error locations
# (`source.torchvision.root`); field names read better without it.
_UNION_TAGS = {
    tag for union in (Source, Shift, ModelSpec) for member in union.__origin__.__args__
    for name in ("kind", "arch") if name in member.model_fields
    for tag in member.model_fields[name].annotation.__args__
}


def canonical_json(spec: BaseModel) -> str:
    """One text per spec: defaults filled in, keys sorted, no whitespace."""
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def spec_hash(spec: BaseModel) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()
