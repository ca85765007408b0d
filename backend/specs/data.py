"""Data specs: where images come from, which classes, how many, in what format, how shifted."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, model_validator

from backend.specs.base import Seed, Spec, SpecError, Whole


TORCHVISION_SETS = (
    "MNIST", "FashionMNIST", "KMNIST", "EMNIST", "QMNIST", "USPS",
    "SVHN", "CIFAR10", "CIFAR100", "STL10",
)


def _non_empty_path(value: str) -> str:
    """An empty path would silently mean the working directory."""
    if not value.strip():
        raise SpecError("no folder given: type the path of the data set's folder")
    return value


# A folder a user typed; never empty.
FolderPath = Annotated[str, AfterValidator(_non_empty_path)]


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
    class_seed: Seed = Field(0, description="seed of the class shapes; same seed = same task")


class TorchvisionSource(Spec):
    """A torchvision data set read from `root` in torchvision's own layout."""

    kind: Literal["torchvision"] = "torchvision"
    name: Literal[TORCHVISION_SETS]  # type: ignore[valid-type]
    root: FolderPath = Field(description="folder torchvision reads, e.g. ../shared/datasets for MNIST")
    download: bool = Field(False, description="fetch when missing; needs a network")
    split: Literal["balanced", "byclass", "bymerge", "digits", "letters", "mnist"] = Field(
        "balanced", description="EMNIST's split (torchvision's names); ignored by the other data sets")


class FolderSource(Spec):
    """An ImageFolder tree: `root/train/<class>/*` and `root/test/<class>/*`, or one tree split here."""

    kind: Literal["folder"] = "folder"
    root: FolderPath = Field(description="folder with train/ and test/, or with one sub-folder per class")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="held-out share when there is no test/")


Source = Annotated[
    Union[DigitsSource, SyntheticSource, TorchvisionSource, FolderSource], Field(discriminator="kind")
]


# ---------------------------------------------------------------- class selection and shifts

class ClassSelection(Spec):
    """Which classes a task keeps, applied in this order: include, first, half, fraction.
    Kept classes are renumbered 0..k-1 in their original order."""

    include: list[Whole] | None = Field(None, description="explicit original class indices")
    first: int | None = Field(None, ge=1, description="keep the first k classes")
    half: Literal["A", "B"] | None = Field(None, description="Yosinski's random half A or B")
    fraction: float | None = Field(None, gt=0, le=1, description="random share of classes (diversity)")
    seed: Seed = Field(0, description="seed of the random halves and fractions")

    @model_validator(mode="after")
    def _distinct(self) -> ClassSelection:
        if self.include is not None and len(set(self.include)) != len(self.include):
            raise SpecError("class indices must be distinct", field="include")
        return self


class BlockShuffle(Spec):
    """Cut each image into b x b blocks and permute them with one fixed permutation (Neyshabur)."""

    kind: Literal["block_shuffle"] = "block_shuffle"
    block: int = Field(ge=1, description="block side in pixels; must divide the image size")
    seed: Seed = Field(0, description="seed of the one permutation used for every image")


class PixelShuffle(Spec):
    """Permute every value of the image, channels included, with one fixed permutation."""

    kind: Literal["pixel_shuffle"] = "pixel_shuffle"
    seed: Seed = 0


class Rotation(Spec):
    kind: Literal["rotation"] = "rotation"
    degrees: float = Field(description="counter-clockwise, the same for every image")


class Inversion(Spec):
    kind: Literal["inversion"] = "inversion"


class GaussianNoise(Spec):
    kind: Literal["noise"] = "noise"
    std: float = Field(gt=0, le=1, description="standard deviation in units of the full range")
    seed: Seed = 0


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
    seed: Seed = Field(0, description="seed of the per-class caps")

    @model_validator(mode="after")
    def _blocks_divide_size(self) -> DataSpec:
        size = self.size or native_size(self.source)
        if size is not None:
            check_block_sizes(self.shifts, size, size, where="shifts")
        return self


# (channels, side) of each torchvision set's images as torchvision reads them.
NATIVE = {"MNIST": (1, 28), "FashionMNIST": (1, 28), "KMNIST": (1, 28), "EMNIST": (1, 28), "QMNIST": (1, 28),
          "USPS": (1, 16), "SVHN": (3, 32), "CIFAR10": (3, 32), "CIFAR100": (3, 32), "STL10": (3, 96)}


def native_shape(source: Source) -> tuple[int, int] | None:  # type: ignore[valid-type]
    """(channels, side) of a source's images as the spec knows them without reading them; None for a folder."""
    if isinstance(source, DigitsSource):
        return 1, 8
    if isinstance(source, SyntheticSource):
        return 3, source.size
    if isinstance(source, TorchvisionSource):
        return NATIVE[source.name]
    return None


def native_size(source: Source) -> int | None:  # type: ignore[valid-type]
    """The side of a source's images as the spec knows it; None for a folder."""
    shape = native_shape(source)
    return shape[1] if shape else None


def check_block_sizes(shifts: list, height: int, width: int, where: str = "data.shifts") -> None:
    """A block shuffle needs blocks that tile the image exactly."""
    for i, shift in enumerate(shifts):
        if isinstance(shift, BlockShuffle) and (height % shift.block or width % shift.block):
            raise SpecError(
                f"block size {shift.block} does not divide the {height}x{width} image "
                f"(pick a divisor of {height}, or set data.size)",
                field=f"{where}.{i}.block",
            )
