"""In-memory image sets: the one data type every source, selection and shift works on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor


@dataclass(frozen=True)
class Images:
    """uint8 images (N, C, H, W) and int64 labels (N,), on the CPU."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        assert self.x.dtype == torch.uint8 and self.x.ndim == 4, (self.x.dtype, self.x.shape)
        assert self.y.dtype == torch.int64 and self.y.shape == (len(self.x),), self.y.shape

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: Tensor) -> Images:
        return Images(self.x[index], self.y[index])


@dataclass(frozen=True)
class TaskData:
    """A classification task ready to train on: train and test images and the class names."""

    train: Images
    test: Images
    classes: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)"""
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of every image, label and class name: equal data, equal fingerprint."""
        h = hashlib.blake2b(digest_size=16)
        for t in (self.train.x, self.train.y, self.test.x, self.test.y):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
        h.update("\n".join(self.classes).encode())
        return h.hexdigest()
