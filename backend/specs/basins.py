"""Neyshabur et al. 2020's basins study: are P-T solutions in one basin and RI-T solutions not?"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from backend.specs.base import Spec, SpecError, Whole
from backend.specs.cross import SourceAndTargets
from backend.specs.landscape import CriticalitySettings, InterpolationSettings, PlaneSettings
from backend.specs.models import unit_names
from backend.specs.probes import SimilaritySettings


class BasinProbes(Spec):
    """What is measured between and on the runs; None turns one off."""

    interpolation: InterpolationSettings | None = Field(
        InterpolationSettings(), description="the linear path and its barrier between every pair of runs")
    similarity: SimilaritySettings | None = Field(SimilaritySettings(), description="CKA between every pair of runs")
    criticality: CriticalitySettings | None = Field(CriticalitySettings(), description="module criticality of every run")
    plane: PlaneSettings | None = Field(None, description="the loss plane around the first run of each kind")
    images: int = Field(512, ge=4, le=100_000, description="target test images the probes measure on")
    across: bool = Field(True, description="also the pair (first P-T run, first RI-T run)")


class BasinsSpec(SourceAndTargets):
    """Per seed, pretrain on `source`; on every target, `runs` networks fine-tuned from it (P-T,
    AnB+ with every unit but the classifier copied) and `runs` trained from scratch (RI-T, baseB),
    each run with its own training seed; then the landscape between and around them."""

    study: Literal["basins"] = "basins"
    runs: int = Field(2, ge=2, le=10, description="P-T and RI-T runs per target, each a training seed")
    n: Whole | None = Field(None, ge=1, description="units P-T copies; None = all but the classifier")
    probes: BasinProbes = BasinProbes()

    @model_validator(mode="after")
    def _valid(self) -> BasinsSpec:
        top = len(unit_names(self.model)) - 1
        if self.n is not None and self.n > top:
            raise SpecError(f"{self.n} out of range: {self.model.arch} has units 1..{top} to transfer", field="n")
        return self

    @property
    def units(self) -> int:
        return self.n or len(unit_names(self.model)) - 1
