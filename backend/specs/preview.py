"""The data preview job: what a study's data looks like before anything is trained on it."""

from __future__ import annotations

from pydantic import Field

from backend.specs.base import Seed, Spec
from backend.specs.data import DataSpec


class DataPreviewSpec(Spec):
    """Classes, images per split, image format, sample images per class, and the class halves A/B
    that each seed of a Yosinski study draws. Decoding needs the engine, so it runs as a job."""

    data: DataSpec = Field(description="the task as the study would load it")
    seeds: list[Seed] = Field(default_factory=list, description="seeds whose halves A and B to show")
    per_class_samples: int = Field(4, ge=1, le=16, description="sample training images shown per class")
    max_classes: int = Field(20, ge=1, le=200, description="rows of the sample grid; more classes are left out")
